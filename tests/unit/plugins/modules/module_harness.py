"""What every module test needs: AnsibleModule's exits turned into exceptions, and arguments
given the way Ansible gives them."""

import json

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
