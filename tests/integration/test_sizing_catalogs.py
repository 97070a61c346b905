"""Sizing catalogs over real HTTP on loopback: moto's EC2 (calls counted by moto's recorder, faults
injected by a proxy in front of it) and the Compute stand-in (calls counted by its /_stats); then
playbooks/size.yml end to end with the stand-ins it starts itself (the lab inventory asks for them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import standins_fixtures as standins
from ansible_collections.itsp.cluster.plugins.module_utils.errors import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import catalog, ec2, gce
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.planner import SizingManager
from standins_fixtures import ROOT, Ec2FaultProxy, GceStandIn

moto_server = standins.moto_server
clean_moto = standins.clean_moto

DATA = os.path.join(ROOT, "lab", "standins", "data", "gce_machine_types.json")
WORKLOAD = {"concurrent_calls": 20000, "calls_per_second": 200, "registered_endpoints": 500000,
            "registration_interval": 600}
AWS_PRICES = {"c6i.2xlarge": 0.34, "c6i.4xlarge": 0.68, "c6in.2xlarge": 0.45, "c6in.4xlarge": 0.91}


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    catalog.clear_memory_cache()
    yield
    catalog.clear_memory_cache()


def gce_zones():
    with open(DATA, encoding="utf-8") as handle:
        return sorted({item["zone"] for item in json.load(handle)["machineTypes"]})


@pytest.fixture(scope="module")
def gce_standin(tmp_path_factory):
    state = {"projects": {"itsp-lab": {"zones": gce_zones()}}}
    with GceStandIn(str(tmp_path_factory.mktemp("gce")), state) as standin:
        yield standin


@pytest.fixture
def clean_gce(gce_standin):
    gce_standin.write_state({"projects": {"itsp-lab": {"zones": gce_zones()}}})
    gce_standin.reset_stats()
    return gce_standin


# -- EC2 (moto) -----------------------------------------------------------------------------------

def aws_params(endpoint, **extra):
    params = {"provider": "aws", "region": "us-east-1", "endpoint_url": endpoint, "families": ["c6i", "c6in"],
              "prices": AWS_PRICES, "unpriced": "skip", "workload": WORKLOAD}
    params.update(extra)
    return params


def aws_fetchers(params):
    return {"aws": lambda: ec2.fetch_ec2_records(params["region"], params.get("zones"),
                                                 params["endpoint_url"])}


def test_ec2_catalog_is_one_call_each_and_cached_per_run(clean_moto):
    params = aws_params(clean_moto.url)
    first = SizingManager(params, aws_fetchers(params)).run()
    offered = clean_moto.client("ec2", "us-east-1").describe_instance_type_offerings(LocationType="region")
    assert first["catalog"]["types_fetched"] == len(offered["InstanceTypeOfferings"]) > 300
    assert first["catalog"]["source"] == "api"
    assert first["plan"]["cost_per_hour"] > 0
    clean_moto.reset_recording()
    second = SizingManager(params, aws_fetchers(params)).run()
    assert second["catalog"]["source"] == "memory"
    assert second["plan"] == first["plan"]
    assert clean_moto.recorded_actions() == {}


def test_ec2_first_fetch_makes_exactly_two_calls(clean_moto):
    clean_moto.reset_recording()
    ec2.fetch_ec2_records("eu-west-1", endpoint_url=clean_moto.url)
    assert clean_moto.recorded_actions() == {"DescribeInstanceTypeOfferings": 1, "DescribeInstanceTypes": 1}


def test_ec2_records_carry_baseline_and_burst(clean_moto):
    records = {r["name"]: r for r in ec2.fetch_ec2_records("us-east-1", endpoint_url=clean_moto.url)}
    m5 = records["m5.large"]
    assert (m5["vcpus"], m5["memory_mb"], m5["baseline_gbps"], m5["peak_gbps"], m5["network_performance"]) == (
        2, 8192, 0.75, 10.0, "Up to 10 Gigabit")
    assert records["t3.micro"]["burstable"] is True


def test_ec2_zones_keep_types_offered_in_all_of_them(clean_moto):
    zones = ["us-east-1a", "us-east-1b"]
    records = ec2.fetch_ec2_records("us-east-1", zones=zones, endpoint_url=clean_moto.url)
    assert records and all(set(zones) <= set(r["zones"]) for r in records)
    with pytest.raises(SizingError) as err:
        ec2.fetch_ec2_records("us-east-1", zones=["us-east-1a", "us-east-1z"], endpoint_url=clean_moto.url)
    assert err.value.msg == "no instance type is offered in zone(s) us-east-1z of region us-east-1; check zones"


@pytest.fixture
def fault_proxy(clean_moto):
    with Ec2FaultProxy(clean_moto.port) as proxy:
        yield proxy


def test_ec2_throttling_is_retried(fault_proxy):
    fault_proxy.faults = {"DescribeInstanceTypes": {"status": 503, "code": "RequestLimitExceeded",
                                                    "message": "Request limit exceeded.", "times": 2}}
    records = ec2.fetch_ec2_records("us-east-1", endpoint_url=fault_proxy.url)
    assert len(records) > 300
    assert fault_proxy.seen["DescribeInstanceTypes"] == 3


def test_ec2_refusal_fails_at_once_with_the_code(fault_proxy):
    fault_proxy.faults = {"DescribeInstanceTypeOfferings": {
        "status": 403, "code": "UnauthorizedOperation", "message": "You are not authorized to perform this operation.",
        "times": None}}
    with pytest.raises(CloudApiError) as err:
        ec2.fetch_ec2_records("us-east-1", endpoint_url=fault_proxy.url)
    assert err.value.msg == ("ec2.DescribeInstanceTypeOfferings in us-east-1 failed: UnauthorizedOperation "
                             "(HTTP 403): You are not authorized to perform this operation.")
    assert err.value.code == "UnauthorizedOperation"
    assert fault_proxy.seen["DescribeInstanceTypeOfferings"] == 1


# -- GCE (Compute stand-in) -----------------------------------------------------------------------

def test_gce_region_is_one_filtered_aggregated_list(clean_gce):
    records = gce.fetch_gce_records("itsp-lab", "europe-west1", endpoint=clean_gce.url, auth_kind="anonymous")
    stats = clean_gce.stats()
    assert stats["counts"] == {"aggregated_machine_types": 1}
    assert stats["requests"][0]["query"]["filter"] == "zone eq europe-west1-.*"
    with open(DATA, encoding="utf-8") as handle:
        expected = {m["name"] for m in json.load(handle)["machineTypes"] if m["zone"].startswith("europe-west1-")}
    assert {r["name"] for r in records} == expected
    assert all(z.startswith("europe-west1-") for r in records for z in r["zones"])


def test_gce_named_zones_are_one_list_each_and_paged(clean_gce, monkeypatch):
    monkeypatch.setattr(gce, "PAGE_SIZE", 50)
    records = gce.fetch_gce_records("itsp-lab", "europe-west1", zones=["europe-west1-b", "europe-west1-d"],
                                    endpoint=clean_gce.url, auth_kind="anonymous")
    counts = clean_gce.stats()["counts"]
    assert counts == {"zone_machine_types": 4 + 3}   # 153 types in -b, 132 in -d (no c2d): pages of 50
    names = {r["name"] for r in records}
    assert "c2d-standard-8" not in names              # the data file has no c2d in europe-west1-d
    assert "n2-highcpu-8" in names


def test_gce_unknown_project_keeps_the_404(clean_gce):
    with pytest.raises(CloudApiError) as err:
        gce.fetch_gce_records("nobody", "europe-west1", endpoint=clean_gce.url, auth_kind="anonymous")
    assert (err.value.code, err.value.http_status) == ("NOT_FOUND", 404)
    assert err.value.msg.startswith(
        "compute.machineTypes.aggregatedList in project nobody failed: NOT_FOUND (HTTP 404): ")
    assert err.value.msg.endswith("The resource 'projects/nobody' was not found")


def test_gce_rate_limit_is_retried(clean_gce):
    clean_gce.write_state({"projects": {"itsp-lab": {"zones": gce_zones()}},
                           "fault": {"route": "aggregated_machine_types", "status": 429, "times": 2}})
    clean_gce.reset_stats()
    records = gce.fetch_gce_records("itsp-lab", "europe-west1", endpoint=clean_gce.url, auth_kind="anonymous")
    assert records
    assert clean_gce.stats()["counts"] == {"aggregated_machine_types": 3}


def test_gce_forbidden_is_not_retried(clean_gce):
    clean_gce.write_state({"projects": {"itsp-lab": {"zones": gce_zones()}},
                           "fault": {"route": "zone_machine_types", "status": 403,
                                     "message": "Required 'compute.machineTypes.list' permission"}})
    clean_gce.reset_stats()
    with pytest.raises(CloudApiError) as err:
        gce.fetch_gce_records("itsp-lab", "europe-west1", zones=["europe-west1-b"], endpoint=clean_gce.url,
                              auth_kind="anonymous")
    assert err.value.http_status == 403
    assert err.value.msg.endswith("Required 'compute.machineTypes.list' permission")
    assert clean_gce.stats()["counts"] == {"zone_machine_types": 1}


def test_gce_plan_from_the_standin(clean_gce):
    params = {"provider": "gce", "project": "itsp-lab", "region": "europe-west1", "endpoint_url": clean_gce.url,
              "families": ["n2", "n2d"], "prices": {"n2-highcpu-8": 0.29, "n2d-highcpu-8": 0.25,
                                                    "n2-standard-8": 0.39},
              "unpriced": "skip", "zones": ["europe-west1-b", "europe-west1-c"], "workload": WORKLOAD}
    fetchers = {"gce": lambda: gce.fetch_gce_records("itsp-lab", "europe-west1", params["zones"], clean_gce.url,
                                                           auth_kind="anonymous")}
    result = SizingManager(params, fetchers).run()
    assert {r["instance_type"] for r in result["plan"]["roles"]} <= {"n2-highcpu-8", "n2d-highcpu-8",
                                                                      "n2-standard-8"}
    assert result["plan"]["roles"][0]["bandwidth_rule"].startswith("assumed 2.0 Gbit/s per vCPU")


# -- the playbook ---------------------------------------------------------------------------------

def test_size_playbook_prints_both_plans_and_writes_group_vars(tmp_path):
    env = standins.ansible_env(tmp_path)
    inventory = tmp_path / "inventory"
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    run = subprocess.run(
        [playbook, "-i", os.path.join(ROOT, "inventories", "lab"), "-c", "local",
         os.path.join(ROOT, "playbooks", "size.yml"),
         "-e", json.dumps({"size_group_vars": {"aws": str(inventory)}})],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Sizing for aws us-east-1: 20,000 concurrent calls, 200 CPS, 500,000 registrations" in run.stdout
    assert "Sizing for gce europe-west1: 20,000 concurrent calls, 200 CPS, 500,000 registrations" in run.stdout
    assert run.stdout.count("Total: ") == 2
    written = (inventory / "group_vars" / "kamailio" / "sizing.yml").read_text()
    assert "kamailio_children:" in written and "# Written by playbooks/size.yml for aws" in written
    assert (inventory / "group_vars" / "rtpengine" / "sizing.yml").exists()


def test_size_playbook_outside_the_lab_asks_for_the_standins_it_is_to_start(tmp_path):
    """Stand-ins are the lab inventory's choice; asked for elsewhere, the play says what is missing."""
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    run = subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", os.path.join(ROOT, "playbooks", "size.yml"),
         "-e", "size_use_standins=true"],
        capture_output=True, text=True, env=standins.ansible_env(tmp_path), cwd=ROOT, timeout=120, check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "size_use_standins needs size_gce_standin and size_gce_standin_data" in run.stdout
