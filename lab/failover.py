"""Watching a floating address move between lab hosts: who holds it, what keepalived says, and
how long SIP went unanswered (an OPTIONS prober on the public side). Used by the bigbox
scenario's tests and bench/bench_failover.py."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

from lab import sip

HERE = os.path.dirname(os.path.abspath(__file__))
LABCTL = os.path.join(HERE, "labctl.py")
PROBE = os.path.join(HERE, "sip_probe.py")
PUB_NS = "itsp-pub"
STATE_FILE = "/run/itsp-keepalived.state"  # written by the keepalived role's notify script


def lab(*args, timeout=90):
    return subprocess.run([sys.executable, LABCTL, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def lab_exec(name, *cmd, timeout=20):
    return lab("exec", name, "--", *cmd, timeout=timeout).stdout.strip()


def holders(boxes, vip):
    """The boxes that have the VIP on an interface (a powered-off box has none)."""
    return [n for n in boxes if vip in lab_exec(n, "ip", "-o", "-4", "addr", "show", "to", vip)]


def vrrp_state(name):
    """MASTER, BACKUP, FAULT or STOP: the last transition keepalived reported on the box."""
    return (lab_exec(name, "cat", STATE_FILE).split() or ["?"])[0]


def wait_for(predicate, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


class Prober:
    """SIP OPTIONS to `target` every `interval` s from the public side, for at most `seconds` s."""

    def __init__(self, target, seconds, interval=0.05, local_port=5079):
        self.proc = subprocess.Popen(["ip", "netns", "exec", PUB_NS, "timeout", "-s", "INT", str(int(seconds) + 10),
                                      sys.executable, PROBE, target, "--seconds", str(seconds),
                                      "--interval", str(interval), "--local-port", str(local_port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(self):
        """Stop it (SIGINT to the prober under `timeout`); the answer times, in order."""
        for pid in subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True,
                                  check=False).stdout.split():
            for child in subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True,
                                        check=False).stdout.split() or [pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(child), signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        return sorted(float(line.split()[1]) for line in out.splitlines() if re.match(r"^[\d.]+ [\d.]+ \d+$", line))


def outage(answers, after):
    """The longest silence (s) between two answers ending after time `after` (a Unix time): from the
    last answer of the old active to the first of the new one. None without an answer after it."""
    gaps = [b - a for a, b in zip(answers, answers[1:]) if b >= after]
    return max(gaps) if gaps else None


class CallLoad:
    """Bounded SIPp calls with RTP from the public side through `target` (a public address) to the
    user "callee<tag>", a SIPp UAS registered through the same address: `rate` calls/s, each held
    `hold` s, for `seconds` s. finish() -> {placed, ok, failed, tail}."""

    def __init__(self, target, seconds, rate=4, hold=3, tag=0):
        self.timeout = int(seconds + hold + 40)
        self.calls = int(rate * seconds)
        uas_port = 5080 + tag
        reg = sip.register(target, f"callee{tag}", target, contact_port=uas_port, local_port=5071, expires=3600)
        if not reg.ok:
            raise RuntimeError(f"callee{tag} could not register through {target}: {reg.stdout[-500:]}")
        self.uas = sip.sipp_background(["-sf", os.path.join(sip.SIPP_DIR, "uas_rtp.xml"), "-p", str(uas_port),
                                        "-mi", sip.PUBLIC_CLIENT, "-mp", str(40000 + tag * 100), "-rtp_echo",
                                        "-m", str(self.calls)], self.timeout, recv_timeout_ms=10000)
        time.sleep(0.5)
        self.uac = sip.sipp_background([f"{target}:5060", "-sf", os.path.join(sip.SIPP_DIR, "uac_rtp.xml"),
                                        "-s", f"callee{tag}", "-p", str(5090 + tag), "-mi", sip.PUBLIC_CLIENT,
                                        "-mp", str(42000 + tag * 100), "-r", str(rate), "-m", str(self.calls),
                                        "-l", str(int(rate * hold) + 5), "-d", str(int(hold * 1000))],
                                       self.timeout, recv_timeout_ms=10000)

    def finish(self):
        out, _ = self.uac.communicate(timeout=self.timeout + 20)
        ok, failed = sip.call_counts(out)
        sip.stop_sipp(self.uas)
        return {"placed": self.calls, "ok": ok, "failed": failed, "tail": out[-600:]}
