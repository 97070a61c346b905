"""Call detail records, one per call: proxy1 writes them to PostgreSQL on db1 (acc_cdrs; its
subscribers are in the database, so kamailio_cdr_target auto = database), proxy2 as JSON lines in
its journal (acc_json). A completed call and a busy one through each; each must leave exactly one
record, on its own proxy only (the dialogs replicate over DMQ: the peer must not write one too)."""

import json
import time

import pytest
from subscribers import password, pub
from testlib import ansible_host, sip

PHONES, CARRIER = "203.0.113.200", "198.51.100.200"
HOLD_S = 3.0


def call_id(result):
    sent = [text for direction, text in result.messages if direction == "sent" and text.startswith("INVITE ")]
    return sip.header_values(sent[0], "Call-ID")[0]


def place_calls(proxy, number, local_port):
    """bob calls out through `proxy`: one call the carrier answers (held HOLD_S), one it rejects
    with 486; returns their Call-IDs."""
    with sip.Uas(port=5085, source=CARRIER, timeout=20) as uas:
        done = sip.call(pub(proxy), number, pub(proxy), source=PHONES, local_port=local_port, timeout=15,
                        hold_ms=int(HOLD_S * 1000), rtp_port=20040, auth=("bob", password("bob")))
        uas.finish()
    assert done.ok, done.stdout[-800:]
    with sip.Uas(port=5085, source=CARRIER, timeout=10, scenario="uas_busy.xml") as uas:
        busy = sip.call(pub(proxy), number + "9", pub(proxy), source=PHONES, local_port=local_port + 1,
                        timeout=10, rtp_port=20050, auth=("bob", password("bob")))
        uas.finish(timeout=8)
    assert any(t.startswith("SIP/2.0 486") for t in busy.received()), busy.stdout[-800:]
    return call_id(done), call_id(busy)


def db_rows(ids):
    """The acc_cdrs rows of these Call-IDs on db1, as dicts."""
    out = ansible_host("db1").check_output(
        "runuser -u postgres -- psql -d kamailio -tA -F '|' -c \"SELECT call_id, node, caller, callee, src_ip, "
        "sip_code, sip_reason, duration, extract(epoch FROM end_time - start_time), start_time, setup_time "
        "FROM acc_cdrs ORDER BY id\"")
    keys = ["call_id", "node", "caller", "callee", "src_ip", "sip_code", "sip_reason", "duration", "span",
            "start_time", "setup_time"]
    rows = [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]
    return [row for row in rows if row["call_id"] in ids]


def journal_records(name, ids):
    """The JSON CDRs (facility local1) in a proxy's journal for these Call-IDs."""
    lines = ansible_host(name).check_output("journalctl --no-pager -o cat SYSLOG_FACILITY=17").splitlines()
    records = []
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("call_id") in ids:
            records.append(record)
    return records


@pytest.fixture(scope="module")
def db_calls():
    return place_calls("proxy1", "+4930111801", 5081)


@pytest.fixture(scope="module")
def journal_calls():
    return place_calls("proxy2", "+4930111811", 5083)


def test_database_mode_one_record_per_call(db_calls):
    done_id, busy_id = db_calls
    rows = sip_wait(lambda: db_rows([done_id, busy_id]), 2)
    print("acc_cdrs:", json.dumps(rows, indent=1))
    assert [r["call_id"] for r in rows] == [done_id, busy_id], rows
    done, busy = rows
    assert (done["node"], done["caller"], done["callee"], done["src_ip"], done["sip_code"]) == \
        ("proxy1", "bob", "+4930111801", PHONES, "200"), done
    assert HOLD_S - 0.5 <= float(done["duration"]) <= HOLD_S + 2.0, done
    # setup_time (the INVITE) is before the answer; the row's own times span the duration.
    assert abs(float(done["span"]) - float(done["duration"])) <= 1.0, done
    assert (busy["node"], busy["caller"], busy["callee"], busy["sip_code"], busy["sip_reason"]) == \
        ("proxy1", "bob", "+49301118019", "486", "Busy Here"), busy
    assert float(busy["duration"]) == 0, busy
    # Not written twice: the peer that holds the replicated dialogs writes nothing for them.
    assert journal_records("proxy2", [done_id, busy_id]) == []


def test_journal_mode_one_json_record_per_call(journal_calls):
    done_id, busy_id = journal_calls
    records = sip_wait(lambda: journal_records("proxy2", [done_id, busy_id]), 2)
    print("journal CDRs on proxy2:", json.dumps(records, indent=1))
    by_id = {r["call_id"]: r for r in records}
    assert len(records) == 2 and set(by_id) == {done_id, busy_id}, records
    done, busy = by_id[done_id], by_id[busy_id]
    assert (done["node"], done["caller"], done["callee"], done["src_ip"], str(done["sip_code"])) == \
        ("proxy2", "bob", "+4930111811", PHONES, "200"), done
    assert HOLD_S - 0.5 <= float(done["duration"]) <= HOLD_S + 2.0, done
    assert (busy["caller"], busy["callee"], str(busy["sip_code"]), float(busy["duration"])) == \
        ("bob", "+49301118119", "486", 0.0), busy
    assert db_rows([done_id, busy_id]) == []
    assert journal_records("proxy1", [done_id, busy_id]) == []


def sip_wait(read, count, timeout=10.0):
    """CDRs are written as the call ends (the BYE's 200, the 486): poll, bounded."""
    deadline = time.monotonic() + timeout
    got = read()
    while len(got) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        got = read()
    return got
