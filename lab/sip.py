"""Real SIP from the lab's public side (namespace itsp-pub), with SIPp.

Used by the Molecule verifiers, the lab report and the benchmarks. Every SIPp run is bounded:
-m (calls), -timeout / -recv_timeout, and an outer `timeout -s INT`, because SIPp can ignore
its own timeout when responses are dropped.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SIPP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")
PUB_NS = "itsp-pub"
PUBLIC_CLIENT = "203.0.113.200"


class SipResult:
    def __init__(self, rc, stdout, messages):
        self.rc = rc
        self.stdout = stdout
        self.messages = messages  # list of (direction, text) as SIPp traced them

    @property
    def ok(self):
        return self.rc == 0

    def received(self):
        return [text for direction, text in self.messages if direction == "received"]

    def first_response_code(self):
        for text in self.received():
            m = re.match(r"SIP/2\.0 (\d{3})", text)
            if m:
                return int(m.group(1))
        return None

    def __repr__(self):
        return f"SipResult(rc={self.rc}, code={self.first_response_code()})"


def parse_trace(text):
    """Split a SIPp -trace_msg file into (direction, message) pairs."""
    out = []
    for block in re.split(r"^-{10,}.*$", text, flags=re.M):
        m = re.search(r"(UDP|TCP) message (received|sent)[^\n]*:\s*\n\n?(.*)", block, re.S)
        if m:
            out.append((m.group(2), m.group(3).strip("\n")))
    return out


def header_values(message, name):
    """All values of a header (compact forms of Via and Record-Route not used by SIPp/Kamailio here)."""
    vals = []
    for line in message.splitlines():
        if ":" in line:
            key, val = line.split(":", 1)
            if key.strip().lower() == name.lower():
                vals.append(val.strip())
    return vals


def _sipp(args, timeout, trace=True, background=False):
    fd, trace_file = tempfile.mkstemp(prefix="sipp-", suffix=".msg")
    os.close(fd)
    cmd = ["ip", "netns", "exec", PUB_NS, "timeout", "-s", "INT", str(int(timeout)), "sipp",
           "-nd", "-buff_size", "1048576", "-recv_timeout", str(int(timeout * 1000 * 0.8)),
           "-timeout", f"{int(timeout * 0.9)}s", "-timeout_error"]
    if trace:
        cmd += ["-trace_msg", "-message_file", trace_file]
    cmd += args
    if background:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        return proc, trace_file
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout + 10, check=False)
    return _result(proc.returncode, proc.stdout, trace_file)


def sipp_background(args, timeout, recv_timeout_ms=15000):
    """SIPp on the public side in the background, bounded: its own -timeout and an outer
    `timeout -s INT`; returns the Popen (stdout: SIPp's final statistics)."""
    cmd = ["ip", "netns", "exec", PUB_NS, "timeout", "-s", "INT", str(timeout), "sipp", "-nd",
           "-i", PUBLIC_CLIENT, "-buff_size", "4194304", "-recv_timeout", str(recv_timeout_ms),
           "-timeout", f"{timeout - 5}s", "-timeout_error", *args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def soft_stop(proc):
    """SIPp's soft exit (SIGUSR1 to the sipp under `timeout`): no new calls, the ones in progress finish."""
    for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True,
                              check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGUSR1)


def stop_sipp(proc, timeout=20):
    """Soft-stop a background SIPp (a UAS), wait for it, kill it if it does not end."""
    soft_stop(proc)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=timeout)
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def call_counts(output):
    """(successful, failed) calls from SIPp's final statistics; failed -1 when it printed none."""
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return (int(ok[-1]) if ok else 0), (int(bad[-1]) if bad else -1)


def _result(rc, stdout, trace_file):
    text = ""
    with contextlib.suppress(OSError):
        with open(trace_file, errors="replace") as fh:
            text = fh.read()
        os.unlink(trace_file)
    return SipResult(rc, stdout, parse_trace(text))


def options(target, port=5060, local_port=5070, timeout=8, source=PUBLIC_CLIENT):
    """One OPTIONS from the public side to target:port. .ok means 200 came back."""
    return _sipp([f"{target}:{port}", "-sf", os.path.join(SIPP_DIR, "options.xml"), "-m", "1",
                  "-i", source, "-p", str(local_port)], timeout)


def _credentials(auth):
    """SIPp arguments for digest credentials (user, password): the From user is the auth user."""
    if not auth:
        return []
    return ["-au", auth[0], "-ap", auth[1], "-key", "caller", auth[0]]


def register(proxy, user, domain, contact_port, port=5060, local_port=5071, timeout=8, source=PUBLIC_CLIENT,
             auth=None, expires=300):
    """REGISTER user@domain with a Contact on contact_port; auth=(user, password) answers a 401."""
    scenario = "register_auth.xml" if auth else "register.xml"
    return _sipp([f"{proxy}:{port}", "-sf", os.path.join(SIPP_DIR, scenario), "-m", "1",
                  "-s", user, "-key", "domain", domain, "-key", "contact_port", str(contact_port),
                  "-key", "expires", str(expires),
                  "-i", source, "-p", str(local_port)] + _credentials(auth), timeout)


def register_many(proxy, users, port=5060, local_port=5095, rate=50, timeout=30):
    """One REGISTER (Expires 3600) per user name of `users`, each with its own contact, at `rate`/s."""
    fd, path = tempfile.mkstemp(suffix=".csv")
    with os.fdopen(fd, "w") as fh:
        fh.write("SEQUENTIAL\n" + "".join(f"{user}\n" for user in users))
    try:
        return _sipp([f"{proxy}:{port}", "-sf", os.path.join(SIPP_DIR, "register_many.xml"), "-inf", path,
                      "-m", str(len(users)), "-r", str(rate), "-p", str(local_port)], timeout, trace=False)
    finally:
        os.unlink(path)


def _call_args(proxy, user, domain, port, local_port, rtp_port, hold_ms, source=PUBLIC_CLIENT, auth=None):
    scenario = "call_auth.xml" if auth else "call.xml"
    return [f"{proxy}:{port}", "-sf", os.path.join(SIPP_DIR, scenario), "-m", "1", "-s", user,
            "-key", "domain", domain, "-key", "rtp_port", str(rtp_port), "-d", str(hold_ms),
            "-i", source, "-p", str(local_port)] + _credentials(auth)


def call(proxy, user, domain, port=5060, local_port=5072, timeout=10, rtp_port=20000, hold_ms=200,
         source=PUBLIC_CLIENT, auth=None):
    """One call through the proxy (INVITE, ACK, hold, BYE); .ok means it completed.
    auth=(user, password) calls as that subscriber, answering the proxy's 407."""
    return _sipp(_call_args(proxy, user, domain, port, local_port, rtp_port, hold_ms, source, auth), timeout)


class Call:
    """A call placed in the background, so media can flow while it is up."""

    def __init__(self, proxy, user, domain, port=5060, local_port=5072, rtp_port=20000, hold_ms=6000,
                 timeout=20, source=PUBLIC_CLIENT, auth=None):
        self.proc, self.trace_file = _sipp(_call_args(proxy, user, domain, port, local_port, rtp_port,
                                                      hold_ms, source, auth), timeout, background=True)

    def finish(self, timeout=25):
        return _finish(self.proc, self.trace_file, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _reap(self.proc)


class Uas:
    """A called party on the public side (uas.xml), answering `calls` calls, tracing what it got."""

    def __init__(self, port=5080, calls=1, timeout=20, rtp_port=22000, source=PUBLIC_CLIENT, scenario="uas.xml"):
        args = ["-sf", os.path.join(SIPP_DIR, scenario), "-m", str(calls), "-i", source,
                "-p", str(port), "-key", "rtp_port", str(rtp_port)]
        self.proc, self.trace_file = _sipp(args, timeout, background=True)
        time.sleep(0.3)  # let it bind before anyone calls

    def finish(self, timeout=15):
        return _finish(self.proc, self.trace_file, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _reap(self.proc)


def _finish(proc, trace_file, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return _result(proc.returncode, out, trace_file)


def _reap(proc):
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def wait_for_message(trace_file, predicate, timeout=5.0):
    """Poll a running SIPp's trace until a message matches; returns it (or None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), open(trace_file, errors="replace") as fh:
            for direction, text in parse_trace(fh.read()):
                if predicate(direction, text):
                    return text
        time.sleep(0.1)
    return None


def sdp_media(message):
    """(connection address, audio port) from a message's SDP."""
    c = re.search(r"^c=IN IP4 (\S+)", message, re.M)
    m = re.search(r"^m=audio (\d+) ", message, re.M)
    return (c.group(1), int(m.group(1))) if c and m else None


def rtp_exchange(a_bind, a_to, b_bind, b_to, count=100, pps=50):
    """Two RTP endpoints on the public side sending to each other's relay address at once."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtp.py")
    procs = [subprocess.Popen(["ip", "netns", "exec", PUB_NS, sys.executable, script,
                               "--bind", f"{bind[0]}:{bind[1]}", "--to", f"{to[0]}:{to[1]}",
                               "--count", str(count), "--pps", str(pps), "--linger", "1.0"],
                              stdout=subprocess.PIPE, text=True) for bind, to in ((a_bind, a_to), (b_bind, b_to))]
    return [json.loads(p.communicate(timeout=count / pps + 15)[0]) for p in procs]


def request(target, domain, source=PUBLIC_CLIENT, password=None, **options):
    """One request with lab/sipclient.py from the public side; returns its JSON result.

    options are sipclient's flags without dashes (method="INVITE", ruri=..., user=..., port=5061,
    transport="tls", tls_version="1.0", ...). The password goes through the environment.
    """
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipclient.py")
    cmd = ["ip", "netns", "exec", PUB_NS, sys.executable, script, target, "--domain", domain, "--source", source]
    for key, value in options.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ, SIPCLIENT_PASSWORD=password) if password is not None else \
        {k: v for k, v in os.environ.items() if k != "SIPCLIENT_PASSWORD"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"sipclient failed ({proc.returncode}): {proc.stderr[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def relayed_invite(uas_result):
    """The INVITE as the UAS saw it, after it crossed the proxy and the NAT."""
    for text in uas_result.received():
        if text.startswith("INVITE "):
            return text
    return None


def main(argv):
    """python3 lab/sip.py options ADDR... -> JSON {addr: "200 OK" | "no answer" | "403"}; rc 1 if not all 200."""
    if len(argv) < 2 or argv[0] != "options":
        print("usage: sip.py options ADDRESS...", file=sys.stderr)
        return 2
    results, ok = {}, True
    for i, addr in enumerate(argv[1:]):
        if addr in ("None", ""):
            continue
        res = options(addr, local_port=5070 + i)
        code = res.first_response_code()
        results[addr] = "200 OK" if res.ok and code == 200 else (f"{code}" if code else "no answer")
        ok = ok and res.ok and code == 200
    print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
