"""cloud_instances with the real google-cloud-compute client against lab/standins/gce_compute_api.py.

Calls are counted by the stand-in (GET /_stats), not by the client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import standins_fixtures as standins
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.finder import CloudApiError, CloudInstanceFinder
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    INTERFACE_KEYS,
    RECORD_KEYS,
)
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1
from standins_fixtures import ROOT, GceStandIn, gce_instance

PROJECT = "itsp-lab"
ZONES = ["europe-west1-b", "europe-west1-c", "us-central1-a"]
FAST_RETRY = 0.05  # first back-off of the google-api-core Retry, so retry tests stay quick


def fleet_state(**extra):
    instances = [
        gce_instance(
            "sip-1", "europe-west1-b", "198.18.1.11", "203.0.113.11", {"role": "sip"}, instance_id=1001
        ),
        gce_instance(
            "sip-2", "europe-west1-c", "198.18.2.12", "203.0.113.12", {"role": "sip"}, instance_id=1002
        ),
        gce_instance("sip-3", "us-central1-a", "198.18.3.13", None, {"role": "sip"}, instance_id=1003),
        gce_instance(
            "rtp-1",
            "europe-west1-b",
            "198.18.1.21",
            "198.51.100.21",
            {"role": "rtp"},
            machine_type="c2-standard-4",
            instance_id=2001,
        ),
        gce_instance(
            "rtp-2",
            "us-central1-a",
            "198.18.3.22",
            "198.51.100.22",
            {"role": "rtp"},
            machine_type="c2-standard-4",
            status="TERMINATED",
            instance_id=2002,
        ),
    ]
    state = {"projects": {PROJECT: {"zones": ZONES, "instances": instances}}}
    state.update(extra)
    return state


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    with GceStandIn(str(tmp_path_factory.mktemp("gce")), fleet_state()) as server:
        yield server


@pytest.fixture
def gce(standin):
    standin.write_state(fleet_state())
    standin.reset_stats()
    return standin


def find(gce, **extra):
    params = {"provider": "gce", "project": PROJECT, "auth_kind": "anonymous", "endpoint_url": gce.url}
    params.update(extra)
    return CloudInstanceFinder(params, retry_initial=FAST_RETRY).find()


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_all_zones_in_one_aggregated_call(gce):
    result = find(gce)

    assert result["api_calls"] == {"compute.instances.aggregatedList": 1}
    assert gce.stats()["counts"] == {"aggregated_instances": 1}
    assert [record["name"] for record in result["instances"]] == ["rtp-1", "sip-1", "sip-2", "rtp-2", "sip-3"]
    sip1 = next(record for record in result["instances"] if record["name"] == "sip-1")
    assert sip1 == {
        "provider": "gce",
        "region": "europe-west1",
        "zone": "europe-west1-b",
        "instance_id": "1001",
        "instance_type": "e2-standard-2",
        "name": "sip-1",
        "state": "running",
        "interfaces": [
            {
                "name": "nic0",
                "mac": None,
                "private_ipv4": "198.18.1.11",
                "public_ipv4": "203.0.113.11",
                "ipv6": [],
                "nat": "one_to_one",
            }
        ],
        "private_ipv4": "198.18.1.11",
        "public_ipv4": "203.0.113.11",
        "nat": "one_to_one",
    }
    for record in result["instances"]:
        assert tuple(record) == RECORD_KEYS
        assert tuple(record["interfaces"][0]) == INTERFACE_KEYS
    sip3 = next(record for record in result["instances"] if record["name"] == "sip-3")
    assert (sip3["public_ipv4"], sip3["nat"], sip3["private_ipv4"]) == (None, "none", "198.18.3.13")
    rtp2 = next(record for record in result["instances"] if record["name"] == "rtp-2")
    assert (rtp2["state"], rtp2["instance_type"]) == ("terminated", "c2-standard-4")


def test_labels_and_filters_go_to_the_server(gce):
    result = find(gce, tags={"role": "sip"}, filters={"status": "RUNNING"})

    assert [record["name"] for record in result["instances"]] == ["sip-1", "sip-2", "sip-3"]
    requests = gce.stats()["requests"]
    assert [request["query"]["filter"] for request in requests] == [
        '(status = "RUNNING") AND (labels.role = "sip")'
    ]


def test_name_filter_with_wildcard(gce):
    result = find(gce, filters={"name": "rtp-*"})
    assert [record["name"] for record in result["instances"]] == ["rtp-1", "rtp-2"]


def test_instance_ids_and_a_missing_one(gce):
    finder = CloudInstanceFinder(
        {
            "provider": "gce",
            "project": PROJECT,
            "auth_kind": "anonymous",
            "endpoint_url": gce.url,
            "instance_ids": ["1002", "2001", "9999"],
        }
    )
    result = finder.find()

    assert [record["instance_id"] for record in result["instances"]] == ["2001", "1002"]
    assert finder.warnings == ["instance_ids not found in project itsp-lab: 9999"]
    assert gce.stats()["requests"][0]["query"]["filter"] == '(id = "1002" OR id = "2001" OR id = "9999")'


def test_pages_cost_one_call_each(gce):
    result = find(gce, page_size=2)

    assert len(result["instances"]) == 5
    assert result["api_calls"] == {"compute.instances.aggregatedList": 3}
    requests = gce.stats()["requests"]
    assert [request["route"] for request in requests] == ["aggregated_instances"] * 3
    assert "pageToken" not in requests[0]["query"] and all("pageToken" in r["query"] for r in requests[1:])


def test_zones_restrict_the_answer_not_the_call_count(gce):
    result = find(gce, zones=["us-central1-a"])

    assert [record["name"] for record in result["instances"]] == ["rtp-2", "sip-3"]
    assert gce.stats()["counts"] == {"aggregated_instances": 1}


def test_partial_answers_are_normalized(gce):
    bare = {"name": "no-nic", "zone": "europe-west1-b", "id": "3001"}
    dual = gce_instance("dual", "europe-west1-c", "198.18.2.31", None, instance_id=3002)
    dual["networkInterfaces"][0]["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    dual["networkInterfaces"][0]["ipv6AccessConfigs"] = [
        {"type": "DIRECT_IPV6", "externalIpv6": "2001:db8::31"}
    ]
    dual["networkInterfaces"].append(
        {
            "name": "nic1",
            "networkIP": "198.19.0.31",
            "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "natIP": "203.0.113.31"}],
        }
    )
    gce.write_state({"projects": {PROJECT: {"zones": ZONES, "instances": [bare, dual]}}})

    records = {record["name"]: record for record in find(gce)["instances"]}

    assert records["no-nic"]["interfaces"] == []
    assert (
        records["no-nic"]["private_ipv4"],
        records["no-nic"]["public_ipv4"],
        records["no-nic"]["nat"],
    ) == (
        None,
        None,
        "none",
    )
    assert records["no-nic"]["instance_type"] is None
    assert records["dual"]["interfaces"] == [
        {
            "name": "nic0",
            "mac": None,
            "private_ipv4": "198.18.2.31",
            "public_ipv4": None,
            "ipv6": ["2001:db8::31"],
            "nat": "none",
        },
        {
            "name": "nic1",
            "mac": None,
            "private_ipv4": "198.19.0.31",
            "public_ipv4": "203.0.113.31",
            "ipv6": [],
            "nat": "one_to_one",
        },
    ]
    assert (records["dual"]["public_ipv4"], records["dual"]["nat"]) == (None, "none")


def test_unauthenticated_401_keeps_the_code(gce):
    # google.auth's session answers a 401 by refreshing the credentials, which anonymous ones cannot.
    gce.write_state(
        fleet_state(
            fault={
                "route": "aggregated_instances",
                "status": 401,
                "message": "Request is missing required authentication credential.",
            }
        )
    )
    with pytest.raises(CloudApiError) as caught:
        find(gce)
    assert str(caught.value) == (
        "compute.instances.aggregatedList in project itsp-lab failed: UNAUTHENTICATED (HTTP 401): "
        "the endpoint wants credentials and auth_kind anonymous has none "
        "(Anonymous credentials cannot be refreshed.)"
    )
    assert gce.stats()["counts"] == {"aggregated_instances": 1}


def test_permission_denied_403_is_not_retried(gce):
    gce.write_state(
        fleet_state(
            fault={
                "route": "aggregated_instances",
                "status": 403,
                "reason": "forbidden",
                "message": "Required 'compute.instances.list' permission for 'projects/itsp-lab'",
            }
        )
    )
    with pytest.raises(CloudApiError) as caught:
        find(gce)
    assert str(caught.value) == (
        "compute.instances.aggregatedList in project itsp-lab failed: PERMISSION_DENIED (HTTP 403): "
        "Required 'compute.instances.list' permission for 'projects/itsp-lab'"
    )
    assert (caught.value.code, caught.value.http_status, caught.value.attempts) == (
        "PERMISSION_DENIED",
        403,
        1,
    )
    assert gce.stats()["counts"] == {"aggregated_instances": 1}


def test_429_is_retried_then_succeeds(gce):
    gce.write_state(fleet_state(fault={"route": "aggregated_instances", "status": 429, "times": 2}))
    result = find(gce)
    assert len(result["instances"]) == 5
    assert result["api_calls"] == {"compute.instances.aggregatedList": 3}
    assert [request["status"] for request in gce.stats()["requests"]] == [429, 429, 200]


def test_403_rate_limit_exceeded_counts_as_throttling(gce):
    gce.write_state(
        fleet_state(
            fault={
                "route": "aggregated_instances",
                "status": 403,
                "times": 1,
                "reason": "rateLimitExceeded",
                "message": "Rate Limit Exceeded",
            }
        )
    )
    result = find(gce)
    assert len(result["instances"]) == 5
    assert [request["status"] for request in gce.stats()["requests"]] == [403, 200]


def test_throttling_that_never_ends_fails_with_the_code(gce):
    gce.write_state(
        fleet_state(
            fault={
                "route": "aggregated_instances",
                "status": 429,
                "message": "Quota exceeded for quota metric 'Read requests'",
            }
        )
    )
    with pytest.raises(CloudApiError) as caught:
        find(gce, max_attempts=3)
    assert str(caught.value) == (
        "compute.instances.aggregatedList in project itsp-lab failed: RESOURCE_EXHAUSTED (HTTP 429): "
        "Quota exceeded for quota metric 'Read requests' [gave up after 3 attempts]"
    )
    assert gce.stats()["counts"] == {"aggregated_instances": 3}


def test_a_retry_on_the_second_page_keeps_the_paging(gce):
    # The first page goes through, the second page's first try gets a 503; the walk must resume there.
    gce.write_state(
        fleet_state(fault={"route": "aggregated_instances", "status": 503, "after": 1, "times": 1})
    )
    result = find(gce, page_size=2)
    assert sorted(record["name"] for record in result["instances"]) == [
        "rtp-1",
        "rtp-2",
        "sip-1",
        "sip-2",
        "sip-3",
    ]
    assert result["api_calls"] == {"compute.instances.aggregatedList": 4}
    assert [request["status"] for request in gce.stats()["requests"]] == [200, 503, 200, 200]


def test_garbage_answer_is_a_clean_error(gce):
    gce.write_state(
        fleet_state(fault={"route": "aggregated_instances", "status": 200, "body": "<html>portal"})
    )
    with pytest.raises(CloudApiError) as caught:
        find(gce)
    assert str(caught.value) == (
        "compute.instances.aggregatedList in project itsp-lab failed: MALFORMED_RESPONSE: "
        f"the answer from endpoint_url {gce.url} is not a Compute API answer (ParseError); check endpoint_url"
    )


def test_unknown_project_is_not_found(gce):
    with pytest.raises(CloudApiError) as caught:
        find(gce, project="no-such-project")
    assert str(caught.value) == (
        "compute.instances.aggregatedList in project no-such-project failed: NOT_FOUND (HTTP 404): "
        "The resource 'projects/no-such-project' was not found"
    )


def test_unreachable_endpoint_is_a_clean_error(gce):
    port = standins.free_port()  # nothing listens there
    with pytest.raises(CloudApiError) as caught:
        find(gce, endpoint_url=f"http://127.0.0.1:{port}")
    assert caught.value.code == "ConnectionError"
    assert str(caught.value).startswith(
        "compute.instances.aggregatedList in project itsp-lab failed: ConnectionError: "
    )


# --- the stand-in itself: what the real client sees, and the documented filter subset ------------------


def client_options(gce):
    return {
        "credentials": AnonymousCredentials(),
        "transport": "rest",
        "client_options": ClientOptions(api_endpoint=gce.url),
    }


def test_zone_list_route_with_the_real_client(gce):
    client = compute_v1.InstancesClient(**client_options(gce))
    names = [instance.name for instance in client.list(project=PROJECT, zone="europe-west1-b")]
    assert names == ["sip-1", "rtp-1"]
    instance = client.get(project=PROJECT, zone="us-central1-a", instance="sip-3")
    assert (instance.id, instance.network_interfaces[0].network_i_p) == (1003, "198.18.3.13")
    assert gce.stats()["counts"] == {"instance_get": 1, "zone_instances": 1}


def test_machine_types_from_state_with_the_real_client(gce):
    types = [
        {"name": "e2-standard-2", "guestCpus": 2, "memoryMb": 8192},
        {"name": "c2-standard-4", "guestCpus": 4, "memoryMb": 16384, "zones": ["us-central1-a"]},
    ]
    gce.write_state(fleet_state(machineTypes=types))
    client = compute_v1.MachineTypesClient(**client_options(gce))

    in_zone = [(item.name, item.guest_cpus) for item in client.list(project=PROJECT, zone="us-central1-a")]
    assert in_zone == [("e2-standard-2", 2), ("c2-standard-4", 4)]
    request = compute_v1.AggregatedListMachineTypesRequest(project=PROJECT, max_results=2)
    pages = [
        sorted(
            (scope, [item.name for item in listing.machine_types])
            for scope, listing in page.items.items()
            if listing.machine_types
        )
        for page in client.aggregated_list(request=request).pages
    ]
    # Two per page, zone by zone (a page's scopes come back as a map, hence sorted).
    assert pages == [
        [("zones/europe-west1-b", ["e2-standard-2"]), ("zones/europe-west1-c", ["e2-standard-2"])],
        [("zones/us-central1-a", ["e2-standard-2", "c2-standard-4"])],
    ]
    assert gce.stats()["counts"] == {"aggregated_machine_types": 2, "zone_machine_types": 1}


def test_machine_types_fall_back_to_the_data_file_or_to_none(tmp_path):
    data_file = tmp_path / "types.json"
    data_file.write_text(json.dumps({"us-central1-a": [{"name": "n2-standard-8", "guestCpus": 8}]}))
    with GceStandIn(str(tmp_path), fleet_state(), ["--machine-types", str(data_file)]) as server:
        status, body = get_json(f"{server.url}/compute/v1/projects/{PROJECT}/aggregated/machineTypes")
        assert status == 200
        assert body["items"]["zones/us-central1-a"]["machineTypes"][0]["name"] == "n2-standard-8"
        assert sorted(scope for scope, listing in body["items"].items() if "warning" in listing) == [
            "zones/europe-west1-b",
            "zones/europe-west1-c",
        ]
        data_file.unlink()
        status, body = get_json(
            f"{server.url}/compute/v1/projects/{PROJECT}/zones/us-central1-a/machineTypes"
        )
        assert (status, body.get("items", [])) == (200, [])


FILTER_CASES = [
    ('name = "sip-1"', ["sip-1"]),
    ("name=sip-1", ["sip-1"]),
    ("labels.role = rtp", ["rtp-1", "rtp-2"]),
    ('labels.role = "sip" AND status != "RUNNING"', []),
    ('(name = "sip-1") OR (name = "rtp-2")', ["sip-1", "rtp-2"]),
    ('NOT labels.role = "sip"', ["rtp-1", "rtp-2"]),
    ("labels.role:*", ["sip-1", "rtp-1", "sip-2", "sip-3", "rtp-2"]),
    ("labels.team:*", []),
    ("name eq sip-[12]", ["sip-1", "sip-2"]),
    ('zone = "*/zones/us-central1-a"', ["sip-3", "rtp-2"]),
    ('id = "2001"', ["rtp-1"]),
]


@pytest.mark.parametrize(("expression", "names"), FILTER_CASES)
def test_filter_subset(gce, expression, names):
    query = urllib.parse.urlencode({"filter": expression})
    status, body = get_json(f"{gce.url}/compute/v1/projects/{PROJECT}/aggregated/instances?{query}")
    assert status == 200
    found = [item["name"] for scoped in body["items"].values() for item in scoped.get("instances", [])]
    assert found == names


def test_bad_filter_and_bad_paging_are_400(gce):
    base = f"{gce.url}/compute/v1/projects/{PROJECT}/aggregated/instances"
    status, body = get_json(base + "?" + urllib.parse.urlencode({"filter": "name = (x"}))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert (
        body["error"]["message"]
        == "Invalid value for field 'filter': 'name = (x'. Expected a value after name =."
    )
    status, body = get_json(base + "?maxResults=501")
    assert (status, body["error"]["message"]) == (
        400,
        "Invalid value for field 'maxResults': '501'. Must be between 1 and 500.",
    )


def test_empty_zones_carry_the_no_results_warning(gce):
    status, body = get_json(
        f"{gce.url}/compute/v1/projects/{PROJECT}/aggregated/instances?filter=name%3Dsip-3"
    )
    assert status == 200
    assert body["items"]["zones/europe-west1-b"] == {
        "warning": {
            "code": "NO_RESULTS_ON_PAGE",
            "message": "There are no results for scope 'zones/europe-west1-b' on this page.",
            "data": [{"key": "scope", "value": "zones/europe-west1-b"}],
        }
    }
    assert [item["name"] for item in body["items"]["zones/us-central1-a"]["instances"]] == ["sip-3"]


def test_invalid_state_rewrite_is_reported_not_hidden(gce):
    gce.write_state({"projects": {}, "fualt": {}})
    status, body = get_json(f"{gce.url}/compute/v1/projects/{PROJECT}/aggregated/instances")
    assert status == 500
    assert "unknown key(s) fualt" in body["error"]["message"]


def test_stats_reset(gce):
    find(gce)
    assert gce.stats()["counts"] == {"aggregated_instances": 1}
    gce.reset_stats()
    assert gce.stats() == {"counts": {}, "requests": []}


def test_lifecycle_pidfile_and_bad_state(tmp_path):
    with GceStandIn(str(tmp_path), fleet_state()) as server:
        with open(server.pidfile, encoding="ascii") as handle:
            assert int(handle.read()) == server.process.pid
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0
        assert not os.path.exists(server.pidfile)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"projects": {"p": {"instances": [{"name": "x"}]}}}))
    run = subprocess.run(
        [sys.executable, standins.GCE_STANDIN, "--state", str(bad), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        == f"gce_compute_api: {bad}: projects['p'].instances[0]: needs at least name and zone"
    )


def test_module_runs_through_ansible(gce, tmp_path):
    env = standins.ansible_env(tmp_path)
    args = json.dumps(
        {
            "provider": "gce",
            "project": PROJECT,
            "auth_kind": "anonymous",
            "endpoint_url": gce.url,
            "labels": {"role": "rtp"},
        }
    )
    started = time.monotonic()
    run = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible"),
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
            "--check",
            "--tree",
            str(tmp_path / "tree"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - started < 60
    result = json.loads((tmp_path / "tree" / "localhost").read_text())
    assert result["changed"] is False
    assert [(record["name"], record["public_ipv4"]) for record in result["instances"]] == [
        ("rtp-1", "198.51.100.21"),
        ("rtp-2", "198.51.100.22"),
    ]
    assert gce.stats()["counts"] == {"aggregated_instances": 1}
