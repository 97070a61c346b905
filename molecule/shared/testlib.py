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

__all__ = ["sip", "platforms", "ansible_host", "converge", "dump_logs_on_failure", "run_module", "LAST_RUN"]


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
    import re
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
    # oneline prints "HOST | FAILED! => {json}" for each failed task; a loop nests its items.
    failures = []
    for m in re.finditer(r"^\S+ \| FAILED! => (\{.*\})$", res.stdout, re.M):
        result = json.loads(m.group(1))
        items = [r for r in result.get("results", []) if r.get("failed")]
        failures += [r.get("msg", "") for r in items] or [result.get("msg", "")]
    if res.returncode != 0 and not failures:
        failures = [res.stdout[-3000:] + res.stderr[-2000:]]
    return res.returncode, failures


def run_module(name, module, args=""):
    """Run one module on one host with Ansible; returns its result dict (oneline callback)."""
    import json
    import re
    import subprocess

    env = _oneline_env()
    res = subprocess.run(["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], name, "-m", module, "-a", args],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120, check=False)
    m = re.search(rf"^{re.escape(name)} \| (\w+)!? => (\{{.*\}})$", res.stdout, re.M)
    assert m, res.stdout + res.stderr
    result = json.loads(m.group(2))
    result["failed"] = m.group(1) == "FAILED"
    return result


def dump_logs_on_failure(item, report, units):
    """On a failed check, print each host's service journal so the failure explains itself."""
    if report.when != "call" or not report.failed:
        return
    for name in platforms():
        host = ansible_host(name)
        for unit in units:
            out = host.run(f"journalctl -u {unit} -n 40 --no-pager")
            report.sections.append((f"journal {unit} on {name}", out.stdout))


@pytest.fixture(scope="session")
def lab_platforms():
    return platforms()
