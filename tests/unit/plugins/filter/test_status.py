"""The status table: rows from what the nodes answered, and how it reads."""
from ansible_collections.itsp.cluster.plugins.filter.status import status_row, status_table

GROUPS = {"kamailio": ["proxy1", "big1"], "rtpengine": ["media1", "big1"], "sipdb": ["db1"]}
CLOUD = {"provider": "aws", "zone": "eu-west-1a", "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11"}


def _proxy(draining=0, contacts=201, dialogs=3, peers=("active", "active", "pending"), down=False):
    if down:
        return {"results": [{"item": m, "failed": True, "msg": "no answer"}
                            for m in ("htable.get", "stats.get_statistics", "dmq.list_nodes")]}
    return {"results": [
        {"item": "htable.get", "result": {"item": {"name": "draining", "value": draining}}},
        {"item": "stats.get_statistics", "result": [f"usrloc:location_contacts = {contacts}",
                                                    f"dialog:active_dialogs = {dialogs}"]},
        {"item": "dmq.list_nodes", "result": [{"local": 1, "status": "active"}]
         + [{"local": 0, "status": s} for s in peers]}]}


def test_proxy_row_active_draining_down():
    row = status_row(CLOUD, "proxy1", GROUPS, _proxy())
    assert row == {"node": "proxy1", "role": "proxy", "where": "aws/eu-west-1a", "private": "198.18.0.11",
                   "public": "203.0.113.11", "state": "active", "registrations": 201, "calls": 3,
                   "sessions": "-", "dmq_peers": 2}
    assert status_row(CLOUD, "proxy1", GROUPS, _proxy(draining=1))["state"] == "draining"
    assert status_row(CLOUD, "proxy1", GROUPS, _proxy(down=True))["state"] == "down"


def test_relay_and_big_box_rows():
    relay = {"stdout": "Current sessions own: 7\nCurrent sessions foreign: 0\nCurrent sessions total: 7\n"}
    assert status_row(CLOUD, "media1", GROUPS, None, relay)["sessions"] == 7
    assert status_row(CLOUD, "media1", GROUPS, None, {"stdout": "", "rc": 1})["state"] == "down"
    big = status_row(CLOUD, "big1", GROUPS, _proxy(), {"stdout": "", "rc": 1})
    assert big["role"] == "proxy+relay" and big["state"] == "active (relay down)"


def test_a_relay_that_also_runs_prometheus_says_so():
    groups = dict(GROUPS, monitoring=["media1"])
    relay = {"stdout": "Current sessions own: 0\n"}
    assert status_row(CLOUD, "media1", groups, None, relay)["role"] == "relay+monitoring"


def test_table_has_a_header_and_one_line_per_node_in_order():
    rows = [status_row(CLOUD, "proxy1", GROUPS, _proxy()), status_row({}, "db1", GROUPS)]
    table = status_table(rows)
    assert table[0].split() == ["node", "role", "provider/zone", "private", "public", "state", "regs", "calls",
                                "sessions", "dmq", "peers"]
    assert table[1].startswith("db1") and table[2].startswith("proxy1")
    # The second column starts at the same place on every line.
    assert {line[8] for line in table} != {" "} and all(line[6:8] == "  " and line[8] != " " for line in table)
