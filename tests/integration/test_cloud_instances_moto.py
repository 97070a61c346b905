"""cloud_instances against moto's EC2 over HTTP on loopback; calls are counted by moto itself."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest
import standins_fixtures as standins
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.finder import CloudApiError, CloudInstanceFinder
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    INTERFACE_KEYS,
    RECORD_KEYS,
)
from standins_fixtures import ROOT, Ec2FaultProxy, build_ec2_fleet

moto_server = standins.moto_server
clean_moto = standins.clean_moto

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
PRIVATE = ipaddress.ip_network("198.18.0.0/15")
PUBLIC = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("198.51.100.0/24"))


def params(endpoint_url, **extra):
    base = {
        "provider": "aws",
        "regions": REGIONS,
        "endpoint_url": endpoint_url,
        "access_key": "testing",
        "secret_key": "testing",
    }
    base.update(extra)
    return base


def test_three_regions_one_describe_each_and_eips_matched(clean_moto):
    fleet = build_ec2_fleet(
        clean_moto, REGIONS, per_region=4, tags={"role": "sip", "Name": "sip"}, eips_per_region=2
    )
    build_ec2_fleet(clean_moto, REGIONS[:1], per_region=3, tags={"role": "media"})
    clean_moto.reset_recording()

    result = CloudInstanceFinder(params(clean_moto.url, tags={"role": "sip"})).find()

    assert result["api_calls"] == {"ec2.DescribeAddresses": 3, "ec2.DescribeInstances": 3}
    assert clean_moto.recorded_actions() == {"DescribeInstances": 3, "DescribeAddresses": 3}
    instances = result["instances"]
    assert sorted(record["instance_id"] for record in instances) == sorted(sum(fleet.values(), []))
    for record in instances:
        assert tuple(record) == RECORD_KEYS
        assert [tuple(interface) for interface in record["interfaces"]] == [INTERFACE_KEYS]
        assert record["provider"] == "aws" and record["state"] == "running" and record["name"] == "sip"
        assert record["zone"] == record["region"] + "a"
        assert record["instance_type"] == "c5.large"
        assert ipaddress.ip_address(record["private_ipv4"]) in PRIVATE
        assert record["interfaces"][0]["name"].startswith("eni-")
        assert record["interfaces"][0]["mac"]
    with_eip = {record["instance_id"]: record for record in instances if record["public_ipv4"]}
    assert sorted(with_eip) == sorted(instance_id for ids in fleet.values() for instance_id in ids[:2])
    for record in instances:
        if record["public_ipv4"]:
            assert any(ipaddress.ip_address(record["public_ipv4"]) in net for net in PUBLIC)
            assert record["nat"] == record["interfaces"][0]["nat"] == "one_to_one"
        else:
            assert record["nat"] == record["interfaces"][0]["nat"] == "none"


def test_eip_associated_after_launch_shows_up(clean_moto):
    fleet = build_ec2_fleet(clean_moto, ["eu-west-1"], per_region=1)
    finder_params = params(clean_moto.url, regions=["eu-west-1"])
    before = CloudInstanceFinder(finder_params).find()["instances"]
    assert [(record["public_ipv4"], record["nat"]) for record in before] == [(None, "none")]

    ec2 = clean_moto.client("ec2", "eu-west-1")
    allocation = ec2.allocate_address(Domain="vpc", Address="198.51.100.7")
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=fleet["eu-west-1"][0])

    after = CloudInstanceFinder(finder_params).find()["instances"]
    assert [(record["public_ipv4"], record["nat"]) for record in after] == [("198.51.100.7", "one_to_one")]
    assert after[0]["interfaces"][0]["public_ipv4"] == "198.51.100.7"


def test_pages_are_counted_one_call_each(clean_moto):
    # One reservation per instance: moto pages by reservation, EC2 by instance; both honour MaxResults.
    build_ec2_fleet(clean_moto, ["us-east-1"], per_region=12, batch=1)
    clean_moto.reset_recording()

    result = CloudInstanceFinder(params(clean_moto.url, regions=["us-east-1"], page_size=5)).find()

    assert len(result["instances"]) == 12
    assert result["api_calls"] == {"ec2.DescribeAddresses": 1, "ec2.DescribeInstances": 3}
    assert clean_moto.recorded_actions() == {"DescribeInstances": 3, "DescribeAddresses": 1}


def test_instance_ids_across_regions(clean_moto):
    fleet = build_ec2_fleet(clean_moto, REGIONS, per_region=3)
    wanted = [fleet["us-east-1"][1], fleet["ap-southeast-2"][2]]
    clean_moto.reset_recording()

    result = CloudInstanceFinder(
        params(clean_moto.url, regions=["us-east-1", "ap-southeast-2"], instance_ids=wanted)
    ).find()

    assert sorted(record["instance_id"] for record in result["instances"]) == sorted(wanted)
    assert clean_moto.recorded_actions() == {"DescribeInstances": 2, "DescribeAddresses": 2}


def test_region_without_instances_skips_describe_addresses(clean_moto):
    clean_moto.reset_recording()
    result = CloudInstanceFinder(params(clean_moto.url, regions=["sa-east-1"])).find()
    assert result == {"instances": [], "api_calls": {"ec2.DescribeInstances": 1}}
    assert clean_moto.recorded_actions() == {"DescribeInstances": 1}


def test_unknown_access_key_is_auth_failure_401(clean_moto):
    build_ec2_fleet(clean_moto, ["us-east-1"], per_region=1)
    clean_moto.require_auth_after(0)

    with pytest.raises(CloudApiError) as caught:
        CloudInstanceFinder(
            params(
                clean_moto.url, regions=["us-east-1"], access_key="AKIANOTKNOWNANYWHERE", secret_key="wrong"
            )
        ).find()

    assert str(caught.value) == (
        "ec2.DescribeInstances in us-east-1 failed: AuthFailure (HTTP 401): "
        "AWS was not able to validate the provided access credentials"
    )
    assert (caught.value.code, caught.value.http_status, caught.value.attempts) == ("AuthFailure", 401, 1)


def test_user_without_permission_is_access_denied_403(clean_moto):
    iam = clean_moto.client("iam", "us-east-1")
    clean_moto.require_auth_after(2)  # the two IAM calls below go through, everything after is checked
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]

    with pytest.raises(CloudApiError) as caught:
        CloudInstanceFinder(
            params(
                clean_moto.url,
                regions=["eu-west-1"],
                access_key=key["AccessKeyId"],
                secret_key=key["SecretAccessKey"],
            )
        ).find()

    assert str(caught.value) == (
        "ec2.DescribeInstances in eu-west-1 failed: AccessDenied (HTTP 403): "
        "User: arn:aws:iam::123456789012:user/reader is not authorized to perform: ec2:DescribeInstances"
    )
    assert caught.value.attempts == 1


@pytest.fixture
def fault_proxy(clean_moto):
    with Ec2FaultProxy(clean_moto.port) as proxy:
        yield proxy


def test_throttling_is_retried_adaptively_then_succeeds(clean_moto, fault_proxy):
    build_ec2_fleet(clean_moto, ["us-east-1"], per_region=2)
    fault_proxy.faults["DescribeInstances"] = {
        "status": 503,
        "code": "RequestLimitExceeded",
        "message": "Request limit exceeded.",
        "times": 2,
    }
    clean_moto.reset_recording()

    result = CloudInstanceFinder(params(fault_proxy.url, regions=["us-east-1"])).find()

    assert len(result["instances"]) == 2
    assert result["api_calls"] == {"ec2.DescribeAddresses": 1, "ec2.DescribeInstances": 3}
    assert fault_proxy.seen == {"DescribeInstances": 3, "DescribeAddresses": 1}
    assert clean_moto.recorded_actions() == {"DescribeInstances": 1, "DescribeAddresses": 1}


def test_throttling_that_never_ends_fails_with_the_code(clean_moto, fault_proxy):
    fault_proxy.faults["DescribeInstances"] = {
        "status": 503,
        "code": "RequestLimitExceeded",
        "message": "Request limit exceeded.",
        "times": None,
    }

    with pytest.raises(CloudApiError) as caught:
        CloudInstanceFinder(params(fault_proxy.url, regions=["us-east-1"], max_attempts=3)).find()

    assert str(caught.value) == (
        "ec2.DescribeInstances in us-east-1 failed: RequestLimitExceeded (HTTP 503): "
        "Request limit exceeded. [gave up after 3 attempts]"
    )
    assert fault_proxy.seen == {"DescribeInstances": 3}


def test_garbage_answer_is_a_clean_error(clean_moto, fault_proxy):
    fault_proxy.faults["DescribeInstances"] = {"status": 200, "body": "<html>captive portal", "times": None}

    with pytest.raises(CloudApiError) as caught:
        CloudInstanceFinder(params(fault_proxy.url, regions=["us-east-1"], max_attempts=1)).find()

    assert str(caught.value) == (
        f"ec2.DescribeInstances in us-east-1 failed: MalformedResponse: the answer from endpoint_url {fault_proxy.url} "
        "is not an AWS API answer (not the XML or JSON the service speaks); check endpoint_url"
    )


def test_module_runs_through_ansible(clean_moto, tmp_path):
    """The real module, packed by AnsiballZ and run by ansible, against moto; the secret stays hidden."""
    secret = "moto-ignores-this-secret-0123456789"
    build_ec2_fleet(clean_moto, ["eu-west-1"], per_region=2, tags={"role": "sip"}, eips_per_region=1)
    clean_moto.reset_recording()
    env = standins.ansible_env(tmp_path)
    args = json.dumps(
        {
            "provider": "aws",
            "regions": ["eu-west-1"],
            "endpoint_url": clean_moto.url,
            "access_key": "testing",
            "secret_key": secret,
            "tags": {"role": "sip"},
        }
    )
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    run = subprocess.run(
        [
            ansible,
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-m",
            "itsp.cluster.cloud_instances",
            "-a",
            args,
            "--tree",
            str(tmp_path / "tree"),
            "-vvv",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "tree" / "localhost").read_text())
    assert result["changed"] is False
    assert result["api_calls"] == {"ec2.DescribeAddresses": 1, "ec2.DescribeInstances": 1}
    assert sorted(record["nat"] for record in result["instances"]) == ["none", "one_to_one"]
    assert result["invocation"]["module_args"]["secret_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert secret not in run.stdout + run.stderr + json.dumps(result)
    assert clean_moto.recorded_actions() == {"DescribeInstances": 1, "DescribeAddresses": 1}
