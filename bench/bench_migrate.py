#!/usr/bin/env python3
"""A big box migrated to cloud instances under load, phase by phase: prints figures, asserts nothing.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_migrate.py [--rates 1 4] [--users 200] [--declared-rate N]

Lab, per load level (a fresh lab each: retire is one way): box1, a single big box (Kamailio +
rtpengine, DMQ on) built by site.yml from a small source inventory; cloud1-3 (proxies) and media5
(relay) as AWS hosts registered in the lab's EC2 API (moto) with their itsp:role tags, found by
inventories/aws itself (amazon.aws.aws_ec2). Users are registered on box1, then
playbooks/migrate.yml runs preflight, build, join, shift, drain, retire with
`-i SOURCE -i inventories/aws` while SIPp places calls with RTP (RATE calls/s, 4 s hold) through
box1 (through the cloud proxies for retire). Per phase: time, calls attempted and failed; for join,
registrations synced per second, twice: the contacts a cloud proxy holds over the whole join run, and
at least how many over the sync itself (the cloud proxies' contact counts polled during join: for
the slowest proxy, from the last poll that saw it empty to the first that saw it full). A phase
that fails ends that load level: its calls are still counted and its error printed. The relays are
told the call rate they get (rtpengine_calls_per_second, 3 x the level's rate: retire's; or
--declared-rate, 0 for the limit the role wrote before it counted ended calls), keep rtpengine's
30 s delete-delay, and get a port range that holds the sessions. A summary
table ends the run. Load is bounded by -m, -timeout and an outer timeout; the lab is torn down
after each level.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from benchlib import LABCTL, ROOT, require_answers, rpc_probe, sip_probe, site, timed

from lab import load, sip
from lab.standins.cloud import moto_env

BOX = {"box1": 31}
CLOUD = {"cloud1": 51, "cloud2": 52, "cloud3": 53}
RELAY = {"media5": 55}
PHASES = ["preflight", "build", "join", "shift", "drain", "retire"]
LAB_KEY = "/var/cache/itsp-cluster/lab/ssh/id_ed25519"
TEST_VARS = {"kamailio_auth_enabled": False, "kamailio_pike_enabled": False, "kamailio_rate_limit_requests": 0,
             "kamailio_registrar_max_expires": 3600, "rtpengine_max_calls": 200}


def relay_vars(rate, declared):
    """The relays' workload for a level: 200 concurrent calls and `declared` calls/s (default 3 x rate:
    retire sends the level's rate through each of the three cloud proxies to media5), rtpengine's
    default delete-delay (30 s), and a port range of 4 ports per session the role will allow."""
    cps = 3 * rate if declared is None else declared
    sessions = TEST_VARS["rtpengine_max_calls"] + cps * 30
    return {"rtpengine_calls_per_second": cps, "rtpengine_port_min": 30000,
            "rtpengine_port_max": 30000 + max(4 * sessions, 1000) - 1}


def pub(n):
    return f"203.0.113.{n}"


def write_lab(work, test_vars):
    """The lab spec (the cloud hosts' ec2_roles become their EC2 itsp:role tags) and the source
    inventory (box1 only)."""
    hosts = [{"name": "box1", "private_ipv4": "198.18.0.31", "public_ipv4": pub(31), "cloud": "metal"}]
    for role, nodes in (("kamailio", CLOUD), ("rtpengine", RELAY)):
        hosts += [{"name": n, "private_ipv4": f"198.18.0.{o}", "public_ipv4": pub(o), "cloud": "aws",
                   "ec2_roles": [role]} for n, o in nodes.items()]
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
        json.dump(test_vars, fh)
    return os.path.join(work, "spec.json")


def migrate(work, phase, test_vars):
    """One phase through both inventories; (seconds, rc, the last lines of its output)."""
    # The lab's EC2 API for inventories/aws; the lab's login for every host (the aws inventory's
    # group_vars name the fleet's key pair and user, which the lab hosts do not have).
    env = moto_env("http://198.18.0.1:5000", dict(os.environ, ANSIBLE_NOCOLOR="1"))
    extra = dict(test_vars, migrate_phase=phase, migrate_state_file=os.path.join(work, "state.json"),
                 migrate_sizing_redundancy=0, ansible_user="root", ansible_become=False,
                 ansible_ssh_private_key_file=LAB_KEY,
                 ansible_ssh_common_args="-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
                 migrate_workload={"concurrent_calls": 50, "calls_per_second": 2, "registered_endpoints": 500})
    t0 = time.monotonic()
    res = subprocess.run(["ansible-playbook", "-i", os.path.join(work, "hosts.yml"), "-i", "inventories/aws",
                          "playbooks/migrate.yml", "-e", json.dumps(extra)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    return time.monotonic() - t0, res.returncode, (res.stdout + res.stderr)[-1500:]


class SyncWatch(threading.Thread):
    """Polls the cloud proxies' contact counts during join, to time the sync itself: for each
    proxy, from the last poll that saw it empty (0, or down: -1) to the first that saw it hold the
    big box's count. The sync began after the first and ended before the second: an upper bound."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.samples, self.done = target, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            self.samples.append((time.monotonic(), {n: load.contacts(n) for n in CLOUD}))
            self.done.wait(0.5)

    def sync(self):
        """(seconds for the slowest proxy, synced contacts, the widest poll interval), or None when
        a proxy was never seen going from empty to full."""
        slowest = 0.0
        for name in CLOUD:
            empty = [t for t, c in self.samples if c[name] <= 0]
            full = [t for t, c in self.samples if empty and t > empty[-1] and c[name] >= self.target]
            if not full:
                return None
            slowest = max(slowest, full[0] - empty[-1])
        polls = [b - a for (a, _), (b, _) in zip(self.samples, self.samples[1:])]
        return slowest, self.target, max(polls)


def why_failed(phase, results):
    """What the nodes logged about refused calls (since the lab was built): the relays' session
    limit (rtpengine counts a call until delete-delay after its BYE) and the proxies' 503s for want
    of a relay; and the end of each failing caller's SIPp output."""
    relays = [*RELAY] + ([] if phase == "retire" else [*BOX])
    proxies = [*CLOUD] + ([] if phase == "retire" else [*BOX])
    grep = "journalctl --no-pager -u {} | grep -c '{}' || true"
    limit = {n: lab_exec_int(n, grep.format("rtpengine-daemon", "Parallel session limit reached")) for n in relays}
    no_relay = {n: lab_exec_int(n, grep.format("kamailio", "media relay unavailable")) for n in proxies}
    tails = {n: " ".join(r["tail"].split())[-300:] for n, r in results.items() if r["failed"]}
    return (f"relays logged 'Parallel session limit reached' {limit} times; proxies logged "
            f"'media relay unavailable' (503) {no_relay} times; SIPp: {tails}")


def lab_exec_int(name, command):
    out = load.lab_exec(name, "sh", "-c", command)
    return int(out) if out.isdigit() else out


def bench_rate(rate, users, declared=None):
    """One load level on a fresh lab; (printed lines, {phase: (seconds, attempted, failed)}, join sync)."""
    lines, rows, sync = [], {}, None

    def say(line):
        lines.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as work:
        test_vars = dict(TEST_VARS, **relay_vars(rate, declared))
        say(f"rate {rate}/s: relays get rtpengine_max_calls {test_vars['rtpengine_max_calls']}, "
            f"rtpengine_calls_per_second {test_vars['rtpengine_calls_per_second']}, delete-delay 30 s, ports "
            f"{test_vars['rtpengine_port_min']}-{test_vars['rtpengine_port_max']}")
        spec = write_lab(work, test_vars)
        try:
            timed(LABCTL + ["up", "--spec", spec], timeout=900)
            took, _ = site(os.path.join(work, "hosts.yml"))
            say(f"rate {rate}/s: site.yml on the big box {took:.0f} s")
            require_answers({"box1 SIP": sip_probe(pub(31)), "box1 RPC": rpc_probe("198.18.0.31")})
            res = sip.register_many(pub(31), [f"user{i:04d}" for i in range(users)], rate=100,
                                    timeout=users // 100 + 30)
            say(f"rate {rate}/s: {load.sipp_counts(res.stdout)[0]} users registered on box1; "
                f"contacts {load.wait_contacts(['box1'], users)}")
            for i, phase in enumerate(PHASES):
                entry = {n: pub(o) for n, o in (CLOUD if phase == "retire" else BOX).items()}
                traffic = load.Load(entry, next(iter(entry.values())), seconds=300, rate=rate, hold=4, tag=i % 5)
                time.sleep(2)
                watch = None
                if phase == "join":
                    watch = SyncWatch(load.contacts("box1"))
                    watch.start()
                took, rc, out = migrate(work, phase, test_vars)
                if watch:
                    watch.done.set()
                    watch.join()
                time.sleep(2)
                traffic.stop()
                results = traffic.finish()
                a = sum(r["ok"] + max(r["failed"], 0) for r in results.values())
                f = sum(max(r["failed"], 0) for r in results.values())
                rows[phase] = (took, a, f)
                counts = {n: load.contacts(n) for n in [*BOX, *CLOUD]}
                extra = ""
                if watch:
                    synced = counts["cloud1"]
                    extra = f"; registrations on cloud1 {synced} in the whole join run: {synced / took:.1f}/s"
                    sync = watch.sync()
                    extra += (f"; the sync itself: {sync[1]} within {sync[0]:.1f} s (at least "
                              f"{sync[1] / sync[0]:.0f}/s; polls up to {sync[2]:.1f} s apart)" if sync
                              else "; the sync itself: not seen")
                say(f"rate {rate}/s: {phase:<9} {took:5.1f} s rc {rc}; calls attempted {a}, failed {f}; "
                    f"contacts {counts}{extra}")
                if f:
                    say(f"rate {rate}/s: {phase} failed calls, why: {why_failed(phase, results)}")
                if rc != 0:
                    say(f"rate {rate}/s: {phase} FAILED, the level ends here:\n{out}")
                    break
            total = sum(t for t, _, _ in rows.values())
            say(f"rate {rate}/s: whole migration {total:.0f} s; calls attempted "
                f"{sum(a for _, a, _ in rows.values())}, failed {sum(f for _, _, f in rows.values())}")
        finally:
            subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    return lines, rows, sync


def summary(levels):
    """A markdown table: per load level, each phase's time, the whole, calls attempted / failed."""
    out = ["| load | " + " | ".join(PHASES) + " | whole | calls attempted / failed | join sync |",
           "|---" * (len(PHASES) + 4) + "|"]
    for rate, (_, rows, sync) in levels.items():
        cells = [f"{rows[p][0]:.1f} s" + (" FAILED" if p == list(rows)[-1] and len(rows) < len(PHASES) else "")
                 if p in rows else "-" for p in PHASES]
        out.append(f"| {rate} call{'s' if rate > 1 else ''}/s, 4 s hold | " + " | ".join(cells)
                   + f" | {sum(r[0] for r in rows.values()):.0f} s | {sum(r[1] for r in rows.values())} / "
                   + f"{sum(r[2] for r in rows.values())} | "
                   + (f"{sync[1]} within {sync[0]:.1f} s |" if sync else "not seen |"))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=[1, 4])
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--declared-rate", type=int, default=None,
                   help="calls/s the relays are told to expect (rtpengine_calls_per_second); default 3 x the "
                        "level's rate, what retire sends to media5. 0 reproduces the old session limit (a negative "
                        "control: retire must then lose calls at 4 calls/s)")
    a = p.parse_args()
    if not all(1 <= r <= 20 for r in a.rates) or not 1 <= a.users <= 5000:
        p.error("1..20 calls/s, up to 5000 users (bounded load only)")
    os.chdir(ROOT)
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    levels = {rate: bench_rate(rate, a.users, a.declared_rate) for rate in a.rates}
    print(summary(levels), flush=True)


if __name__ == "__main__":
    main()
