"""The apt_packages role bounds apt's downloads: a package source that takes the connection and
never answers (what a hung acquire looks like from outside) fails the run at the role's bound, with
a message naming the step and the variable, instead of waiting forever; a source that answers
passes. Real apt-get and Ansible's apt module on this machine, with apt pointed (APT_CONFIG) at
scratch lists, scratch archives and sources of the test's own: the machine's apt state, package
lists and installed packages are not touched (the only package named is `apt`, installed already)."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PLAY = """
- name: The apt_packages role on this machine
  hosts: localhost
  connection: local
  gather_facts: false
  environment:
    APT_CONFIG: {apt_config}
  roles:
    - role: itsp.cluster.apt_packages
"""


class SilentSource(threading.Thread):
    """A package "mirror" on loopback that accepts connections and never sends a byte."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port, self.held, self.accepted = self.sock.getsockname()[1], [], 0

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def _apt_dir(tmp_path, source_line):
    """A scratch apt configuration: its own sources, lists and archives; apt itself would wait
    600 s on a silent connection (Acquire::http::Timeout), and the machine's proxy is bypassed."""
    for d in ("lists/partial", "cache/archives/partial", "parts", "repo"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "sources.list").write_text(source_line + "\n")
    (tmp_path / "repo" / "Packages").write_text("")
    conf = tmp_path / "apt.conf"
    conf.write_text(f"""Dir::State::Lists "{tmp_path}/lists";
Dir::Cache "{tmp_path}/cache";
Dir::Etc::SourceList "{tmp_path}/sources.list";
Dir::Etc::SourceParts "{tmp_path}/parts";
Acquire::http::Timeout "600";
Acquire::Retries "0";
Acquire::http::Proxy::127.0.0.1 "DIRECT";
APT::Sandbox::User "root";
""")
    return conf


def _run(tmp_path, apt_config, extra, check=False):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(apt_config=apt_config))
    extra = dict({"apt_packages_names": ["apt"], "apt_packages_cache_valid_time": 0, "apt_packages_retry_delay": 1,
                  "__apt_packages_stamp": str(tmp_path / "periodic" / "update-success-stamp")}, **extra)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    # The system python: it has python3-apt (scripts/bootstrap.sh installs it), which the apt module needs.
    cmd = ["ansible-playbook", "-i", "localhost,", "-e", "ansible_python_interpreter=/usr/bin/python3", str(playbook),
           "-e", json.dumps(extra)] + (["--check"] if check else [])
    started = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    took = time.monotonic() - started
    assert res.stdout.startswith("{"), res.stdout + res.stderr
    tasks = {}
    for play in json.loads(res.stdout)["plays"]:
        for task in play["tasks"]:
            tasks[task["task"]["name"]] = task["hosts"]["localhost"]
    return res.returncode, tasks, took


def _failure(tasks):
    """The messages of the failed tasks (a bounded step's own, then the role's message on it)."""
    return [t["msg"] for t in tasks.values() if t.get("failed")]


@pytest.fixture
def silent():
    source = SilentSource()
    source.start()
    yield source
    source.close()


def test_a_silent_source_fails_the_refresh_at_its_bound(tmp_path, silent):
    conf = _apt_dir(tmp_path, f"deb http://127.0.0.1:{silent.port}/debian bookworm main")
    rc, tasks, took = _run(tmp_path, conf, {"apt_packages_update_timeout": 2, "apt_packages_attempts": 2})
    print(f"silent source: rc {rc} after {took:.1f} s, {silent.accepted} connections taken; {_failure(tasks)}")
    assert rc != 0
    assert silent.accepted >= 2  # each try reached the source and was left waiting
    assert _failure(tasks)[-1].startswith(
        "apt-get update did not succeed in 2 tries of at most 2 s (apt_packages_update_timeout) each: "
        "the last one was killed at its bound (apt hung)."), tasks
    # Two tries of 2 s, 1 s apart, and Ansible's start: apt alone would have waited 600 s.
    assert took < 120, took
    assert not (tmp_path / "periodic" / "update-success-stamp").exists()


def test_a_silent_source_fails_the_download_at_its_bound(tmp_path, silent):
    """The lists are fresh (no refresh), the package is not installed: its download hangs."""
    conf = _apt_dir(tmp_path, f"deb [trusted=yes] http://127.0.0.1:{silent.port}/repo ./")
    pool = tmp_path / "deb"
    (pool / "DEBIAN").mkdir(parents=True)
    (pool / "DEBIAN" / "control").write_text("Package: itsp-apt-test\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: itsp <itsp@example.net>\nDescription: test\n")
    deb = tmp_path / "itsp-apt-test_1.0_all.deb"
    subprocess.run(["dpkg-deb", "-b", str(pool), str(deb)], check=True, capture_output=True)
    packages = subprocess.run(["dpkg-scanpackages", str(deb.name), "/dev/null"], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout
    # The lists as apt would have written them for this source (its lists file name).
    (tmp_path / "lists" / f"127.0.0.1:{silent.port}_repo_._Packages").write_text(packages)
    stamp = tmp_path / "periodic" / "update-success-stamp"
    stamp.parent.mkdir()
    stamp.touch()
    rc, tasks, took = _run(tmp_path, conf, {"apt_packages_names": ["itsp-apt-test"],
                                            "apt_packages_cache_valid_time": 3600,
                                            "apt_packages_download_timeout": 2, "apt_packages_attempts": 2})
    print(f"silent source, download: rc {rc} after {took:.1f} s, {silent.accepted} connections taken; "
          f"{_failure(tasks)}")
    assert rc != 0
    assert silent.accepted >= 2
    assert _failure(tasks)[-1].startswith(
        "Downloading itsp-apt-test did not succeed in 2 tries of at most 2 s (apt_packages_download_timeout) each: "
        "the last one was killed at its bound (apt hung)."), tasks
    assert took < 120, took


def test_a_source_that_answers_passes_and_check_mode_fetches_nothing(tmp_path):
    conf = _apt_dir(tmp_path, f"deb [trusted=yes] file:{tmp_path}/repo ./")
    stamp = tmp_path / "periodic" / "update-success-stamp"
    rc, tasks, _ = _run(tmp_path, conf, {}, check=True)
    assert rc == 0, tasks
    assert not stamp.exists() and not os.listdir(tmp_path / "lists" / "partial")
    rc, tasks, took = _run(tmp_path, conf, {})
    print(f"answering source: rc {rc} after {took:.1f} s")
    assert rc == 0, _failure(tasks) or tasks
    assert stamp.exists()
    assert not any(t.get("changed") for t in tasks.values()), tasks  # apt is installed: nothing to do
