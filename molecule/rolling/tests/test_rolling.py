"""Changing a live cluster under load: bounded SIPp calls with RTP through every proxy and a few
hundred registered users while site.yml rolls changes. Failed calls and registrations are
counted on every node; the negative control (everything at once, no drain) must lose some.
The tests run in file order and share the cluster."""

import os
import re
import tempfile
import threading
import time

import pytest
import yaml
from testlib import LAST_RUN, ansible_host, converge, platforms, rtp_kept, sip
from testlib import media_call_across as shared_media_call_across

from lab import load
from lab.load import KAMCTL, Watch, contacts, lab_exec, service_state

P = platforms()
PROXIES = ["proxy1", "proxy2", "proxy3"]
RELAYS = ["media1", "media2"]
USERS = 200


def pub(name):
    return P[name]["public_ipv4"]


def all_contacts():
    return {n: contacts(n) for n in PROXIES}


def Load(proxies, seconds, rate=1, hold=4, tag=0):  # noqa: N802 (stands for the class)
    return load.Load({n: pub(n) for n in proxies}, pub("proxy1"), seconds, rate=rate, hold=hold, tag=tag)


def register_population():
    res = sip.register_many(pub("proxy1"), [f"user{i:04d}" for i in range(USERS)])
    assert res.ok, res.stdout[-800:]


def wait_equal_contacts(expected, timeout=30):
    return load.wait_contacts(PROXIES, expected, timeout)


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
    rc, failures = converge("proxy2:media1", {"sip_node_state": "drained", "sip_node_drain_timeout": 30},
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
        rc, _ = converge("proxy2:media1", {"sip_node_state": "drained", "sip_node_drain_timeout": 30},
                         playbook="playbooks/drain.yml")
        assert rc == 0 and "| CHANGED" not in LAST_RUN["stdout"], LAST_RUN["stdout"][-1500:]
        # Left drained (no itsp_maintenance), both are put back into service by a site.yml that
        # changes nothing else: its undrain safety net, deciding from one read of each proxy's
        # sets. The same checks read them drained before it (they can fail).
        left_drained = in_service_seen()
        print("left drained:", left_drained)
        assert left_drained == {"proxy2 health": 503, "proxy2 in proxy1's set": "I",
                                "media1 in proxy1's relays": "1(permanent)",
                                "media1 in proxy2's relays": "1(permanent)"}, left_drained
        rc, failures = converge("all")
        assert rc == 0, failures
        back = in_service_seen()
        print("after site.yml:", back, "task results changed:", LAST_RUN["stdout"].count("| CHANGED"))
        assert back == {"proxy2 health": 200, "proxy2 in proxy1's set": "A", "media1 in proxy1's relays": "0",
                        "media1 in proxy2's relays": "0"}, back
    finally:
        rc, failures = converge("proxy2:media1", {"sip_node_state": "active"}, playbook="playbooks/drain.yml")
    assert rc == 0, failures
    assert sip.request(pub("proxy2"), pub("proxy2"), method="OPTIONS")["final"] == 200


def _drain(name, timeout):
    started = time.monotonic()
    rc, failures = converge(name, {"sip_node_state": "drained", "sip_node_drain_timeout": timeout},
                            playbook="playbooks/drain.yml")
    return rc, failures, time.monotonic() - started


def _undrain(name):
    rc, failures = converge(name, {"sip_node_state": "active"}, playbook="playbooks/drain.yml")
    assert rc == 0, failures


def test_drain_waits_for_the_proxys_own_calls_only_and_stops_at_its_bound(population):
    hold = 14
    calls = Load(["proxy2"], seconds=2, rate=1, hold=hold, tag=4)  # 2 calls through proxy2, held 14 s
    time.sleep(4)
    try:
        # proxy3 holds only replicas of proxy2's calls (DMQ): nothing of its own to wait for.
        rc, failures, replica_only = _drain("proxy3", 60)
        assert rc == 0, failures
        _undrain("proxy3")
        rc, failures, took = _drain("proxy2", 60)
    finally:
        results = calls.finish()
    _undrain("proxy2")
    print(f"drain of proxy3 (replicas only): {replica_only:.1f} s; drain of proxy2 with 2 calls held {hold} s "
          f"(started ~4 s before): {took:.1f} s; its calls {results}")
    assert rc == 0, failures
    assert results["proxy2"]["ok"] == 2 and results["proxy2"]["failed"] == 0, results
    # The drain returned only once its calls had ended: their hold had ~8 s left when it began.
    assert took >= 6, took
    assert replica_only < took, (replica_only, took)
    # At the bound, the calls still up are named and the run stops (sip_node_drain_timeout_action: fail).
    calls = Load(["proxy2"], seconds=1, rate=1, hold=20, tag=4)
    time.sleep(2)
    try:
        rc, failures, took = _drain("proxy2", 4)
    finally:
        results = calls.finish()
        _undrain("proxy2")
    print(f"drain bound 4 s with a call held 20 s: rc {rc} after {took:.1f} s: {failures}; the call {results}")
    assert rc != 0 and failures and "proxy2 still has 1 call(s) after sip_node_drain_timeout=4 s" in failures[0], \
        failures
    assert results["proxy2"]["ok"] == 1, results  # failing the run cuts nothing


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
    return shared_media_call_across(pub("proxy1"), change, hold_s, tag)


def test_relay_change_rolls_the_relays_and_calls_keep_their_media(population):
    watch = Watch(RELAYS, "rtpengine-daemon")
    watch.start()
    load = Load(["proxy1", "proxy2"], seconds=240, rate=1, hold=4, tag=1)
    time.sleep(4)
    roll = {}

    def roll_the_relays():
        started = time.monotonic()
        try:
            return converge("rtpengine", {"rtpengine_log_level": 5})
        finally:
            roll["took"] = time.monotonic() - started

    out = media_call_across(roll_the_relays, hold_s=25, tag=0)
    rc, failures = out["change"]
    time.sleep(2)
    load.stop()
    results = load.finish()
    watch.stop()
    _print_load("relay roll", results)
    print(f"relay roll took {roll['took']:.0f} s")
    print("relay PIDs:", {n: watch.pids(n) for n in RELAYS}, "most down at once:", watch.most_down_at_once())
    print("RTP of the call in progress:", out.get("rtp"), f"kept {rtp_kept(out['rtp']):.1%}")
    assert rc == 0, failures
    assert all(r["failed"] == 0 and r["ok"] > 0 for r in results.values()), results
    for n in RELAYS:
        assert len(watch.pids(n)) == 2, (n, watch.pids(n))
    assert watch.most_down_at_once() <= 1
    assert rtp_kept(out["rtp"]) >= 0.95, out["rtp"]
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


def in_service_seen():
    """Whether proxy2 and media1 are in service, as the cluster sees them: proxy2's health check,
    its state in proxy1's dispatcher set of cluster members (first letter of the flags) and
    media1's "disabled" in proxy1's and proxy2's relay sets."""
    seen = {"proxy2 health": sip.request(pub("proxy2"), pub("proxy2"), method="OPTIONS")["final"]}
    listing = lab_exec("proxy1", *KAMCTL, "dispatcher.list")
    m = re.search(rf"URI: sip:{re.escape(P['proxy2']['private_ipv4'])}:5060\s+FLAGS: (\w)", listing)
    seen["proxy2 in proxy1's set"] = m.group(1) if m else listing[-300:]
    for proxy in ("proxy1", "proxy2"):
        relays = lab_exec(proxy, *KAMCTL, "rtpengine.show", "all")
        m = re.search(rf"url: udp:{re.escape(P['media1']['private_ipv4'])}:2223.*?disabled: (\S+)", relays, re.S)
        seen[f"media1 in {proxy}'s relays"] = m.group(1) if m else relays[-300:]
    return seen


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
          f"kept {rtp_kept(out['rtp']):.1%}")
    assert rtp_kept(out["rtp"]) < 0.9, out["rtp"]
