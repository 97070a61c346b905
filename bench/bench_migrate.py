#!/usr/bin/env python3
"""A big box migrated to cloud instances under load, phase by phase: prints figures, asserts nothing.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_migrate.py [--rates 1 4] [--users 200]  # as root

Lab, per load level (a fresh lab each: retire is one way): box1, a single big box (Kamailio +
rtpengine, DMQ on) built by site.yml from a small source inventory; cloud1-3 (proxies) and media5
(relay) as AWS hosts registered in the lab's EC2 API (moto) with their itsp:role tags, found by
inventories/aws itself (amazon.aws.aws_ec2). Users are registered on box1, then
playbooks/migrate.yml runs preflight, build, join, shift, drain, retire with
`-i SOURCE -i inventories/aws` while SIPp places calls with RTP (RATE calls/s, 4 s hold) through
box1 (through the cloud proxies for retire). Per phase: time, calls attempted and failed; for join,
registrations synced per second (contacts on a cloud proxy / join time). Load is bounded by -m,
-timeout and an outer timeout; the lab is torn down at the end.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from benchlib import LABCTL, ROOT, site, timed

from lab import load, sip

BOX = {"box1": 31}
CLOUD = {"cloud1": 51, "cloud2": 52, "cloud3": 53}
RELAY = {"media5": 55}
PHASES = ["preflight", "build", "join", "shift", "drain", "retire"]
LAB_KEY = "/var/cache/itsp-cluster/lab/ssh/id_ed25519"
TEST_VARS = {"kamailio_auth_enabled": False, "kamailio_pike_enabled": False, "kamailio_rate_limit_requests": 0,
             "kamailio_registrar_max_expires": 3600, "rtpengine_port_min": 30000, "rtpengine_port_max": 30999,
             "rtpengine_max_calls": 200}


def pub(n):
    return f"203.0.113.{n}"


def write_lab(work):
    """The lab spec (groups become the EC2 itsp:role tags) and the source inventory (box1 only)."""
    hosts = [{"name": "box1", "private_ipv4": "198.18.0.31", "public_ipv4": pub(31), "cloud": "metal",
              "groups": ["kamailio", "rtpengine"]}]
    for group, nodes in (("kamailio", CLOUD), ("rtpengine", RELAY)):
        hosts += [{"name": n, "private_ipv4": f"198.18.0.{o}", "public_ipv4": pub(o), "cloud": "aws",
                   "groups": [group]} for n, o in nodes.items()]
    with open(os.path.join(work, "spec.json"), "w") as fh:
        json.dump({"hosts": hosts}, fh)
    box = {"ansible_host": "198.18.0.31", "itsp_private_ipv4": "198.18.0.31", "itsp_public_ipv4": pub(31),
           "kamailio_dmq_enabled": True}
    inv = {"all": {"children": {"bigbox": {"hosts": {"box1": box}},
                                "sip_nodes": {"children": {"bigbox": {}}},
                                "kamailio": {"children": {"bigbox": {}}},
                                "rtpengine": {"children": {"bigbox": {}}}}}}
    os.makedirs(os.path.join(work, "group_vars"), exist_ok=True)
    with open(os.path.join(work, "hosts.yml"), "w") as fh:
        json.dump(inv, fh)
    shutil.copy(os.path.join(ROOT, "inventories", "lab", "group_vars", "all.yml"),
                os.path.join(work, "group_vars", "all.yml"))
    with open(os.path.join(work, "group_vars", "sip_nodes.yml"), "w") as fh:
        json.dump(TEST_VARS, fh)
    return os.path.join(work, "spec.json")


def migrate(work, phase):
    # The lab's EC2 API for inventories/aws; the lab's login for every host (the aws inventory's
    # group_vars name the fleet's key pair and user, which the lab hosts do not have).
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", AWS_URL="http://198.18.0.1:5000", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing")
    extra = dict(TEST_VARS, migrate_phase=phase, migrate_state_file=os.path.join(work, "state.json"),
                 migrate_sizing_redundancy=0, ansible_user="root", ansible_become=False,
                 ansible_ssh_private_key_file=LAB_KEY,
                 ansible_ssh_common_args="-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
                 migrate_workload={"concurrent_calls": 50, "calls_per_second": 2, "registered_endpoints": 500})
    took, _ = timed(["ansible-playbook", "-i", os.path.join(work, "hosts.yml"), "-i", "inventories/aws",
                     "playbooks/migrate.yml", "-e", json.dumps(extra)], env=env, timeout=900)
    return took


def bench_rate(rate, users):
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as work:
        spec = write_lab(work)
        try:
            timed(LABCTL + ["up", "--spec", spec], timeout=900)
            took, _ = site(os.path.join(work, "hosts.yml"))
            lines.append(f"rate {rate}/s: site.yml on the big box {took:.0f} s")
            res = sip.register_many(pub(31), [f"user{i:04d}" for i in range(users)], rate=100,
                                    timeout=users // 100 + 30)
            lines.append(f"rate {rate}/s: {load.sipp_counts(res.stdout)[0]} users registered on box1; "
                         f"contacts {load.wait_contacts(['box1'], users)}")
            total, attempted, failed = 0.0, 0, 0
            for i, phase in enumerate(PHASES):
                entry = {n: pub(o) for n, o in (CLOUD if phase == "retire" else BOX).items()}
                traffic = load.Load(entry, next(iter(entry.values())), seconds=300, rate=rate, hold=4, tag=i % 5)
                time.sleep(2)
                took = migrate(work, phase)
                time.sleep(2)
                traffic.stop()
                results = traffic.finish()
                a = sum(r["ok"] + max(r["failed"], 0) for r in results.values())
                f = sum(max(r["failed"], 0) for r in results.values())
                total, attempted, failed = total + took, attempted + a, failed + f
                counts = {n: load.contacts(n) for n in [*BOX, *CLOUD]}
                extra = ""
                if phase == "join":
                    synced = counts["cloud1"]
                    extra = f"; registrations synced {synced / took:.1f}/s (cloud1 {synced} in {took:.1f} s)"
                lines.append(f"rate {rate}/s: {phase:<9} {took:5.1f} s; calls attempted {a}, failed {f}; "
                             f"contacts {counts}{extra}")
            lines.append(f"rate {rate}/s: whole migration {total:.0f} s; calls attempted {attempted}, failed {failed}")
        finally:
            subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=[1, 4])
    p.add_argument("--users", type=int, default=200)
    a = p.parse_args()
    if not all(1 <= r <= 20 for r in a.rates) or not 1 <= a.users <= 5000:
        p.error("1..20 calls/s, up to 5000 users (bounded load only)")
    os.chdir(ROOT)
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    for rate in a.rates:
        for line in bench_rate(rate, a.users):
            print(line, flush=True)


if __name__ == "__main__":
    main()
