"""Phase tags reach the roles' tasks: `--tags <role>_configure` runs the configuration tasks
(and the address/preflight work every phase needs), nothing of install or run."""
import os
import re
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _listed(tags):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1")
    res = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "site.yml", "--tags", tags, "--list-tasks"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    # "      itsp.cluster.kamailio : Write the address table ...	TAGS: [...]"; an include_role task
    # (a role's apt work, through apt_packages) is listed by its name alone, as role None.
    pattern = re.compile(r"^\s+(?:itsp\.cluster\.(\w+) : )?(.+?)\tTAGS:", re.M)
    return {(m.group(1), m.group(2).strip()) for m in pattern.finditer(res.stdout)}


def _flatten(tasks):
    for task in tasks:
        if "block" in task:
            yield from _flatten(task["block"] + task.get("rescue", []) + task.get("always", []))
        else:
            yield task["name"]


def _task_names(role, *files):
    names = set()
    for name in files:
        with open(os.path.join(ROOT, "roles", role, "tasks", name)) as fh:
            names |= {(role, n) for n in _flatten(yaml.safe_load(fh))}
    return names


# Files included dynamically (a feature that is off never enters the run) are not listed; their
# include task is, with the phase's tag, and applies that tag to what it includes.
@pytest.mark.parametrize("role,phase,files,includes", [
    ("kamailio", "configure", ["addresses.yml", "preflight.yml", "configure.yml"], []),
    ("kamailio", "install", ["addresses.yml", "preflight.yml", "install.yml"],
     ["Get http_async_client (for the REST routing hook)"]),
    ("kamailio", "run", ["addresses.yml", "preflight.yml", "run.yml"], []),
    ("rtpengine", "configure", ["addresses.yml", "preflight.yml", "configure.yml"], []),
    ("rtpengine", "run", ["addresses.yml", "preflight.yml", "run.yml"], []),
])
def test_phase_tag_runs_exactly_that_phase(role, phase, files, includes):
    # The argument_specs check runs in every phase (tagged always).
    expected = _task_names(role, *files) | {(role, name) for name in includes}
    listed = {(role, name) for owner, name in _listed(f"{role}_{phase}")
              if (owner == role or owner is None and (role, name) in expected)
              and not name.startswith("Validating arguments against arg spec")}
    assert listed == expected


@pytest.mark.parametrize("role,file,tag", [("kamailio", "http_async_client.yml", "kamailio_install"),
                                           ("kamailio", "tls.yml", "kamailio_configure")])
def test_dynamic_includes_apply_their_phase_tag(role, file, tag):
    found = []
    for name in os.listdir(os.path.join(ROOT, "roles", role, "tasks")):
        with open(os.path.join(ROOT, "roles", role, "tasks", name)) as fh:
            for task in yaml.safe_load(fh) or []:
                include = task.get("ansible.builtin.include_tasks")
                if isinstance(include, dict) and include.get("file") == file:
                    found.append(include.get("apply", {}).get("tags"))
    assert found == [[tag]], found
