"""ansible-doc on every plugin, offline: what ansible-test's ansible-doc and part of validate-modules
check, without the venv from the internet those need (scripts/sanity.sh runs the rest)."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "plugins", "modules")) if name.endswith(".py"))
TESTS = sorted(name[:-4] for name in os.listdir(os.path.join(ROOT, "plugins", "test")) if name.endswith(".yml"))
AUTHOR = re.compile(r"^.+ \(@[A-Za-z0-9-]+\)$")


def ansible_doc(kind, names, tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               ANSIBLE_HOME=str(tmp_path), ANSIBLE_NOCOLOR="1")
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-t", kind, "--json",
                           *(f"itsp.cluster.{name}" for name in names)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def module_docs(tmp_path_factory):
    return ansible_doc("module", MODULES, tmp_path_factory.mktemp("ansible-doc"))


@pytest.fixture(scope="module")
def test_docs(tmp_path_factory):
    return ansible_doc("test", TESTS, tmp_path_factory.mktemp("ansible-doc"))


@pytest.mark.parametrize("name", MODULES)
def test_module_docs_are_complete(module_docs, name):
    doc = module_docs[f"itsp.cluster.{name}"]["doc"]
    assert all(AUTHOR.match(author) for author in doc["author"]), doc["author"]
    assert {"check_mode", "diff_mode", "idempotent"} <= set(doc["attributes"])
    for attribute, spec in doc["attributes"].items():
        assert spec.get("description") and spec.get("support"), (name, attribute)
    assert module_docs[f"itsp.cluster.{name}"]["examples"]
    assert module_docs[f"itsp.cluster.{name}"]["return"]


@pytest.mark.parametrize("name", TESTS)
def test_each_jinja_test_has_its_own_docs(test_docs, name):
    doc = test_docs[f"itsp.cluster.{name}"]["doc"]
    assert doc["name"] == name
    assert all(AUTHOR.match(author) for author in doc["author"])
    assert f"itsp.cluster.{name}" in test_docs[f"itsp.cluster.{name}"]["examples"]


def test_every_jinja_test_is_documented():
    from ansible_collections.itsp.cluster.plugins.test.network import TestModule

    assert sorted(TestModule().tests()) == TESTS
