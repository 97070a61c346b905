#!/usr/bin/env python3
"""Sizing time against the full EC2 and GCE catalogs, and against brute force (ratio).

The catalogs come from the stand-ins over HTTP on 127.0.0.1: moto's EC2 (us-east-1: every type
it offers there) and lab/standins/gce_compute_api.py (europe-west1: the data file's machine types).
Every candidate gets a SYNTHETIC price (per vCPU + per GiB, +/- a hash-derived 10 %), so that the
whole catalog competes; these are not real prices.

    fetch        one catalog fetch through the SDK (DescribeInstanceTypeOfferings +
                 DescribeInstanceTypes / one aggregatedList), not cached
    optimise     model + exact optimiser on the whole catalog (median of --repeat runs)
    brute force  every type x every count 1..max_instances per role and every proxy/media pair
                 within the budget (lab/sizing_oracle.py), on the same candidates; its cost must
                 equal the optimiser's

Brute force grows with (types x max_instances)^2 for separate fleets, so its budget is
--brute-max (default 12); the optimiser is also timed at --max-instances (default 64).

    /tmp/probe-venv/bin/python bench/bench_sizing.py [--repeat 5] [--brute-max 12]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run([os.path.join(ROOT, "scripts", "collection-path.sh")], check=True)
sys.path[:0] = [os.path.join(ROOT, ".collections"), ROOT]
# E402 below: these imports only resolve once sys.path names the checkout and its collection link.
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import (  # noqa: E402
    catalog,
    ec2,
    gce,
    model,
    optimiser,
)

from lab import sizing_oracle  # noqa: E402
from lab.standins.cloud import GceStandIn, MotoServer  # noqa: E402

WORKLOAD = {"concurrent_calls": 20000, "calls_per_second": 200, "registered_endpoints": 500000,
            "registration_interval": 600, "keepalive_interval": 30, "tls_share": 0.1}


def synthetic_price(record):
    wobble = int(hashlib.sha256(record["name"].encode()).hexdigest()[:4], 16) / 0xFFFF * 0.2 + 0.9
    return round((0.04 * record["vcpus"] + 0.005 * record["memory_mb"] / 1024.0) * wobble, 4)


def timed(function, repeat):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench(label, provider, records, fetch_seconds, args):
    calib = model.merge_calibration(None)
    prices = {r["name"]: synthetic_price(r) for r in records}
    candidates, summary = catalog.select_candidates(records, provider, calib, prices=prices)
    wl = model.normalise_workload(WORKLOAD)
    full = optimiser.Target(max_instances=args.max_instances, redundancy=1, zones=3, headroom=30)
    small = optimiser.Target(max_instances=args.brute_max, redundancy=1, zones=3, headroom=30)
    opt_full, plan_full = timed(lambda: optimiser.optimise(candidates, wl, calib, full), args.repeat)
    opt_small, plan_small = timed(lambda: optimiser.optimise(candidates, wl, calib, small), args.repeat)
    brute_seconds, (brute_cost, _) = timed(lambda: sizing_oracle.exhaustive(candidates, wl, calib, small), 1)
    cost = optimiser.plan_cost(plan_small["chosen"])
    assert abs(cost - brute_cost) < 1e-9, (cost, brute_cost)
    fleets = " + ".join(f"{f.count} x {f.itype['name']}" for f in plan_full["chosen"])
    print(f"{label}: {summary['types_fetched']} types fetched in {fetch_seconds * 1000:.0f} ms, "
          f"{summary['candidates']} candidates")
    print(f"  optimise, max_instances={args.max_instances}: {opt_full * 1000:8.1f} ms  -> {fleets} "
          f"({plan_full['topology']}, {optimiser.plan_cost(plan_full['chosen']):.4f}/h)")
    print(f"  optimise, max_instances={args.brute_max}: {opt_small * 1000:8.1f} ms")
    print(f"  brute force, max_instances={args.brute_max}: {brute_seconds * 1000:8.1f} ms  "
          f"(ratio {brute_seconds / opt_small:,.0f}x; same cost {brute_cost:.4f}/h)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--max-instances", type=int, default=64)
    parser.add_argument("--brute-max", type=int, default=12)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with tempfile.TemporaryDirectory() as workdir:
        with MotoServer(workdir) as moto:
            started = time.perf_counter()
            records = ec2.fetch_ec2_records("us-east-1", endpoint_url=moto.url)
            bench("EC2 us-east-1 (moto)", "aws", records, time.perf_counter() - started, args)
        zones = ["europe-west1-b", "europe-west1-c", "europe-west1-d"]
        with GceStandIn(workdir, {"projects": {"itsp-lab": {"zones": zones}}}) as standin:
            started = time.perf_counter()
            records = gce.fetch_gce_records("itsp-lab", "europe-west1", endpoint=standin.url)
            bench("GCE europe-west1 (stand-in)", "gce", records, time.perf_counter() - started, args)


if __name__ == "__main__":
    main()
