#!/usr/bin/env python3
"""Rolling restarts and drains under load: prints figures, asserts nothing.

    .venv/bin/python bench/bench_rolling.py [--sizes 2 4] [--users 200] [--holds 5 15 30]  # as root

Lab, per size N: N proxies of the kamailio role (DMQ registrations and dialogs; auth, pike and the
rate limit off, since one public address plays every phone) and one media relay. A population of
registered users is spread by DMQ. Then, timed:
  1. a restart-needing change (the log level) rolled over the N proxies with no traffic;
  2. the same change back, rolled while SIPp places calls with RTP through every proxy (1 call/s
     each, 4 s hold): calls attempted and failed, contacts on every proxy before and after;
  3. (first size only) drain time of proxy1 as a function of the hold time of its calls in
     progress: a few calls held H s, then `itsp.cluster.drain`, timed until it returns.
Every proxy (SIP OPTIONS) and the relay (ng ping) must answer before anything is measured.
Load is bounded by -m, -timeout and an outer timeout; the lab is torn down at the end.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

from benchlib import LABCTL, ROOT, ng_probe, require_answers, require_some, sip_probe, site, timed, write_lab

from lab import load, sip


def proxies(n):
    return {f"proxy{i}": f"203.0.113.{10 + i}" for i in range(1, n + 1)}


def contacts(names):
    return {n: load.contacts(n) for n in names}


def register_population(address, users):
    res = sip.register_many(address, [f"user{i:04d}" for i in range(users)], rate=100, timeout=users // 100 + 30)
    return load.sipp_counts(res.stdout)[0]


def roll(work, level):
    took, _ = site(work, "-e", json.dumps({"kamailio_log_level": level}))
    return took


def roll_under_load(work, names, level):
    watch = load.Watch(list(names), "kamailio")
    watch.start()
    traffic = load.Load(names, names["proxy1"], seconds=300, rate=1, hold=4)
    time.sleep(3)
    took = roll(work, level)
    time.sleep(3)
    traffic.stop()
    results = traffic.finish()
    watch.stop()
    return took, results, watch


def drain_time(work, address, hold, calls=3):
    """Calls held `hold` s through proxy1, then a drain of proxy1 timed until the play returns."""
    traffic = load.Load({"proxy1": address}, address, seconds=calls, rate=1, hold=hold, tag=3)
    time.sleep(calls + 1)
    up = load.lab_exec("proxy1", *load.KAMCTL, "dlg.stats_active").replace("\n", " ")
    started = time.monotonic()
    _, res = timed(["ansible-playbook", "-i", work, "playbooks/drain.yml", "-l", "proxy1",
                    "-e", json.dumps({"sip_node_state": "drained", "sip_node_drain_timeout": hold + 60})])
    took = time.monotonic() - started
    waited = res.stdout.count("FAILED - RETRYING: [proxy1]: Wait for the proxy's own calls to end")
    up += f", drain polls {waited}"
    results = traffic.finish()
    timed(["ansible-playbook", "-i", work, "playbooks/drain.yml", "-l", "proxy1", "-e", "sip_node_state=active"])
    return took, results["proxy1"], up


def bench_size(n, a):
    names = proxies(n)
    hosts = {name: {"n": 10 + i, "groups": ["kamailio"], "vars": {
        "kamailio_auth_enabled": False, "kamailio_pike_enabled": False, "kamailio_rate_limit_requests": 0,
        "kamailio_registrar_max_expires": 3600}} for i, name in enumerate(names, start=1)}
    hosts["media1"] = {"n": 21, "groups": ["rtpengine"]}
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-rolling-") as work:
        spec = write_lab(work, hosts)
        try:
            timed(LABCTL + ["up", "--spec", spec], timeout=900)
            took, _ = site(work)
            lines.append(f"N={n}: first converge of {n} proxies + 1 relay {took:.0f} s")
            require_answers({**{name: sip_probe(address) for name, address in names.items()},
                             "media1's rtpengine": ng_probe("198.18.0.21")})
            registered = require_some(f"N={n}: registering the population",
                                      register_population(names["proxy1"], a.users))
            before = load.wait_contacts(names, a.users)
            lines.append(f"N={n}: {registered} users registered; contacts per proxy {before}")
            took = roll(work, 3)
            lines.append(f"N={n}: roll without load {took:.0f} s ({took / n:.1f} s per proxy)")
            before = contacts(names)
            took, results, watch = roll_under_load(work, names, 2)
            after = load.wait_contacts(names, max(before.values()), timeout=10)
            attempted = sum(r["ok"] + max(r["failed"], 0) for r in results.values())
            failed = sum(max(r["failed"], 0) for r in results.values())
            lines.append(f"N={n}: roll under load {took:.0f} s ({took / n:.1f} s per proxy); calls attempted "
                         f"{attempted}, failed {failed}; most proxies down at once {watch.most_down_at_once()}")
            lines.append(f"N={n}: contacts before {before} after {after}")
            if n == a.sizes[0]:
                for hold in a.holds:
                    took, r, up = drain_time(work, names["proxy1"], hold)
                    lines.append(f"N={n}: drain of proxy1 with calls held {hold:>3} s in progress: {took:.0f} s "
                                 f"(its calls: {r['ok']} completed, {r['failed']} failed; "
                                 f"dialogs when the drain began: {up})")
        finally:
            subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[2, 4])
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--holds", type=int, nargs="+", default=[5, 15, 30])
    a = p.parse_args()
    if not all(2 <= n <= 8 for n in a.sizes) or not 1 <= a.users <= 5000 or not all(1 <= h <= 120 for h in a.holds):
        p.error("2..8 proxies, up to 5000 users, holds of 1..120 s (bounded load only)")
    os.chdir(ROOT)
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    for n in a.sizes:
        for line in bench_size(n, a):
            print(line, flush=True)


if __name__ == "__main__":
    main()
