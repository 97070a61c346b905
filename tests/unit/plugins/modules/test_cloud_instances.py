"""The cloud_instances module as Ansible runs it: arguments in, exit_json/fail_json out (both raise here).

The cloud is faked one level down (ec2.discover / gce.discover); real HTTP is in tests/integration.
"""

import socket
import sys

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api import ec2, finder, gce
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    make_interface,
    make_record,
)
from ansible_collections.itsp.cluster.plugins.module_utils.errors import CloudApiError
from ansible_collections.itsp.cluster.plugins.modules import cloud_instances
from module_harness import closed_port, failure_of

AWS = {"provider": "aws", "regions": ["eu-west-1"]}
GCE = {"provider": "gce", "project": "itsp-lab"}


@pytest.fixture
def run(run_module):
    """run(args) -> the kwargs of exit_json; raises Fail(kwargs) from fail_json."""
    return run_module.bind(cloud_instances.main)


@pytest.fixture
def no_cloud(monkeypatch):
    """Any attempt to reach a cloud fails the test: bad input must be refused before that."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the cloud was asked although the input was bad")

    monkeypatch.setattr(ec2, "discover", refuse)
    monkeypatch.setattr(gce, "discover", refuse)


@pytest.mark.usefixtures("no_cloud")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"provider": "azure", "regions": ["x"]}, "value of provider must be one of: aws, gce, got: azure"),
        ({"regions": ["eu-west-1"]}, "missing required arguments: provider"),
        ({"provider": "aws"}, "provider is aws but all of the following are missing: regions"),
        ({"provider": "gce"}, "provider is gce but all of the following are missing: project"),
        (
            dict(AWS, instance_ids=["i-1"], tags={"role": "sip"}),
            "parameters are mutually exclusive: instance_ids|tags",
        ),
        (
            dict(AWS, instance_ids=["i-1"], filters={"vpc-id": "vpc-1"}),
            "parameters are mutually exclusive: instance_ids|filters",
        ),
        (
            dict(AWS, profile="lab", access_key="AKIAEXAMPLE", secret_key="x"),
            "parameters are mutually exclusive: profile|access_key",
        ),
        (dict(AWS, access_key="AKIAEXAMPLE"), "parameters are required together: access_key, secret_key"),
        (
            dict(GCE, auth_kind="anonymous"),
            "auth_kind is anonymous but all of the following are missing: endpoint_url",
        ),
        (
            dict(GCE, auth_kind="serviceaccount"),
            "auth_kind is serviceaccount but any of the following are missing: service_account_file, "
            "service_account_contents",
        ),
        (
            dict(GCE, auth_kind="kerberos"),
            "value of auth_kind must be one of: application, serviceaccount, anonymous, got: kerberos",
        ),
        (
            dict(GCE, regions=["eu-west-1"], endpoint_url="http://127.0.0.1:9"),
            "option(s) regions do not apply to provider gce",
        ),
        (
            dict(AWS, project="itsp-lab", auth_kind="anonymous", api_endpoint="http://127.0.0.1:9"),
            "option(s) project, auth_kind do not apply to provider aws",
        ),
        (dict(AWS, page_size=2), "page_size must be between 5 and 1000 for provider aws, got 2"),
        (dict(GCE, page_size=501), "page_size must be between 1 and 500 for provider gce, got 501"),
        (dict(AWS, max_attempts=0), "max_attempts must be a whole number from 1 to 20, got 0"),
        (dict(AWS, endpoint_url="not-a-url"), "endpoint_url must be an http:// or https:// URL with a host, such as "
         "https://compute.googleapis.com or http://127.0.0.1:8780; got 'not-a-url'"),
        (dict(GCE, project=""), "project must be a GCE project id such as itsp-prod (6 to 30 of a-z, 0-9 and -), "
         "got ''"),
        (dict(AWS, regions=[""]), "regions must name at least one region for provider aws"),
        (
            dict(GCE, regions=["x"], page_size=0),
            "option(s) regions do not apply to provider gce; "
            "page_size must be between 1 and 500 for provider gce, got 0",
        ),
    ],
)
def test_bad_input_is_refused_with_an_actionable_message(run, args, message):
    assert failure_of(run, args)["msg"] == message


@pytest.mark.usefixtures("no_cloud")
def test_missing_sdk_names_the_library(run, monkeypatch):
    monkeypatch.setattr(ec2, "HAS_BOTO3", False)
    monkeypatch.setattr(gce, "HAS_GOOGLE_COMPUTE", False)
    hostname = socket.gethostname()
    for args, library in ((AWS, "boto3"), (GCE, "google-cloud-compute")):
        assert failure_of(run, args)["msg"] == (
            f"Failed to import the required Python library ({library}) on {hostname}'s Python "
            f"{sys.executable}. Please read the module documentation and install it in the appropriate "
            "location. If the required library is installed, but Ansible is using the wrong Python "
            "interpreter, please consult the documentation on ansible_python_interpreter"
        )


def fake_record(region, name, public=None):
    interface = make_interface("eni-" + name, "02:00:00:00:00:01", "198.18.0.1", public)
    return make_record("aws", region, region + "a", "i-" + name, "c5.large", name, "running", [interface])


def test_success_is_sorted_unchanged_and_the_same_in_check_mode(run, monkeypatch):
    calls = []

    def discover(regions, counter, **kwargs):
        calls.append((regions, kwargs))
        counter.add("ec2.DescribeInstances", 2)
        counter.add("ec2.DescribeAddresses", 2)
        return [fake_record("us-east-1", "b"), fake_record("eu-west-1", "a", "203.0.113.1")]

    monkeypatch.setattr(ec2, "discover", discover)
    args = {
        "provider": "aws",
        "regions": ["us-east-1", "eu-west-1"],
        "tags": {"role": "sip"},
        "access_key": "AKIAEXAMPLE",
        "secret_key": "s3cret",
        "endpoint_url": "http://127.0.0.1:9",
    }
    result = run(args)
    assert result["changed"] is False
    assert [record["name"] for record in result["instances"]] == ["a", "b"]
    assert result["api_calls"] == {"ec2.DescribeAddresses": 2, "ec2.DescribeInstances": 2}
    assert calls[0] == (
        ["us-east-1", "eu-west-1"],
        {
            "filters": None,
            "tags": {"role": "sip"},
            "instance_ids": None,
            "page_size": 1000,
            "endpoint_url": "http://127.0.0.1:9",
            "profile": None,
            "access_key": "AKIAEXAMPLE",
            "secret_key": "s3cret",
            "session_token": None,
            "max_attempts": 5,
        },
    )
    checked = run(args, check_mode=True)
    assert checked["instances"] == result["instances"] and checked["changed"] is False


def test_gce_options_reach_the_gce_backend(run, monkeypatch):
    seen = {}

    def discover(project, counter, **kwargs):
        kwargs.pop("zones_seen").add("us-central1-a")
        seen.update(kwargs, project=project)
        counter.add("compute.instances.aggregatedList")
        return []

    monkeypatch.setattr(gce, "discover", discover)
    result = run(
        dict(
            GCE,
            labels={"role": "rtp"},
            zones=["us-central1-a"],
            auth_kind="anonymous",
            api_endpoint="http://127.0.0.1:9",
            page_size=50,
            max_attempts=2,
        )
    )
    assert result["api_calls"] == {"compute.instances.aggregatedList": 1}
    assert seen == {
        "project": "itsp-lab",
        "zones": ["us-central1-a"],
        "filters": None,
        "labels": {"role": "rtp"},
        "instance_ids": None,
        "page_size": 50,
        "max_attempts": 2,
        "auth_kind": "anonymous",
        "service_account_file": None,
        "service_account_contents": None,
        "api_endpoint": "http://127.0.0.1:9",
        "retry_initial": 0.5,
    }


def test_cloud_error_fails_with_the_cloud_code(run, monkeypatch):
    def discover(regions, counter, **kwargs):
        counter.add("ec2.DescribeInstances", 5)
        raise CloudApiError(
            "aws",
            "ec2.DescribeInstances",
            "eu-west-1",
            "RequestLimitExceeded",
            "Request limit exceeded.",
            http_status=503,
            attempts=5,
        )

    monkeypatch.setattr(ec2, "discover", discover)
    failure = failure_of(run, AWS)
    assert failure == {
        "msg": "ec2.DescribeInstances in eu-west-1 failed: RequestLimitExceeded (HTTP 503): "
        "Request limit exceeded. [gave up after 5 attempts]",
        "error_code": "RequestLimitExceeded",
        "http_status": 503,
        "operation": "ec2.DescribeInstances",
        "attempts": 5,
        "api_calls": {"ec2.DescribeInstances": 5},
    }


def test_ids_found_nowhere_are_a_warning(run, monkeypatch):
    monkeypatch.setattr(ec2, "discover", lambda regions, counter, **kwargs: [fake_record("eu-west-1", "a")])
    result = run(dict(AWS, instance_ids=["i-a", "i-gone"]))
    assert [record["instance_id"] for record in result["instances"]] == ["i-a"]
    assert run.warnings == ["instance_ids not found in regions eu-west-1: i-gone"]


def test_secrets_are_no_log():
    spec = cloud_instances.argument_spec()
    assert {name for name, option in spec.items() if option.get("no_log")} == {
        "secret_key",
        "session_token",
        "service_account_contents",
    }


def test_provider_option_table_covers_every_provider_specific_option():
    shared = {"provider", "filters", "tags", "instance_ids", "page_size", "max_attempts", "endpoint_url"}
    listed = {name for names in finder.PROVIDER_OPTIONS.values() for name in names}
    assert listed | shared == set(cloud_instances.argument_spec())
    assert not listed & shared


@pytest.mark.parametrize("provider", ["aws", "gce"])
def test_a_refused_endpoint_reports_the_attempts_that_went_out(run, monkeypatch, provider):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    args = dict(AWS if provider == "aws" else dict(GCE, auth_kind="anonymous"), endpoint_url=endpoint,
                max_attempts=3)
    failure = failure_of(run, args)
    assert failure["attempts"] == 3
    assert sum(failure["api_calls"].values()) == 3
    assert f"check endpoint_url {endpoint}" in failure["msg"]
