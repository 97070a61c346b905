"""Shared by the scenarios' testinfra verifiers: the platforms, SIP from the public side, and
the service logs printed when a check fails."""

import os
import sys

import pytest
import testinfra
import yaml

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)

from lab import sip  # noqa: E402  (needs PROJECT on sys.path first)
from lab.sip import call_counts, sipp_background, soft_stop, stop_sipp  # noqa: E402,F401  (re-exported)

__all__ = ["sip", "platforms", "ansible_host", "converge", "dump_logs_on_failure", "run_module", "LAST_RUN",
           "sipp_background", "soft_stop", "stop_sipp", "call_counts", "media_call_across", "rtp_kept"]


def platforms():
    path = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "molecule.yml")
    with open(path) as fh:
        return {p["name"]: p for p in yaml.safe_load(fh)["platforms"]}


def ansible_host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}")


def _oneline_env():
    """Ansible against this checkout, one line per host result (parsed by the helpers below)."""
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="oneline",
                ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".collections"))


LAST_RUN = {"stdout": ""}  # what the last converge() printed (its summary says what restarted)


def converge(limit, extra_vars=None, inventories=(), timeout=600, playbook="site.yml"):
    """site.yml on some hosts with extra vars (a dict) and more inventory sources (to add groups,
    such as `retired`); returns (rc, failure messages)."""
    import json
    import subprocess

    env = _oneline_env()
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit,
           os.path.join(PROJECT, playbook)]
    for inventory in inventories:
        cmd += ["-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    res = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    LAST_RUN["stdout"] = res.stdout
    results = oneline_results(res.stdout)
    # A restart that worked only when tried again (service_restart) passes, with the failed attempt's
    # journal in a warning: printed, so the test's output keeps it.
    for warning in restart_warnings(results):
        print(f"converge {limit}: {warning}")
    # A loop nests its items.
    failures = []
    for _host, state, result in results:
        if state == "FAILED":
            items = [r for r in result.get("results", []) if isinstance(r, dict) and r.get("failed")]
            failures += [r.get("msg", "") for r in items] or [result.get("msg", "")]
    if res.returncode != 0 and not failures:
        failures = [res.stdout[-3000:] + res.stderr[-2000:]]
    return res.returncode, failures


def oneline_results(stdout):
    """[(host, state, result)] from the oneline callback's "HOST | STATE => {json}" lines (FAILED! as
    FAILED)."""
    import json
    import re

    results = []
    for m in re.finditer(r"^(\S+) \| (\w+)!? => (\{.*\})$", stdout, re.M):
        try:
            results.append((m.group(1), m.group(2), json.loads(m.group(3))))
        except ValueError:
            continue
    return results


def restart_warnings(results):
    """service_restart's warnings (a start that worked only when tried again) among oneline_results();
    oneline leaves a module's warnings in its result (it prints no [WARNING] lines)."""
    found = []
    for _host, _state, result in results:
        for one in [result] + [r for r in result.get("results", []) if isinstance(r, dict)]:
            found += [" ".join(w.split()) for w in one.get("warnings", []) if "failed to start on attempt" in w]
    return found


def converge_killed_at(limit, extra_vars, task, timeout=600):
    """site.yml as converge() runs it, killed (SIGKILL to the playbook and its workers, as a crash
    would) as soon as it names `task` (a part of a task's name): the tasks before it have run on
    every host, the handlers at the end of that play have not. Returns what it printed."""
    import json
    import signal
    import subprocess
    import time

    env = dict(_oneline_env(), ANSIBLE_STDOUT_CALLBACK="default")
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit,
           os.path.join(PROJECT, "site.yml"), "-e", json.dumps(extra_vars)]
    seen, killed = [], False
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        try:
            for line in proc.stdout:
                seen.append(line)
                if line.startswith("TASK [") and task in line:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                if time.monotonic() > deadline:
                    break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    out = "".join(seen)
    assert killed, f"site.yml never reached {task!r}: {out[-2000:]}"
    return out


def run_module(name, module, args=""):
    """Run one module on one host with Ansible; returns its result dict (oneline callback)."""
    import subprocess

    env = _oneline_env()
    res = subprocess.run(["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], name, "-m", module, "-a", args],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120, check=False)
    mine = [(state, result) for host, state, result in oneline_results(res.stdout) if host == name]
    assert mine, res.stdout + res.stderr
    state, result = mine[0]
    result["failed"] = state == "FAILED"
    return result


def dump_logs_on_failure(item, report, units):
    """On a failed check, print each host's service journal so the failure explains itself.
    Through the lab (nsenter), not SSH: a host a test powered off then answers nothing at once,
    where SSH would wait on its dead multiplexed connection."""
    from lab.load import lab_exec

    if report.when != "call" or not report.failed:
        return
    hosts = platforms()
    # First the units systemd holds failed (CI shows the start and the end of a long output).
    for name in hosts:
        failed = lab_exec(name, "systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager")
        for unit in [line.split()[0] for line in failed.splitlines() if line.strip()]:
            report.sections.append((f"FAILED unit {unit} on {name}",
                                    lab_exec(name, "journalctl", "-u", unit, "-n", "40", "--no-pager")))
    for name in hosts:
        for unit in units:
            report.sections.append((f"journal {unit} on {name}",
                                    lab_exec(name, "journalctl", "-u", unit, "-n", "40", "--no-pager")))


@pytest.fixture(scope="session")
def lab_platforms():
    return platforms()


def media_call_across(proxy, change, hold_s, tag):
    """One call with RTP both ways (50 packets/s each way, counted at both ends) through `proxy`
    (a public address; the callee registers there too) while `change()` runs; returns the two
    endpoints' counts, what change() returned, and both SIPp results."""
    import threading
    import time

    user, uas_port, a_rtp, b_rtp = f"rtp{tag}", 5085 - tag, 20100 + tag * 20, 22100 + tag * 20
    assert sip.register(proxy, user, proxy, contact_port=uas_port, local_port=5075, expires=3600).ok
    out = {}
    with sip.Uas(port=uas_port, rtp_port=b_rtp, timeout=hold_s + 40) as uas, \
            sip.Call(proxy, user, proxy, local_port=5074, rtp_port=a_rtp, hold_ms=hold_s * 1000,
                     timeout=hold_s + 40) as call:
        answer = sip.wait_for_message(call.trace_file, lambda d, t: d == "received"
                                      and t.startswith("SIP/2.0 200") and "m=audio" in t, timeout=10)
        offer = sip.wait_for_message(uas.trace_file, lambda d, t: d == "received"
                                     and t.startswith("INVITE") and "m=audio" in t, timeout=10)
        assert answer and offer, "no SDP exchanged"
        count = 50 * (hold_s - 3)
        rtp = threading.Thread(target=lambda: out.update(rtp=sip.rtp_exchange(
            (sip.PUBLIC_CLIENT, a_rtp), sip.sdp_media(answer), (sip.PUBLIC_CLIENT, b_rtp), sip.sdp_media(offer),
            count=count, pps=50)))
        rtp.start()
        time.sleep(1)
        out["change"] = change()
        rtp.join(timeout=hold_s + 30)
        out["call"], out["uas"] = call.finish(timeout=hold_s + 20), uas.finish(timeout=20)
    return out


def rtp_kept(rtp):
    """Share of the packets each end sent that the other end received (the lower of the two)."""
    a, b = rtp
    return min(b["received"] / max(a["sent"], 1), a["received"] / max(b["sent"], 1))
