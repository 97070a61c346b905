"""module_utils/cloud_api/ec2.py without a server: data shaping on plain dicts, errors via botocore's Stubber.

Retries and call counts against a real HTTP server are in tests/integration/test_cloud_instances_moto.py.
"""

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api import ec2
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.common import (
    ApiCallCounter,
    CloudApiError,
)
from botocore.stub import Stubber

CLOSED = "http://127.0.0.1:9"  # discard port; nothing is sent there, the Stubber answers first


@pytest.fixture(autouse=True)
def isolated_aws_config(monkeypatch, tmp_path):
    """No shared files, no environment credentials, no instance metadata lookups."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client(**kwargs):
    session = ec2.aws_session(access_key="AKIAUNITTEST", secret_key="unit-test")
    return ec2.ec2_client(session, "us-east-1", ApiCallCounter(), endpoint_url=CLOSED, **kwargs)


def eni(eni_id, index, private_ip, mac, public_ip=None, ipv6=()):
    entry = {
        "NetworkInterfaceId": eni_id,
        "MacAddress": mac,
        "PrivateIpAddress": private_ip,
        "Attachment": {"DeviceIndex": index},
        "Ipv6Addresses": [{"Ipv6Address": a} for a in ipv6],
    }
    if public_ip:
        entry["Association"] = {"PublicIp": public_ip}
    return entry


def test_filters_tags_and_ids_become_ec2_filters():
    assert ec2.build_filters(
        {"instance-state-name": ["pending", "running"], "vpc-id": "vpc-1"}, {"role": "sip"}, ["i-1", "i-2"]
    ) == [
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
        {"Name": "vpc-id", "Values": ["vpc-1"]},
        {"Name": "tag:role", "Values": ["sip"]},
        {"Name": "instance-id", "Values": ["i-1", "i-2"]},
    ]
    assert ec2.build_filters(None, None, None) == []


def test_elastic_ips_indexed_by_interface_and_by_instance():
    index = ec2.index_elastic_ips(
        [
            {
                "PublicIp": "203.0.113.1",
                "NetworkInterfaceId": "eni-1",
                "PrivateIpAddress": "198.18.0.1",
                "InstanceId": "i-1",
            },
            {"PublicIp": "203.0.113.2", "InstanceId": "i-2"},
            {"PublicIp": "203.0.113.3"},  # allocated, not associated
            {"AllocationId": "eipalloc-without-ip"},
        ]
    )
    assert index == {
        "by_interface": {("eni-1", "198.18.0.1"): "203.0.113.1"},
        "by_instance": {"i-2": "203.0.113.2"},
    }


def test_normalize_orders_interfaces_and_prefers_describe_addresses():
    instance = {
        "InstanceId": "i-1",
        "InstanceType": "c5.large",
        "State": {"Name": "running"},
        "Placement": {"AvailabilityZone": "eu-west-1b"},
        "Tags": [{"Key": "role", "Value": "sip"}, {"Key": "Name", "Value": "sip-1"}],
        "NetworkInterfaces": [
            eni("eni-2", 1, "198.18.1.10", "02:00:00:00:00:02", public_ip="198.51.100.9"),
            eni("eni-1", 0, "198.18.0.10", "02:00:00:00:00:01", ipv6=["2001:db8::10"]),
        ],
    }
    # The EIP was associated a moment ago: DescribeAddresses knows, the instance's answer not yet.
    eips = ec2.index_elastic_ips(
        [{"PublicIp": "203.0.113.10", "NetworkInterfaceId": "eni-1", "PrivateIpAddress": "198.18.0.10"}]
    )
    record = ec2.normalize_instance(instance, "eu-west-1", eips)
    assert record == {
        "provider": "aws",
        "region": "eu-west-1",
        "zone": "eu-west-1b",
        "instance_id": "i-1",
        "instance_type": "c5.large",
        "name": "sip-1",
        "state": "running",
        "interfaces": [
            {
                "name": "eni-1",
                "mac": "02:00:00:00:00:01",
                "private_ipv4": "198.18.0.10",
                "public_ipv4": "203.0.113.10",
                "ipv6": ["2001:db8::10"],
                "nat": "one_to_one",
            },
            {
                "name": "eni-2",
                "mac": "02:00:00:00:00:02",
                "private_ipv4": "198.18.1.10",
                "public_ipv4": "198.51.100.9",
                "ipv6": [],
                "nat": "one_to_one",
            },
        ],
        "private_ipv4": "198.18.0.10",
        "public_ipv4": "203.0.113.10",
        "nat": "one_to_one",
    }


def test_answer_without_network_interfaces_falls_back_to_instance_addresses():
    instance = {
        "InstanceId": "i-2",
        "PrivateIpAddress": "198.18.0.20",
        "PublicIpAddress": "198.51.100.20",
        "State": {"Name": "running"},
    }
    record = ec2.normalize_instance(instance, "us-east-1")
    assert record["interfaces"] == [
        {
            "name": None,
            "mac": None,
            "private_ipv4": "198.18.0.20",
            "public_ipv4": "198.51.100.20",
            "ipv6": [],
            "nat": "one_to_one",
        }
    ]
    eips = ec2.index_elastic_ips([{"PublicIp": "203.0.113.20", "InstanceId": "i-2"}])
    assert ec2.normalize_instance(instance, "us-east-1", eips)["public_ipv4"] == "203.0.113.20"


def test_answer_with_nothing_but_an_id():
    record = ec2.normalize_instance({"InstanceId": "i-3", "NetworkInterfaces": []}, "us-east-1")
    assert record == {
        "provider": "aws",
        "region": "us-east-1",
        "zone": None,
        "instance_id": "i-3",
        "instance_type": None,
        "name": None,
        "state": None,
        "interfaces": [],
        "private_ipv4": None,
        "public_ipv4": None,
        "nat": "none",
    }


def test_interface_without_public_ip_is_not_natted():
    instance = {
        "InstanceId": "i-4",
        "NetworkInterfaces": [eni("eni-4", 0, "198.18.0.40", "02:00:00:00:00:04")],
    }
    record = ec2.normalize_instance(instance, "us-east-1")
    assert (record["private_ipv4"], record["public_ipv4"], record["nat"]) == ("198.18.0.40", None, "none")


def test_client_uses_adaptive_retries_with_total_attempts():
    ec2_client = client(max_attempts=7)
    assert ec2_client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert ec2_client.meta.region_name == "us-east-1"
    assert ec2_client.meta.endpoint_url == CLOSED


def test_pages_are_followed():
    ec2_client = client()
    with Stubber(ec2_client) as stub:
        stub.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": [{"InstanceId": "i-1"}]}], "NextToken": "t1"},
            {"MaxResults": 1000, "Filters": [{"Name": "tag:role", "Values": ["sip"]}]},
        )
        stub.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": [{"InstanceId": "i-2"}, {"InstanceId": "i-3"}]}]},
            {"MaxResults": 1000, "NextToken": "t1", "Filters": [{"Name": "tag:role", "Values": ["sip"]}]},
        )
        found = ec2.describe_instances(
            ec2_client, "us-east-1", filters=[{"Name": "tag:role", "Values": ["sip"]}]
        )
        stub.assert_no_pending_responses()
    assert [instance["InstanceId"] for instance in found] == ["i-1", "i-2", "i-3"]


def test_throttling_error_keeps_code_status_and_attempts():
    ec2_client = client()
    with Stubber(ec2_client) as stub:
        stub.add_client_error(
            "describe_instances",
            service_error_code="RequestLimitExceeded",
            service_message="Request limit exceeded.",
            http_status_code=503,
            response_meta={"RetryAttempts": 4},
        )
        with pytest.raises(CloudApiError) as caught:
            ec2.describe_instances(ec2_client, "us-east-1")
    assert str(caught.value) == (
        "ec2.DescribeInstances in us-east-1 failed: RequestLimitExceeded (HTTP 503): "
        "Request limit exceeded. [gave up after 5 attempts]"
    )


def test_describe_addresses_error():
    ec2_client = client()
    with Stubber(ec2_client) as stub:
        stub.add_client_error(
            "describe_addresses",
            service_error_code="UnauthorizedOperation",
            service_message="You are not authorized to perform this operation.",
            http_status_code=403,
        )
        with pytest.raises(CloudApiError) as caught:
            ec2.describe_addresses(ec2_client, "eu-west-1")
    assert str(caught.value) == (
        "ec2.DescribeAddresses in eu-west-1 failed: UnauthorizedOperation (HTTP 403): "
        "You are not authorized to perform this operation."
    )
    assert caught.value.attempts == 1


def test_unknown_profile_is_a_clean_error():
    with pytest.raises(CloudApiError) as caught:
        ec2.aws_session(profile="nope")
    assert str(caught.value) == (
        "boto3.session in profile nope failed: ProfileNotFound: The config profile (nope) could not be found; "
        "check profile"
    )


def test_no_credentials_anywhere_is_a_clean_error():
    counter = ApiCallCounter()
    ec2_client = ec2.ec2_client(ec2.aws_session(), "us-east-1", counter, endpoint_url=CLOSED)
    with pytest.raises(CloudApiError) as caught:
        ec2.describe_instances(ec2_client, "us-east-1")
    assert (
        str(caught.value)
        == "ec2.DescribeInstances in us-east-1 failed: NoCredentialsError: no AWS credentials found; set profile, "
        "or access_key and secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )
    assert counter.as_dict() == {}  # signing failed before anything was sent


def test_discover_reports_the_first_failing_region_in_the_callers_order(monkeypatch):
    def fake_region(client, region, **_kwargs):
        if region in ("eu-west-1", "ap-southeast-2"):
            raise CloudApiError("aws", "ec2.DescribeInstances", region, "AuthFailure", "no")
        return [ec2.normalize_instance({"InstanceId": "i-" + region}, region)]

    monkeypatch.setattr(ec2, "discover_region", fake_region)
    with pytest.raises(CloudApiError) as caught:
        ec2.discover(["us-east-1", "eu-west-1", "ap-southeast-2"], ApiCallCounter())
    assert caught.value.scope == "eu-west-1"
    found = ec2.discover(["us-east-1", "us-east-1", "sa-east-1"], ApiCallCounter())
    assert [record["instance_id"] for record in found] == ["i-us-east-1", "i-sa-east-1"]
