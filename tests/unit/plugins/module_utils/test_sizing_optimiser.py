"""The optimiser against brute force: on many seeded random catalogs and workloads the cheapest
plan found by the closed forms and prefix minima costs exactly what enumerating every type, every
count and every proxy/media pair costs; and the plan it returns really fits."""

import random

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model, optimiser
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

from lab import sizing_oracle

CALIB = model.merge_calibration(None)


def random_catalog(rng, size):
    catalog = []
    for index in range(size):
        vcpus = rng.choice([1, 2, 4, 8, 16, 32, 48, 64])
        memory = vcpus * rng.choice([1024, 2048, 4096, 8192])
        baseline = round(rng.uniform(0.1, 1.0) * vcpus, 3)
        family = rng.choice(["c6i", "m6i", "c6in", "c7gn", "n2", "x1"])
        catalog.append({
            "name": f"{family}.t{index}", "family": family, "vcpus": vcpus, "memory_mb": memory,
            "baseline_gbps": baseline, "internet_gbps": min(baseline, rng.choice([5.0, 7.0, 100.0])),
            # Prices on a coarse grid make ties (equal costs from different plans) common.
            "price": round(rng.choice([0.5, 1.0, 1.5, 2.0]) * vcpus * rng.choice([0.02, 0.04, 0.05]), 4),
        })
    return catalog


def random_case(seed):
    rng = random.Random(seed)
    wl = model.normalise_workload({
        "concurrent_calls": rng.choice([50, 500, 2000, 8000, 20000]),
        "calls_per_second": rng.choice([1, 10, 50, 200]),
        "registered_endpoints": rng.choice([0, 1000, 50000, 300000]),
        "registration_interval": rng.choice([300, 600, 3600]),
        "keepalive_interval": rng.choice([0, 0, 30]),
        "codec": rng.choice(["g711", "g729", "opus"]),
        "media_relay_share": rng.choice([0.0, 0.3, 1.0, 1.0]),
        "srtp": rng.random() < 0.3,
        "tls_share": rng.choice([0.0, 0.2]),
    })
    target = optimiser.Target(
        max_instances=rng.randint(2, 14), redundancy=rng.choice([0, 0, 1, 2]),
        zones=rng.choice([1, 1, 2, 3]),
        headroom=rng.choice([0, 20, 30, 50]), topology=rng.choice(["auto", "auto", "separate", "combined"]),
        forwarding=rng.choice(["kernel", "userspace"]))
    return rng, wl, target


def plan_fits(fleets, wl, target):
    for fleet in fleets:
        demand = model.node_demand(fleet.role, fleet.itype, wl, CALIB, target.forwarding)
        cap_eff = model.effective_capacity(fleet.itype, CALIB, target.headroom)
        survivors = model.survivors_of(fleet.count, target.redundancy, target.zones)
        if not (model.count_valid(fleet.count, target.zones) and survivors >= 1
                and model.fits(demand, cap_eff, survivors)):
            return False
    return sum(f.count for f in fleets) <= target.max_instances


def test_optimiser_matches_brute_force_on_generated_cases():
    outcomes = {"separate": 0, "combined": 0, "infeasible": 0, "proxy only": 0}
    tight = 0
    for seed in range(1500):
        rng, wl, target = random_case(seed)
        catalog = random_catalog(rng, rng.randint(1, 7))
        brute_cost, brute_plan = sizing_oracle.exhaustive(catalog, wl, CALIB, target)
        try:
            found = optimiser.optimise(catalog, wl, CALIB, target)
        except SizingError:
            assert brute_cost is None, (seed, brute_plan)
            outcomes["infeasible"] += 1
            continue
        assert brute_cost is not None, seed
        cost = optimiser.plan_cost(found["chosen"])
        assert cost == pytest.approx(brute_cost, rel=1e-12, abs=1e-12), (seed, brute_plan)
        assert plan_fits(found["chosen"], wl, target), seed
        key = "proxy only" if wl["relayed_calls"] == 0 else found["topology"]
        outcomes[key] += 1
        # Plans that use the whole max_instances budget are where the pairing across roles matters.
        tight += sum(f.count for f in found["chosen"]) == target.max_instances
    # The generator must exercise every outcome, or this test could pass vacuously.
    assert min(outcomes.values()) >= 50, outcomes
    assert tight >= 50, tight


def test_alternatives_are_each_optimal_within_their_topology():
    for seed in range(600, 800):
        rng, wl, target = random_case(seed)
        if wl["relayed_calls"] == 0:
            continue
        catalog = random_catalog(rng, rng.randint(1, 6))
        for topology in ("separate", "combined"):
            forced = optimiser.Target(target.max_instances, target.redundancy, target.zones, target.headroom,
                                      topology, target.forwarding)
            brute_cost, _ = sizing_oracle.exhaustive(catalog, wl, CALIB, forced)
            try:
                found = optimiser.optimise(catalog, wl, CALIB, forced)
            except SizingError:
                assert brute_cost is None, seed
                continue
            assert found["topology"] == topology
            assert optimiser.plan_cost(found["chosen"]) == pytest.approx(brute_cost, rel=1e-12), seed


def static(name, vcpus, memory_mb, baseline, price, family=None):
    return {"name": name, "family": family or name.split(".")[0], "vcpus": vcpus, "memory_mb": memory_mb,
            "baseline_gbps": baseline, "internet_gbps": baseline, "price": price}


def test_combined_wins_when_one_node_type_carries_both_cheaply():
    wl = model.normalise_workload({"concurrent_calls": 500, "calls_per_second": 5})
    catalog = [static("gp.xlarge", 4, 16384, 5.0, 0.2)]
    found = optimiser.optimise(catalog, wl, CALIB, optimiser.Target(max_instances=10, redundancy=1))
    assert found["topology"] == "combined"
    assert [(f.role, f.itype["name"], f.count) for f in found["chosen"]] == [("combined", "gp.xlarge", 2)]
    assert [(f.role, f.count) for f in found["separate"]] == [("proxy", 2), ("media", 2)]


def test_separate_wins_when_media_needs_a_network_type():
    # The network type has the bandwidth but too little memory for a full location table; the
    # CPU type has memory but little bandwidth, so combined nodes would need 12 of it. The media fleet's
    # count is set by ports: 20000 live calls + 200 calls/s held 30 s after their delete, 4 ports each.
    wl = model.normalise_workload({"concurrent_calls": 20000, "calls_per_second": 200,
                                   "registered_endpoints": 1000000, "registration_interval": 600})
    catalog = [static("cpu.4xlarge", 16, 32768, 0.5, 0.5), static("c6in.2xlarge", 8, 4096, 25.0, 0.9)]
    found = optimiser.optimise(catalog, wl, CALIB, optimiser.Target(max_instances=30, redundancy=1))
    assert found["topology"] == "separate"
    assert [(f.role, f.itype["name"], f.count, f.binding) for f in found["chosen"]] == [
        ("proxy", "cpu.4xlarge", 2, "internet_gbps"), ("media", "c6in.2xlarge", 5, "ports")]
    assert [(f.itype["name"], f.count, f.binding) for f in found["combined"]] == [
        ("cpu.4xlarge", 12, "bandwidth_gbps")]


def test_nothing_to_relay_gives_a_proxy_fleet_only():
    wl = model.normalise_workload({"concurrent_calls": 500, "calls_per_second": 5, "media_relay_share": 0})
    catalog = [static("gp.xlarge", 4, 16384, 5.0, 0.2)]
    found = optimiser.optimise(catalog, wl, CALIB, optimiser.Target(max_instances=10, redundancy=1))
    assert [(f.role, f.count) for f in found["chosen"]] == [("proxy", 2)]
    assert found["combined"] is None


def test_total_cap_binds_across_roles():
    wl = model.normalise_workload({"concurrent_calls": 500, "calls_per_second": 5})
    catalog = [static("gp.xlarge", 4, 16384, 5.0, 0.2)]
    with pytest.raises(SizingError) as err:
        optimiser.optimise(catalog, wl, CALIB, optimiser.Target(max_instances=3, redundancy=1, topology="separate"))
    assert err.value.msg == (
        "no fleet of at most 3 instances carries this workload with redundancy 1 over 1 zone(s) and 30% "
        "headroom: proxy needs at least 2 nodes and media at least 2, more than max_instances together. "
        "Raise max_instances, allow larger instance families, or lower headroom or redundancy")


def test_too_many_nodes_names_the_closest_type():
    wl = model.normalise_workload({"concurrent_calls": 20000, "calls_per_second": 200})
    catalog = [static("small.large", 2, 8192, 0.75, 0.1), static("mid.xlarge", 4, 16384, 1.5, 0.2)]
    with pytest.raises(SizingError) as err:
        optimiser.optimise(catalog, wl, CALIB, optimiser.Target(max_instances=6, redundancy=1))
    assert err.value.msg == (
        "no fleet of at most 6 instances carries this workload with redundancy 1 over 1 zone(s) and 30% "
        "headroom: media: the closest, mid.xlarge, needs 16 nodes (binding: pps); combined: the closest, "
        "mid.xlarge, needs 16 nodes (binding: pps). Raise max_instances, allow larger instance families, "
        "or lower headroom or redundancy")


def test_per_node_share_that_no_type_can_carry():
    # 4 million contacts on every proxy node (full replication): 7812.5 MiB, plus 64 MiB base,
    # 20 processes x 16 MiB private memory and 512 MiB for the OS, before any call.
    wl = model.normalise_workload({"concurrent_calls": 100, "calls_per_second": 1,
                                   "registered_endpoints": 4000000, "media_relay_share": 0})
    catalog = [static("small.large", 2, 8192, 5.0, 0.1)]
    with pytest.raises(SizingError) as err:
        optimiser.optimise(catalog, wl, CALIB, optimiser.Target(max_instances=6, redundancy=1))
    assert err.value.msg == (
        "no fleet of at most 6 instances carries this workload with redundancy 1 over 1 zone(s) and 30% "
        "headroom: proxy: no instance type can carry one node's share: every node needs 8730.3 MiB of "
        "memory_mb before any load and the closest, small.large, offers 5734.4 after headroom. Raise "
        "max_instances, allow larger instance families, or lower headroom or redundancy")


def test_ties_are_broken_the_same_way_every_time():
    wl = model.normalise_workload({"concurrent_calls": 500, "calls_per_second": 5})
    a = static("a.xlarge", 4, 16384, 5.0, 0.2)
    b = static("b.xlarge", 4, 16384, 5.0, 0.2)
    target = optimiser.Target(max_instances=10, redundancy=1)
    first = optimiser.optimise([a, b], wl, CALIB, target)
    second = optimiser.optimise([b, a], wl, CALIB, target)
    assert [(f.role, f.itype["name"], f.count) for f in first["chosen"]] == \
           [(f.role, f.itype["name"], f.count) for f in second["chosen"]] == [("combined", "a.xlarge", 2)]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_instances": 0}, "max_instances must be at least 1 (got 0)"),
    ({"redundancy": -1}, "redundancy must be 0 or more (got -1)"),
    ({"headroom": 100}, "headroom is a percentage of capacity kept free and must be 0 to 99 (got 100)"),
    ({"topology": "mesh"}, "topology must be auto, separate or combined (got mesh)"),
    ({"forwarding": "dpdk"}, "rtpengine_forwarding must be kernel or userspace (got dpdk)"),
])
def test_bad_target(kwargs, message):
    with pytest.raises(SizingError) as err:
        optimiser.Target(**kwargs)
    assert err.value.msg == message
