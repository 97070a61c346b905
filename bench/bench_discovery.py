#!/usr/bin/env python3
"""Batched discovery vs one call per host: API calls counted at the server, and wall time.

For each fleet size N the instances are spread over 3 AWS regions (moto, in its own process) and
3 GCE zones (lab/standins/gce_compute_api.py, in its own process), both on 127.0.0.1.

    batched    module_utils/cloud_api as the cloud_instances module runs it: per AWS region one
               DescribeInstances per page + one DescribeAddresses; for GCE one aggregatedList walk.
    per host   what a task run on every host would do: one DescribeInstances (InstanceIds=[id]) or
               one instances.get per host, sequentially, through one client per region/project
               (the cheapest form of it: no per-host process or client start-up). Both columns
               include building their clients (~100 ms per boto3 EC2 client).

Calls are counted by moto's request recorder and the stand-in's /_stats, not by the client.
Setup (moto run_instances in batches of 100, EIPs on every other instance) is not timed.
Loopback servers answer in milliseconds; against the real APIs each call costs tens of ms plus
throttling, so the call count is the number that transfers, the wall time less so.

    /tmp/probe-venv/bin/python bench/bench_discovery.py [--sizes 10,100,500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run([os.path.join(ROOT, "scripts", "collection-path.sh")], check=True)
sys.path[:0] = [os.path.join(ROOT, ".collections"), ROOT]
# E402 below: these imports only resolve once sys.path names the checkout and its collection link.
import boto3  # noqa: E402
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.finder import CloudInstanceFinder  # noqa: E402
from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud import compute_v1  # noqa: E402

from lab.standins.cloud import GceStandIn, MotoServer, build_ec2_fleet, gce_instance  # noqa: E402

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
ZONES = ["europe-west1-b", "europe-west1-c", "us-central1-a"]
PROJECT = "itsp-bench"


def spread(total, buckets):
    """total split over buckets as evenly as possible, e.g. 10 over 3 -> [4, 3, 3]."""
    return [total // buckets + (1 if index < total % buckets else 0) for index in range(buckets)]


def bench_aws(moto, size):
    moto.reset()
    fleet = {}
    for region, count in zip(REGIONS, spread(size, len(REGIONS))):
        fleet.update(build_ec2_fleet(moto, [region], per_region=count, tags={"role": "sip"},
                                     eips_per_region=count // 2, batch=100))
    params = {"provider": "aws", "regions": REGIONS, "endpoint_url": moto.url, "access_key": "testing",
              "secret_key": "testing", "tags": {"role": "sip"}}

    moto.reset_recording()
    started = time.perf_counter()
    found = CloudInstanceFinder(params).find()["instances"]
    batched_wall = time.perf_counter() - started
    batched_calls = sum(moto.recorded_actions().values())

    moto.reset_recording()
    started = time.perf_counter()
    # A fresh session, as the batched path makes one: the EC2 model load is then in both columns.
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    clients = {region: session.client("ec2", region_name=region, endpoint_url=moto.url) for region in REGIONS}
    per_host = 0
    for region, ids in fleet.items():
        for instance_id in ids:
            reservations = clients[region].describe_instances(InstanceIds=[instance_id])["Reservations"]
            per_host += len(reservations[0]["Instances"])
    per_host_wall = time.perf_counter() - started
    per_host_calls = sum(moto.recorded_actions().values())
    assert_same = len(found) == per_host == size
    return batched_calls, batched_wall, per_host_calls, per_host_wall, assert_same


def bench_gce(standin, size):
    instances = []
    for zone_index, (zone, count) in enumerate(zip(ZONES, spread(size, len(ZONES))), start=1):
        for host in range(count):
            public = f"203.0.113.{host % 254 + 1}" if host % 2 == 0 else None
            instances.append(gce_instance(f"sip-{zone_index}-{host}", zone,
                                          f"198.18.{zone_index}.{host % 250 + 2}", public, {"role": "sip"}))
    standin.write_state({"projects": {PROJECT: {"zones": ZONES, "instances": instances}}})
    params = {"provider": "gce", "project": PROJECT, "auth_kind": "anonymous", "endpoint_url": standin.url,
              "tags": {"role": "sip"}}

    standin.reset_stats()
    started = time.perf_counter()
    found = CloudInstanceFinder(params).find()["instances"]
    batched_wall = time.perf_counter() - started
    batched_calls = sum(standin.stats()["counts"].values())

    standin.reset_stats()
    started = time.perf_counter()
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), transport="rest",
                                        client_options={"api_endpoint": standin.url})
    per_host = sum(1 for item in instances
                   if client.get(project=PROJECT, zone=item["zone"], instance=item["name"]).name)
    per_host_wall = time.perf_counter() - started
    per_host_calls = sum(standin.stats()["counts"].values())
    return batched_calls, batched_wall, per_host_calls, per_host_wall, len(found) == per_host == size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,500", help="comma-separated fleet sizes (default 10,100,500)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if max(sizes) > 750:
        parser.error("at most 750 instances: each region/zone gets one /24 of 198.18.0.0/15")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as workdir, MotoServer(workdir) as moto, \
            GceStandIn(workdir, {"projects": {}}) as standin:
        for size in sizes:
            rows.append(("aws (moto, 3 regions)", size, *bench_aws(moto, size)))
            rows.append(("gce (stand-in, 3 zones)", size, *bench_gce(standin, size)))

    header = ("provider", "N", "batched calls", "batched wall", "per-host calls", "per-host wall", "same hosts")
    table = [header] + [
        (provider, str(size), str(b_calls), f"{b_wall * 1000:.0f} ms", str(p_calls), f"{p_wall * 1000:.0f} ms",
         "yes" if same else "NO")
        for provider, size, b_calls, b_wall, p_calls, p_wall, same in rows
    ]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    for index, row in enumerate(table):
        print("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                        for column, (cell, width) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
