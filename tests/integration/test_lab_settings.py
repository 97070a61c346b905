"""The lab's conveniences stay in the lab: the checkout's ansible.cfg keeps Ansible's host key
checking for every inventory, and only the lab inventory's hosts are exempt (they get new host
keys every time the lab makes them)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _env(tmp_path):
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_HOME=str(tmp_path / "home"),
                ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))


def test_the_checkout_keeps_host_key_checking(tmp_path):
    res = subprocess.run([os.path.join(BIN, "ansible-config"), "dump"], cwd=ROOT, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=120, check=True)
    (line,) = [line for line in res.stdout.splitlines() if line.startswith("HOST_KEY_CHECKING(")]
    assert line.endswith("= True"), line
    with open(os.path.join(ROOT, "ansible.cfg")) as fh:
        assert "StrictHostKeyChecking" not in fh.read()


def test_only_the_lab_hosts_skip_it(tmp_path):
    res = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", os.path.join(ROOT, "inventories", "lab"),
                          "--host", "proxy1"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=120, check=True)
    host = json.loads(res.stdout)
    assert host["ansible_host_key_checking"] is False
    assert "StrictHostKeyChecking=no" in host["ansible_ssh_common_args"]
    assert not [k for k in host if k.startswith("size_")]  # the sizing stand-ins are the controller's business
