"""The normalized record, the one exception type and the call counter of module_utils/cloud_api."""

import threading

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.common import (
    ApiCallCounter,
    CloudApiError,
)
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    INTERFACE_KEYS,
    RECORD_KEYS,
    make_interface,
    make_record,
    nat_kind,
    sort_key,
)


def test_nat_is_one_to_one_only_with_a_public_address():
    assert nat_kind("203.0.113.5") == "one_to_one"
    assert nat_kind(None) == "none"
    assert nat_kind("") == "none"


def test_interface_keys_and_empty_values_become_null():
    interface = make_interface("", "", "198.18.0.5", "", ["2001:db8::5", None, ""])
    assert tuple(interface) == INTERFACE_KEYS
    assert interface == {
        "name": None,
        "mac": None,
        "private_ipv4": "198.18.0.5",
        "public_ipv4": None,
        "ipv6": ["2001:db8::5"],
        "nat": "none",
    }


def test_record_takes_addresses_from_the_primary_interface():
    primary = make_interface("eni-1", "02:00:00:00:00:01", "198.18.0.5", None)
    secondary = make_interface("eni-2", "02:00:00:00:00:02", "198.18.1.5", "203.0.113.5")
    record = make_record(
        "aws", "eu-west-1", "eu-west-1a", "i-1", "c5.large", "sip-1", "running", [primary, secondary]
    )
    assert tuple(record) == RECORD_KEYS
    assert (record["private_ipv4"], record["public_ipv4"], record["nat"]) == ("198.18.0.5", None, "none")
    assert record["interfaces"][1]["nat"] == "one_to_one"


def test_record_without_interfaces():
    record = make_record("gce", "us-central1", "us-central1-a", "42", None, "bare", "terminated", [])
    assert record == {
        "provider": "gce",
        "region": "us-central1",
        "zone": "us-central1-a",
        "instance_id": "42",
        "instance_type": None,
        "name": "bare",
        "state": "terminated",
        "interfaces": [],
        "private_ipv4": None,
        "public_ipv4": None,
        "nat": "none",
    }


def test_sort_key_orders_by_region_zone_name_id_and_tolerates_nulls():
    records = [
        make_record("aws", "us-east-1", "us-east-1a", "i-3", None, None, None, []),
        make_record("aws", "eu-west-1", "eu-west-1b", "i-2", None, "b", None, []),
        make_record("aws", "eu-west-1", "eu-west-1a", "i-9", None, "z", None, []),
        make_record("aws", "eu-west-1", "eu-west-1a", "i-1", None, "a", None, []),
    ]
    assert [record["instance_id"] for record in sorted(records, key=sort_key)] == ["i-1", "i-9", "i-2", "i-3"]


def test_error_text_and_result_keys():
    error = CloudApiError(
        "aws",
        "ec2.DescribeInstances",
        "eu-west-1",
        "RequestLimitExceeded",
        "Request limit exceeded.",
        http_status=503,
        attempts=5,
    )
    assert str(error) == (
        "ec2.DescribeInstances in eu-west-1 failed: RequestLimitExceeded (HTTP 503): "
        "Request limit exceeded. [gave up after 5 attempts]"
    )
    assert error.as_result() == {
        "error_code": "RequestLimitExceeded",
        "http_status": 503,
        "operation": "ec2.DescribeInstances",
        "attempts": 5,
    }
    single = CloudApiError(
        "gce", "google.auth", "auth_kind application", "DefaultCredentialsError", "none found"
    )
    assert str(single) == "google.auth in auth_kind application failed: DefaultCredentialsError: none found"


def test_counter_is_safe_across_threads():
    counter = ApiCallCounter()

    def work():
        for _ in range(1000):
            counter.add("ec2.DescribeInstances")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counter.add("ec2.DescribeAddresses", 2)
    assert counter.as_dict() == {"ec2.DescribeAddresses": 2, "ec2.DescribeInstances": 8000}
    assert list(counter.as_dict()) == ["ec2.DescribeAddresses", "ec2.DescribeInstances"]
