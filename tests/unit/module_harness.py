"""What every module test needs: AnsibleModule's exits turned into exceptions, arguments given the
way Ansible gives them, and a runner that ties both to one module's main(). The fixtures built on
these are in tests/unit/conftest.py."""

import json
import socket

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


class Exit(Exception):
    """exit_json was called; args[0] holds its keyword arguments."""


class Fail(Exception):
    """fail_json was called; args[0] holds its keyword arguments (msg, ...)."""


def patch_exits(monkeypatch):
    """exit_json/fail_json raise Exit/Fail; warn() collects into the returned list."""
    warnings = []

    def exit_json(self, **kwargs):
        raise Exit(kwargs)

    def fail_json(self, **kwargs):
        raise Fail(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    return warnings


def set_module_args(monkeypatch, args, check_mode=False):
    args = dict(args, _ansible_check_mode=check_mode)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))


class ModuleRunner:
    """runner(args, check_mode=False) -> the kwargs of exit_json; fail_json raises Fail(kwargs).
    ``warnings`` collects module.warn() texts."""

    def __init__(self, monkeypatch, main=None):
        self.monkeypatch = monkeypatch
        self.main = main
        self.warnings = patch_exits(monkeypatch)

    def bind(self, main):
        self.main = main
        return self

    def __call__(self, args, check_mode=False):
        set_module_args(self.monkeypatch, args, check_mode)
        with pytest.raises(Exit) as done:
            self.main()
        return done.value.args[0]


def failure_of(run, args, check_mode=False):
    """The kwargs of fail_json for a run that must fail."""
    with pytest.raises(Fail) as failed:
        run(args, check_mode)
    return failed.value.args[0]


def closed_port():
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
