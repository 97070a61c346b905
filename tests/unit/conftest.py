"""Fixtures the unit tests share (one copy each, instead of one per test file)."""

import json
import shutil
import tempfile

import pytest
from ansible.module_utils import basic
from module_harness import ModuleRunner

# One host as iproute2 describes it: loopback plus eth0 with a private address and a default route.
HOST_MAC = "02:18:00:00:00:41"
IP_ADDR = json.dumps([
    {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "address": "00:00:00:00:00:00",
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifname": "eth0", "flags": ["BROADCAST", "UP"], "address": HOST_MAC,
     "addr_info": [{"family": "inet", "local": "198.18.0.41", "prefixlen": 24, "scope": "global"}]},
])
IP_ROUTE = json.dumps([{"dst": "default", "gateway": "198.18.0.1", "dev": "eth0"}])


@pytest.fixture
def run_module(monkeypatch):
    """A ModuleRunner; bind it to a module: ``run_module.bind(cloud_facts.main)``."""
    return ModuleRunner(monkeypatch)


@pytest.fixture
def fake_iproute2(monkeypatch):
    """AnsibleModule.run_command answers `ip -j addr` / `ip -j route` for the host above; returns
    the list of commands run."""
    commands = []

    def run_command(self, args, **kwargs):
        commands.append(args)
        return 0, IP_ADDR if "addr" in args else IP_ROUTE, ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/sbin/" + name)
    return commands


@pytest.fixture
def short_dir():
    """pytest's tmp_path is too long for Unix sockets once the RPC reply directory is added."""
    path = tempfile.mkdtemp(prefix="krpc-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)
