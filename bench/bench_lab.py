#!/usr/bin/env python3
"""Lab and main-job timings: prints figures, asserts nothing.

    sudo .venv/bin/python bench/bench_lab.py [--hosts 2 4] [--rebuild-template]

For each host count N: lab up cold (no hosts exist; template and apt cache as they are),
lab up warm (everything already up: the idempotent no-op), site.yml first converge (Kamailio
installed from the apt cache) and second run (must report changed=0), then lab down.
--rebuild-template also times building the host template from nothing (debootstrap).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABCTL = [sys.executable, os.path.join(ROOT, "lab", "labctl.py")]


def timed(cmd, **kw):
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=False, **kw)
    if res.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return time.monotonic() - t0, res


def inventory(n, path):
    hosts = {f"proxy{i}": {"ansible_host": f"198.18.0.{10 + i}", "itsp_lab_public_ipv4": f"203.0.113.{10 + i}",
                           "itsp_lab_cloud": "aws"} for i in range(1, n + 1)}
    inv = {"all": {"children": {"sip_nodes": {"children": {"kamailio": {"hosts": hosts}}}}}}
    os.makedirs(os.path.join(path, "group_vars"), exist_ok=True)
    with open(os.path.join(path, "hosts.yml"), "w") as fh:
        json.dump(inv, fh)
    shutil.copy(os.path.join(ROOT, "inventories", "lab", "group_vars", "all.yml"),
                os.path.join(path, "group_vars", "all.yml"))
    spec = {"hosts": [{"name": k, "private_ipv4": v["ansible_host"], "public_ipv4": v["itsp_lab_public_ipv4"],
                       "cloud": "aws"} for k, v in hosts.items()]}
    with open(os.path.join(path, "spec.json"), "w") as fh:
        json.dump(spec, fh)


def changed_total(output):
    return sum(int(m) for m in re.findall(r"changed=(\d+)", output))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, nargs="+", default=[2, 4])
    p.add_argument("--rebuild-template", action="store_true")
    args = p.parse_args()
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    rows = []
    subprocess.run(LABCTL + ["down"], check=False, capture_output=True)
    if args.rebuild_template:
        shutil.rmtree("/var/cache/itsp-cluster/lab/template", ignore_errors=True)
    for n in args.hosts:
        with tempfile.TemporaryDirectory(prefix="bench-lab-") as inv:
            inventory(n, inv)
            cold, _ = timed(LABCTL + ["up", "--spec", os.path.join(inv, "spec.json")])
            warm, _ = timed(LABCTL + ["up", "--spec", os.path.join(inv, "spec.json")])
            first, r1 = timed(["ansible-playbook", "-i", inv, "site.yml"], env=env)
            second, r2 = timed(["ansible-playbook", "-i", inv, "site.yml"], env=env)
            timed(LABCTL + ["down"])
            rows.append((n, cold, warm, first, changed_total(r1.stdout), second, changed_total(r2.stdout)))
    print(f"{'hosts':>5} {'lab up cold':>12} {'lab up warm':>12} {'site.yml 1st':>13} {'changed':>8} "
          f"{'site.yml 2nd':>13} {'changed':>8}")
    for n, cold, warm, first, c1, second, c2 in rows:
        print(f"{n:>5} {cold:>11.1f}s {warm:>11.1f}s {first:>12.1f}s {c1:>8} {second:>12.1f}s {c2:>8}")
    if args.rebuild_template:
        print("(the first 'lab up cold' includes building the template with debootstrap)")


if __name__ == "__main__":
    main()
