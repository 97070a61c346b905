"""Calls with real RTP through a proxy and rtpengine behind the kernel 1-to-1 NAT."""

import json
import os
import re
import time

import pytest
import testinfra.utils.ansible_runner
from testlib import ansible_host, converge, oneline_results, platforms, restart_warnings, run_module, sip

from lab import ng
from lab.load import lab_exec

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("rtpengine")

P = platforms()
PUBLIC_CLIENT = sip.PUBLIC_CLIENT
# Which relay each proxy drives: co-located on proxy1, the dedicated media host for proxy2.
TOPOLOGIES = {"co-located": ("proxy1", "proxy1"), "separate": ("proxy2", "media1")}
DELETE_DELAY = 2


def ng_addr(name):
    return (P[name]["private_ipv4"], 2223)


def test_rtpengine_running_with_the_nat_interface(host):
    me = P[host.backend.get_hostname()]
    assert host.service("rtpengine-daemon").is_running
    conf = host.file("/etc/rtpengine/rtpengine.conf").content_string
    if me["name"] == "media2":  # the negative control: no !PUBLIC
        assert f"interface = external/{me['private_ipv4']}\n" in conf
    else:
        assert f"interface = external/{me['private_ipv4']}!{me['public_ipv4']}\n" in conf
    assert "table = -1\n" in conf  # no kernel module in the lab: userspace, and said so


def test_forwarding_decision_names_what_blocks_the_kernel_path():
    # The relay's own answer, verify included: userspace, and why. The lab's kernel (this machine's)
    # cannot load modules at all, so the reason must say that, not "install the DKMS package".
    got = run_module("media1", "itsp.cluster.rtpengine_forwarding", "verify=true")
    assert not got["failed"] and not got["changed"], got
    assert (got["table"], got["forwarding"]) == (-1, "userspace"), got
    release = lab_exec("media1", "uname", "-r")
    if lab_exec("media1", "sh", "-c", "test -e /proc/modules && echo yes || echo no") == "no":
        assert got["module"] == "unsupported", got
        assert f"kernel {release} has no loadable module support" in got["reason"], got["reason"]
    else:
        assert got["module"] == "not installed", got
        assert f"install rtpengine-kernel-dkms with linux-headers-{release}" in got["reason"], got["reason"]


def test_session_limit_counts_the_ended_calls_it_holds(host):
    # rtpengine counts a deleted call against max-sessions until delete-delay after its delete:
    # the running daemon's limit is the concurrent calls plus calls/s x delete-delay
    # (200 + 16 x 2 with this scenario's variables and the role's default rate).
    out = host.check_output("rtpengine-ctl -ip 127.0.0.1 -port 9900 list maxsessions")
    print(f"{host.backend.get_hostname()}: {out}")
    assert re.search(r"\b232\b", out), out


def test_control_listens_on_the_private_address_only(host):
    me = P[host.backend.get_hostname()]
    assert host.socket(f"udp://{me['private_ipv4']}:2223").is_listening
    assert not host.socket("udp://0.0.0.0:2223").is_listening
    assert not host.socket(f"udp://{me['public_ipv4']}:2223").is_listening


def _media_call(proxy_name, relay_name, user, uas_port, a_rtp, b_rtp, local_port):
    proxy = P[proxy_name]["public_ipv4"]
    reg = sip.register(proxy, user, proxy, contact_port=uas_port, local_port=local_port)
    assert reg.ok, reg.stdout[-800:]
    seen = {}
    with sip.Uas(port=uas_port, rtp_port=b_rtp, timeout=30) as uas, \
            sip.Call(proxy, user, proxy, local_port=local_port + 1, rtp_port=a_rtp, hold_ms=6000) as call:
        answer = sip.wait_for_message(call.trace_file, lambda d, t: d == "received"
                                      and t.startswith("SIP/2.0 200") and "m=audio" in t)
        offer = sip.wait_for_message(uas.trace_file, lambda d, t: d == "received"
                                     and t.startswith("INVITE") and "m=audio" in t)
        assert answer and offer, "no SDP exchanged"
        seen["sdp_at_caller"], seen["sdp_at_callee"] = sip.sdp_media(answer), sip.sdp_media(offer)
        seen["rtp"] = sip.rtp_exchange((PUBLIC_CLIENT, a_rtp), seen["sdp_at_caller"],
                                       (PUBLIC_CLIENT, b_rtp), seen["sdp_at_callee"], count=100, pps=50)
        seen["calls_during"] = ng.call_ids(ng_addr(relay_name))
        seen["relayed"] = {cid: ng.packets_relayed(ng_addr(relay_name), cid) for cid in seen["calls_during"]}
        seen["call"], seen["uas"] = call.finish(), uas.finish()
    deadline = time.monotonic() + DELETE_DELAY + 8
    while time.monotonic() < deadline and ng.call_ids(ng_addr(relay_name)):
        time.sleep(0.5)
    seen["calls_after"] = ng.call_ids(ng_addr(relay_name))
    print(f"{proxy_name} -> {relay_name}: {seen}")
    return seen


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_call_with_rtp_both_ways_through_the_relay(topology):
    proxy_name, relay_name = TOPOLOGIES[topology]
    relay_public = P[relay_name]["public_ipv4"]
    uas_port = 5090 if topology == "separate" else 5091
    seen = _media_call(proxy_name, relay_name, f"m{topology[:3]}", uas_port, 20000, 22000,
                       local_port=5094 if topology == "separate" else 5096)
    # SDP at each end names the relay's public address, never a private one.
    assert seen["sdp_at_caller"][0] == relay_public
    assert seen["sdp_at_callee"][0] == relay_public
    a, b = seen["rtp"]
    assert (a["sent"], b["sent"]) == (100, 100)
    assert a["received"] >= 98 and b["received"] >= 98, seen["rtp"]
    assert a["from"] == [f"{relay_public}:{seen['sdp_at_caller'][1]}"]
    assert b["from"] == [f"{relay_public}:{seen['sdp_at_callee'][1]}"]
    # rtpengine saw the call, and counted the packets it took in on each leg.
    assert len(seen["calls_during"]) == 1
    legs = list(seen["relayed"].values())[0]
    assert sorted(p[0] for p in legs.values()) == [100, 100], legs
    assert seen["call"].ok and seen["uas"].ok
    # BYE deleted it: nothing left once the delete delay has passed.
    assert seen["calls_after"] == []


def _offer(relay_name):
    sdp = ("v=0\r\no=- 1 1 IN IP4 203.0.113.200\r\ns=-\r\nc=IN IP4 203.0.113.200\r\nt=0 0\r\n"
           "m=audio 24000 RTP/AVP 0\r\n")
    cid = f"offer-{relay_name}-{time.monotonic_ns()}"
    ans = ng.request(ng_addr(relay_name), "offer", sdp=sdp, **{"call-id": cid, "from-tag": "a"})
    ng.request(ng_addr(relay_name), "delete", **{"call-id": cid, "from-tag": "a"})
    assert ans["result"] == "ok", ans
    return sip.sdp_media(ans["sdp"])[0]


def test_relay_with_public_address_writes_it_into_sdp():
    assert _offer("media1") == P["media1"]["public_ipv4"]


def test_relay_without_public_address_leaks_the_private_one():
    """The negative control: same offer, interface without !PUBLIC, and SDP carries 198.18.x."""
    assert _offer("media2") == P["media2"]["private_ipv4"]


def test_relay_down_gives_a_sip_error_not_a_hang():
    media1 = ansible_host("media1")
    proxy = P["proxy2"]["public_ipv4"]
    reg = sip.register(proxy, "down", proxy, contact_port=5092, local_port=5098)
    assert reg.ok
    media1.run("systemctl stop rtpengine-daemon")
    try:
        t0 = time.monotonic()
        res = sip.call(proxy, "down", proxy, local_port=5099, timeout=15)
        elapsed = time.monotonic() - t0
        assert not res.ok
        codes = [int(t[8:11]) for t in res.received() if t.startswith("SIP/2.0 ")]
        assert codes and codes[-1] == 503, codes
        # ng timeout 500 ms x 2 retries: the caller hears 503 in about a second at most, not a hang.
        assert elapsed < 5, f"the caller waited {elapsed:.1f} s"
        log = ansible_host("proxy2").run("journalctl -u kamailio --no-pager -n 50").stdout
        assert "media relay unavailable" in log
    finally:
        media1.run("systemctl start rtpengine-daemon")
        media1.run("systemctl is-active rtpengine-daemon")


# Holds rtpengine's ng port (no SO_REUSEADDR: the daemon's bind must fail) while the daemon is
# stopped, so its next start fails; exits once rtpengine said so ("once"), or after SECONDS (or when
# killed).
PORT_HOLDER = """
import socket, subprocess, sys, time
address, mode, seconds, since = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
held.bind((address, 2223))
open("/run/itsp-port-held", "w").close()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    if mode == "once" and "Address already in use" in subprocess.run(
            ["journalctl", "-u", "rtpengine-daemon", "--since", "@" + since, "-o", "cat", "--no-pager"],
            capture_output=True, text=True).stdout:
        break
    time.sleep(0.1)
"""


# rtpengine's own words (10.5) when its ng port is taken.
PORT_TAKEN = (f"Failed to open UDP NG control connection port ({P['media1']['private_ipv4']}:2223): "
              "Address already in use")


def _hold_the_ng_port(mode, seconds):
    """Stop media1's rtpengine and hold its ng port (in the background); returns once it is held."""
    lab_exec("media1", "systemctl", "stop", "rtpengine-daemon")
    lab_exec("media1", "rm", "-f", "/run/itsp-port-held")
    since = lab_exec("media1", "date", "+%s")
    lab_exec("media1", "sh", "-c", f"setsid python3 -c '{PORT_HOLDER}' {P['media1']['private_ipv4']} {mode} "
                                   f"{seconds} {since} </dev/null >/dev/null 2>&1 &")
    for _ in range(50):
        if lab_exec("media1", "sh", "-c", "test -e /run/itsp-port-held && echo held") == "held":
            return
        time.sleep(0.1)
    raise AssertionError("the port holder did not bind rtpengine's ng port")


def _relay_answers():
    return lab_exec("media1", "sh", "-c", "rtpengine-ctl -ip 127.0.0.1 -port 9900 list numsessions >/dev/null "
                                          "&& systemctl is-active rtpengine-daemon")


def _let_go_and_start_the_relay():
    """Whatever a test left: the holder gone, rtpengine running again."""
    lab_exec("media1", "sh", "-c", "pkill -f itsp-port-hel[d]; true")
    for _ in range(50):
        if lab_exec("media1", "sh", "-c", "pgrep -f itsp-port-hel[d] >/dev/null || echo gone") == "gone":
            break
        time.sleep(0.1)
    lab_exec("media1", "sh", "-c", "systemctl reset-failed rtpengine-daemon; systemctl start rtpengine-daemon")


def test_a_start_that_fails_once_is_tried_again_and_its_journal_reported():
    # What the roles' restart handlers run (service_restart): the first start finds its port taken and
    # fails; the holder lets go; the second start, 2 s later, works. The failed attempt's journal lines
    # (rtpengine's own words) come back in the result and in a warning, which converge() prints.
    try:
        _hold_the_ng_port("once", 30)
        got = run_module("media1", "itsp.cluster.service_restart", "name=rtpengine-daemon delay=2")
        print(f"held port, restart: attempts {got.get('attempts')}, first attempt {got.get('failed_attempts')}")
        assert not got["failed"] and got["attempts"] == 2, got
        journal = " | ".join(got["failed_attempts"][0]["journal"])
        assert PORT_TAKEN in journal, journal
        warnings = restart_warnings(oneline_results(f"media1 | CHANGED => {json.dumps(got)}"))
        assert len(warnings) == 1 and PORT_TAKEN in warnings[0], got.get("warnings")
        assert warnings[0].startswith("rtpengine-daemon failed to start on attempt 1 and started on attempt 2"), \
            warnings
    finally:
        _let_go_and_start_the_relay()
    assert _relay_answers() == "active"


def test_negative_control_a_start_that_keeps_failing_fails_with_the_journal():
    try:
        _hold_the_ng_port("hold", 30)
        got = run_module("media1", "itsp.cluster.service_restart", "name=rtpengine-daemon delay=1")
        print(f"port held throughout: {got.get('msg')}")
        assert got["failed"] and got["attempts"] == 2, got
        assert got["msg"].startswith("rtpengine-daemon did not start (2 attempts, 1 s apart). Last attempt: "), got
        assert "-- its journal: " in got["msg"] and PORT_TAKEN in got["msg"], got
    finally:
        _let_go_and_start_the_relay()
    assert _relay_answers() == "active"


@pytest.mark.parametrize("extra,message", [
    ({"rtpengine_port_min": 40000, "rtpengine_port_max": 30000},
     "rtpengine_port_min/rtpengine_port_max: 40000-30000 is not an ascending range of ports"),
    ({"rtpengine_port_min": 30000, "rtpengine_port_max": 30099, "rtpengine_max_calls": 200},
     "rtpengine_port_min/rtpengine_port_max: 30000-30099 holds 100 ports, but rtpengine_max_calls=200 plus "
     "rtpengine_calls_per_second=16 x rtpengine_delete_delay=2 (ended calls rtpengine holds until then) make 232 "
     "sessions, which need 928 ports"),
    ({"rtpengine_interfaces": [{"name": "external", "address": "198.18.0.99", "advertise": "203.0.113.21"}]},
     "rtpengine_interfaces: 198.18.0.99 (external) is not bound on media1"),
    ({"rtpengine_interfaces": [{"name": "external", "address": "198.18.0.21", "advertise": "198.18.0.21"}]},
     "rtpengine_interfaces: advertise '198.18.0.21' (external) must be a public IPv4 address that is NOT bound here"),
    ({"rtpengine_ng_address": "203.0.113.21"},
     "rtpengine_ng_address: '203.0.113.21' must be loopback or a private address"),
])
def test_bad_media_input_stops_before_touching_the_host(extra, message):
    media1 = ansible_host("media1")
    before = (media1.check_output("pidof rtpengine"), media1.check_output("sha256sum /etc/rtpengine/rtpengine.conf"))
    rc, failures = converge("media1", extra)
    assert rc != 0
    assert failures and failures[0].startswith(message), failures
    assert (media1.check_output("pidof rtpengine"),
            media1.check_output("sha256sum /etc/rtpengine/rtpengine.conf")) == before
