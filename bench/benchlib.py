"""Shared by the lab benchmarks: build a lab from a small host list, run site.yml, time things."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABCTL = [sys.executable, os.path.join(ROOT, "lab", "labctl.py")]
SSH_KEY = "/var/cache/itsp-cluster/lab/ssh/id_ed25519"
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lab.load import sipp_counts  # noqa: E402,F401 (re-exported for the benches)

# The playbooks name the collection's modules and roles (itsp.cluster.*): a fresh clone needs the
# link that makes this checkout that collection (scripts/bootstrap.sh makes it too).
subprocess.run([os.path.join(ROOT, "scripts", "collection-path.sh")], check=True)


def timed(cmd, **kw):
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=False, **kw)
    if res.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return time.monotonic() - t0, res


def write_lab(path, hosts):
    """hosts: {name: {"n": last octet, "groups": [...], "cloud": ..., **vars}} -> inventory + lab spec."""
    groups = {}
    for name, h in hosts.items():
        hv = {"ansible_host": f"198.18.0.{h['n']}", "itsp_lab_public_ipv4": f"203.0.113.{h['n']}",
              "itsp_lab_cloud": h.get("cloud", "aws"), **h.get("vars", {})}
        for g in h["groups"]:
            groups.setdefault(g, {})[name] = hv
    inv = {"all": {"children": {"sip_nodes": {"children": {g: {"hosts": hs} for g, hs in groups.items()}}}}}
    os.makedirs(os.path.join(path, "group_vars"), exist_ok=True)
    with open(os.path.join(path, "hosts.yml"), "w") as fh:
        json.dump(inv, fh)
    shutil.copy(os.path.join(ROOT, "inventories", "lab", "group_vars", "all.yml"),
                os.path.join(path, "group_vars", "all.yml"))
    spec = {"hosts": [{"name": name, "private_ipv4": f"198.18.0.{h['n']}", "public_ipv4": f"203.0.113.{h['n']}",
                       "cloud": h.get("cloud", "aws")} for name, h in hosts.items()]}
    with open(os.path.join(path, "spec.json"), "w") as fh:
        json.dump(spec, fh)
    return os.path.join(path, "spec.json")


def site(inventory, *extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    return timed(["ansible-playbook", "-i", inventory, "site.yml", *extra], env=env)


def changed_total(output):
    return sum(int(m) for m in re.findall(r"changed=(\d+)", output))


def ssh(address, command, timeout=60, input_text=None, check=False):
    return subprocess.run(["ssh", "-i", SSH_KEY, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-o", "LogLevel=ERROR", f"root@{address}", command],
                          input=input_text, capture_output=True, text=True, timeout=timeout, check=check)


def cpu_seconds(address, process):
    """CPU time (user + system) used by every process of that name on a lab host, from /proc
    (Kamailio runs many processes, rtpengine many threads of one)."""
    out = ssh(address, f"for p in $(pidof {process}); do cat /proc/$p/stat; done").stdout
    ticks = 0
    for line in out.splitlines():
        fields = line.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def pub_sipp(args, timeout):
    """SIPp on the public side, bounded by -m/-timeout and an outer timeout."""
    cmd = ["ip", "netns", "exec", "itsp-pub", "timeout", "-s", "INT", str(int(timeout)), "sipp", "-nd",
           "-buff_size", "4194304", "-timeout", f"{int(timeout) - 2}s", "-timeout_error", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15, check=False)
