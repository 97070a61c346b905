"""The collection as users get it: the tarball `ansible-galaxy collection build` makes, and the
execution environment ansible-builder makes from it.

ansible-builder works in two steps. `ansible-builder create` writes the build context (the
Containerfile, the collection to install, the scripts); while the image builds, its `introspect`
step reads each installed collection's meta/execution-environment.yml and turns it into the pip
and bindep lists the image gets. No container engine here: the test runs `create` for real and the
same `introspect` on the collection installed from the tarball, which is what the build would do.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

# Everything that may ship; anything else at the top of the tarball is the checkout leaking in.
RUNTIME_TOP_LEVEL = {"CHANGELOG.rst", "FILES.json", "LICENSE", "MANIFEST.json", "README.md", "bindep.txt",
                     "changelogs", "docs", "meta", "playbooks", "plugins", "requirements.txt", "roles"}
# Development and test tools that must never reach an execution environment.
DEV_ONLY = ("moto", "ruff", "pytest", "pytest-testinfra", "molecule", "ansible-lint", "yamllint",
            "ansible-builder", "antsibull-changelog")


def _run(*argv, cwd=None, env=None):
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"{' '.join(argv)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


def _names(requirement_lines):
    """Distribution names of pip requirement lines (ignores comments and version specifiers)."""
    names = set()
    for line in requirement_lines:
        line = line.split("#", 1)[0].strip()
        if line:
            for sep in "<>=!~;[ ":
                line = line.split(sep, 1)[0]
            names.add(line.lower().replace("_", "-"))
    return names


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The collection tarball and an ansible environment of its own (temp dirs, no user config)."""
    tmp = tmp_path_factory.mktemp("collection")
    env = dict(os.environ, ANSIBLE_HOME=str(tmp / "home"), ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"),
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    _run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp / "dist"), ROOT,
         env=env)
    (tarball,) = glob.glob(str(tmp / "dist" / "itsp-cluster-*.tar.gz"))
    return tmp, tarball, env


@pytest.fixture(scope="module")
def installed(built):
    """The tarball installed the way a user installs it, into a collections path of its own."""
    tmp, tarball, env = built
    collections = tmp / "collections"
    _run(os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(collections),
         tarball, env=env)
    return collections, dict(env, ANSIBLE_COLLECTIONS_PATH=str(collections))


def test_the_tarball_holds_only_runtime_files(built):
    _, tarball, _ = built
    with tarfile.open(tarball) as tar:
        top = {name.split("/", 1)[0] for name in tar.getnames()}
    assert top - RUNTIME_TOP_LEVEL == set(), f"not runtime files: {sorted(top - RUNTIME_TOP_LEVEL)}"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    # The main job is a collection playbook (itsp.cluster.site); the lab's playbooks are not.
    assert "playbooks/site.yml" in names
    assert not {n for n in names if n.startswith("playbooks/lab")}
    assert "requirements-dev.txt" not in names


def test_the_installed_collection_runs_its_playbooks_and_not_the_labs(built, installed):
    tmp, _, _ = built
    _, env = installed
    env = dict(env, ANSIBLE_CONFIG=str(tmp / "no-ansible.cfg"))  # no checkout settings, as a user has none
    playbook = os.path.join(BIN, "ansible-playbook")
    for name in ("itsp.cluster.site", "itsp.cluster.size"):
        res = _run(playbook, "-i", "localhost,", "--syntax-check", name, cwd=str(tmp), env=env)
        assert "ansible_collections/itsp/cluster/playbooks/" in res.stdout, res.stdout
    res = subprocess.run([playbook, "-i", "localhost,", "--syntax-check", "itsp.cluster.lab"], cwd=str(tmp), env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode != 0 and "could not be found" in res.stderr, res.stdout + res.stderr


def test_the_execution_environment_gets_only_runtime_dependencies(built, installed):
    tmp, tarball, env = built
    # 1. ansible-builder create: the build context installs this collection from the tarball.
    ee_dir = tmp / "ee"
    ee_dir.mkdir()
    shutil.copy(tarball, ee_dir)
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "registry.invalid/ee-base:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core>=2.16,<2.18"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": f"src/{os.path.basename(tarball)}", "type": "file"}]},
        },
        "additional_build_files": [{"src": os.path.basename(tarball), "dest": "src"}],
    }
    (ee_dir / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    context = tmp / "context"
    _run(os.path.join(BIN, "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(context),
         "--output-filename", "Containerfile", cwd=str(ee_dir), env=env)
    shipped = sorted(os.path.relpath(p, context) for p in glob.glob(str(context / "**"), recursive=True)
                     if os.path.isfile(p))
    assert f"_build/src/{os.path.basename(tarball)}" in shipped, shipped
    assert not [p for p in shipped if os.path.basename(p) in {"requirements-dev.txt", "test-requirements.txt"}]
    assert "ansible-galaxy collection install" in (context / "Containerfile").read_text()

    # 2. What the build's introspect step makes of the collection, installed as the build installs it.
    collections, _ = installed
    pip_out, bindep_out = tmp / "pip.txt", tmp / "bindep.txt"
    _run(os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", str(collections),
         "--write-pip", str(pip_out), "--write-bindep", str(bindep_out), env=env)
    pip = _names(pip_out.read_text().splitlines())
    assert {"boto3", "botocore", "google-cloud-compute"} <= pip, pip
    assert not pip & set(DEV_ONLY), f"development tools in the execution environment: {sorted(pip & set(DEV_ONLY))}"
    # No system packages are needed (bindep.txt says why).
    assert not [line for line in (bindep_out.read_text().splitlines() if bindep_out.exists() else [])
                if line.strip() and not line.startswith("#")]
