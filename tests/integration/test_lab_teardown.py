"""labctl down finds a host's processes by their root directory, so a container whose nspawn was
killed alone (its processes keep running in the host's network namespace) is still torn down; and it
finds nothing of anything it did not make."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

import pytest

from lab import labctl

CLONE_NEWNS = 0x00020000
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root (the lab runs as root)")


@pytest.fixture
def orphan(tmp_path, monkeypatch):
    """Host `ghost`'s container root under a hosts directory of its own, with a process in it and no
    nspawn (no pidfile), as an nspawn killed alone leaves it."""
    monkeypatch.setattr(labctl, "HOSTS_DIR", str(tmp_path / "hosts"))
    monkeypatch.setattr(labctl, "RUN", str(tmp_path / "run"))
    _, _, _, root = labctl.host_paths("ghost")
    os.makedirs(root)
    pid = os.fork()
    if pid == 0:  # the child: into the "container" (its own mount namespace, as nspawn's), then wait
        try:
            if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS) != 0:
                os._exit(3)
            os.chroot(root)
            time.sleep(30)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
        time.sleep(0.01)
    time.sleep(0.2)  # the chroot follows the unshare
    yield root, pid
    with contextlib.suppress(ProcessLookupError, ChildProcessError):  # a test reaped it already
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_the_processes_of_a_container_are_found_by_its_root(orphan, tmp_path):
    root, pid = orphan
    assert labctl.processes_rooted_in(root) == [pid]
    assert labctl.processes_rooted_in(str(tmp_path / "another")) == []


def test_down_kills_what_runs_in_a_container_without_its_nspawn(orphan):
    root, pid = orphan
    labctl.down_host("ghost")
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert not os.path.exists(root)
