#!/usr/bin/env python3
"""How long site.yml takes on the lab, first and no-op, and where the time goes: prints figures,
asserts nothing.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_converge.py [--runs 2] [--keep]   # as root
    .venv/bin/python bench/bench_converge.py --no-up --keep      # a lab you already hold the lock for
    ... --variants as-is no-ssh-compression mitogen forks-25 --mitogen DIR  # compare settings, interleaved
    ... --baseline DIR          # also no-op runs of another checkout's site.yml (e.g. the last release:
                                # git archive TAG | tar -x -C DIR), interleaved on the same lab

Builds the lab of --inventory (default inventories/lab: 4 proxies, 1 media host) with
lab/playbooks/lab.yml (lab up + site.yml + report, timed as the first converge), then runs
site.yml --runs more times (the no-op converge, which should change nothing). For each run it
prints the wall time and the changed count; for the last no-op run, where the time went: per play,
per role, per module, the slowest tasks, and how many tasks ran on no host at all (skipped
everywhere: pure overhead). Timings come from a bench-only callback
(bench/callback_plugins/itsp_profile.py). The lab is torn down at the end unless --keep.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

from benchlib import LABCTL, ROOT, changed_total, noop_walls, write_lab

CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


def variant_env(name, mitogen):
    """Settings a no-op run is tried with: the checkout's ansible.cfg as it is, or one change to it."""
    if name == "as-is":
        return {}
    if name == "no-ssh-compression":  # ansible's default ssh_args less -C, a longer ControlPersist
        return {"ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=300s"}
    if name == "mitogen":  # opt-in, controller side only: mitogen installed in --mitogen DIR
        return {"PYTHONPATH": mitogen, "ANSIBLE_STRATEGY": "mitogen_linear",
                "ANSIBLE_STRATEGY_PLUGINS": os.path.join(mitogen, "ansible_mitogen", "plugins", "strategy")}
    if name == "forks-25":  # more forks than hosts (ansible.cfg has 10): no task runs in waves
        return {"ANSIBLE_FORKS": "25"}
    raise ValueError(name)


def machine_cpu_seconds():
    """CPU time the whole machine has spent busy (every core, every process), from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def playbook(inventory, play, profile, extra=(), env_extra=None, fatal=True, root=ROOT):
    """Runs the play; the profile it returns also holds its CPU time: the controller's
    (ansible-playbook and its workers) and the whole machine's (the lab hosts share it)."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_CALLBACKS_ENABLED="itsp_profile", ITSP_PROFILE_OUT=profile, **(env_extra or {}))
    t0, machine0 = time.monotonic(), machine_cpu_seconds()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(["ansible-playbook", "-i", os.path.join(ROOT, inventory), play, *extra], cwd=root, env=env,
                         text=True, capture_output=True, check=False, timeout=3600)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"controller": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
           "machine": machine_cpu_seconds() - machine0, "cores": os.cpu_count()}
    if res.returncode != 0:
        message = f"bench: {play} failed after {wall:.1f} s:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
        if fatal:
            sys.exit(message)
        print(message)
        return wall, None, None
    with open(profile) as fh:
        prof = json.load(fh)
    prof["cpu"] = cpu
    with open(profile, "w") as fh:
        json.dump(prof, fh)
    return wall, changed_total(res.stdout), prof


def generated_inventory(work, hosts):
    """A lab of ``hosts`` hosts shaped like inventories/lab: one media host per five, the rest proxies
    (the first proxy also runs rtpengine), clouds alternating between aws and gce."""
    media = max(1, hosts // 5)
    spec = {}
    for i in range(hosts - media):
        groups = ["kamailio", "rtpengine"] if i == 0 else ["kamailio"]
        spec[f"proxy{i + 1}"] = {"n": 31 + i, "groups": groups, "cloud": ("aws", "gce")[i % 2]}
    for i in range(media):
        spec[f"media{i + 1}"] = {"n": 71 + i, "groups": ["rtpengine"]}
    write_lab(work, spec)
    group_vars = os.path.join(ROOT, "inventories", "lab", "group_vars", "kamailio.yml")
    with open(group_vars) as src, open(os.path.join(work, "group_vars", "kamailio.yml"), "w") as dst:
        dst.write(src.read())
    return work


def role_of(task):
    m = re.search(r"/roles/([^/]+)/", task["path"])
    return m.group(1) if m else "(playbook)"


def breakdown(prof, top):
    tasks = prof["tasks"]
    hosts = {h for t in tasks for h in t["hosts"]}
    ran = [t for t in tasks if any(s != "skipped" for _, s in t["hosts"].values())]
    idle = [t for t in tasks if t not in ran]
    print(f"  {len(tasks)} task runs ({len(ran)} ran on some host, {len(idle)} skipped everywhere, "
          f"{sum(t['wall'] for t in idle):.1f} s in those), {len(hosts)} hosts")
    host_busy = defaultdict(float)
    for t in tasks:
        for h, (secs, _) in t["hosts"].items():
            host_busy[h] += secs
    print("  per host, sum of its task times: " + ", ".join(f"{h} {s:.1f}" for h, s in sorted(host_busy.items())))
    for title, key in (("per play", lambda t: t["play"]), ("per role", role_of), ("per module", lambda t: t["action"])):
        sums, counts = defaultdict(float), defaultdict(int)
        for t in tasks:
            sums[key(t)] += t["wall"]
            counts[key(t)] += 1
        print(f"  {title}:")
        for name, secs in sorted(sums.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {secs:6.1f} s  {counts[name]:3d} tasks  {name}")
    print(f"  slowest {top} tasks:")
    for t in sorted(tasks, key=lambda t: -t["wall"])[:top]:
        print(f"    {t['wall']:6.2f} s  {t['action']:<28} {role_of(t)}: {t['name']}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inventory", default="inventories/lab")
    p.add_argument("--hosts", type=int, help="instead of --inventory, a generated lab of 5..20 hosts shaped like it")
    p.add_argument("--runs", type=int, default=2, help="no-op runs after the first converge (1..5)")
    p.add_argument("--no-up", action="store_true", help="use the lab that is up; no first converge")
    p.add_argument("--keep", action="store_true", help="leave the lab up (tear it down yourself, under the lock)")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--variants", nargs="+", default=["as-is"],
                   choices=["as-is", "no-ssh-compression", "mitogen", "forks-25"],
                   help="no-op runs are repeated for each, interleaved (so load on the machine hits all alike)")
    p.add_argument("--mitogen", help="directory mitogen is installed in (pip install --target DIR mitogen)")
    p.add_argument("--baseline", help="another checkout: its site.yml is timed too (variant 'baseline', as-is "
                                      "settings), interleaved with the others on the same lab")
    p.add_argument("--save", help="directory to keep each run's profile JSON in")
    a = p.parse_args()
    if not 1 <= a.runs <= 5:
        p.error("--runs must be 1..5")
    if "mitogen" in a.variants and not a.mitogen:
        p.error("--variants mitogen needs --mitogen DIR")
    if a.hosts is not None and not 5 <= a.hosts <= 20:
        p.error("--hosts must be 5..20")
    if a.save:
        os.makedirs(a.save, exist_ok=True)
    if a.baseline:
        a.baseline = os.path.abspath(a.baseline)
        if not os.path.exists(os.path.join(a.baseline, "site.yml")):
            p.error(f"--baseline {a.baseline}: no site.yml there")
        subprocess.run([os.path.join(a.baseline, "scripts", "collection-path.sh")], check=True)
        a.variants.append("baseline")
    with tempfile.TemporaryDirectory(prefix="bench-converge-") as work:
        if a.hosts:
            a.inventory = generated_inventory(os.path.join(work, "inventory"), a.hosts)
        try:
            if not a.no_up:
                subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
                wall, changed, prof = playbook(a.inventory, "lab/playbooks/lab.yml", os.path.join(work, "first.json"))
                build = sum(t["wall"] for t in prof["tasks"] if t["play"] == "Bring the lab up")
                print(f"first converge: {wall:.1f} s wall (lab build {build:.1f} s, site.yml and report "
                      f"{wall - build:.1f} s), changed={changed}")
            walls, last = {v: [] for v in a.variants}, {}
            for run in range(1, a.runs + 1):
                for variant in a.variants:
                    out = os.path.join(a.save or work, f"noop-{variant}-{run}.json")
                    wall, changed, prof = playbook(
                        a.inventory, "site.yml", out, fatal=False,
                        env_extra=variant_env("as-is" if variant == "baseline" else variant, a.mitogen),
                        root=a.baseline if variant == "baseline" else ROOT)
                    if prof is None:
                        continue
                    walls[variant].append((wall, changed))
                    last[variant] = prof
                    cpu = prof["cpu"]
                    print(f"no-op converge {run} ({variant}): {wall:.1f} s wall, changed={changed}; CPU: controller "
                          f"{cpu['controller']:.1f} s, whole machine {cpu['machine']:.1f} s of {cpu['cores']} x "
                          f"{wall:.1f} s (the hosts' modules and anything else running: "
                          f"{cpu['machine'] - cpu['controller']:.1f} s)"
                          + ("" if changed == 0 else "  (NOT a no-op: something changed)"), flush=True)
            for variant, runs in walls.items():
                values = noop_walls(runs)  # a run that changed something is no no-op figure
                if values:
                    print(f"no-op converge, {variant}: best {min(values):.1f} s, median "
                          f"{sorted(values)[len(values) // 2]:.1f} s over {len(values)} runs"
                          + (f" ({len(runs) - len(values)} that changed something left out)"
                             if len(values) < len(runs) else ""))
            for variant, prof in last.items():
                print(f"where the last no-op run ({variant}) spent its {prof['total']:.1f} s:")
                breakdown(prof, a.top)
        finally:
            if not a.keep:
                subprocess.run(LABCTL + ["down"], capture_output=True, check=False)


if __name__ == "__main__":
    main()
