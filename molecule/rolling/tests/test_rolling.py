"""Changing a live cluster under load: bounded SIPp calls with RTP through every proxy and a few
hundred registered users while site.yml rolls changes. Failed calls and registrations are
counted on every node; the negative control (everything at once, no drain) must lose some.
The tests run in file order and share the cluster."""

import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import yaml
from testlib import (
    LAST_RUN,
    PROJECT,
    ansible_host,
    call_counts,
    converge,
    platforms,
    rtp_kept,
    sip,
    sipp_background,
    soft_stop,
    stop_sipp,
)
from testlib import (
    media_call_across as testlib_media_call_across,
)

P = platforms()
PROXIES = ["proxy1", "proxy2", "proxy3"]
RELAYS = ["media1", "media2"]
USERS = 200
LABCTL = os.path.join(PROJECT, "lab", "labctl.py")
SIPP = sip.SIPP_DIR


def pub(name):
    return P[name]["public_ipv4"]


def lab_exec(name, *cmd, timeout=20):
    res = subprocess.run([sys.executable, LABCTL, "exec", name, "--", *cmd], capture_output=True, text=True,
                         timeout=timeout, check=False)
    return res.stdout.strip()


def contacts(name):
    out = lab_exec(name, "kamcmd", "-s", "unix:/run/kamailio/kamailio_ctl", "stats.get_statistics",
                   "location_contacts")
    try:
        return int(out.rsplit("=", 1)[1])
    except (IndexError, ValueError):
        return -1  # not answering: down


def all_contacts():
    return {n: contacts(n) for n in PROXIES}


def service_state(name, unit):
    out = lab_exec(name, "systemctl", "show", "-p", "MainPID", "-p", "ActiveState", unit)
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return int(fields.get("MainPID", "0") or 0), fields.get("ActiveState", "?")


class Watch(threading.Thread):
    """Samples each node's main PID and state (about 3 times a second) while a change rolls."""

    def __init__(self, nodes, unit):
        super().__init__(daemon=True)
        self.nodes, self.unit, self.samples, self.done = nodes, unit, [], threading.Event()

    def run(self):
        deadline = time.monotonic() + 900
        while not self.done.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            self.samples.append((t, {n: service_state(n, self.unit) for n in self.nodes}))
            time.sleep(0.2)

    def stop(self):
        self.done.set()
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


class Load:
    """Bounded SIPp traffic from the public side: calls with RTP (G.711 pcap, echoed by the
    callee) through each proxy given, `rate` calls/s each, held `hold` s, for at most `seconds`.
    The callee (user "callee") is registered at proxy1 and replicated to the others."""

    def __init__(self, proxies, seconds, rate=1, hold=4, tag=0):
        self.proxies, self.procs, self.timeout = proxies, {}, seconds + hold + 40
        calls = int(rate * seconds)
        uas_port = 5080 + tag
        reg = sip.register(pub("proxy1"), f"callee{tag}", pub("proxy1"), contact_port=uas_port, local_port=5071,
                           expires=3600)
        assert reg.ok, reg.stdout[-500:]
        self.uas = self._sipp(["-sf", os.path.join(SIPP, "uas_rtp.xml"), "-p", str(uas_port), "-mi", sip.PUBLIC_CLIENT,
                               "-mp", str(40000 + tag * 100), "-rtp_echo", "-m", str(calls * len(proxies))])
        time.sleep(0.5)
        for i, name in enumerate(proxies):
            self.procs[name] = self._sipp([
                f"{pub(name)}:5060", "-sf", os.path.join(SIPP, "uac_rtp.xml"), "-s", f"callee{tag}",
                "-p", str(5090 + i + tag * 10), "-mi", sip.PUBLIC_CLIENT, "-mp", str(42000 + i * 2000 + tag * 100),
                "-r", str(rate), "-m", str(calls), "-l", str(int(rate * hold) + 5), "-d", str(hold * 1000)])

    def _sipp(self, args):
        return sipp_background(args, self.timeout)

    def stop(self):
        """Stop placing calls; the calls in progress finish (SIPp's soft exit)."""
        for proc in self.procs.values():
            soft_stop(proc)

    def finish(self):
        out = {}
        for name, proc in self.procs.items():
            stdout, _ = proc.communicate(timeout=self.timeout + 20)
            ok, failed = _counts(stdout)
            out[name] = {"ok": ok, "failed": failed, "tail": stdout[-600:]}
        self.stop_uas()
        return out

    def stop_uas(self):
        stop_sipp(self.uas)


_counts = call_counts


def register_population():
    res = sip.register_many(pub("proxy1"), [f"user{i:04d}" for i in range(USERS)])
    assert res.ok, res.stdout[-800:]


def wait_equal_contacts(expected, timeout=30):
    deadline, seen = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        seen = all_contacts()
        if all(v >= expected for v in seen.values()):
            return seen
        time.sleep(1)
    return seen


@pytest.fixture(scope="module")
def population():
    register_population()
    seen = wait_equal_contacts(USERS)
    assert all(v >= USERS for v in seen.values()), seen
    return seen


def status_table(stdout):
    """The table status.yml printed (the oneline callback prints the debug result as JSON)."""
    import json
    import re

    for m in re.finditer(r"^\S+ \| SUCCESS => (\{.*\})$", stdout, re.M):
        msg = json.loads(m.group(1)).get("msg")
        if isinstance(msg, list) and msg and str(msg[0]).startswith("node"):
            return msg
    raise AssertionError(stdout[-2000:])


def _print_load(label, results):
    for name, r in results.items():
        print(f"{label} via {name}: {r['ok']} calls completed, {r['failed']} failed")


def test_drain_passes_new_calls_on_and_status_shows_it(population):
    rc, failures = converge("proxy2", {"sip_node_state": "drained", "sip_node_drain_timeout": 30},
                            playbook="playbooks/drain.yml")
    assert rc == 0, failures
    assert "| CHANGED" in LAST_RUN["stdout"], LAST_RUN["stdout"][-1500:]
    try:
        health = sip.request(pub("proxy2"), pub("proxy2"), method="OPTIONS", source=sip.PUBLIC_CLIENT)
        print("health check of the draining proxy:", health["codes"])
        assert health["final"] == 503, health
        rc, _ = converge("all", playbook="playbooks/status.yml")
        assert rc == 0
        table = status_table(LAST_RUN["stdout"])
        print("\n".join(table))
        assert table[0].startswith("node")
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert set(rows) == set(PROXIES + RELAYS)
        assert "draining" in rows["proxy2"] and "active" in rows["proxy1"], table
        # A new call that still reaches the draining proxy goes through an active peer, which
        # record-routes itself: the draining proxy keeps none of it.
        with sip.Uas(port=5087, calls=1) as uas:
            assert sip.register(pub("proxy1"), "drainee", pub("proxy1"), contact_port=5087, local_port=5077,
                                expires=3600).ok
            call = sip.call(pub("proxy2"), "drainee", pub("proxy2"), local_port=5076)
            got = uas.finish()
        invite = sip.relayed_invite(got)
        assert call.ok and invite, call.stdout[-500:]
        rrs = sip.header_values(invite, "Record-Route")
        print("Record-Route of a call given to the draining proxy:", rrs)
        assert rrs and all(pub("proxy2") not in rr for rr in rrs), rrs
        # Draining again changes nothing.
        rc, _ = converge("proxy2", {"sip_node_state": "drained", "sip_node_drain_timeout": 30},
                         playbook="playbooks/drain.yml")
        assert rc == 0 and "| CHANGED" not in LAST_RUN["stdout"], LAST_RUN["stdout"][-1500:]
    finally:
        rc, failures = converge("proxy2", {"sip_node_state": "active"}, playbook="playbooks/drain.yml")
    assert rc == 0, failures
    assert sip.request(pub("proxy2"), pub("proxy2"), method="OPTIONS")["final"] == 200


def test_restart_change_rolls_the_proxies_one_at_a_time(population):
    watch = Watch(PROXIES, "kamailio")
    watch.start()
    load = Load(PROXIES, seconds=240, rate=1, hold=4)
    before = wait_equal_contacts(USERS + 1)  # the population and the callee, on every proxy
    time.sleep(2)
    started = time.monotonic()
    rc, failures = converge("kamailio", {"kamailio_log_level": 3})
    took = time.monotonic() - started
    time.sleep(3)
    load.stop()
    results = load.finish()
    watch.stop()
    after = all_contacts()
    _print_load("rolling restart", results)
    print(f"roll took {took:.0f} s; contacts before {before} after {after}")
    print("PIDs:", {n: watch.pids(n) for n in PROXIES}, "most down at once:", watch.most_down_at_once())
    assert rc == 0, failures
    assert all(r["failed"] == 0 and r["ok"] > 0 for r in results.values()), results
    assert after == before, (before, after)
    for n in PROXIES:
        assert len(watch.pids(n)) == 2, (n, watch.pids(n))
    assert watch.most_down_at_once() <= 1
    # One after the other: each new PID appears well after the previous proxy's.
    times = [watch.changed_at(n) for n in PROXIES]
    assert all(t is not None for t in times) and all(b - a > 2 for a, b in zip(times, times[1:])), times
    assert "restarted kamailio: kamailio-local.cfg" in LAST_RUN["stdout"]


def media_call_across(change, hold_s, tag):
    return testlib_media_call_across(pub("proxy1"), change, hold_s, tag)


_rtp_kept = rtp_kept


def test_relay_change_rolls_the_relays_and_calls_keep_their_media(population):
    watch = Watch(RELAYS, "rtpengine-daemon")
    watch.start()
    load = Load(["proxy1", "proxy2"], seconds=240, rate=1, hold=4, tag=1)
    time.sleep(4)
    out = media_call_across(lambda: converge("rtpengine", {"rtpengine_log_level": 5}), hold_s=25, tag=0)
    rc, failures = out["change"]
    time.sleep(2)
    load.stop()
    results = load.finish()
    watch.stop()
    _print_load("relay roll", results)
    print("relay PIDs:", {n: watch.pids(n) for n in RELAYS}, "most down at once:", watch.most_down_at_once())
    print("RTP of the call in progress:", out.get("rtp"), f"kept {_rtp_kept(out['rtp']):.1%}")
    assert rc == 0, failures
    assert all(r["failed"] == 0 and r["ok"] > 0 for r in results.values()), results
    for n in RELAYS:
        assert len(watch.pids(n)) == 2, (n, watch.pids(n))
    assert watch.most_down_at_once() <= 1
    assert _rtp_kept(out["rtp"]) >= 0.95, out["rtp"]
    assert out["call"].ok, out["call"].stdout[-500:]


def test_a_node_failing_its_check_stops_the_roll(population):
    # proxy2 will not answer its own health check after the restart (a fault injected for the test).
    fault = ("table ip itsp_test_fault {\n chain input {\n  type filter hook input priority -10;\n"
             "  ip saddr 198.18.0.12 udp dport 5060 drop\n }\n}\n")
    lab_exec("proxy2", "sh", "-c", f"printf '{fault}' | nft -f -")
    assert "itsp_test_fault" in lab_exec("proxy2", "nft", "list", "tables")
    proxy3_before = service_state("proxy3", "kamailio")[0]
    try:
        rc, failures = converge("kamailio", {"kamailio_log_level": 1})
        print("failures:", failures)
        assert rc != 0
        assert any("proxy2" in f or "SIP" in f or "answer" in f for f in failures) or "proxy2" in LAST_RUN["stdout"]
        # The roll stopped at proxy2: proxy3 still runs its old process (and so its old configuration).
        assert service_state("proxy3", "kamailio")[0] == proxy3_before
    finally:
        lab_exec("proxy2", "nft", "delete table ip itsp_test_fault")
    rc, failures = converge("kamailio", {"kamailio_log_level": 1})
    assert rc == 0, failures
    assert service_state("proxy3", "kamailio")[0] != proxy3_before


def _retired_inventory(*hosts):
    fd, path = tempfile.mkstemp(suffix=".yml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump({"all": {"children": {"retired": {"hosts": {h: {} for h in hosts}}}}}, fh)
    return path


def test_scale_in_and_out_under_load(population):
    retired = _retired_inventory("proxy3", "media2")
    try:
        load = Load(["proxy1", "proxy2"], seconds=240, rate=1, hold=4, tag=2)
        time.sleep(4)
        rc, failures = converge("all", {"kamailio_log_level": 1}, inventories=[retired])
        time.sleep(3)
        load.stop()
        results = load.finish()
    finally:
        os.unlink(retired)
    _print_load("scale in", results)
    assert rc == 0, failures
    assert all(r["failed"] == 0 and r["ok"] > 0 for r in results.values()), results
    for name in ("proxy1", "proxy2"):
        host = ansible_host(name)
        lists = host.run("cat /etc/kamailio/dmq-peers.cfg /etc/kamailio/dispatcher.list /etc/kamailio/dbtext/address "
                         "/etc/kamailio/dbtext/rtpengine").stdout
        assert "198.18.0.13" not in lists and "198.18.0.22" not in lists, lists
    assert service_state("proxy3", "kamailio")[1] != "active"
    assert service_state("media2", "rtpengine-daemon")[1] != "active"
    # Back out: both rejoin and take new calls.
    rc, failures = converge("all", {"kamailio_log_level": 1})
    assert rc == 0, failures
    assert service_state("proxy3", "kamailio")[1] == "active"
    assert service_state("media2", "rtpengine-daemon")[1] == "active"
    assert "198.18.0.22" in ansible_host("proxy1").file("/etc/kamailio/dbtext/rtpengine").content_string
    seen = wait_equal_contacts(USERS)
    assert seen["proxy3"] >= USERS, seen
    with sip.Uas(port=5088, calls=1) as uas:
        assert sip.register(pub("proxy3"), "back", pub("proxy3"), contact_port=5088, local_port=5079).ok
        call = sip.call(pub("proxy3"), "back", pub("proxy3"), local_port=5078)
        got = uas.finish()
    assert call.ok and got.ok, call.stdout[-500:]


@pytest.mark.parametrize("extra,message", [
    ({"itsp_rolling_batch": "100%"}, "itsp_rolling_batch=100% would restart every node at once"),
    ({"itsp_rolling_batch": "3"}, "itsp_rolling_batch=3 would restart every node at once"),
    ({"itsp_rolling_batch": "0"}, "itsp_rolling_batch: 0 must be a positive number of nodes"),
    ({"itsp_drain_timeout": "soon"}, "itsp_drain_timeout: soon must be a positive number of seconds"),
])
def test_bad_rolling_input_stops_before_anything(extra, message):
    before = {n: service_state(n, "kamailio")[0] for n in PROXIES}
    rc, failures = converge("kamailio", dict(extra, kamailio_log_level=2))
    assert rc != 0
    assert failures and failures[0].startswith(message), failures
    assert {n: service_state(n, "kamailio")[0] for n in PROXIES} == before


def test_retiring_every_proxy_is_refused():
    retired = _retired_inventory(*PROXIES)
    try:
        before = {n: service_state(n, "kamailio")[0] for n in PROXIES}
        rc, failures = converge("all", {}, inventories=[retired])
    finally:
        os.unlink(retired)
    assert rc != 0
    assert failures and failures[0].startswith("retired: that would retire the last proxy"), failures
    assert {n: service_state(n, "kamailio")[0] for n in PROXIES} == before


def _restart_every_relay_at_once():
    """What an unrolled change does to the relays: each restarted at the same moment, no drain."""
    time.sleep(8)
    threads = [threading.Thread(target=lab_exec, args=(n, "systemctl", "restart", "rtpengine-daemon")) for n in RELAYS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return 0, []


def test_negative_control_relays_all_at_once_cut_the_media_of_calls_in_progress(population):
    """Every relay restarted at once, no drain: rtpengine forgets the sessions it carried and the
    call in progress loses its media - the media check of the rolling test above can fail."""
    out = media_call_across(_restart_every_relay_at_once, hold_s=25, tag=1)
    print("RTP of the call across the all-at-once relay restart:", out.get("rtp"),
          f"kept {_rtp_kept(out['rtp']):.1%}")
    assert _rtp_kept(out["rtp"]) < 0.9, out["rtp"]
