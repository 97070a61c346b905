#!/usr/bin/env python3
"""Failover time of the active-passive big box pair: prints figures, asserts nothing.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_failover.py [--runs 5] [--rate 4] [--keep]  # as root

Builds the lab from inventories/bigbox (lab/playbooks/lab.yml: the pair, site.yml, the report),
then repeats each kind of fault `--runs` times, under bounded SIPp calls with RTP through the
VIP's public address (`--rate` calls/s, 3 s each): the active box powered off (SIGKILL of its
container, link down) and its Kamailio hung (SIGSTOP: there but not answering). The failover time
is the longest silence of an OPTIONS prober (one request every 50 ms) around the fault: from the
last answer of the old active to the first of the new one. After each, the old active is brought
back (powered on / resumed) and becomes the standby. Prints each run, then median and max per
kind, and the calls failed per failover. Published keepalived + Elastic IP setups report 5-6 s;
on bare metal (gratuitous ARP) the floor is keepalived's dead-master timer (3 x advert_int +
skew) for a power-off and fall x interval of the health check for a dead daemon.
The VIP must answer SIP OPTIONS before anything is measured. The lab is torn down at the end
unless --keep.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchlib import LABCTL, ROOT, require_answers, sip_probe, timed

from lab import failover as pair
from lab.failover import CallLoad, Prober, holders, lab, lab_exec, outage, vrrp_state, wait_for

BOXES = ["box1", "box2"]
VIP, VIP_PUBLIC = "198.18.0.30", "203.0.113.30"
TEST_SETTINGS = os.path.join(ROOT, "molecule", "bigbox", "inventory", "group_vars", "sip_nodes.yml")


def single_holder():
    return pair.single_holder(BOXES, VIP)


def failover(kind, rate):
    active = wait_for(single_holder, 60)
    if not active:
        sys.exit(f"bench: the VIP is not held by exactly one box: {holders(BOXES, VIP)}")
    prober = Prober(VIP_PUBLIC, seconds=30)
    load = CallLoad(VIP_PUBLIC, seconds=16, rate=rate)
    time.sleep(5)
    t_fault = time.time()
    if kind == "power-off":
        lab("power-off", active)
    elif kind == "kamailio-killed":
        lab_exec(active, "pkill", "-KILL", "-x", "kamailio")
    else:
        lab_exec(active, "pkill", "-STOP", "-x", "kamailio")
    # A killed Kamailio is restarted by systemd: the VIP moves only if it stays silent past the fall window.
    moved = wait_for(lambda: [b for b in holders(BOXES, VIP) if b != active], 10 if kind == "kamailio-killed" else 30)
    calls = load.finish()
    gap = outage(prober.finish(), t_fault)
    # Back to a pair: the old active returns as the standby.
    if kind == "power-off":
        lab("power-on", active, timeout=180)
    elif kind == "kamailio-hung":
        lab_exec(active, "pkill", "-CONT", "-x", "kamailio")
    if moved:
        wait_for(lambda: vrrp_state(active) == "BACKUP", 90)
    time.sleep(3)  # the Kamailio that came back syncs registrations over DMQ
    return {"from": active, "to": moved[0] if moved else None, "gap": gap, **calls}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rate", type=float, default=4, help="calls per second during each failover")
    p.add_argument("--kinds", default="power-off,kamailio-killed,kamailio-hung",
                   help="comma-separated: power-off (SIGKILL of the box), kamailio-killed (SIGKILL of Kamailio: "
                        "systemd restarts it), kamailio-hung (SIGSTOP)")
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = p.parse_args()
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    # The scenario's test settings: one public address plays every phone (no digest auth, no flood guards).
    elapsed, _ = timed(["ansible-playbook", "-i", "inventories/bigbox", "-e", f"@{TEST_SETTINGS}",
                        "lab/playbooks/lab.yml"], env=env)
    print(f"lab built from inventories/bigbox and converged in {elapsed:.0f} s")
    try:
        require_answers({"the pair's VIP": sip_probe(VIP_PUBLIC)})
        results = {kind: [] for kind in args.kinds.split(",")}
        for i in range(args.runs):
            for kind, rows in results.items():
                r = failover(kind, args.rate)
                rows.append(r)
                gap = "none" if r["gap"] is None else f"{r['gap']:.2f} s"
                print(f"{kind:15s} run {i + 1}: {r['from']} -> {r['to']}, outage {gap}, calls placed "
                      f"{r['placed']}, ok {r['ok']}, failed {r['failed']}", flush=True)
        print(f"\nSIP outage on the VIP (last answer before the fault to the first after, from the new active or "
              f"from the restarted Kamailio), {args.runs} runs, "
              f"{args.rate:g} calls/s of 3 s with RTP:")
        for kind, rows in results.items():
            gaps = [r["gap"] for r in rows if r["gap"] is not None]
            failed = [max(r["failed"], 0) for r in rows]
            if gaps:
                moves = sum(1 for r in rows if r["to"])
                print(f"  {kind:15s} VIP moved {moves}/{len(rows)}, median {statistics.median(gaps):.2f} s, "
                      f"max {max(gaps):.2f} s, "
                      f"failed calls per failover median {statistics.median(failed):g}, max {max(failed)}")
            else:
                print(f"  {kind:15s} the VIP never answered again")
        print("  (published keepalived + Elastic IP setups: 5-6 s)")
    finally:
        if not args.keep:
            subprocess.run([*LABCTL, "down"], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
