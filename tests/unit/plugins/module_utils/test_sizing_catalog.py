"""Catalog rules (bandwidth, internet egress), candidate selection, prices, the per-run cache, and
the SDK error paths (botocore Stubber, a GCE client that raises) without any network."""

import json

import boto3
import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.errors import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as sdk_gce
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import catalog, ec2, gce, model
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError
from botocore.stub import Stubber
from google.api_core import exceptions as gapi_exceptions
from google.cloud import compute_v1

CALIB = model.merge_calibration(None)


def record(name, vcpus=4, memory_mb=8192, family=None, **extra):
    base = {"name": name, "family": family or name.split(".")[0], "vcpus": vcpus, "memory_mb": memory_mb,
            "architectures": ["x86_64"], "burstable": False, "shared_cpu": False, "baseline_gbps": 1.25,
            "peak_gbps": 12.5, "network_performance": "Up to 12.5 Gigabit", "zones": []}
    base.update(extra)
    return base


@pytest.mark.parametrize("baseline, perf, gbps, rule", [
    (0.75, "Up to 10 Gigabit", 0.75, "BaselineBandwidthInGbps"),
    (None, "Up to 12.5 Gigabit", 0.625, "assumed 0.05 of 'Up to 12.5 Gigabit' (no baseline published)"),
    (None, "25 Gigabit", 25.0, "NetworkPerformance '25 Gigabit'"),
    (None, "8x 100 Gigabit", 800.0, "NetworkPerformance '8x 100 Gigabit'"),
    (None, "Moderate", 0.3, "assumed 0.3 Gbit/s for 'Moderate'"),
    (None, "Fast-ish", 0.0, "unknown NetworkPerformance 'Fast-ish'"),
])
def test_ec2_baseline_rules(baseline, perf, gbps, rule):
    assert catalog.ec2_bandwidth({"baseline_gbps": baseline, "network_performance": perf}, CALIB) == (gbps, rule)


@pytest.mark.parametrize("vcpus, baseline, internet", [(2, 0.75, 0.75), (8, 12.5, 5.0), (32, 50.0, 25.0),
                                                       (64, 100.0, 50.0)])
def test_ec2_internet_egress(vcpus, baseline, internet):
    assert catalog.ec2_internet(vcpus, baseline, CALIB) == internet


@pytest.mark.parametrize("name, vcpus, gbps", [("n2-standard-4", 4, 8.0), ("n2-standard-32", 32, 32.0),
                                               ("e2-standard-16", 16, 16.0), ("z9-standard-16", 16, 16.0)])
def test_gce_bandwidth_per_vcpu_with_series_cap(name, vcpus, gbps):
    assert catalog.gce_bandwidth({"name": name, "vcpus": vcpus}, CALIB)[0] == gbps


def test_gce_internet_cap():
    candidate = catalog.to_candidate(record("n2-standard-16", vcpus=16, family="n2"), "gce", CALIB)
    assert (candidate["baseline_gbps"], candidate["internet_gbps"]) == (32.0, 7.0)


def test_select_leaves_out_burstable_shared_foreign_and_unlisted_families():
    records = [record("c6i.xlarge"), record("t3.large", burstable=True),
               record("e2-micro", family="e2", shared_cpu=True), record("a1.large", architectures=["arm64"]),
               record("m6i.xlarge"), record("mac1.metal", architectures=["x86_64_mac"])]
    chosen, summary = catalog.select_candidates(records, "aws", CALIB, families=["c6*", "a1"],
                                                architectures=["x86_64"], prices={"c6i.xlarge": 0.17})
    assert [c["name"] for c in chosen] == ["c6i.xlarge"]
    assert summary == {"types_fetched": 6, "excluded_burstable_or_shared": 2, "excluded_architecture": 2,
                       "excluded_family": 1, "excluded_no_bandwidth": 0, "skipped_unpriced": [], "candidates": 1}
    assert chosen[0]["price"] == 0.17


def test_family_pattern_can_match_the_whole_name():
    records = [record("n2-highcpu-8", family="n2"), record("n2-standard-8", family="n2")]
    chosen, _ = catalog.select_candidates(records, "gce", CALIB, families=["n2-highcpu-*"],
                                          prices={"n2-highcpu-8": 0.2, "n2-standard-8": 0.3})
    assert [c["name"] for c in chosen] == ["n2-highcpu-8"]


def test_missing_prices_are_named():
    records = [record(f"c6i.{size}") for size in ("large", "xlarge", "2xlarge")]
    with pytest.raises(SizingError) as err:
        catalog.select_candidates(records, "aws", CALIB, prices={"c6i.large": 0.085})
    assert err.value.msg == ("no price for 2 candidate instance type(s): c6i.2xlarge, c6i.xlarge; add them to "
                             "prices, narrow families, or set unpriced=skip to leave them out")


def test_missing_prices_beyond_twenty_are_counted():
    records = [record(f"c6i.s{index:02d}") for index in range(25)]
    with pytest.raises(SizingError) as err:
        catalog.select_candidates(records, "aws", CALIB, prices={"c6i.s00": 1})
    assert err.value.msg.startswith("no price for 24 candidate instance type(s): c6i.s01, c6i.s02")
    assert "c6i.s20 and 4 more; add them" in err.value.msg


def test_unpriced_skip_lists_what_was_left_out():
    records = [record("c6i.large"), record("c6i.xlarge")]
    chosen, summary = catalog.select_candidates(records, "aws", CALIB, prices={"c6i.large": 0.085}, unpriced="skip")
    assert [c["name"] for c in chosen] == ["c6i.large"]
    assert summary["skipped_unpriced"] == ["c6i.xlarge"]


def test_nothing_priced_even_when_skipping():
    with pytest.raises(SizingError) as err:
        catalog.select_candidates([record("c6i.large")], "aws", CALIB, prices={}, unpriced="skip")
    assert err.value.msg == ("none of the 1 candidate instance types has a price; "
                             "add prices for some of: c6i.large")


def test_no_family_matches():
    with pytest.raises(SizingError) as err:
        catalog.select_candidates([record("c6i.large"), record("m6i.large")], "aws", CALIB, families=["z*"],
                                  region="us-east-1")
    assert err.value.msg == ("no instance type in region 'us-east-1' matches families [z*] and architectures "
                             "[x86_64, arm64] (2 types fetched; families present: c6i, m6i); change families "
                             "or architectures")


@pytest.mark.parametrize("prices, message", [
    ({"c6i.large": 0}, "prices.c6i.large must be greater than 0 (got 0)"),
    ({"c6i.large": "cheap"}, "prices.c6i.large must be a number (got 'cheap')"),
    (["c6i.large"], "prices must be a mapping of instance type to hourly price"),
])
def test_bad_prices(prices, message):
    with pytest.raises(SizingError) as err:
        catalog.check_prices(prices)
    assert err.value.msg == message


@pytest.mark.parametrize("entries, message", [
    (["x"], "catalog[0] must be a mapping with name, vcpus, memory_mb, baseline_gbps"),
    ([{"name": "r650", "vcpus": 32}], "catalog[0] (r650) lacks memory_mb, baseline_gbps"),
    ([{"name": "r650", "vcpus": 0, "memory_mb": 1, "baseline_gbps": 1}],
     "catalog[0] (r650): vcpus must be a number greater than 0 (got 0)"),
])
def test_bad_static_catalog(entries, message):
    with pytest.raises(SizingError) as err:
        catalog.static_records(entries)
    assert err.value.msg == message


def test_cache_in_memory_then_file(tmp_path):
    catalog.clear_memory_cache()
    calls = []

    def fetch():
        calls.append(1)
        return [record("c6i.large")]

    path = str(tmp_path / "cache" / "aws.json")
    key = catalog.cache_key(provider="aws", region="us-east-1")
    assert catalog.cached_records(key, fetch, path, now=lambda: 1000.0)[1] == "api"
    assert catalog.cached_records(key, fetch, path, now=lambda: 1000.0)[1] == "memory"
    catalog.clear_memory_cache()
    records, where = catalog.cached_records(key, fetch, path, max_age=60, now=lambda: 1050.0)
    assert (where, records[0]["name"]) == ("file", "c6i.large")
    catalog.clear_memory_cache()
    assert catalog.cached_records(key, fetch, path, max_age=60, now=lambda: 1061.0)[1] == "api"  # too old
    catalog.clear_memory_cache()
    other = catalog.cache_key(provider="aws", region="eu-west-1")
    assert catalog.cached_records(other, fetch, path, now=lambda: 1062.0)[1] == "api"  # other key
    assert len(calls) == 3
    assert json.loads((tmp_path / "cache" / "aws.json").read_text())["key"] == other
    catalog.clear_memory_cache()


# -- SDK records and errors, no network ----------------------------------------------------------

EC2_ITEM = {
    "InstanceType": "c6in.xlarge", "VCpuInfo": {"DefaultVCpus": 4}, "MemoryInfo": {"SizeInMiB": 8192},
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]}, "BurstablePerformanceSupported": False,
    "NetworkInfo": {"NetworkPerformance": "Up to 30 Gigabit", "DefaultNetworkCardIndex": 0, "NetworkCards": [
        {"NetworkCardIndex": 0, "NetworkPerformance": "Up to 30 Gigabit", "BaselineBandwidthInGbps": 6.25,
         "PeakBandwidthInGbps": 30.0}]},
}


def test_record_from_ec2():
    assert ec2.record_from_ec2(EC2_ITEM, {"us-east-1a"}) == {
        "name": "c6in.xlarge", "family": "c6in", "vcpus": 4, "memory_mb": 8192, "architectures": ["x86_64"],
        "burstable": False, "shared_cpu": False, "baseline_gbps": 6.25, "peak_gbps": 30.0,
        "network_performance": "Up to 30 Gigabit", "zones": ["us-east-1a"]}


def stubbed_ec2():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_ec2_fetch_with_stubbed_pages():
    client, stub = stubbed_ec2()
    stub.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [
        {"InstanceType": "c6in.xlarge", "LocationType": "region", "Location": "us-east-1"}]})
    stub.add_response("describe_instance_types", {"InstanceTypes": [EC2_ITEM], "NextToken": "page2"})
    stub.add_response("describe_instance_types", {"InstanceTypes": [dict(EC2_ITEM, InstanceType="x9.large")]})
    with stub:
        records = ec2.fetch_ec2_records("us-east-1", client=client)
    assert [r["name"] for r in records] == ["c6in.xlarge"]  # x9.large is not offered in the region
    stub.assert_no_pending_responses()


def test_ec2_error_keeps_the_code():
    client, stub = stubbed_ec2()
    stub.add_client_error("describe_instance_type_offerings", service_error_code="UnauthorizedOperation",
                          service_message="You are not authorized to perform this operation.", http_status_code=403)
    with stub, pytest.raises(CloudApiError) as err:
        ec2.fetch_ec2_records("us-east-1", client=client)
    assert err.value.msg == ("ec2.DescribeInstanceTypeOfferings in us-east-1 failed: UnauthorizedOperation (HTTP 403): "
                             "You are not authorized to perform this operation.")
    assert err.value.code == "UnauthorizedOperation"


def test_ec2_unknown_zone():
    client, stub = stubbed_ec2()
    stub.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [
        {"InstanceType": "c6in.xlarge", "LocationType": "availability-zone", "Location": "us-east-1a"}]})
    with stub, pytest.raises(SizingError) as err:
        ec2.fetch_ec2_records("us-east-1", zones=["us-east-1a", "us-east-1q"], client=client)
    assert err.value.msg == "no instance type is offered in zone(s) us-east-1q of region us-east-1; check zones"


class RaisingGce:
    def __init__(self, exc):
        self.exc = exc

    def aggregated_list(self, request, retry, timeout=None):
        raise self.exc

    def list(self, request, retry, timeout=None):
        raise self.exc


def test_gce_error_keeps_the_http_code():
    with pytest.raises(CloudApiError) as err:
        gce.fetch_gce_records("itsp-lab", "europe-west1",
                              client=RaisingGce(gapi_exceptions.Forbidden("Required 'compute.machineTypes.list'")))
    assert err.value.msg == ("compute.machineTypes.aggregatedList in project itsp-lab failed: PERMISSION_DENIED "
                             "(HTTP 403): Required 'compute.machineTypes.list'")
    assert (err.value.code, err.value.http_status) == ("PERMISSION_DENIED", 403)


def test_gce_zone_outside_region_and_bad_region_name():
    with pytest.raises(SizingError) as err:
        gce.fetch_gce_records("itsp-lab", "europe-west1", zones=["us-central1-a"], client=RaisingGce(None))
    assert err.value.msg == "zone(s) us-central1-a are not in region europe-west1"
    with pytest.raises(SizingError) as err:
        gce.fetch_gce_records("itsp-lab", "Europe West", client=RaisingGce(None))
    assert err.value.msg == "'Europe West' is not a GCE region name (like europe-west1)"


def test_record_from_gce():
    machine = compute_v1.MachineType(name="n2-highcpu-8", guest_cpus=8, memory_mb=8192, is_shared_cpu=False,
                                     zone="europe-west1-b")
    assert gce.record_from_gce(machine, {"europe-west1-b", "europe-west1-c"}) == {
        "name": "n2-highcpu-8", "family": "n2", "vcpus": 8, "memory_mb": 8192, "architectures": ["x86_64"],
        "burstable": False, "shared_cpu": False, "baseline_gbps": None, "peak_gbps": None,
        "network_performance": "", "zones": ["europe-west1-b", "europe-west1-c"]}


def test_retry_configs_are_the_shared_sdk_layers():
    retry, _budget = sdk_gce.retry(5)
    assert retry._predicate(gapi_exceptions.ServiceUnavailable("x"))
    assert retry._predicate(gapi_exceptions.TooManyRequests("x"))
    assert not sdk_gce.retry(5)[0]._predicate(gapi_exceptions.Forbidden("x"))


def test_clients_get_the_attempts_asked_for(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for attempts in (3, 3, 5):
        client = ec2.ec2_client("us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=attempts)
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": attempts}
