"""roles/elastic_ip/files/itsp_eip_move.py (the itsp-eip-move command) as a real process against
moto's EC2 and the lab's metadata stand-in, both on loopback: it moves the address, says clearly
when it is not allowed, and gives up in bounded time when the API is down. Each case checks the
association moto then holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import standins_fixtures as standins
from standins_fixtures import ROOT, Ec2FaultProxy, MetadataStandIn, free_port, register_lab_instances

moto_server = standins.moto_server
clean_moto = standins.clean_moto

MOVER = os.path.join(ROOT, "roles", "elastic_ip", "files", "itsp_eip_move.py")
REGION = "eu-west-1"
EIP = "203.0.113.31"
HOSTS = [
    {"name": "eipa", "private_ipv4": "198.18.0.31", "public_ipv4": EIP, "region": REGION, "zone": "eu-west-1a",
     "instance_type": "c6i.large", "tags": {"Name": "eipa", "itsp:role": "kamailio"}},
    {"name": "eipb", "private_ipv4": "198.18.0.32", "public_ipv4": None, "region": REGION, "zone": "eu-west-1a",
     "instance_type": "c6i.large", "tags": {"Name": "eipb", "itsp:role": "kamailio"}},
]
METADATA_RECORD = {
    "cloud": "aws", "name": "eipb", "instance_type": "c6i.large", "region": REGION, "zone": "eu-west-1a",
    "mac": "02:18:00:00:00:32", "private_ipv4": "198.18.0.32", "public_ipv4": None, "ipv6": [], "hop_limit": 2,
    "fault": None,
}


@pytest.fixture
def fleet(clean_moto):
    return register_lab_instances(clean_moto, HOSTS, "198.18.0.0/24")


@pytest.fixture
def metadata(tmp_path, fleet):
    record = dict(METADATA_RECORD, instance_id=fleet["instances"]["eipb"]["instance_id"])
    with MetadataStandIn(str(tmp_path), record) as stand_in:
        yield stand_in


def write_config(tmp_path, endpoint_url, metadata_url, allocation_id, **extra):
    settings = {"allocation_id": allocation_id, "region": REGION, "endpoint_url": endpoint_url,
                "metadata_url": metadata_url, "max_attempts": 3, "connect_timeout": 1, "read_timeout": 2,
                "access_key_id": "testing", "secret_access_key": "testing",
                "lock_file": str(tmp_path / "mover.lock"), **extra}
    path = tmp_path / "eip-move.conf"
    path.write_text("[elastic_ip]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    return str(path)


def run_mover(config):
    started = time.monotonic()
    result = subprocess.run([sys.executable, MOVER, "--config", config], capture_output=True, text=True,
                            timeout=60, check=False)
    return result, time.monotonic() - started


def holder(moto, fleet):
    """Name of the host the EIP is associated with now, per moto."""
    address = moto.client("ec2", REGION).describe_addresses(PublicIps=[EIP])["Addresses"][0]
    by_id = {v["instance_id"]: k for k, v in fleet["instances"].items()}
    return by_id.get(address.get("InstanceId"))


def test_moves_the_address_to_this_instance_and_again_is_harmless(tmp_path, clean_moto, fleet, metadata):
    allocation = fleet["elastic_ips"][EIP]["allocation_id"]
    config = write_config(tmp_path, clean_moto.url, metadata.url, allocation)
    assert holder(clean_moto, fleet) == "eipa"

    first, _ = run_mover(config)
    assert first.returncode == 0, first.stderr
    assert holder(clean_moto, fleet) == "eipb"
    instance = fleet["instances"]["eipb"]["instance_id"]
    assert f"moved Elastic IP {allocation} to {instance}: association eipassoc-" in first.stderr

    again, _ = run_mover(config)
    assert again.returncode == 0, again.stderr
    assert holder(clean_moto, fleet) == "eipb"


def test_throttled_calls_are_retried_by_the_sdk(tmp_path, clean_moto, fleet, metadata):
    with Ec2FaultProxy(clean_moto.port) as proxy:
        proxy.faults["AssociateAddress"] = {"status": 503, "code": "RequestLimitExceeded",
                                            "message": "Request limit exceeded.", "times": 2}
        config = write_config(tmp_path, proxy.url, metadata.url, fleet["elastic_ips"][EIP]["allocation_id"])
        result, _ = run_mover(config)
    assert result.returncode == 0, result.stderr
    assert proxy.seen["AssociateAddress"] == 3
    assert "3 attempt(s)" in result.stderr
    assert holder(clean_moto, fleet) == "eipb"


def test_a_role_without_permission_fails_naming_it_and_moves_nothing(tmp_path, clean_moto, fleet, metadata):
    iam = clean_moto.client("iam", "us-east-1")
    clean_moto.require_auth_after(2)  # the two IAM calls below go through, everything after is checked
    iam.create_user(UserName="standby")
    key = iam.create_access_key(UserName="standby")["AccessKey"]
    config = write_config(tmp_path, clean_moto.url, metadata.url, fleet["elastic_ips"][EIP]["allocation_id"],
                          access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"])

    result, _ = run_mover(config)

    assert result.returncode == 4, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    allocation = fleet['elastic_ips'][EIP]['allocation_id']
    assert message.startswith(f"itsp-eip-move: not allowed to move Elastic IP {allocation}")
    assert "is not authorized to perform: ec2:AssociateAddress" in message
    assert "needs ec2:AssociateAddress" in message
    clean_moto.require_auth_after("inf")
    assert holder(clean_moto, fleet) == "eipa"


def test_unknown_credentials_are_auth_failure(tmp_path, clean_moto, fleet, metadata):
    clean_moto.require_auth_after(0)
    config = write_config(tmp_path, clean_moto.url, metadata.url, fleet["elastic_ips"][EIP]["allocation_id"],
                          access_key_id="AKIANOTKNOWNANYWHERE", secret_access_key="wrong")
    result, _ = run_mover(config)
    assert result.returncode == 4, result.stderr
    assert "AuthFailure" in result.stderr and "check the instance profile" in result.stderr


def test_api_down_fails_after_the_configured_attempts_in_bounded_time(tmp_path, fleet, metadata):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(tmp_path, closed, metadata.url, fleet["elastic_ips"][EIP]["allocation_id"])
    result, elapsed = run_mover(config)
    assert result.returncode == 5, result.stderr
    assert "failed after 3 attempt(s): EndpointConnectionError" in result.stderr
    assert elapsed < 30


def test_metadata_down_names_the_metadata_service(tmp_path, clean_moto, fleet):
    closed = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, clean_moto.url, closed, fleet["elastic_ips"][EIP]["allocation_id"])
    result, _ = run_mover(config)
    assert result.returncode == 3, result.stderr
    assert f"the metadata service {closed} did not say which instance this is" in result.stderr
    assert holder(clean_moto, fleet) == "eipa"


@pytest.mark.parametrize(("content", "message"), [
    ("[elastic_ip]\nregion = eu-west-1\n", "[elastic_ip] allocation_id is not set"),
    ("[elastic_ip]\nallocation_id = 203.0.113.31\nregion = eu-west-1\n", "is not an Elastic IP allocation id"),
    ("[elastic_ip]\nallocation_id = eipalloc-1\nregion = eu-west-1\nmax_attempts = 0\n",
     "max_attempts must be at least 1"),
    ("[other]\n", "has no [elastic_ip] section"),
])
def test_bad_config_names_the_setting(tmp_path, content, message):
    path = tmp_path / "bad.conf"
    path.write_text(content)
    result, _ = run_mover(str(path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
