"""Metrics scraped by a real Prometheus (Debian's package on media1, the group `monitoring`): the
proxies' xhttp_prom and rtpengine's /metrics on private addresses only, asked through
Prometheus' HTTP API after real SIP traffic. Runs after test_cluster.py (file order): the
values are compared with what was there before this test's own traffic."""

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from testlib import LAST_RUN, converge, platforms, run_module, sip

P = platforms()
PROXIES = ["proxy1", "proxy2", "proxy3"]
PROMETHEUS = "http://198.18.0.21:9090"
USERS = ["metrics-a", "metrics-b", "metrics-c"]
UP = 'up{job=~"kamailio|rtpengine"}'


def pub(name):
    return P[name]["public_ipv4"]


def query(expr):
    """{node: value} of an instant query."""
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as res:  # noqa: S310 (a fixed http:// URL on the lab bridge)
        body = json.load(res)
    assert body["status"] == "success", body
    return {r["metric"].get("node", ""): float(r["value"][1]) for r in body["data"]["result"]}


def until(expr, expected, timeout=20):
    """Poll Prometheus (bounded) until the query gives `expected` ({node: value}); returns the last answer."""
    deadline = time.monotonic() + timeout
    got = query(expr)
    while got != expected and time.monotonic() < deadline:
        time.sleep(1)
        got = query(expr)
    return got


def test_every_target_is_up():
    got = until(UP, {n: 1.0 for n in PROXIES + ["media1"]}, timeout=30)
    print("up:", got)
    assert got == {n: 1.0 for n in PROXIES + ["media1"]}


def test_metrics_listen_on_the_private_address_only():
    """Through the NAT (public side) neither metrics port answers; the private side does (above)."""
    probe = ("import socket\nfor a in ('203.0.113.11:9494', '203.0.113.21:9495'):\n"
             "    h, p = a.split(':')\n    s = socket.socket(); s.settimeout(2)\n"
             "    try:\n        s.connect((h, int(p))); print(a, 'open')\n"
             "    except OSError:\n        print(a, 'closed')\n    s.close()")
    out = subprocess.run(["ip", "netns", "exec", "itsp-pub", "python3", "-c", probe],
                         capture_output=True, text=True, timeout=20, check=True).stdout.split("\n")
    print(out)
    assert [line.split()[1] for line in out if line] == ["closed", "closed"]


@pytest.fixture(scope="module")
def before():
    until(UP, {n: 1.0 for n in PROXIES + ["media1"]}, timeout=30)
    return {
        "registered": query("kamailio_usrloc_registered_users"),
        "4xx": query("kamailio_tmx_4xx_transactions"),
        "486": query("kamailio_core_rcv_replies_486"),
    }


def rpc(name, method, *params):
    return run_module(name, "itsp.cluster.kamailio_rpc", json.dumps({"method": method, "params": list(params)}))


def test_registrations_per_node(before):
    """The earlier tests' users removed (they would expire at their own time), three users
    register at proxy2; DMQ replicates them: every node holds exactly three."""
    for name in PROXIES:
        for aor in set(re.findall(r'"AoR": "([^"]+)"', json.dumps(rpc(name, "ul.dump").get("result")))):
            rpc(name, "ul.rm", "location", aor)
    cleared = until("kamailio_usrloc_registered_users", {n: 0.0 for n in PROXIES})
    print("registered users before:", before["registered"], "after removing them:", cleared)
    assert cleared == {n: 0.0 for n in PROXIES}
    for i, user in enumerate(USERS):
        reg = sip.register(pub("proxy2"), user, pub("proxy2"), contact_port=5090 + i, local_port=5071 + i)
        assert reg.ok, reg.stdout[-800:]
    expected = {n: float(len(USERS)) for n in PROXIES}
    got = until("kamailio_usrloc_registered_users", expected)
    print("registered users after three REGISTERs at proxy2:", got)
    assert got == expected


def test_active_call_and_relay_session_then_none(before):
    """One call in progress through proxy1: proxy1 shows one more active dialog, media1 one more
    relay session; when it ends, the dialog count is back. (Sessions of earlier calls stay for
    rtpengine's delete-delay: wait until there are none.)"""
    idle = until('rtpengine_sessions{type="own"}', {"media1": 0.0}, timeout=45)
    assert idle == {"media1": 0.0}
    before_dialogs = query("kamailio_dialog_active_dialogs{node='proxy1'}")
    with sip.Uas(port=5085, timeout=30) as carrier:
        call = sip.Call(pub("proxy1"), "+4930999100", pub("proxy1"), local_port=5076, rtp_port=20060,
                        hold_ms=12000, timeout=25)
        dialogs = until("kamailio_dialog_active_dialogs{node='proxy1'}",
                        {"proxy1": before_dialogs["proxy1"] + 1}, timeout=10)
        sessions = until('rtpengine_sessions{type="own"}', {"media1": 1.0}, timeout=10)
        done = call.finish(timeout=25)
        carrier.finish(timeout=10)
    print("during the call: dialogs", dialogs, "relay sessions", sessions)
    assert done.ok, done.stdout[-800:]
    assert dialogs == {"proxy1": before_dialogs["proxy1"] + 1}
    assert sessions == {"media1": 1.0}
    after = until("kamailio_dialog_active_dialogs{node='proxy1'}", before_dialogs)
    print("after the call: dialogs", after)
    assert after == before_dialogs


def test_sip_responses_per_node(before):
    """A busy carrier (486) through proxy2: proxy2 counts one more 4xx transaction and one more 486
    received; the other proxies none."""
    with sip.Uas(port=5085, timeout=12, scenario="uas_busy.xml") as carrier:
        busy = sip.call(pub("proxy2"), "+4930999101", pub("proxy2"), local_port=5077, timeout=10)
        carrier.finish(timeout=8)
    assert any(t.startswith("SIP/2.0 486") for t in busy.received()), busy.stdout[-800:]
    expected_4xx = {n: before["4xx"][n] + (1 if n == "proxy2" else 0) for n in PROXIES}
    expected_486 = {n: before["486"][n] + (1 if n == "proxy2" else 0) for n in PROXIES}
    got_4xx = until("kamailio_tmx_4xx_transactions", expected_4xx)
    got_486 = until("kamailio_core_rcv_replies_486", expected_486)
    print("4xx transactions:", got_4xx, "486 received:", got_486)
    assert got_4xx == expected_4xx
    assert got_486 == expected_486


def test_every_dashboard_query_has_data():
    """The shipped Grafana dashboard asks for what Prometheus really has."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    with open(os.path.join(project, "roles", "prometheus", "files", "grafana", "itsp-cluster.json")) as fh:
        dashboard = json.load(fh)
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    empty = [e for e in exprs if not query(e)]
    print(f"{len(exprs) - len(empty)} of {len(exprs)} dashboard queries have data")
    assert empty == []


def test_status_playbook_agrees_with_prometheus():
    """playbooks/status.yml (RPC on each node) and Prometheus (scraped) count the same contacts."""
    rc, failures = converge("all", playbook="playbooks/status.yml")
    assert rc == 0, failures
    table = next(json.loads(m.group(1))["msg"] for m in re.finditer(r"^\S+ \| SUCCESS => (\{.*\})$",
                                                                     LAST_RUN["stdout"], re.M)
                 if str((json.loads(m.group(1)).get("msg") or [""])[0]).startswith("node"))
    print("\n".join(table))
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == set(PROXIES + ["media1"])
    assert rows["media1"][1] == "relay+monitoring"
    contacts = until("kamailio_usrloc_location_contacts",
                     {n: float(rows[n][6]) for n in PROXIES})
    assert contacts == {n: float(rows[n][6]) for n in PROXIES}, (contacts, table)
