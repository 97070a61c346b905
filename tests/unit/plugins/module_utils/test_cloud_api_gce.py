"""module_utils/cloud_api/gce.py without a server: filters, normalization, retry decisions, credentials.

The real client against the Compute stand-in is in tests/integration/test_cloud_instances_gce.py.
"""

import json

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api import gce
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.common import (
    ApiCallCounter,
    CloudApiError,
)
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as sdk_gce
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials

BASE = "https://compute.example.invalid/compute/v1/projects/itsp-lab"


def test_filter_from_filters_labels_and_ids():
    expression = gce.build_filter(
        {"status": "RUNNING", "name": ["sip-1", "sip-2"]}, {"role": "sip"}, ["11", "12"]
    )
    assert expression == (
        '(name = "sip-1" OR name = "sip-2") AND (status = "RUNNING") AND '
        '(labels.role = "sip") AND (id = "11" OR id = "12")'
    )
    assert gce.build_filter() == ""


def test_filter_values_are_quoted():
    assert gce.build_filter({"description": 'say "hi" \\ bye'}) == '(description = "say \\"hi\\" \\\\ bye")'


def test_normalize_full_instance():
    instance = {
        "id": "4242",
        "name": "rtp-1",
        "status": "RUNNING",
        "zone": f"{BASE}/zones/europe-west1-b",
        "machineType": f"{BASE}/zones/europe-west1-b/machineTypes/c2-standard-4",
        "networkInterfaces": [
            {
                "name": "nic0",
                "networkIP": "198.18.1.4",
                "ipv6Address": "fd20::4",
                "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": "203.0.113.4"}],
                "ipv6AccessConfigs": [{"type": "DIRECT_IPV6", "externalIpv6": "2001:db8::4"}],
            },
            {"name": "nic1", "networkIP": "198.19.1.4"},
        ],
    }
    assert gce.normalize_instance(instance) == {
        "provider": "gce",
        "region": "europe-west1",
        "zone": "europe-west1-b",
        "instance_id": "4242",
        "instance_type": "c2-standard-4",
        "name": "rtp-1",
        "state": "running",
        "interfaces": [
            {
                "name": "nic0",
                "mac": None,
                "private_ipv4": "198.18.1.4",
                "public_ipv4": "203.0.113.4",
                "ipv6": ["fd20::4", "2001:db8::4"],
                "nat": "one_to_one",
            },
            {
                "name": "nic1",
                "mac": None,
                "private_ipv4": "198.19.1.4",
                "public_ipv4": None,
                "ipv6": [],
                "nat": "none",
            },
        ],
        "private_ipv4": "198.18.1.4",
        "public_ipv4": "203.0.113.4",
        "nat": "one_to_one",
    }


def test_normalize_partial_answers():
    # An access config that lost its address (ephemeral IP released) is not a public address.
    released = {
        "name": "a",
        "zone": "us-central1-a",
        "networkInterfaces": [{"networkIP": "198.18.0.9", "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
    }
    record = gce.normalize_instance(released, "us-central1-a")
    assert (record["instance_id"], record["public_ipv4"], record["nat"], record["state"]) == (
        "a",
        None,
        "none",
        None,
    )
    assert record["interfaces"][0]["name"] is None
    assert gce.normalize_instance({"name": "b", "id": "7"}, None)["region"] is None
    bare = gce.normalize_instance({"name": "c", "id": "8", "networkInterfaces": []}, "us-central1-a")
    assert (bare["interfaces"], bare["private_ipv4"], bare["nat"]) == ([], None, "none")


def forbidden(reason):
    return api_exceptions.Forbidden("denied", errors=[{"reason": reason, "domain": "usageLimits"}])


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (api_exceptions.TooManyRequests("slow down"), True),
        (api_exceptions.ServiceUnavailable("later"), True),
        (api_exceptions.InternalServerError("oops"), True),
        (api_exceptions.GatewayTimeout("slow"), True),
        (forbidden("rateLimitExceeded"), True),
        (forbidden("userRateLimitExceeded"), True),
        (forbidden("forbidden"), False),
        (api_exceptions.Unauthorized("who"), False),
        (api_exceptions.NotFound("gone"), False),
        (ValueError("not an API error"), False),
    ],
)
def test_what_is_retried(error, retryable):
    assert gce.is_retryable(error) is retryable


def test_retry_budget_counts_every_attempt():
    budget = gce.RetryBudget(3)
    throttled = api_exceptions.TooManyRequests("slow down")
    assert [budget(throttled), budget(throttled), budget(throttled)] == [True, True, False]
    assert budget.failures == 3
    assert gce.RetryBudget(1)(throttled) is False


def test_api_error_without_a_body_falls_back_to_the_status_name():
    error = sdk_gce.translate(api_exceptions.Forbidden("GET /x: no"), gce.OP_AGGREGATED_LIST, "project itsp-lab")
    assert str(error) == (
        "compute.instances.aggregatedList in project itsp-lab failed: "
        "PERMISSION_DENIED (HTTP 403): GET /x: no"
    )


def test_anonymous_credentials():
    assert isinstance(gce.gce_credentials("anonymous"), AnonymousCredentials)


def test_missing_service_account_file(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(CloudApiError) as caught:
        gce.gce_credentials("serviceaccount", service_account_file=str(missing))
    assert str(caught.value) == (
        f"google.auth in auth_kind serviceaccount failed: FileNotFoundError: "
        f"[Errno 2] No such file or directory: '{missing}'"
    )


def test_service_account_contents_that_are_not_a_key():
    with pytest.raises(CloudApiError) as caught:
        gce.gce_credentials(
            "serviceaccount", service_account_contents=json.dumps({"type": "service_account"})
        )
    prefix = (
        "google.auth in auth_kind serviceaccount failed: MalformedError: Service account "
        "info was not in the expected format, missing fields "
    )
    text = str(caught.value)
    assert text.startswith(prefix)
    assert sorted(text[len(prefix) :].rstrip(".").split(", ")) == ["client_email", "token_uri"]  # set order
    with pytest.raises(CloudApiError) as caught:
        gce.gce_credentials("serviceaccount", service_account_contents="{not json")
    assert str(caught.value) == (
        "google.auth in auth_kind serviceaccount failed: JSONDecodeError: Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_application_default_credentials_missing(monkeypatch, tmp_path):
    missing = tmp_path / "adc.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    with pytest.raises(CloudApiError) as caught:
        gce.gce_credentials("application")
    assert str(caught.value) == (
        f"google.auth in auth_kind application failed: DefaultCredentialsError: File {missing} was not found."
    )


def test_client_sends_to_the_given_endpoint_over_rest():
    client = gce.instances_client(AnonymousCredentials(), ApiCallCounter(), "http://127.0.0.1:9")
    assert client.api_endpoint == "http://127.0.0.1:9"
    assert type(client.transport).__name__ == "InstancesRestTransport"
    assert client.transport._host == "http://127.0.0.1:9"


def test_interceptor_counts_each_attempt():
    counter = ApiCallCounter()
    interceptor = gce.CountingInterceptor(counter)
    request, metadata = interceptor.pre_aggregated_list("request", [("k", "v")])
    interceptor.pre_aggregated_list("request", [])
    assert (request, metadata) == ("request", [("k", "v")])
    assert counter.as_dict() == {"compute.instances.aggregatedList": 2}


def test_zones_option_keeps_only_those_zones(monkeypatch):
    def fake_list(client, project, filter_expression, **_kwargs):
        return [("europe-west1-b", {"name": "a", "id": "1"}), ("us-central1-a", {"name": "b", "id": "2"})]

    monkeypatch.setattr(gce, "aggregated_list", fake_list)
    found = gce.discover(
        "itsp-lab",
        ApiCallCounter(),
        zones=["us-central1-a"],
        auth_kind="anonymous",
        api_endpoint="http://127.0.0.1:9",
    )
    assert [(record["name"], record["zone"], record["region"]) for record in found] == [
        ("b", "us-central1-a", "us-central1")
    ]
