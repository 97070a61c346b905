"""The DMQ full-mesh growth model (module_utils/sizing/replication.py), checked by hand and against
what the lab measured (bench/bench_dmq_wire.py: 2 KDMQ out per registration on the node that took
it with 2 peers, 1 in on each peer; 5 per call per peer; pings every 15 s)."""

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model, replication
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.planner import SizingManager

CALIB = model.merge_calibration(None)


def workload(**overrides):
    raw = {"concurrent_calls": 1000, "calls_per_second": 10, "registered_endpoints": 60000,
           "registration_interval": 600}
    raw.update(overrides)
    return model.normalise_workload(raw)


def test_per_node_traffic_by_hand():
    wl = workload()  # 100 registrations/s, 10 calls/s
    node = replication.per_node(wl, CALIB, 3)
    reply = CALIB["dmq_reply_bytes"]
    assert node["registrations"]["requests_per_second"] == pytest.approx(100 * 2 / 3)
    assert node["registrations"]["packets_per_second"] == pytest.approx(4 * 100 * 2 / 3)
    assert node["registrations"]["bytes_per_second"] == pytest.approx(
        100 * 2 / 3 * (CALIB["dmq_usrloc_request_bytes"] + reply))
    assert node["dialogs"]["requests_per_second"] == pytest.approx(10 * 5 * 2 / 3)
    assert node["pings"]["requests_per_second"] == pytest.approx(2 / 15.0)
    assert node["pings"]["bytes_per_second"] == pytest.approx(
        2 / 15.0 * (CALIB["dmq_ping_request_bytes"] + reply + 2 * 36 * 3))


def test_the_lab_measurement_is_what_the_defaults_say():
    """3 nodes: a ping and its reply measured 586 + 574 bytes; a contact 779 + 416 (phones add ~120)."""
    assert replication.ping_exchange_bytes(CALIB, 3) == pytest.approx(586 + 574, abs=5)
    assert CALIB["dmq_dialog_messages_per_call"] == 5


def test_a_node_carries_the_whole_fleets_events_as_the_mesh_grows():
    wl = workload()
    small = replication.per_node(wl, CALIB, 2)["registrations"]["requests_per_second"]
    large = replication.per_node(wl, CALIB, 50)["registrations"]["requests_per_second"]
    assert small == pytest.approx(50)
    assert large == pytest.approx(98)  # -> 100/s, the fleet's rate, however many nodes
    total2, _ = replication.fleet_bytes_per_second(wl, CALIB, 2)
    total20, _ = replication.fleet_bytes_per_second(wl, CALIB, 20)
    assert total20 / total2 > 15  # the fleet's replicated bytes grow ~ linearly


def test_demand_is_the_limit_split_into_fixed_and_shared_parts():
    wl = workload()
    limit = replication.per_node_limit(wl, CALIB)
    pairs = replication.demand(wl, CALIB)
    for s in (1, 2, 3, 10):
        fixed, variable = pairs["pps"]
        assert fixed + variable / s == pytest.approx(replication.per_node(wl, CALIB, s)["registrations"][
            "packets_per_second"] + replication.per_node(wl, CALIB, s)["dialogs"]["packets_per_second"])
    per_message = (CALIB["kamailio_replication_cost"] + CALIB["kamailio_replication_send_cost"]) / 1250
    assert limit["cpu"] == pytest.approx((100 + 50) * per_message)


def test_cross_zone_bytes_count_only_peers_in_other_zones():
    wl = workload()
    total, cross = replication.fleet_bytes_per_second(wl, CALIB, 3, zones=3)
    assert cross == pytest.approx(total)
    total, cross = replication.fleet_bytes_per_second(wl, CALIB, 6, zones=3)
    assert cross == pytest.approx(total * 4 / 5)
    assert replication.fleet_bytes_per_second(wl, CALIB, 6, zones=1)[1] == 0


def test_break_even_is_where_the_mesh_delivers_half():
    useful, limit, cap = {"cpu": 2.0}, {"cpu": 1.0}, {"cpu": 10.0}
    # efficiency U / (U + (n - 1) L): 2/3 at n=2, 1/2 at n=3, 2/5 at n=4
    assert replication.efficiency(useful, limit, cap, 3) == pytest.approx(0.5)
    assert replication.break_even_nodes(useful, limit, cap) == 4
    assert replication.workload_multiple(useful, limit, cap, 10 ** 6) == pytest.approx(10.0, rel=1e-3)
    assert replication.break_even_nodes({"cpu": 1.0}, {"cpu": 0.0}, cap) is None


@pytest.mark.parametrize("options, message", [
    ({"budget": 0}, "replication.budget is a percent of a node's capacity: above 0, at most 100 (got 0)"),
    ({"budget": float("nan")}, "replication.budget is a percent of a node's capacity: above 0, at most 100 (got nan)"),
    ({"transfer_price_per_gb": -1}, "replication.transfer_price_per_gb must be a price from 0 to 1000 (got -1)"),
    ({"growth_nodes": [1, 5]}, "replication.growth_nodes must be a non-empty list of node counts from 2 to 1000 "
                               "(got [1, 5])"),
    ({"growth_nodes": []}, "replication.growth_nodes must be a non-empty list of node counts from 2 to 1000 "
                           "(got [])"),
])
def test_bad_options_name_the_field(options, message):
    with pytest.raises(SizingError) as err:
        replication.check_options(options)
    assert err.value.msg == message


CATALOG = [{"name": f"c.{v}x", "vcpus": v, "memory_mb": v * 2048, "baseline_gbps": 10} for v in (4, 16, 64)]
PRICES = {f"c.{v}x": 0.0425 * v for v in (4, 16, 64)}


def plan(catalog=None, **workload_fields):
    wl = {"concurrent_calls": 6000, "calls_per_second": 50, "registered_endpoints": 100000,
          "registration_interval": 600}
    wl.update(workload_fields)
    return SizingManager({"provider": "static", "catalog": catalog or CATALOG, "prices": PRICES, "zone_count": 3,
                          "topology": "separate", "workload": wl,
                          "replication": {"transfer_price_per_gb": 0.02, "growth_nodes": [2, 3, 50]}}).run()


def test_a_small_itsp_gets_a_full_mesh():
    mesh = plan()["replication"]
    assert mesh["verdict"] == "full mesh"
    assert mesh["nodes"] == 3 and mesh["instance_type"] == "c.4x"
    assert [row["nodes"] for row in mesh["growth"]] == [2, 3, 50]
    assert mesh["growth"][0]["kdmq_sent_per_second"] == pytest.approx((100000 / 600 + 250) / 2, abs=0.1)
    assert mesh["cross_zone_cost_per_month"] == pytest.approx(mesh["cross_zone_gb_per_month"] * 0.02, abs=0.01)


def test_re_registering_every_30_s_overruns_the_budget_and_says_what_to_do():
    # Replication alone, (33,333 contact changes + 2,500 dialog messages)/s x (apply + send) / 1250 =
    # 15.8 vCPU, is 35% of a 64-vCPU node's usable 44.8 however many nodes there are.
    result = plan(registered_endpoints=1000000, registration_interval=30, calls_per_second=500)
    mesh = result["replication"]
    per_message = (CALIB["kamailio_replication_cost"] + CALIB["kamailio_replication_send_cost"]) / 1250
    assert mesh["instance_type"] == "c.64x"
    assert mesh["share_limit"]["cpu"] == pytest.approx(100 * (1000000 / 30 + 2500) * per_message / 44.8, abs=0.01)
    assert mesh["verdict"] == "split"
    assert "kamailio_registrar_min_expires" in mesh["advice"]
    assert any(line.startswith("  mesh: split:") for line in result["table"])


def test_no_type_that_holds_the_mesh_says_so():
    with pytest.raises(SizingError) as err:
        plan(CATALOG[:2], registered_endpoints=1000000, registration_interval=30, calls_per_second=500)
    assert "every node needs 15.8 vCPU of cpu before any load (its share of the DMQ full mesh" in err.value.msg


def test_registering_every_600_s_fits_the_same_mesh():
    mesh = plan(CATALOG[1:2], registered_endpoints=1000000, registration_interval=600,
                calls_per_second=500)["replication"]
    assert (mesh["instance_type"], mesh["nodes"], mesh["verdict"]) == ("c.16x", 3, "full mesh")
    assert 0 < mesh["efficiency"] < 1 and 0 <= mesh["next_node_gain"] < 1
