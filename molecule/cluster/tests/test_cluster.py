"""A Kamailio cluster that behaves like cloud software: DMQ replication, reloads without
restarts, stateless mode, JSON logs. The tests run in file order and share the cluster."""

import json
import os
import subprocess
import time

import pytest
import testinfra.utils.ansible_runner
from testlib import ansible_host, converge, converge_killed_at, platforms, run_module, sip

from lab import ng
from lab.rest_router import RestRouter

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kamailio")

P = platforms()
PROXIES = ["proxy1", "proxy2", "proxy3"]
BASE_SETS = [{"id": 1, "algorithm": 8, "destinations": [{"uri": "sip:203.0.113.200:5085", "priority": 1}]}]


def pub(name):
    return P[name]["public_ipv4"]


def rpc(name, method, *params):
    return run_module(name, "itsp.cluster.kamailio_rpc", json.dumps({"method": method, "params": list(params)}))


def main_pids():
    return {n: ansible_host(n).check_output("cat /run/kamailio/kamailio.pid") for n in PROXIES}


def wait_replicated(user, on, timeout=20):
    """Replication is asynchronous (and peers re-handshake after a restart): wait, bounded, until
    every proxy in `on` holds the user's contact."""
    deadline = time.monotonic() + timeout
    missing = list(on)
    while missing and time.monotonic() < deadline:
        missing = [n for n in missing if f"{user}@203.0.113.200" not in json.dumps(rpc(n, "ul.dump").get("result"))]
        if missing:
            time.sleep(0.5)
    assert not missing, f"{user} not replicated to {missing} within {timeout} s"


def call_reaches(proxy, user, uas_port, local_port=5072):
    with sip.Uas(port=uas_port) as uas:
        call = sip.call(pub(proxy), user, pub(proxy), local_port=local_port)
        got = uas.finish()
    return call, got


def test_listeners_are_private_or_loopback(host):
    """SIP binds the private address; DMQ the private address; RPC is a UNIX socket."""
    me = P[host.backend.get_hostname()]
    listening = host.check_output("ss -Hlnu | awk '{print $4}'").split()
    kam = [a for a in listening if a.endswith((":5060", ":5062"))]
    assert sorted(kam) == [f"{me['private_ipv4']}:5060", f"{me['private_ipv4']}:5062"], listening
    assert host.file("/run/kamailio/kamailio_rpc.sock").is_socket
    assert not [a for a in host.check_output("ss -Hlnt | awk '{print $4}'").split() if a.endswith(":5062")]


def test_firewall_hides_control_ports_from_the_internet():
    """1-to-1 NAT maps every port: without the firewall rtpengine's ng answered from outside."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    probe = (f"import sys; sys.path.insert(0, {project!r}); from lab import ng\n"
             "try:\n    ng.request(('203.0.113.21', 2223), 'ping', timeout=2); print('answered')\n"
             "except TimeoutError:\n    print('no answer')")
    out = subprocess.run(["ip", "netns", "exec", "itsp-pub", "python3", "-c", probe],
                         capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    assert out == "no answer"
    # ...while the management host still reaches it on the private address, and SIP is open.
    assert ng.request(("198.18.0.21", 2223), "ping") == {"result": "pong"}
    assert sip.options(pub("proxy1")).ok


def test_every_proxy_sees_its_dmq_peers():
    for name in PROXIES:
        nodes = rpc(name, "dmq.list_nodes")["result"]
        hosts = {n["host"] for n in nodes if n.get("status") == "active"}
        assert {P[p]["private_ipv4"] for p in PROXIES} <= hosts, (name, nodes)


def test_registration_at_one_proxy_is_reachable_through_another():
    reg = sip.register(pub("proxy1"), "dave", pub("proxy1"), contact_port=5080)
    assert reg.ok, reg.stdout[-800:]
    wait_replicated("dave", ["proxy2", "proxy3"])
    call, got = call_reaches("proxy2", "dave", 5080)
    assert call.ok and got.ok, call.stdout[-800:]


def test_losing_a_node_keeps_every_registration():
    ansible_host("proxy1").run("systemctl stop kamailio")
    call, got = call_reaches("proxy3", "dave", 5080)
    assert call.ok and got.ok, call.stdout[-800:]


def test_rpc_to_a_stopped_kamailio_fails_clearly():
    result = rpc("proxy1", "core.version")
    assert result.get("failed")
    assert "Kamailio is not running" in result["msg"], result["msg"]


def test_a_joining_node_syncs_existing_registrations():
    ansible_host("proxy1").run("systemctl start kamailio")
    deadline = time.monotonic() + 20
    dump = ""
    while time.monotonic() < deadline:
        dump = json.dumps(rpc("proxy1", "ul.dump").get("result"))
        if "dave@203.0.113.200:5080" in dump:
            break
        time.sleep(1)
    assert "dave@203.0.113.200:5080" in dump, dump[:2000]


def test_new_dispatcher_destination_reloads_without_restart():
    before = main_pids()
    sets = [{"id": 1, "algorithm": 8, "destinations": [{"uri": "sip:203.0.113.200:5085", "priority": 1},
                                                       {"uri": "sip:203.0.113.200:5086", "priority": 10}]}]
    rc, failures = converge("kamailio", {"kamailio_dispatcher_sets": sets})
    assert rc == 0, failures
    assert main_pids() == before
    for name in PROXIES:
        listed = json.dumps(rpc(name, "dispatcher.list")["result"])
        assert "sip:203.0.113.200:5086" in listed, listed
    # The new destination has the higher priority (algorithm 8): calls to unknown numbers go there.
    call, got = call_reaches("proxy2", "+4930999000", 5086, local_port=5075)
    assert call.ok and got.ok, call.stdout[-800:]


def test_a_run_killed_before_its_reload_is_finished_by_the_next_run():
    """site.yml killed right after the proxies' new dispatcher list was written, before the play's
    handlers reloaded it: the next run, which finds no file to change, still loads it."""
    sets = [{"id": 1, "algorithm": 8, "destinations": [{"uri": "sip:203.0.113.200:5085", "priority": 1},
                                                       {"uri": "sip:203.0.113.200:5087", "priority": 10}]}]
    before = main_pids()
    converge_killed_at("kamailio", {"kamailio_dispatcher_sets": sets}, "Settle what the changed files need")
    for name in PROXIES:
        on_disk = ansible_host(name).check_output("cat /etc/kamailio/dispatcher.list")
        listed = json.dumps(rpc(name, "dispatcher.list")["result"])
        # The state a crash leaves (what shows that this test can fail): written, not loaded.
        assert "203.0.113.200:5087" in on_disk and "5087" not in listed, (name, listed)
        assert ansible_host(name).file("/var/lib/itsp-cluster/kamailio.apply-pending").exists, name
    rc, failures = converge("kamailio", {"kamailio_dispatcher_sets": sets})
    assert rc == 0, failures
    assert main_pids() == before
    for name in PROXIES:
        assert "sip:203.0.113.200:5087" in json.dumps(rpc(name, "dispatcher.list")["result"]), name
        assert not ansible_host(name).file("/var/lib/itsp-cluster/kamailio.apply-pending").exists, name


def test_media_relay_set_change_reloads_without_restart():
    before = main_pids()
    nodes = ["udp:198.18.0.21:2223", "udp:198.18.0.21:2299"]
    rc, failures = converge("kamailio", {"kamailio_rtpengine_nodes": nodes})
    assert rc == 0, failures
    assert main_pids() == before
    shown = json.dumps(rpc("proxy3", "rtpengine.show", "all")["result"])
    assert "udp:198.18.0.21:2299" in shown, shown
    rc, failures = converge("kamailio")
    assert rc == 0, failures
    assert "udp:198.18.0.21:2299" not in json.dumps(rpc("proxy3", "rtpengine.show", "all")["result"])


def test_stateless_mode_calls_still_complete():
    rc, failures = converge("kamailio", {"kamailio_stateless": True})
    assert rc == 0, failures
    assert "#!define WITH_STATELESS\n" in ansible_host("proxy2").file("/etc/kamailio/kamailio-local.cfg").content_string
    reg = sip.register(pub("proxy2"), "erin", pub("proxy2"), contact_port=5080)
    assert reg.ok
    wait_replicated("erin", ["proxy3"])
    call, got = call_reaches("proxy3", "erin", 5080)
    assert call.ok and got.ok, call.stdout[-800:]
    call, got = call_reaches("proxy1", "+4930999001", 5085, local_port=5075)
    assert call.ok and got.ok, call.stdout[-800:]


def test_json_logs_carry_the_call_id():
    rc, failures = converge("proxy2", {"kamailio_log_target": "json"})
    assert rc == 0, failures
    call, got = call_reaches("proxy2", "+4930999002", 5085, local_port=5075)
    assert call.ok and got.ok
    call_id = sip.header_values(call.messages[0][1], "Call-ID")[0]
    lines = ansible_host("proxy2").check_output("journalctl -u kamailio --no-pager -o cat -n 200").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    mine = [r for r in records if r.get("callid") == call_id]
    assert mine, lines[-20:]
    assert mine[0]["logprefix"].startswith("proxy2 {")
    rc, failures = converge("proxy2")
    assert rc == 0, failures


def test_rest_hook_routes_the_call_where_the_service_says():
    """http_async_client (built from Debian's source on the host) asks a routing service on the
    private network; the call goes to the URI it answers."""
    url = "http://198.18.0.1:18080/route"
    rc, failures = converge("proxy3", {"kamailio_rest_routing_url": url})
    assert rc == 0, failures
    with RestRouter("198.18.0.1", 18080, "sip:203.0.113.200:5087") as router:
        call, got = call_reaches("proxy3", "+4930555777", 5087, local_port=5075)
    assert call.ok and got.ok, call.stdout[-800:]
    call_id = sip.header_values(call.messages[0][1], "Call-ID")[0]
    assert router.queries == [{"path": "/route", "ruri": "sip:+4930555777@203.0.113.13",
                               "from": "sip:caller@203.0.113.200:5075", "callid": call_id}]
    # The service gone: the call falls back to the dispatcher set instead of hanging.
    call, got = call_reaches("proxy3", "+4930555778", 5085, local_port=5075)
    assert call.ok and got.ok, call.stdout[-800:]


@pytest.mark.parametrize("extra,message", [
    ({"kamailio_rest_routing_url": "ftp://198.18.0.1/route"},
     "kamailio_rest_routing_url: 'ftp://198.18.0.1/route' is not an http:// or https:// URL."),
    ({"kamailio_dispatcher_sets": [{"id": 1, "destinations": [{"uri": "carrier.example.net"}]}]},
     "kamailio_dispatcher_sets: 'carrier.example.net' in set 1 is not a SIP URI"),
    ({"kamailio_dmq_peers": ["198.18.0.99"]},
     "kamailio_dmq_peers: 198.18.0.99 is not the private address of a host in the cluster group"),
    ({"kamailio_dispatcher_route_set": 7},
     "kamailio_dispatcher_route_set: set 7 is not among kamailio_dispatcher_sets"),
])
def test_bad_cluster_input_stops_in_preflight(extra, message):
    before = main_pids()
    rc, failures = converge("proxy3", extra)
    assert rc != 0
    assert failures and failures[0].startswith(message), failures
    assert main_pids() == before
