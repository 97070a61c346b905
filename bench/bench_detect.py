#!/usr/bin/env python3
"""How long cloud_facts' detection takes on a host, per place the host can live.

Starts lab/metadata_server.py on 127.0.0.1 (no root needed) and runs the module_utils detection
(the code the module runs on the host, including the real `ip -j addr` calls) against it:

    metal/refused     nothing listens at the endpoint (bare metal whose firewall rejects)
    metal/no-syn-ack  the endpoint never completes the TCP handshake (bare metal, packets dropped)
    metal/silent      TCP connects, no HTTP reply ever comes (worst case)
    metal/404         the stand-in answers 404 for every dialect
    aws, gce, azure   the stand-in answers in that dialect

    /tmp/probe-venv/bin/python bench/bench_detect.py [--runs 5] [--timeout 1.0]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run([os.path.join(ROOT, "scripts", "collection-path.sh")], check=True)
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_facts import (  # noqa: E402
    CloudFacts,
    local_addresses_from,
)

RECORD = {"name": "bench", "instance_id": "i-0be0c4be0c4be0c4b", "instance_type": "c6i.large",
          "region": "eu-west-1", "zone": "eu-west-1a", "mac": "02:18:00:00:00:99",
          "private_ipv4": "198.18.0.99", "public_ipv4": "203.0.113.99", "ipv6": [], "hop_limit": 2,
          "fault": None}


def run_command(args):
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def ip_path():
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.path.exists(os.path.join(directory, "ip")):
            return os.path.join(directory, "ip")
    sys.exit("bench_detect: needs iproute2's ip")


class StandIn:
    def __init__(self, cloud, workdir):
        config = os.path.join(workdir, f"{cloud}.json")
        record = dict(RECORD, cloud=cloud, zone="2" if cloud == "azure" else RECORD["zone"])
        if cloud == "gce":
            record.update(instance_id="4711000000000000099", zone="europe-west1-b", instance_type="e2-standard-2")
        with open(config, "w", encoding="utf-8") as handle:
            json.dump({"hosts": {"127.0.0.1": record}}, handle)
        self.log = open(os.path.join(workdir, f"{cloud}.log"), "w+", encoding="utf-8")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "lab", "metadata_server.py"), "--config", config,
             "--bind", "127.0.0.1", "--port", "0"], stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.log.seek(0)
            text = self.log.read()
            if "listening on 127.0.0.1:" in text:
                port = int(text.split("listening on 127.0.0.1:")[1].split()[0])
                self.endpoint = f"http://127.0.0.1:{port}"
                return
            time.sleep(0.02)
        sys.exit(f"bench_detect: the stand-in did not start:\n{text}")

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=5)
        self.log.close()


def closed_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}", None


def no_syn_ack_endpoint():
    """A listener with backlog 0 that never accepts, its one queue slot already taken: the kernel
    drops further SYNs, so connect() times out as towards a host that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):  # Linux lets backlog + 1 through; fill until a connect hangs
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(listener.getsockname())
            fillers.append(filler)
        except OSError:
            filler.close()
            break
    return f"http://127.0.0.1:{listener.getsockname()[1]}", [listener, *fillers]


def silent_endpoint():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return f"http://127.0.0.1:{listener.getsockname()[1]}", [listener]


def measure(endpoint, runs, timeout, ip):
    times, facts = [], None
    for _ in range(runs):
        began = time.perf_counter()
        facts = CloudFacts(local_addresses=local_addresses_from(run_command, ip), metadata_endpoint=endpoint,
                           timeout=timeout, validate=False).gather()
        times.append((time.perf_counter() - began) * 1000)
    return times, facts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1.0, help="the module's timeout option (default 1.0)")
    args = parser.parse_args()
    ip = ip_path()

    # iproute2 alone, for scale: every case below includes these two calls.
    began = time.perf_counter()
    for _ in range(args.runs):
        local_addresses_from(run_command, ip)()
    ip_ms = (time.perf_counter() - began) * 1000 / args.runs

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_detect.") as workdir:
        for case, make in (("metal/refused", closed_endpoint), ("metal/no-syn-ack", no_syn_ack_endpoint),
                           ("metal/silent", silent_endpoint)):
            endpoint, keep = make()
            runs = args.runs if case == "metal/refused" else min(args.runs, 3)
            try:
                times, facts = measure(endpoint, runs, args.timeout, ip)
            finally:
                for sock in keep or []:
                    sock.close()
            rows.append((case, times, facts))
        for cloud in ("metal", "aws", "gce", "azure"):
            stand_in = StandIn(cloud, workdir)
            try:
                times, facts = measure(stand_in.endpoint, args.runs, args.timeout, ip)
            finally:
                stand_in.close()
            rows.append((f"{cloud}/stand-in" if cloud != "metal" else "metal/404", times, facts))

    print(f"cloud_facts detection on this host, timeout {args.timeout:g} s, python {sys.version.split()[0]}")
    print(f"(each run includes `ip -j addr` + `ip -j route`: {ip_ms:.1f} ms on their own)")
    print(f"{'case':<18} {'runs':>4} {'median ms':>10} {'min ms':>8} {'max ms':>8}  detected")
    for case, times, facts in rows:
        print(f"{case:<18} {len(times):>4} {statistics.median(times):>10.1f} {min(times):>8.1f} "
              f"{max(times):>8.1f}  {facts['provider']} ({facts['source']})")


if __name__ == "__main__":
    main()
