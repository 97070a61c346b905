"""The instance_size module as Ansible runs it: arguments in, exit_json/fail_json out (both raise
here), on a static catalog or with the cloud fetchers replaced. Also checks that DOCUMENTATION
and the argument_spec say the same thing."""


import importlib
import json
import socket
import time

import pytest
import yaml
from ansible.module_utils.basic import missing_required_lib
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import catalog, ec2, model
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError
from ansible_collections.itsp.cluster.plugins.modules import instance_size
from module_harness import Fail, failure_of

CATALOG = [
    {"name": "gp.xlarge", "vcpus": 4, "memory_mb": 16384, "baseline_gbps": 5},
    {"name": "gp.2xlarge", "vcpus": 8, "memory_mb": 32768, "baseline_gbps": 10},
    {"name": "net.2xlarge", "vcpus": 8, "memory_mb": 16384, "baseline_gbps": 25, "family": "c6in"},
]
PRICES = {"gp.xlarge": 0.2, "gp.2xlarge": 0.4, "net.2xlarge": 0.55}
WORKLOAD = {"concurrent_calls": 20000, "calls_per_second": 200, "registered_endpoints": 500000,
            "registration_interval": 600}


@pytest.fixture
def run(run_module):
    """run(args, check_mode) -> the kwargs of exit_json; raises Fail(kwargs) from fail_json."""
    catalog.clear_memory_cache()
    yield run_module.bind(instance_size.main)
    catalog.clear_memory_cache()


def succeed(run, args, check_mode=False):
    return run(args, check_mode)


fail = failure_of


def static_args(**extra):
    args = {"provider": "static", "catalog": CATALOG, "prices": PRICES, "zone_count": 3, "workload": WORKLOAD}
    args.update(extra)
    return args


def test_auto_takes_the_cheaper_topology(run):
    result = succeed(run, static_args())
    assert result["plan"]["topology"] == "combined"
    assert [(r["role"], r["instance_type"], r["count"]) for r in result["plan"]["roles"]] == [
        ("combined", "net.2xlarge", 6)]
    assert result["alternatives"] == {
        "separate": {"cost_per_hour": 3.9, "fleets": ["3 x gp.xlarge (proxy)", "6 x net.2xlarge (media)"]},
        "combined": {"cost_per_hour": 3.3, "fleets": ["6 x net.2xlarge (combined)"]}}
    assert "Alternative separate: 3 x gp.xlarge + 6 x net.2xlarge, 3.9000 per hour" in result["table"]


def test_separate_plan(run):
    result = succeed(run, static_args(topology="separate"))
    assert result["changed"] is False
    plan = result["plan"]
    assert plan["topology"] == "separate"
    assert [(r["role"], r["instance_type"], r["count"]) for r in plan["roles"]] == [
        ("proxy", "gp.xlarge", 3), ("media", "net.2xlarge", 6)]
    assert plan["cost_per_hour"] == pytest.approx(3 * 0.2 + 6 * 0.55)
    assert plan["cost_per_month"] == pytest.approx((3 * 0.2 + 6 * 0.55) * 730)
    media = plan["roles"][1]
    # Ports bind: 20000 live calls + 200 calls/s x 30 s delete-delay held = 26000 sessions x 4 ports; 5 nodes
    # would leave 3 after a zone's loss, 34667 ports each, above 70% of 16384-65535.
    assert media["survivors"] == 4 and media["zones"] == 3
    assert media["count_driver"] == "zone loss" and media["binding"] == "ports"
    # One node's share after the zone's loss within the headroom: 20000 / 4 / 0.7 -> 7143 calls,
    # 200 / 4 / 0.7 -> 71.5 calls/s; max-sessions 7143 + 71.5 x 30 = 9288, 4 ports each.
    assert media["tuning"] == {"rtpengine_max_calls": 7143, "rtpengine_calls_per_second": 71.5,
                               "rtpengine_delete_delay": 30, "rtpengine_port_min": 16384,
                               "rtpengine_port_max": 16384 + 4 * 9288 - 1, "rtpengine_threads": 8}
    assert max(u["after_failure"] for u in media["utilisation"].values() if u["after_failure"]) <= 70.0
    assert result["workload"]["stream_kbps"] == 87.2 and result["workload"]["stream_pps"] == 50.0
    assert result["catalog"]["source"] == "option"
    assert any("87.2 kbit/s per stream" in line for line in result["assumptions"])
    assert result["table"][2].split() == ["role", "instance", "type", "count", "vCPU", "mem", "GiB", "$/h",
                                          "each", "$/h", "binding", "count", "set", "by"]
    assert result["table"][4].split() == ["proxy", "(Kamailio)", "gp.xlarge", "3", "4", "16.0", "0.2000",
                                          "0.6000", "cpu", "one", "node", "per", "zone"]


def test_check_mode_gives_the_same_plan(run):
    assert succeed(run, static_args(), check_mode=True)["plan"] == succeed(run, static_args())["plan"]


def test_combined_forced(run):
    result = succeed(run, static_args(topology="combined"))
    assert result["plan"]["topology"] == "combined"
    assert result["alternatives"]["separate"] is None
    assert set(result["plan"]["roles"][0]["tuning"]) == {
        "kamailio_children", "kamailio_tcp_children", "kamailio_shm_memory_mb", "kamailio_pkg_memory_mb",
        "rtpengine_max_calls", "rtpengine_calls_per_second", "rtpengine_delete_delay",
        "rtpengine_port_min", "rtpengine_port_max", "rtpengine_threads"}


@pytest.mark.parametrize("workload, message", [
    ({"concurrent_calls": 0, "calls_per_second": 200}, "workload.concurrent_calls must be greater than 0 (got 0)"),
    ({"concurrent_calls": 100, "calls_per_second": -1}, "workload.calls_per_second must be greater than 0 (got -1)"),
    ({"concurrent_calls": 100, "calls_per_second": 1, "codec": "amr"},
     "unknown codec 'amr'; known codecs: g711, g722, g726-32, g729, gsm, ilbc, opus (aliases: g.711, g.722, "
     "g.729, g711a, g711u, g726, g729a, pcma, pcmu)"),
])
def test_bad_workload(run, workload, message):
    assert fail(run, static_args(workload=workload)) == {"msg": message}


def test_missing_price(run):
    prices = dict(PRICES)
    del prices["net.2xlarge"]
    assert fail(run, static_args(prices=prices)) == {"msg": (
        "no price for 1 candidate instance type(s): net.2xlarge; add them to prices, narrow families, "
        "or set unpriced=skip to leave them out")}


def test_region_without_a_type_that_carries_a_node(run):
    small = [{"name": "tiny.large", "vcpus": 2, "memory_mb": 2048, "baseline_gbps": 1}]
    assert fail(run, static_args(catalog=small, prices={"tiny.large": 0.05})) == {"msg": (
        "no fleet of at most 64 instances carries this workload with redundancy 1 over 3 zone(s) and 30% "
        "headroom: proxy: no instance type can carry one node's share: every node needs 1908.4 MiB of "
        "memory_mb before any load and the closest, tiny.large, offers 1433.6 after headroom; combined: no "
        "instance type can carry one node's share: every node needs 2036.4 MiB of memory_mb before any load "
        "and the closest, tiny.large, offers 1433.6 after headroom. Raise max_instances, allow larger "
        "instance families, or lower headroom or redundancy")}


def test_required_if_and_mutually_exclusive(run):
    assert fail(run, {"provider": "aws", "workload": WORKLOAD})["msg"] == (
        "provider is aws but all of the following are missing: region")
    assert fail(run, {"provider": "gce", "region": "europe-west1", "workload": WORKLOAD})["msg"] == (
        "provider is gce but all of the following are missing: project")
    assert fail(run, static_args(zones=["a", "b"]))["msg"] == (
        "parameters are mutually exclusive: zones|zone_count")


def test_missing_boto3(run, monkeypatch):
    monkeypatch.setattr(ec2, "HAS_BOTO3", False)
    assert fail(run, {"provider": "aws", "region": "us-east-1", "workload": WORKLOAD}) == {
        "msg": missing_required_lib("boto3")}


def test_cloud_error_keeps_its_code(run, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise SizingError("EC2 DescribeInstanceTypeOfferings in us-east-1 failed: UnauthorizedOperation: no",
                          code="UnauthorizedOperation")

    monkeypatch.setattr(ec2, "fetch_ec2_records", refuse)
    assert fail(run, {"provider": "aws", "region": "us-east-1", "workload": WORKLOAD, "prices": PRICES}) == {
        "msg": "EC2 DescribeInstanceTypeOfferings in us-east-1 failed: UnauthorizedOperation: no",
        "error_code": "UnauthorizedOperation"}


def test_aws_path_with_a_fake_fetch_is_cached_per_run(run, monkeypatch, tmp_path):
    calls = []

    def fetch(region, zones=None, endpoint_url=None, profile=None, **_credentials_and_retries):
        calls.append((region, tuple(zones or ()), endpoint_url))
        return [{"name": "c6in.2xlarge", "family": "c6in", "vcpus": 8, "memory_mb": 16384,
                 "architectures": ["x86_64"], "burstable": False, "shared_cpu": False, "baseline_gbps": 12.5,
                 "peak_gbps": 40.0, "network_performance": "Up to 40 Gigabit", "zones": list(zones or [])}]

    monkeypatch.setattr(ec2, "fetch_ec2_records", fetch)
    args = {"provider": "aws", "region": "us-east-1", "zones": ["us-east-1a", "us-east-1b"],
            "endpoint_url": "http://127.0.0.1:9", "prices": {"c6in.2xlarge": 0.45}, "workload": WORKLOAD,
            "catalog_cache": str(tmp_path / "aws.json")}
    first = succeed(run, args)
    second = succeed(run, args)
    assert calls == [("us-east-1", ("us-east-1a", "us-east-1b"), "http://127.0.0.1:9")]
    assert (first["catalog"]["source"], second["catalog"]["source"]) == ("api", "memory")
    assert first["plan"] == second["plan"]
    assert first["plan"]["roles"][0]["bandwidth_rule"] == "BaselineBandwidthInGbps"


# -- DOCUMENTATION and argument_spec agree -------------------------------------------------------

def documented_options():
    """The module's options with those of its doc fragments, as ansible-doc shows them."""
    docs = yaml.safe_load(instance_size.DOCUMENTATION)
    options = dict(docs["options"])
    for name in docs.get("extends_documentation_fragment", []):
        fragment = importlib.import_module(
            "ansible_collections.itsp.cluster.plugins.doc_fragments." + name.rsplit(".", 1)[-1])
        options.update(yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"])
    return options


def compare(spec, docs, where=""):
    assert set(spec) == set(docs), where
    for name, option in spec.items():
        doc = docs[name]
        path = where + name
        assert option.get("type", "str") == doc.get("type", "str"), path
        assert option.get("required", False) == doc.get("required", False), path
        assert option.get("default") == doc.get("default"), path
        assert option.get("choices") == doc.get("choices"), path
        assert option.get("elements") == doc.get("elements"), path
        assert sorted(option.get("aliases", [])) == sorted(doc.get("aliases", [])), path
        if "options" in option:
            compare(option["options"], doc["suboptions"], path + ".")


def test_documentation_matches_argument_spec():
    compare(instance_size.argument_spec(), documented_options())


def test_workload_defaults_match_the_model():
    spec = instance_size.argument_spec()["workload"]["options"]
    for name, (required, default, _kind) in model.WORKLOAD_FIELDS.items():
        assert spec[name].get("required", False) == required, name
        assert spec[name].get("default") == default, name


def test_calibration_docs_state_the_model_defaults():
    docs = documented_options()["calibration"]["suboptions"]
    for name, value in model.DEFAULT_CALIBRATION.items():
        if isinstance(value, (int, float)):
            text = " ".join(docs[name]["description"]) if isinstance(docs[name]["description"], list) \
                else docs[name]["description"]
            assert f"Default {value}" in text, name


def test_documentation_sections_parse():
    for section in (instance_size.DOCUMENTATION, instance_size.EXAMPLES, instance_size.RETURN):
        assert yaml.safe_load(section)
    attributes = yaml.safe_load(instance_size.DOCUMENTATION)["attributes"]
    assert set(attributes) == {"check_mode", "diff_mode", "idempotent"}


# -- catalog_cache: the one side effect ---------------------------------------------------------

@pytest.fixture
def fake_aws(monkeypatch):
    calls = []

    def fetch(region, zones=None, **_options):
        calls.append(region)
        return [{"name": "c6in.2xlarge", "family": "c6in", "vcpus": 8, "memory_mb": 16384,
                 "architectures": ["x86_64"], "burstable": False, "shared_cpu": False, "baseline_gbps": 12.5,
                 "peak_gbps": 40.0, "network_performance": "Up to 40 Gigabit", "zones": []}]

    monkeypatch.setattr(ec2, "fetch_ec2_records", fetch)
    return calls


def aws_cache_args(path):
    return {"provider": "aws", "region": "us-east-1", "prices": {"c6in.2xlarge": 0.45}, "workload": WORKLOAD,
            "catalog_cache": str(path)}


def test_check_mode_writes_no_cache_and_makes_no_directory(run, fake_aws, tmp_path):
    path = tmp_path / "new" / "dir" / "catalog.json"
    result = succeed(run, aws_cache_args(path), check_mode=True)
    assert (result["changed"], result["catalog"]["cache"]) == (True, "would write")
    assert not (tmp_path / "new").exists()


def test_cache_is_written_once_then_reused_without_a_change(run, fake_aws, tmp_path):
    path = tmp_path / "new" / "catalog.json"
    first = succeed(run, aws_cache_args(path))
    assert (first["changed"], first["catalog"]["cache"]) == (True, "written")
    assert json.loads(path.read_text())["written_by"] == "itsp.cluster.instance_size"
    catalog.clear_memory_cache()
    second = succeed(run, aws_cache_args(path))
    assert (second["changed"], second["catalog"]["cache"], second["catalog"]["source"]) == (False, "read", "file")
    assert fake_aws == ["us-east-1"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_file_that_is_not_our_cache_is_never_replaced(run, fake_aws, tmp_path, check_mode):
    path = tmp_path / "notes.txt"
    path.write_text("not a catalog\n")
    with pytest.raises(Fail) as failed:
        run(aws_cache_args(path), check_mode)
    assert failed.value.args[0] == {"msg": (
        f"catalog_cache {path} exists and is not a catalog cache written by instance_size; refusing to "
        "overwrite it: remove it or choose another catalog_cache path")}
    assert path.read_text() == "not a catalog\n"
    assert fake_aws == []


def test_a_directory_is_not_a_cache(run, fake_aws, tmp_path):
    with pytest.raises(Fail) as failed:
        run(aws_cache_args(tmp_path))
    assert "is not a regular file, so not a catalog cache written by instance_size" in failed.value.args[0]["msg"]


# -- failure timing: a refused endpoint fails fast and says how often it was tried --------------------

@pytest.mark.parametrize("provider", ["aws", "gce"])
def test_a_refused_endpoint_fails_after_max_attempts(run, monkeypatch, provider):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    args = {"provider": provider, "region": "us-east-1" if provider == "aws" else "europe-west1",
            "endpoint_url": closed, "max_attempts": 3, "prices": PRICES, "workload": WORKLOAD}
    if provider == "gce":
        args.update(project="itsp-lab", auth_kind="anonymous")
    started = time.monotonic()
    with pytest.raises(Fail) as failed:
        run(args)
    assert time.monotonic() - started < 15
    failure = failed.value.args[0]
    assert failure["attempts"] == 3
    assert failure["error_code"] in ("EndpointConnectionError", "ConnectionError")
    assert f"check endpoint_url {closed}" in failure["msg"]


def test_bad_replication_option_names_it(run):
    assert fail(run, static_args(replication={"budget": 150})) == {"msg": (
        "replication.budget is a percent of a node's capacity: above 0, at most 100 (got 150.0)")}


def test_the_plan_reports_the_dmq_mesh(run):
    result = succeed(run, static_args(replication={"growth_nodes": [2, 10]}))
    mesh = result["replication"]
    assert mesh["nodes"] == result["plan"]["roles"][0]["count"]
    assert [row["nodes"] for row in mesh["growth"]] == [2, 10]
    # static_args' fleet is larger than its replication break-even: the plan says so.
    assert mesh["verdict"] == "past break-even", mesh
    assert mesh["nodes"] >= mesh["break_even_nodes"], mesh
    assert any(line.startswith("DMQ replication per proxy") for line in result["table"])
