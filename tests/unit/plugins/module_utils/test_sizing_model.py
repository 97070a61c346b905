"""The sizing model's arithmetic: per-stream figures, workload checks, demands, the fit test and
the fleet-size definitions, each against numbers worked out by hand."""

import math
import random

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

CALIB = model.merge_calibration(None)


def itype(name="c6i.2xlarge", family="c6i", vcpus=8, memory_mb=16384, baseline=3.125, internet=3.125):
    return {"name": name, "family": family, "vcpus": vcpus, "memory_mb": memory_mb,
            "baseline_gbps": baseline, "internet_gbps": internet}


def workload(**overrides):
    raw = {"concurrent_calls": 1000, "calls_per_second": 10}
    raw.update(overrides)
    return model.normalise_workload(raw)


# -- media per stream ----------------------------------------------------------------------------

@pytest.mark.parametrize("codec, ptime, srtp, bitrate, pps, packet_bytes, kbps", [
    ("g711", 20, False, None, 50.0, 218, 87.2),      # the figure
    ("pcma", 20, False, None, 50.0, 218, 87.2),      # alias
    ("g711", 10, False, None, 100.0, 138, 110.4),
    ("g711", 20, True, None, 50.0, 228, 91.2),       # + 10-byte SRTP tag
    ("g729", 20, False, None, 50.0, 78, 31.2),
    ("g729", 40, False, None, 25.0, 98, 19.6),
    ("g722", 20, False, None, 50.0, 218, 87.2),
    ("gsm", 20, False, None, 50.0, 91, 36.4),
    ("ilbc", 20, False, None, 50.0, 96, 38.4),
    ("opus", 20, False, None, 50.0, 138, 55.2),      # 32 kbit/s default
    ("opus", 20, False, 24, 50.0, 118, 47.2),
])
def test_stream_figures(codec, ptime, srtp, bitrate, pps, packet_bytes, kbps):
    stream = model.stream_figures(model.resolve_codec(codec), ptime, srtp, bitrate)
    assert stream["pps"] == pps
    assert stream["packet_bytes"] == pytest.approx(packet_bytes)
    assert stream["bps"] / 1000.0 == pytest.approx(kbps)


def test_unknown_codec_names_the_known_ones():
    with pytest.raises(SizingError) as err:
        model.resolve_codec("g723")
    assert err.value.msg == (
        "unknown codec 'g723'; known codecs: g711, g722, g726-32, g729, gsm, ilbc, opus "
        "(aliases: g.711, g.722, g.729, g711a, g711u, g726, g729a, pcma, pcmu)")


def test_ptime_that_does_not_fit_the_frame():
    with pytest.raises(SizingError) as err:
        workload(codec="gsm", ptime=30)
    assert err.value.msg == "ptime 30 ms does not suit gsm: use 20 to 120 ms in steps of 20 ms"


@pytest.mark.parametrize("overrides, message", [
    ({"concurrent_calls": 0}, "workload.concurrent_calls must be greater than 0 (got 0)"),
    ({"calls_per_second": -5}, "workload.calls_per_second must be greater than 0 (got -5)"),
    ({"registered_endpoints": -1}, "workload.registered_endpoints must be 0 or more (got -1)"),
    ({"registration_interval": 0}, "workload.registration_interval must be greater than 0 (got 0)"),
    ({"media_relay_share": 1.5},
     "workload.media_relay_share is a share and must be between 0 and 1 (got 1.5)"),
    ({"tls_share": "lots"}, "workload.tls_share must be a number (got 'lots')"),
    ({"srtp": "yes"}, "workload.srtp must be true or false (got 'yes')"),
    ({"ptime": 20.5}, "workload.ptime must be a whole number of milliseconds (got 20.5)"),
    ({"concurent_calls": 5}, "unknown workload field(s) concurent_calls; known fields: calls_per_second, "
                             "codec, codec_bitrate_kbps, concurrent_calls, keepalive_interval, "
                             "media_internet_share, media_relay_share, ptime, registered_endpoints, "
                             "registration_interval, srtp, tls_share"),
])
def test_bad_workload_says_what_to_change(overrides, message):
    with pytest.raises(SizingError) as err:
        workload(**overrides)
    assert err.value.msg == message


def test_missing_required_field():
    with pytest.raises(SizingError) as err:
        model.normalise_workload({"concurrent_calls": 10})
    assert err.value.msg == "workload.calls_per_second is required"


def test_derived_rates():
    wl = workload(registered_endpoints=600000, registration_interval=600, keepalive_interval=30,
                  media_relay_share=0.5)
    assert wl["relayed_calls"] == 500
    assert wl["registrations_per_second"] == 1000
    assert wl["keepalives_per_second"] == 20000


# -- demands -------------------------------------------------------------------------------------

def test_media_demand_per_relayed_call():
    wl = workload(concurrent_calls=1000)
    demand = model.media_demand(itype(), wl, CALIB, "kernel")
    assert demand["pps"] == (0.0, 200000.0)                       # 4 streams x 50 pps x 1000
    assert demand["bandwidth_gbps"][1] == pytest.approx(0.1744)   # 2 x 87.2 kbit/s x 1000
    assert demand["internet_gbps"][1] == pytest.approx(0.1744)
    # Sessions: 1000 live calls + 10 calls/s held 30 s after their delete = 1300, 4 ports each.
    assert demand["ports"] == (0.0, 5200.0)
    assert demand["cpu"] == (0.0, pytest.approx(0.4))             # 200k / 500k per vCPU
    assert demand["memory_mb"] == (128.0, pytest.approx(1300 * 32768 / 1048576))


def test_ended_calls_held_for_delete_delay_take_ports_and_memory_not_media():
    # The bench_migrate retire phase: 12 calls/s of 4-s calls to one relay, about 48 live, and 12 x 30 = 360
    # more held by rtpengine until delete-delay after their delete.
    wl = workload(concurrent_calls=48, calls_per_second=12)
    held = model.media_demand(itype(), wl, CALIB, "kernel")
    assert model.held_sessions(wl, CALIB) == 360
    assert held["ports"] == (0.0, (48 + 360) * 4.0)
    assert held["memory_mb"][1] == pytest.approx((48 + 360) * 32768 / 1048576)
    assert held["pps"] == (0.0, 48 * 4 * 50.0)                    # ended calls carry no media
    # With delete-delay 0 (allowed: rtpengine then deletes at once) only the live calls count.
    calib = model.merge_calibration({"rtpengine_delete_delay_s": 0})
    assert model.media_demand(itype(), wl, calib, "kernel")["ports"] == (0.0, 48 * 4.0)
    # Only relayed calls are held.
    half = workload(concurrent_calls=48, calls_per_second=12, media_relay_share=0.5)
    assert model.held_sessions(half, CALIB) == 180


def test_tuning_gives_the_rtpengine_role_what_it_needs_for_the_held_sessions():
    wl = workload(concurrent_calls=48, calls_per_second=12)
    values = model.tuning("media", itype(vcpus=2), wl, CALIB, "kernel", survivors=1, headroom_pct=0)
    assert (values["rtpengine_max_calls"], values["rtpengine_calls_per_second"],
            values["rtpengine_delete_delay"]) == (48, 12.0, 30)
    # The rtpengine role's max-sessions and its preflight's rule (4 ports per session) for these values:
    sessions = values["rtpengine_max_calls"] + math.ceil(values["rtpengine_calls_per_second"]
                                                        * values["rtpengine_delete_delay"])
    assert sessions == 408
    assert values["rtpengine_port_max"] - values["rtpengine_port_min"] + 1 == 4 * sessions
    # Per node after the worst failure, within the headroom: 2 survivors, 30% kept free.
    values = model.tuning("media", itype(vcpus=2), wl, CALIB, "kernel", survivors=2, headroom_pct=30)
    assert values["rtpengine_max_calls"] == 35                     # ceil(48 / 2 / 0.7)
    assert values["rtpengine_calls_per_second"] == 8.6             # 12 / 2 / 0.7 = 8.57, up to 0.1
    assert values["rtpengine_port_max"] - values["rtpengine_port_min"] + 1 == 4 * (35 + 258)


def test_a_zero_delete_delay_is_allowed_a_negative_one_is_not():
    assert model.merge_calibration({"rtpengine_delete_delay_s": 0})["rtpengine_delete_delay_s"] == 0
    with pytest.raises(SizingError, match=r"calibration.rtpengine_delete_delay_s must be 0 or more \(got -1\)"):
        model.merge_calibration({"rtpengine_delete_delay_s": -1})


def test_media_cpu_userspace_with_srtp():
    wl = workload(concurrent_calls=1000, srtp=True)
    demand = model.media_demand(itype(), wl, CALIB, "userspace")
    assert demand["cpu"][1] == pytest.approx(200000 / 100000 * 1.8)


def test_proxy_demand_by_hand():
    wl = workload(concurrent_calls=1000, calls_per_second=100, registered_endpoints=50000,
                  registration_interval=500, keepalive_interval=50, tls_share=0.5)
    demand = model.proxy_demand(itype(vcpus=8), wl, CALIB)
    tls = 1 + 0.5 * 0.5
    regs = 100 / 1250.0
    # DMQ: 100 contact changes + 100 calls x their dialog messages a second, each costing apply + send of a
    # REGISTER: every node carries L (1 - 1/s), i.e. fixed L and a variable -L shared by the s nodes.
    per_call = CALIB["dmq_dialog_messages_per_call"]
    events = 100 + 100 * per_call
    mesh_cpu = events * (CALIB["kamailio_replication_cost"] + CALIB["kamailio_replication_send_cost"]) / 1250.0
    assert demand["cpu"][0] == pytest.approx(mesh_cpu)
    assert demand["cpu"][1] == pytest.approx(tls * (100 / 625 + 1000 / 5000 + regs) - mesh_cpu)
    # 16 UDP + 16 TCP (TLS in use) + 12 others, 16 MB each; 64 MB base; 50000 contacts x 2 KiB; the
    # replication messages the node sends, each a transaction kept 5 s: the cluster's events x 5 s x 4 KiB
    assert demand["memory_mb"][0] == pytest.approx(64 + 50000 * 2048 / 1048576 + events * 5 * 4096 / 1048576
                                                   + 16 * 44)
    transactions = 100 * 2 + 100 * 2 + 1000
    assert demand["memory_mb"][1] == pytest.approx(
        (1000 * 4096 + transactions * 5 * 4096 + 50000 * 0.5 * 49152) / 1048576)
    packets = 100 * 14 + 100 * 4 + 1000 * 2 + 100 * 6
    assert demand["pps"] == (4 * events, packets - 4 * events)
    reply = CALIB["dmq_reply_bytes"]
    mesh_gbps = (100 * (CALIB["dmq_usrloc_request_bytes"] + reply)
                 + 100 * per_call * (CALIB["dmq_dialog_request_bytes"] + reply)) * 8 / 1e9
    assert demand["bandwidth_gbps"][0] == pytest.approx(mesh_gbps)
    assert demand["bandwidth_gbps"][1] == pytest.approx(packets / 2 * 1000 * 8 / 1e9 - mesh_gbps)
    assert demand["internet_gbps"] == (0.0, pytest.approx(packets / 2 * 1000 * 8 / 1e9))


def test_node_demand_counts_the_os_once_for_combined_nodes():
    wl = workload()
    proxy = model.node_demand("proxy", itype(), wl, CALIB, "kernel")
    media = model.node_demand("media", itype(), wl, CALIB, "kernel")
    both = model.node_demand("combined", itype(), wl, CALIB, "kernel")
    assert both["memory_mb"][0] == pytest.approx(proxy["memory_mb"][0] + media["memory_mb"][0] - 512)
    assert both["cpu"][1] == pytest.approx(proxy["cpu"][1] + media["cpu"][1])


# -- capacity ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, family, vcpus, pps, rule", [
    ("c6in.2xlarge", "c6in", 8, 2000000.0, "assumed: 250000 per vCPU up to 6000000 (rule 'c*n')"),
    ("m6in.large", "m6in", 2, 500000.0, "assumed: 250000 per vCPU up to 6000000 (rule '*in')"),
    ("c7gn.large", "c7gn", 2, 500000.0, "assumed: 250000 per vCPU up to 6000000 (rule 'c*gn')"),
    ("m6i.32xlarge", "m6i", 128, 3000000.0, "assumed: 100000 per vCPU up to 3000000 (rule '*')"),
    ("n2-highcpu-8", "n2", 8, 800000.0, "assumed: 100000 per vCPU up to 3000000 (rule '*')"),
])
def test_pps_allowance_rules(name, family, vcpus, pps, rule):
    assert model.pps_allowance(itype(name, family, vcpus), CALIB) == (pps, rule)


def test_pps_and_bandwidth_overrides():
    calib = model.merge_calibration({"pps": {"c6i.2xlarge": 123456},
                                     "bandwidth_gbps": {"c6i.2xlarge": 2.0}})
    cap = model.capacity(itype(internet=5.0), calib)
    assert cap["pps"] == 123456.0
    assert cap["bandwidth_gbps"] == 2.0
    assert cap["internet_gbps"] == 2.0   # never above the bandwidth
    assert cap["ports"] == 65535 - 16384 + 1


def test_effective_capacity_applies_headroom():
    cap = model.effective_capacity(itype(vcpus=10), CALIB, 30)
    assert cap["cpu"] == pytest.approx(7.0)


@pytest.mark.parametrize("overrides, message", [
    ({"bogus": 1}, "unknown calibration key 'bogus'; known keys: "),
    ({"contact_bytes": 0}, "calibration.contact_bytes must be a number greater than 0 (got 0)"),
    ({"kamailio_replication_cost": 2},
     "calibration.kamailio_replication_cost is a share and must be at most 1 (got 2)"),
    ({"pps_allowance": [{"match": "*", "per_vcpu": 1}]},
     "calibration.pps_allowance[0] must have exactly the keys match, per_vcpu, max"),
    ({"pps_allowance": [{"match": "*", "per_vcpu": -1, "max": 5}]},
     "calibration.pps_allowance[0].per_vcpu must be a number greater than 0 (got -1)"),
    ({"kamailio_children_min": 40},
     "calibration.kamailio_children_min (40) is above kamailio_children_max (32)"),
    ({"rtpengine_port_min": 70000},
     "calibration.rtpengine_port_min (70000) must be below rtpengine_port_max_limit (65535), "
     "which must be at most 65535"),
    ({"pps": {"x.large": "many"}}, "calibration.pps.x.large must be a number greater than 0 (got 'many')"),
])
def test_bad_calibration(overrides, message):
    with pytest.raises(SizingError) as err:
        model.merge_calibration(overrides)
    assert err.value.msg.startswith(message)


def test_calibration_defaults_are_not_shared_between_merges():
    first = model.merge_calibration(None)
    first["pps_allowance"].append({"match": "x", "per_vcpu": 1, "max": 1})
    assert len(model.merge_calibration(None)["pps_allowance"]) == 4


# -- fit and fleet size --------------------------------------------------------------------------

def test_survivors_needed_agrees_with_fits_on_random_demands():
    rng = random.Random(7)
    checked = 0
    for _ in range(3000):
        demand = {res: (rng.choice([0.0, rng.uniform(0, 5)]), rng.choice([0.0, rng.uniform(0, 400)]))
                  for res in model.RESOURCES}
        cap = {res: rng.uniform(0.5, 10) for res in model.RESOURCES}
        survivors, binding = model.survivors_needed(demand, cap)
        if survivors is None:
            assert not any(model.fits(demand, cap, s) for s in (1, 10, 10**6))
            continue
        checked += 1
        assert model.fits(demand, cap, survivors)
        assert survivors == 1 or not model.fits(demand, cap, survivors - 1)
        assert binding in model.RESOURCES
    assert checked > 1000


def test_survivors_needed_reports_the_resource_a_node_cannot_carry():
    demand = {res: (0.0, 1.0) for res in model.RESOURCES}
    demand["memory_mb"] = (900.0, 10.0)
    cap = {res: 100.0 for res in model.RESOURCES}
    cap["memory_mb"] = 800.0
    assert model.survivors_needed(demand, cap) == (None, "memory_mb")


@pytest.mark.parametrize("count, k, zones, survivors", [
    (3, 1, 1, 2), (3, 0, 1, 3), (4, 1, 2, 2), (6, 1, 3, 4), (7, 1, 3, 4), (7, 3, 3, 4), (10, 4, 3, 6),
])
def test_survivors_of(count, k, zones, survivors):
    assert model.survivors_of(count, k, zones) == survivors


def test_count_for_survivors_is_the_smallest_valid_count():
    for survivors in range(1, 60):
        for k in range(0, 4):
            for zones in range(1, 6):
                count, driver = model.count_for_survivors(survivors, k, zones)
                smallest = next(n for n in range(1, 1000)
                                if model.count_valid(n, zones)
                                and model.survivors_of(n, k, zones) >= survivors)
                assert count == smallest, (survivors, k, zones)
                assert driver in ("load", "redundancy", "zone loss", "one node per zone")


def test_count_driver_names():
    assert model.count_for_survivors(5, 0, 1) == (5, "load")
    assert model.count_for_survivors(5, 1, 1) == (6, "redundancy")
    assert model.count_for_survivors(5, 1, 2) == (10, "zone loss")
    assert model.count_for_survivors(1, 0, 3) == (3, "one node per zone")


# -- tuning --------------------------------------------------------------------------------------

def test_tuning_values():
    wl = workload(concurrent_calls=4000, registered_endpoints=100000)
    values = model.tuning("combined", itype(vcpus=8), wl, CALIB, "kernel", survivors=2, headroom_pct=30)
    assert values["kamailio_children"] == 16
    assert values["kamailio_tcp_children"] == 4       # no TLS
    assert values["kamailio_pkg_memory_mb"] == 16
    assert values["rtpengine_threads"] == 8
    assert values["rtpengine_port_min"] == 16384
    # 4000 calls / 2 survivors / 0.7 = 2857.1 -> 2858 calls; 10 calls/s / 2 / 0.7 = 7.14 -> 7.2 calls/s,
    # x 30 s delete-delay = 216 held: 3074 sessions x 4 ports = 12296
    assert (values["rtpengine_max_calls"], values["rtpengine_calls_per_second"]) == (2858, 7.2)
    assert values["rtpengine_port_max"] == 16384 + 12296 - 1
    usrloc = 100000 * 2048 / 1048576
    shm_var = (4000 * 4096 + (10 * 2 + 100000 / 3600 * 2) * 5 * 4096) / 1048576
    # The KDMQ transactions a node keeps: (100000 / 3600 registrations + 10 calls x 5 dialog messages)/s x 5 s.
    kdmq = (100000 / 3600 + 10 * 5) * 5 * 4096 / 1048576
    assert values["kamailio_shm_memory_mb"] == model.round_up((64 + usrloc + kdmq + shm_var / 2) / 0.7, 64)


def test_shared_memory_holds_the_replication_messages_in_flight():
    # The lab's failure: 2,000 REGISTER/s replicated overran 128 MB (each KDMQ a transaction kept ~5 s).
    quiet = workload(registered_endpoints=100000)
    storm = workload(registered_endpoints=100000, registration_interval=10)  # 10,000 REGISTER/s
    assert model.replication_in_flight_mb(storm, CALIB) == pytest.approx((10000 + 10 * 5) * 5 * 4096 / 1048576)
    shm = {name: model.tuning("proxy", itype(vcpus=8), wl, CALIB, "kernel", survivors=2,
                              headroom_pct=30)["kamailio_shm_memory_mb"]
           for name, wl in (("quiet", quiet), ("storm", storm))}
    assert shm["storm"] >= shm["quiet"] + 190, shm


def test_children_are_clamped():
    assert model.kamailio_children(itype(vcpus=1), CALIB) == 4
    assert model.kamailio_children(itype(vcpus=96), CALIB) == 32
