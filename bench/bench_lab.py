#!/usr/bin/env python3
"""Lab and main-job timings: prints figures, asserts nothing.

    .venv/bin/python bench/bench_lab.py [--hosts 2 4] [--rebuild-template]  # as root

For each host count N: lab up cold (no hosts exist; template and apt cache as they are),
lab up warm (everything already up: the idempotent no-op), site.yml first converge (Kamailio
installed from the apt cache) and second run (must report changed=0), then lab down.
--rebuild-template also times building the host template from nothing (debootstrap).
"""

import argparse
import shutil
import subprocess
import tempfile

from benchlib import LABCTL, BenchFailure, changed_total, site, timed, write_lab


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, nargs="+", default=[2, 4])
    p.add_argument("--rebuild-template", action="store_true")
    args = p.parse_args()
    rows = []
    subprocess.run(LABCTL + ["down"], check=False, capture_output=True)
    if args.rebuild_template:
        shutil.rmtree("/var/cache/itsp-cluster/lab/template", ignore_errors=True)
    for n in args.hosts:
        with tempfile.TemporaryDirectory(prefix="bench-lab-") as inv:
            spec = write_lab(inv, {f"proxy{i}": {"n": 10 + i, "groups": ["kamailio"]} for i in range(1, n + 1)})
            cold, _ = timed(LABCTL + ["up", "--spec", spec])
            warm, _ = timed(LABCTL + ["up", "--spec", spec])
            first, r1 = site(inv)
            second, r2 = site(inv)
            timed(LABCTL + ["down"])
            if changed_total(r2.stdout):
                raise BenchFailure(f"{n} hosts: the second site.yml changed {changed_total(r2.stdout)} things: "
                                   "no no-op time can be given")
            rows.append((n, cold, warm, first, changed_total(r1.stdout), second, changed_total(r2.stdout)))
    print(f"{'hosts':>5} {'lab up cold':>12} {'lab up warm':>12} {'site.yml 1st':>13} {'changed':>8} "
          f"{'site.yml 2nd':>13} {'changed':>8}")
    for n, cold, warm, first, c1, second, c2 in rows:
        print(f"{n:>5} {cold:>11.1f}s {warm:>11.1f}s {first:>12.1f}s {c1:>8} {second:>12.1f}s {c2:>8}")
    if args.rebuild_template:
        print("(the first 'lab up cold' includes building the template with debootstrap)")


if __name__ == "__main__":
    main()
