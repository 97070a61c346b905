"""Bounded live traffic and service watching for operations under load (tests and benches).

    Load    SIPp calls with RTP (G.711, echoed by the callee) through chosen proxies from the lab's
            public side, `rate` calls/s each, held `hold` s, for at most `seconds`; counts completed
            and failed calls per proxy
    Watch   samples each node's main PID and state (5 times a second) while a change runs
    contacts / service_state / lab_exec   one node's registrations, a unit's PID and state, a command

Shared by molecule/rolling (and the other operations scenarios) and bench/, so a bench never
imports from tests. Every process is bounded: SIPp by -m, -timeout and an outer `timeout -s INT`.
"""

import os
import subprocess
import sys
import threading
import time

from lab import sip

HERE = os.path.dirname(os.path.abspath(__file__))
LABCTL = os.path.join(HERE, "labctl.py")
KAMCTL = ("kamcmd", "-s", "unix:/run/kamailio/kamailio_ctl")


def lab(*args, timeout=90):
    """labctl with these arguments (exec, power-off, power-on, ...); the CompletedProcess."""
    return subprocess.run([sys.executable, LABCTL, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def lab_ok(*args, timeout=90):
    """labctl with these arguments, which must succeed: an AssertionError carries what it printed."""
    res = lab(*args, timeout=timeout)
    assert res.returncode == 0, f"labctl {' '.join(args)}: rc {res.returncode}\n{res.stderr[-3000:]}"
    return res


def lab_exec(name, *cmd, timeout=20):
    """Run a command on a lab host (through the lab's nsenter); its stdout, stripped."""
    return lab("exec", name, "--", *cmd, timeout=timeout).stdout.strip()


def contacts(name):
    """Registrations (usrloc contacts) a proxy holds; -1 when it does not answer (down)."""
    out = lab_exec(name, *KAMCTL, "stats.get_statistics", "location_contacts")
    try:
        return int(out.rsplit("=", 1)[1])
    except (IndexError, ValueError):
        return -1


def wait_contacts(names, expected, timeout=30):
    """Poll the proxies' registrations (1/s, at most `timeout` s) until each holds `expected`; the
    last counts seen, {name: contacts}."""
    deadline, seen = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        seen = {n: contacts(n) for n in names}
        if all(v >= expected for v in seen.values()):
            break
        time.sleep(1)
    return seen


def service_state(name, unit):
    """(main PID, ActiveState) of a systemd unit on a lab host."""
    out = lab_exec(name, "systemctl", "show", "-p", "MainPID", "-p", "ActiveState", unit)
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return int(fields.get("MainPID", "0") or 0), fields.get("ActiveState", "?")


class Watch(threading.Thread):
    """Samples each node's main PID and state (5 times a second) while a change rolls.

    One process per node for the whole watch, sampling `systemctl show` inside the host (bounded by
    `timeout`; it also ends at its next sample once nobody reads it). A labctl process per node and
    sample cost about a third of a core on the lab's 2 cores - slowing the very change being
    watched - and sampled each node only about once a second."""

    SAMPLE_S = 0.2

    def __init__(self, nodes, unit, seconds=900):
        super().__init__(daemon=True)
        self.nodes, self.unit, self.seconds, self.samples, self.done = nodes, unit, seconds, [], threading.Event()
        self._latest, self._lock, self._procs = {}, threading.Lock(), {}

    def _record(self, node, state):
        with self._lock:
            self._latest[node] = state
            # A sample holds every node: the first once each has been seen.
            if len(self._latest) == len(self.nodes):
                self.samples.append((time.monotonic(), dict(self._latest)))

    def _follow(self, node, deadline):
        loop = (f"while :; do systemctl show -p MainPID -p ActiveState {self.unit}; echo . || exit; "
                f"sleep {self.SAMPLE_S}; done")
        while not self.done.is_set() and time.monotonic() < deadline:
            left = max(1, int(deadline - time.monotonic()))
            proc = subprocess.Popen([sys.executable, LABCTL, "exec", node, "--", "timeout", str(left),
                                     "sh", "-c", loop], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._procs[node] = proc
            if self.done.is_set():  # stop() came while this one started
                proc.kill()
            fields = {}
            for line in proc.stdout:
                if line.strip() == ".":
                    self._record(node, (int(fields.get("MainPID", "0") or 0), fields.get("ActiveState", "?")))
                    fields = {}
                elif "=" in line:
                    key, value = line.strip().split("=", 1)
                    fields[key] = value
                if self.done.is_set():
                    break
            proc.kill()
            proc.wait()
            proc.stdout.close()
            if not self.done.is_set():
                # The host did not answer (powered off, exec failed): no PID, unknown state, and again.
                self._record(node, (0, "?"))
                self.done.wait(self.SAMPLE_S)

    def run(self):
        deadline = time.monotonic() + self.seconds
        followers = [threading.Thread(target=self._follow, args=(n, deadline), daemon=True) for n in self.nodes]
        for follower in followers:
            follower.start()
        for follower in followers:
            follower.join()

    def stop(self):
        self.done.set()
        for proc in list(self._procs.values()):
            proc.kill()
        self.join(timeout=30)

    def pids(self, node):
        seen = []
        for _, states in self.samples:
            pid = states[node][0]
            if pid and (not seen or seen[-1] != pid):
                seen.append(pid)
        return seen

    def changed_at(self, node):
        """When the node's new PID was first seen."""
        first = self.pids(node)[0]
        for t, states in self.samples:
            if states[node][0] not in (0, first):
                return t
        return None

    def most_down_at_once(self):
        return max((sum(1 for pid, state in states.values() if not pid or state != "active")
                    for _, states in self.samples), default=0)


sipp_counts = sip.call_counts


class Load:
    """Bounded SIPp traffic from the public side: calls with RTP through each proxy in `addresses`
    ({name: public address}), `rate` calls/s each, held `hold` s, for at most `seconds`.
    The callee (user "callee<tag>") is registered at `registrar` and replicated to the others."""

    def __init__(self, addresses, registrar, seconds, rate=1, hold=4, tag=0):
        self.procs, self.timeout, self.hold = {}, seconds + hold + 40, hold
        calls = int(rate * seconds)
        uas_port = 5080 + tag
        reg = sip.register(registrar, f"callee{tag}", registrar, contact_port=uas_port, local_port=5071,
                           expires=3600)
        assert reg.ok, reg.stdout[-500:]
        self.uas = self._sipp(["-sf", os.path.join(sip.SIPP_DIR, "uas_rtp.xml"), "-p", str(uas_port),
                               "-mi", sip.PUBLIC_CLIENT, "-mp", str(40000 + tag * 100), "-rtp_echo",
                               "-m", str(calls * len(addresses))])
        time.sleep(0.5)
        for i, (name, address) in enumerate(addresses.items()):
            self.procs[name] = self._sipp([
                f"{address}:5060", "-sf", os.path.join(sip.SIPP_DIR, "uac_rtp.xml"), "-s", f"callee{tag}",
                "-p", str(5090 + i + tag * 10), "-mi", sip.PUBLIC_CLIENT, "-mp", str(42000 + i * 2000 + tag * 100),
                "-r", str(rate), "-m", str(calls), "-l", str(int(rate * hold) + 5), "-d", str(hold * 1000)])

    def _sipp(self, args):
        # The callee waits a whole hold for the BYE: its receive timeout must outlast the hold.
        return sip.sipp_background(args, self.timeout, recv_timeout_ms=max(15000, (self.hold + 15) * 1000))

    def stop(self):
        """Stop placing calls; the calls in progress finish."""
        for proc in self.procs.values():
            sip.soft_stop(proc)

    def finish(self):
        """{proxy: {"ok", "failed", "tail"}} once every caller has ended."""
        out = {}
        for name, proc in self.procs.items():
            stdout, _ = proc.communicate(timeout=self.timeout + 20)
            ok, failed = sipp_counts(stdout)
            out[name] = {"ok": ok, "failed": failed, "tail": stdout[-600:]}
        self.stop_uas()
        return out

    def stop_uas(self):
        sip.stop_sipp(self.uas)
