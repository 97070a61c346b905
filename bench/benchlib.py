"""Shared by the lab benchmarks: build a lab from a small host list, run site.yml, time things,
and refuse to measure a side that does not answer.

A benchmark that measures a node first calls require_answers() with every side it will measure
(SIP OPTIONS to each proxy, an ng ping to each relay, an RPC call where it reads Kamailio's
statistics): one that does not answer ends the run with a non-zero status and a message naming it,
before anything is measured. A figure that needs a side's clean result (a ratio of two ladders) is
taken with ratio(), which fails the same way instead of printing a line when a side had none.
"""

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

from lab import ng, sip  # noqa: E402
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
    # The venv's Ansible, also when the bench runs as .venv/bin/python without the venv on PATH.
    venv_bin = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", PATH=f"{venv_bin}:{os.environ.get('PATH', '')}")
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


class BenchFailure(SystemExit):
    """The run cannot give a true figure: exits with status 1 and the message (labs are still torn
    down by the benches' finally blocks)."""

    def __init__(self, message):
        super().__init__(f"bench: FAILED: {message}")


# --- Every side answers before it is measured ------------------------------------------------

def sip_probe(address, port=5060, local_port=5069):
    """A probe: one SIP OPTIONS from the public side; answers when 200 comes back."""
    def probe():
        code = sip.options(address, port=port, local_port=local_port).first_response_code()
        return code == 200, f"OPTIONS to {address}:{port}: {code or 'no answer'}"
    return probe


def ng_probe(address, port=2223, timeout=2.0):
    """A probe: rtpengine's ng ping on its control address; answers when pong comes back."""
    def probe():
        try:
            result = ng.request((address, port), "ping", timeout=timeout).get("result")
        except (OSError, ValueError) as exc:
            result = f"no answer ({exc.__class__.__name__})"
        return result == "pong", f"ng ping to {address}:{port}: {result}"
    return probe


def rpc_probe(address):
    """A probe: Kamailio's RPC (kamcmd on the host) answers core.version."""
    def probe():
        out = ssh(address, "kamcmd -s unix:/run/kamailio/kamailio_ctl core.version", timeout=20).stdout.strip()
        return bool(out), f"RPC core.version on {address}: {out.splitlines()[0] if out else 'no answer'}"
    return probe


def answer_problems(results):
    """[(side, answered, detail)] -> one line per side that did not answer."""
    return [f"{side} does not answer ({detail})" for side, answered, detail in results if not answered]


def require_answers(sides, attempts=3, pause=2.0):
    """sides: {name: probe}. Each probe is tried up to `attempts` times (a service that has just
    been restarted gets a few seconds); prints what answered; fails naming every side that did not."""
    results = []
    for name, probe in sides.items():
        for attempt in range(attempts):
            answered, detail = probe()
            if answered:
                break
            if attempt + 1 < attempts:
                time.sleep(pause)
        results.append((name, answered, detail))
    problems = answer_problems(results)
    if problems:
        raise BenchFailure("; ".join(problems) + ". Nothing was measured.")
    print("answering: " + "; ".join(f"{name} ({detail})" for name, _, detail in results), flush=True)


# --- Verdicts on what was measured --------------------------------------------------------------

def clean_step(offered, ok, failed):
    """A load step is clean when every one of the `offered` transactions succeeded and SIPp
    reported its failures (failed == -1: it printed no statistics, so nothing is known)."""
    return failed == 0 and ok == offered


def best_clean(rows):
    """rows [(rate, offered, ok, failed)] -> the highest rate whose step was clean, 0 if none."""
    return max((rate for rate, offered, ok, failed in rows if clean_step(offered, ok, failed)), default=0)


def ratio(numerator, denominator):
    """numerator, denominator: (side, best clean rate). Their ratio; a side with no clean step is a
    failure of the run, never a printed line."""
    missing = [side for side, best in (numerator, denominator) if not best]
    if missing:
        raise BenchFailure(f"{' and '.join(missing)} had no clean step: no ratio "
                           f"{numerator[0]}/{denominator[0]} can be given")
    return numerator[1] / denominator[1]


def require_some(what, ok):
    """A phase whose figures are per successful transaction: zero successes is a failure."""
    if ok <= 0:
        raise BenchFailure(f"{what}: nothing succeeded, so there is nothing to measure per event")
    return ok


def noop_walls(runs):
    """runs [(wall seconds, changed count)] of a converge that should change nothing -> the walls of
    the runs that were true no-ops. A run that changed something is not a no-op figure; if none
    was, the run fails."""
    clean = [wall for wall, changed in runs if changed == 0]
    if runs and not clean:
        raise BenchFailure(f"none of {len(runs)} no-op converges was one (changed: "
                           f"{', '.join(str(c) for _, c in runs)}): no no-op time can be given")
    return clean
