"""The rtpengine_forwarding module as Ansible runs it (exit_json/fail_json raise), reading a fake
/proc and /lib/modules: the lab's kernel cannot load xt_RTPENGINE, so the kernel path is only
exercised here, on files, never with a real kernel table."""

import os

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils import rtpengine_kernel
from ansible_collections.itsp.cluster.plugins.modules import rtpengine_forwarding
from module_harness import failure_of


@pytest.fixture
def host(tmp_path, monkeypatch):
    """The module reads tmp_path/proc and tmp_path/lib/modules; /proc/modules exists (a kernel that
    can load modules). Returns the proc directory."""
    proc = tmp_path / "proc"
    (proc / "rtpengine").mkdir(parents=True)
    (proc / "modules").write_text("")
    monkeypatch.setattr(rtpengine_kernel, "PROC_ROOT", str(proc))
    monkeypatch.setattr(rtpengine_kernel, "MODULES_ROOT", str(tmp_path / "lib" / "modules"))
    return proc


@pytest.fixture
def run(run_module):
    return run_module.bind(rtpengine_forwarding.main)


def test_userspace_with_the_reason_and_nothing_changed(run, host):
    got = run({}, check_mode=True)
    assert (got["changed"], got["table"], got["forwarding"], got["module"]) == (False, -1, "userspace", "not installed")
    assert f"linux-headers-{os.uname().release}" in got["reason"]


def test_verify_is_a_no_op_for_userspace(run, host):
    assert run({"verify": True, "min_kernel_packets": 10})["forwarding"] == "userspace"


def test_verify_passes_on_an_open_table_with_forwarded_packets(run, host):
    (host / "rtpengine" / "control").write_text("")
    (host / "rtpengine" / "0").mkdir()
    (host / "rtpengine" / "0" / "list").write_text(
        "local inet4 198.18.0.21:30000\n    stats: 2400 bytes, 10 packets, 0 errors\n")
    got = run({"verify": True, "min_kernel_packets": 10})
    assert (got["forwarding"], got["kernel_streams"], got["kernel_packets"]) == ("kernel", 1, 10)


def test_verify_fails_when_the_daemon_did_not_open_its_table(run, host):
    (host / "rtpengine" / "control").write_text("")
    failure = failure_of(run, {"verify": True})
    assert failure["msg"].startswith(f"rtpengine runs with table = 0 but {host}/rtpengine/0 does not exist")
    assert failure["forwarding"] == "kernel"


TABLE_HINT = "(a kernel table id; in the rtpengine role rtpengine_kernel_table, or rtpengine_kernel_forwarding: never)"


@pytest.mark.parametrize("args, msg", [
    ({"table": 64}, f"table must be 0 to 63 {TABLE_HINT}, got 64"),
    ({"table": -1}, f"table must be 0 to 63 {TABLE_HINT}, got -1"),
    ({"min_kernel_packets": -5}, "min_kernel_packets must be 0 or more, got -5"),
])
def test_bad_input_names_the_option(run, host, args, msg):
    assert failure_of(run, args)["msg"] == msg


def test_a_table_out_of_range_is_no_error_where_the_kernel_is_never_used(run, host):
    # rtpengine's own way to say userspace (table = -1) with kernel forwarding switched off.
    got = run({"mode": "never", "table": -1})
    assert got["table"] == -1 and got["forwarding"] == "userspace"
