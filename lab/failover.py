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

from lab import load, sip
from lab.load import lab, lab_exec  # noqa: F401 (the bigbox tests and bench take them from here)

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "sip_probe.py")
STATE_FILE = "/run/itsp-keepalived.state"  # written by the keepalived role's notify script


def holders(boxes, vip):
    """The boxes that have the VIP on an interface (a powered-off box has none)."""
    return [n for n in boxes if vip in lab_exec(n, "ip", "-o", "-4", "addr", "show", "to", vip)]


def single_holder(boxes, vip):
    """The one box holding the VIP, or None while none or both do."""
    found = holders(boxes, vip)
    return found[0] if len(found) == 1 else None


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
        self.proc = subprocess.Popen(["ip", "netns", "exec", sip.PUB_NS, "timeout", "-s", "INT", str(int(seconds) + 10),
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


class CallLoad(load.Load):
    """load.Load through one address `target` (a public address), the callee registered through it
    too: `rate` calls/s, each held `hold` s, for `seconds` s. finish() -> {placed, ok, failed, tail}."""

    def __init__(self, target, seconds, rate=4, hold=3, tag=0):
        super().__init__({target: target}, target, seconds, rate=rate, hold=hold, tag=tag)
        self.calls = int(rate * seconds)

    def finish(self):
        (result,) = super().finish().values()
        return {"placed": self.calls, **result}
