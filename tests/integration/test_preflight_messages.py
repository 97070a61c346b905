"""The roles' preflight: one task per role (a fail with every broken rule's message), naming every variable to fix.

One ansible-playbook run on the controller (connection local, nothing installed or written): each
case is a host of a generated inventory with its own variables, and runs the role's preflight.yml
(include_role tasks_from, so the role's defaults and vars apply). The Molecule scenarios check the
same messages on lab hosts, with the live state unchanged."""

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What roles/kamailio/tasks/addresses.yml settles before the preflight runs.
KAMAILIO_BASE = {
    "__kamailio_listen": "198.18.0.11", "__kamailio_advertise": "203.0.113.11", "__kamailio_cdr_target": "journal",
    "__kamailio_topology": {"relays": ["udp:198.18.0.21:2223"], "dispatcher_sets": [], "carriers": [],
                            "dmq_peers": ["198.18.0.12"], "cluster": ["198.18.0.11", "198.18.0.12"]},
    "kamailio_auth_secret": "a-lab-secret-of-32-characters-00", "kamailio_dmq_enabled": True,
}
KAMAILIO_CASES = {
    "good": ({}, None),
    "advertise": ({"__kamailio_advertise": "not-an-ip"},
                  ["kamailio_advertise_address: 'not-an-ip' is not a usable IPv4 address"]),
    "advertise_bound": ({"__kamailio_advertise": "198.18.0.11"},
                        ["kamailio_advertise_address: 198.18.0.11 is the address Kamailio binds"]),
    "sip_port": ({"kamailio_sip_port": 70000}, ["kamailio_sip_port: '70000' is not a port (1-65535)"]),
    "trusted": ({"kamailio_trusted_networks": ["198.18.0.0/24", "198.18.0.0", "300.1.1.1/24"]},
                ["kamailio_trusted_networks: '198.18.0.0', '300.1.1.1/24' is not an IPv4 CIDR"]),
    "relay_public": ({"__kamailio_topology": dict(KAMAILIO_BASE["__kamailio_topology"],
                                                  relays=["udp:198.18.0.21:2223", "udp:203.0.113.21:2223",
                                                          "198.18.0.22"])},
                     ["kamailio_rtpengine_nodes: '198.18.0.22', 'udp:203.0.113.21:2223' must be udp:ADDRESS:PORT"]),
    "dispatcher_uri": ({"__kamailio_topology": dict(KAMAILIO_BASE["__kamailio_topology"], dispatcher_sets=[
        {"id": 1, "destinations": [{"uri": "sip:203.0.113.50:5060"}, {"uri": "carrier.example.net"}]}])},
        ["kamailio_dispatcher_sets: 'carrier.example.net' in set 1 is not a SIP URI"]),
    "route_set": ({"kamailio_dispatcher_route_set": 7},
                  ["kamailio_dispatcher_route_set: set 7 is not among kamailio_dispatcher_sets (none)"]),
    "dmq_peer": ({"__kamailio_topology": dict(KAMAILIO_BASE["__kamailio_topology"], dmq_peers=["198.18.0.99"])},
                 ["kamailio_dmq_peers: 198.18.0.99 is not the private address of a host in the cluster group"]),
    "dmq_off_peer_ignored": ({"kamailio_dmq_enabled": False, "__kamailio_topology": dict(
        KAMAILIO_BASE["__kamailio_topology"], dmq_peers=["198.18.0.99"])}, None),
    "rest_url": ({"kamailio_rest_routing_url": "ftp://198.18.0.1/route"},
                 ["kamailio_rest_routing_url: 'ftp://198.18.0.1/route' is not an http:// or https:// URL."]),
    "plaintext": ({"kamailio_subscribers": [{"username": "carol", "password": "in-the-clear"}],
                   "kamailio_subscriber_plaintext_passwords": "refuse"},
                  ["kamailio_subscribers: the password of carol is plain text, not from Ansible Vault"]),
    "auth_db_url": ({"kamailio_subscribers_source": "database",
                     "kamailio_auth_db_url": "mongodb://kamailio:pw@198.18.0.30/kamailio"},
                    ["kamailio_auth_db_url: 'mongodb://kamailio:***@198.18.0.30/kamailio' must be postgres://"]),
    "secret": ({"kamailio_auth_secret": "short"}, ["kamailio_auth_secret must be at least 16 characters"]),
    "carriers": ({"kamailio_carrier_networks": ["carrier.example"]},
                 ["kamailio_carrier_networks: carrier.example is not an IPv4 address or network"]),
    # Two broken rules: both are named, in the preflight's order.
    "two": ({"kamailio_sip_port": 0, "kamailio_blocked_prefixes": ["00x"]},
            ["kamailio_sip_port: '0' is not a port", "kamailio_blocked_prefixes: 00x must be dialled digits"]),
}

RTPENGINE_BASE = {
    "__rtpengine_interfaces": [{"name": "external", "address": "198.18.0.21", "advertise": "203.0.113.21"}],
    "__rtpengine_bound": ["198.18.0.21"], "__rtpengine_ng_address": "198.18.0.21",
}
RTPENGINE_CASES = {
    "good": ({}, None),
    "unbound": ({"__rtpengine_bound": ["198.18.0.22"]},
                ["rtpengine_interfaces: 198.18.0.21 (external) is not bound on rtpengine_unbound"]),
    "not_an_address": ({"__rtpengine_interfaces": [{"name": "external", "address": "x", "advertise": ""}],
                        "__rtpengine_bound": ["x"]},
                       ["rtpengine_interfaces: 'x' (external) is not a usable IPv4 address"]),
    "advertise_bound": ({"__rtpengine_interfaces": [{"name": "external", "address": "198.18.0.21",
                                                     "advertise": "198.18.0.21"}]},
                        ["rtpengine_interfaces: advertise '198.18.0.21' (external) must be a public IPv4 address"]),
    "shared": ({"__rtpengine_interfaces": [{"name": "a", "address": "198.18.0.21", "advertise": ""},
                                           {"name": "b", "address": "198.18.0.21", "advertise": ""}]},
               ["rtpengine_interfaces: 198.18.0.21, 198.18.0.21 repeats an address"]),
    "range": ({"rtpengine_port_min": 40000, "rtpengine_port_max": 30000},
              ["rtpengine_port_min/rtpengine_port_max: 40000-30000 is not an ascending range of ports"]),
    "calls": ({"rtpengine_port_min": 30000, "rtpengine_port_max": 30099, "rtpengine_max_calls": 100},
              ["rtpengine_port_min/rtpengine_port_max: 30000-30099 holds 100 ports, but rtpengine_max_calls=100"]),
    # 200 calls fit 30000-30999 (800 ports), but 12 calls/s held 30 s after their delete make 560
    # sessions: the relay would refuse calls (the bench_migrate retire phase before the fix).
    "held": ({"rtpengine_port_min": 30000, "rtpengine_port_max": 30999, "rtpengine_max_calls": 200,
              "rtpengine_calls_per_second": 12},
             ["rtpengine_port_min/rtpengine_port_max: 30000-30999 holds 1000 ports, but rtpengine_max_calls=200 plus "
              "rtpengine_calls_per_second=12 x rtpengine_delete_delay=30", "make 560 sessions, which need 2240 ports"]),
    "held_fit": ({"rtpengine_port_min": 30000, "rtpengine_port_max": 32239, "rtpengine_max_calls": 200,
                  "rtpengine_calls_per_second": 12}, None),
    "negative_rate": ({"rtpengine_calls_per_second": -1}, ["rtpengine_port_min/rtpengine_port_max: 30000-40000"]),
    "sip_overlap": ({"rtpengine_port_min": 5000, "rtpengine_port_max": 65000},
                    ["rtpengine_port_min/rtpengine_port_max: 5000-65000 overlaps SIP"]),
    "ng_public": ({"__rtpengine_ng_address": "203.0.113.21"},
                  ["rtpengine_ng_address: '203.0.113.21' must be loopback or a private address"]),
    "metrics": ({"rtpengine_metrics_enabled": True, "rtpengine_metrics_sources": ["nowhere"]},
                ["rtpengine_metrics_sources: nowhere is not an IPv4 address or CIDR"]),
}


def _run(tmp_path, role, base, cases):
    hosts = {f"{role}_{name}": dict(base, ansible_connection="local", ansible_python_interpreter=sys.executable,
                                    **extra) for name, (extra, _) in cases.items()}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"name": "Preflight only", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "The preflight", "ansible.builtin.include_role": {"name": f"itsp.cluster.{role}",
                                                                   "tasks_from": "preflight.yml"}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    res = subprocess.run(["ansible-playbook", "-i", str(inventory), str(play), "--forks", "4"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    out = json.loads(res.stdout[res.stdout.index("{"):])
    failures, tasks = {}, set()
    for task in out["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if result.get("failed"):
                failures[host.split("_", 1)[1]] = result.get("msg", "")
            elif result.get("action") == "ansible.builtin.fail":
                tasks.add(task["task"]["name"])
    return failures, out["stats"]


@pytest.mark.parametrize("role,base,cases", [("kamailio", KAMAILIO_BASE, KAMAILIO_CASES),
                                             ("rtpengine", RTPENGINE_BASE, RTPENGINE_CASES)])
def test_one_assert_names_every_broken_rule(tmp_path, role, base, cases):
    failures, stats = _run(tmp_path, role, base, cases)
    for name, (_, expected) in cases.items():
        if expected is None:
            assert name not in failures, (name, failures.get(name))
            continue
        msg = failures.get(name, "(passed)")
        assert msg.startswith(expected[0]), (name, msg)
        positions = [msg.find(text) for text in expected]
        assert -1 not in positions and positions == sorted(positions), (name, msg)
    # Exactly the bad cases failed; every good one got through its one check.
    assert sorted(failures) == sorted(n for n, (_, e) in cases.items() if e), failures


def test_the_preflight_is_one_task_per_role():
    for role in ("kamailio", "rtpengine"):
        with open(os.path.join(ROOT, "roles", role, "tasks", "preflight.yml")) as fh:
            tasks = yaml.safe_load(fh)
        # One fail task, whose message is templated only when a rule is broken.
        assert [t.get("ansible.builtin.fail") is not None and "when" in t for t in tasks] == [True], role
