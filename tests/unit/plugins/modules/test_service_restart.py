"""The service_restart module as Ansible runs it (exit_json/fail_json raise), against a fake systemctl
and journalctl: a unit whose first start fails and second succeeds, one that never starts, check
mode. The real thing runs in every lab scenario's restarts (kamailio, rtpengine, sip_node)."""

import pytest
from ansible.module_utils import basic
from ansible_collections.itsp.cluster.plugins.modules import service_restart
from module_harness import failure_of

PORT_TAKEN = "Failed to open UDP NG control connection port (198.18.0.21:2223): Address already in use"
JOURNAL = f"CRIT: [core] Fatal error: {PORT_TAKEN}\nrtpengine-daemon.service: Main process exited\n"
SYSTEMCTL_SAYS = "Job for rtpengine-daemon.service failed because the control process exited with error code."


class FakeSystemd:
    """Answers systemctl and journalctl; `starts` says, attempt by attempt, whether a start works."""

    def __init__(self, starts, reload_ok=True):
        self.starts = list(starts)
        self.reload_ok = reload_ok
        self.commands = []

    def __call__(self, module, args, **kwargs):
        self.commands.append([a.rsplit("/", 1)[-1] if i == 0 else a for i, a in enumerate(args)])
        tool, verb = self.commands[-1][0], self.commands[-1][1]
        if tool == "journalctl":
            return (0, "", "") if verb == "--sync" else (0, JOURNAL, "")
        if verb == "daemon-reload":
            return (0, "", "") if self.reload_ok else (1, "", "Failed to reload daemon: Access denied")
        if verb in ("restart", "start"):
            return (0, "", "") if self.starts.pop(0) else (1, "", SYSTEMCTL_SAYS + "\nSee journalctl -xeu ...\n")
        return 0, "", ""

    def verbs(self):
        return [c[1] if c[0] == "systemctl" else "sync" if c[1] == "--sync" else "journal" for c in self.commands]


@pytest.fixture
def run(run_module, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name)
    monkeypatch.setattr(service_restart.time, "sleep", lambda seconds: None)
    return run_module.bind(service_restart.main)


def fake(monkeypatch, starts, **kwargs):
    systemd = FakeSystemd(starts, **kwargs)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: systemd(self, args, **kw))
    return systemd


def test_a_restart_that_works_at_once(run, monkeypatch):
    systemd = fake(monkeypatch, [True])
    got = run({"name": "rtpengine-daemon"})
    assert (got["changed"], got["attempts"], got["failed_attempts"]) == (True, 1, [])
    assert systemd.commands == [["systemctl", "restart", "rtpengine-daemon"]]
    assert run_module_warnings(run) == []


def test_a_failed_start_is_tried_again_and_the_first_failure_is_a_warning(run, monkeypatch):
    systemd = fake(monkeypatch, [False, True])
    got = run({"name": "rtpengine-daemon", "delay": 0.5})
    assert got["attempts"] == 2
    # The journal of the failed attempt only, then the failed state cleared (the start limit), then a start.
    assert systemd.verbs() == ["restart", "sync", "journal", "reset-failed", "start"]
    journal = systemd.commands[2]
    assert journal[:3] == ["journalctl", "-u", "rtpengine-daemon"] and "--since" in journal
    assert got["failed_attempts"] == [{"systemctl": SYSTEMCTL_SAYS + " See journalctl -xeu ...",
                                       "journal": JOURNAL.splitlines()}]
    warning, = run_module_warnings(run)
    assert warning.startswith("rtpengine-daemon failed to start on attempt 1 and started on attempt 2")
    assert PORT_TAKEN in warning


def test_a_unit_that_never_starts_fails_with_its_journal(run, monkeypatch):
    systemd = fake(monkeypatch, [False, False, False])
    failure = failure_of(run, {"name": "kamailio", "retries": 2, "daemon_reload": True})
    assert systemd.verbs()[0] == "daemon-reload"
    assert systemd.verbs().count("start") == 2 and systemd.verbs().count("reset-failed") == 2
    assert failure["msg"].startswith("kamailio did not start (3 attempts, 2 s apart). Last attempt: Job for")
    assert f"-- its journal: CRIT: [core] Fatal error: {PORT_TAKEN} | rtpengine" in failure["msg"]
    assert failure["attempts"] == 3 and len(failure["failed_attempts"]) == 3


def test_retries_zero_fails_on_the_first_failed_start(run, monkeypatch):
    systemd = fake(monkeypatch, [False, True])
    failure = failure_of(run, {"name": "kamailio", "retries": 0})
    assert systemd.verbs() == ["restart", "sync", "journal"]
    assert failure["msg"].startswith("kamailio did not start (1 attempts")


def test_a_failed_daemon_reload_stops_before_the_restart(run, monkeypatch):
    systemd = fake(monkeypatch, [True], reload_ok=False)
    failure = failure_of(run, {"name": "kamailio", "daemon_reload": True})
    assert systemd.verbs() == ["daemon-reload"]
    assert failure["msg"] == ("systemctl daemon-reload failed before restarting kamailio: "
                              "Failed to reload daemon: Access denied")


def test_check_mode_restarts_nothing(run, monkeypatch):
    systemd = fake(monkeypatch, [True])
    got = run({"name": "rtpengine-daemon", "daemon_reload": True}, check_mode=True)
    assert got["changed"] is True and systemd.commands == []


@pytest.mark.parametrize("args, msg", [
    ({"name": ""}, "name must be one systemd unit name (like rtpengine-daemon), got ''"),
    ({"name": "kamailio rtpengine-daemon"}, "name must be one systemd unit name (like rtpengine-daemon), "
                                            "got 'kamailio rtpengine-daemon'"),
    ({"name": "--now"}, "name must be one systemd unit name (like rtpengine-daemon), got '--now'"),
    ({"name": "kamailio", "retries": -1}, "retries must be 0 to 10, got -1"),
    ({"name": "kamailio", "delay": float("nan")}, "delay must be 0 to 60 seconds, got nan"),
    ({"name": "kamailio", "journal_lines": 0}, "journal_lines must be 1 to 200, got 0"),
])
def test_bad_input_names_the_option(run, monkeypatch, args, msg):
    systemd = fake(monkeypatch, [True])
    assert failure_of(run, args)["msg"] == msg
    assert systemd.commands == []


def run_module_warnings(run):
    return run.warnings
