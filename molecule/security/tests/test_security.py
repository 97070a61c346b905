"""Who may use the platform, tried from the public side with real SIP. The tests run in file
order and share the proxies: registrations made early are used later.

Public-side addresses (lab/labctl.py): subscribers' phones 203.0.113.200, the carrier
198.51.100.200 (the dispatcher set), the customer PBX trunk 198.51.100.201, strangers
198.51.100.202, a brute-force attacker 198.51.100.203, a second trunk 198.51.100.204.
"""

import json
import time

import pytest
from subscribers import P, password, pub
from testlib import ansible_host, converge, converge_killed_at, run_module, sip

PHONES, CARRIER, TRUNK, STRANGER, ATTACKER, TRUNK2 = (
    "203.0.113.200", "198.51.100.200", "198.51.100.201", "198.51.100.202", "198.51.100.203", "198.51.100.204")
CARRIER_PORT = 5085
WRONG = "not-the-password"  # what an attacker tries  # noqa: S105


def main_pid(name):
    return ansible_host(name).check_output("cat /run/kamailio/kamailio.pid")


def carrier(calls=1, timeout=15, scenario="uas.xml"):
    """The carrier stand-in: a SIPp UAS on the carrier's address, tracing what reaches it."""
    return sip.Uas(port=CARRIER_PORT, calls=calls, timeout=timeout, source=CARRIER, scenario=scenario)


def invites(uas_result):
    return [m for m in uas_result.received() if m.startswith("INVITE ")]


def test_register_without_credentials_is_challenged():
    res = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, user="alice")
    print("REGISTER, no credentials:", res["codes"])
    assert res["final"] == 401, res
    assert "WWW-Authenticate: Digest" in res["response"]
    assert 'realm="itsp.lab"' in res["response"] and "qop=" in res["response"]


def test_register_for_a_made_up_user_is_refused():
    res = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, user="mallory", password=WRONG)
    print("REGISTER, made-up user:", res["codes"])
    assert res["codes"] == [401, 401], res


def test_register_with_right_credentials_and_reachable_through_the_other_proxy():
    reg = sip.register(pub("proxy1"), "alice", pub("proxy1"), contact_port=5090, auth=("alice", password("alice")))
    assert reg.ok, reg.stdout[-800:]
    assert [int(m.split()[1]) for m in reg.received()] == [401, 200]
    # Replicated to proxy2 (DMQ): the carrier calls alice there and her phone rings.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        shown = json.dumps(run_module("proxy2", "itsp.cluster.kamailio_rpc",
                                      json.dumps({"method": "ul.lookup", "params": ["location", "alice"]})))
        if "sip:alice@" in shown:
            break
        time.sleep(0.5)
    with sip.Uas(port=5090, source=PHONES) as phone:
        call = sip.call(pub("proxy2"), "alice", pub("proxy2"), source=CARRIER, local_port=5072)
        got = phone.finish()
    print("carrier -> alice via proxy2:", call.first_response_code(), "phone:", got.ok)
    assert call.ok and got.ok, call.stdout[-800:]


def test_both_credential_stores_authenticate():
    """proxy1 asks PostgreSQL on db1, proxy2 its local table; both written from the same list."""
    for name in ("proxy1", "proxy2"):
        res = sip.request(pub(name), pub(name), source=PHONES, user="bob", password=password("bob"), expires=0)
        print(f"{name}:", res["codes"])
        assert res["codes"] == [401, 200], (name, res)
    stored = ansible_host("db1").check_output(
        "runuser -u postgres -- psql -d kamailio -tAc \"SELECT username || ':' || length(ha1) || ':' || password "
        "FROM subscriber ORDER BY username\"")
    # HA1 only: the password column is empty.
    assert stored.split() == ["alice:32:", "bob:32:"], stored


def test_wrong_password_is_refused_and_brute_force_is_banned_for_a_while():
    codes = []
    for _ in range(3):  # kamailio_auth_failures_ban
        res = sip.request(pub("proxy1"), pub("proxy1"), source=ATTACKER, user="bob", password=WRONG)
        codes.append(res["codes"])
    print("brute force, 3 wrong passwords:", codes)
    assert codes[:2] == [[401, 401], [401, 401]], codes
    # Banned now: even the right password gets no answer from this source...
    # (Expires: 0 - these checks must not leave bob a contact nobody answers on.)
    banned = sip.request(pub("proxy1"), pub("proxy1"), source=ATTACKER, user="bob", password=password("bob"),
                         expires=0)
    print("right password from the banned source:", banned["codes"])
    assert banned["codes"] == [], banned
    # ...while everyone else is served.
    other = sip.request(pub("proxy1"), pub("proxy1"), source=STRANGER, user="bob", password=password("bob"),
                        expires=0)
    assert other["final"] == 200, other
    # The ban expires (kamailio_ban_seconds: 15).
    time.sleep(16)
    after = sip.request(pub("proxy1"), pub("proxy1"), source=ATTACKER, user="bob", password=password("bob"),
                        expires=0)
    print("after the ban expired:", after["codes"])
    assert after["final"] == 200, after


def test_stranger_cannot_reach_the_carriers():
    with carrier(timeout=12) as uas:
        plain = sip.request(pub("proxy1"), pub("proxy1"), source=STRANGER, method="INVITE",
                            ruri=f"sip:+4930111222@{pub('proxy1')}", user="stranger")
        # Someone else's name with a made-up password.
        named = sip.request(pub("proxy2"), pub("proxy2"), source=STRANGER, method="INVITE",
                            ruri=f"sip:+4930111222@{pub('proxy2')}", user="alice", password=WRONG)
        # A forged in-dialog INVITE (To-tag, Route to the proxy) must not be loose-routed out.
        forged = sip.request(pub("proxy1"), pub("proxy1"), source=STRANGER, method="INVITE",
                             ruri=f"sip:+4930111222@{CARRIER}:{CARRIER_PORT}", user="stranger", to="x",
                             to_tag="forged1", route=f"sip:{pub('proxy1')};lr")
        got = uas.finish(timeout=5)
    print("stranger to the PSTN:", plain["codes"], "as alice with a guess:", named["codes"],
          "forged in-dialog:", forged["codes"])
    assert plain["final"] == 407, plain
    assert named["codes"] == [407, 407], named
    assert forged["final"] == 403, forged
    assert invites(got) == [], "the carrier received: " + "\n".join(invites(got))


def test_subscriber_trunk_reach_the_carrier_and_the_carrier_reaches_a_user():
    with carrier(calls=2, timeout=20) as uas:
        by_subscriber = sip.call(pub("proxy1"), "+4930111333", pub("proxy1"), source=PHONES, local_port=5073,
                                 auth=("bob", password("bob")))
        by_trunk = sip.call(pub("proxy2"), "+4930111444", pub("proxy2"), source=TRUNK, local_port=5074)
        got = uas.finish()
    print("subscriber -> carrier:", by_subscriber.ok, "trunk -> carrier:", by_trunk.ok)
    assert by_subscriber.ok, by_subscriber.stdout[-800:]
    assert by_trunk.ok, by_trunk.stdout[-800:]
    assert len(invites(got)) == 2 and got.ok, got.stdout[-800:]


def test_carrier_cannot_call_out_through_us():
    with carrier(timeout=8) as uas:
        res = sip.request(pub("proxy1"), pub("proxy1"), source=CARRIER, method="INVITE",
                          ruri=f"sip:+4930111555@{pub('proxy1')}", user="carrier", port=5060)
        got = uas.finish(timeout=4)
    print("carrier to an unknown number:", res["codes"])
    assert res["final"] == 404, res
    assert invites(got) == []


def test_blocked_prefix_is_refused_even_for_a_subscriber():
    with carrier(timeout=8) as uas:
        res = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, method="INVITE",
                          ruri=f"sip:+19005550100@{pub('proxy1')}", user="bob", password=password("bob"))
        got = uas.finish(timeout=4)
    print("bob to +1900...:", res["codes"])
    assert res["codes"][-1] == 403 and "Destination Blocked" in res["response"], res
    assert invites(got) == []


def test_call_limit_refuses_the_call_over_it_and_the_others_complete():
    # alice may hold 2 calls (max_calls: 2): the third is refused while they are up.
    with carrier(calls=2, timeout=25) as uas:
        first = sip.Call(pub("proxy1"), "+4930111601", pub("proxy1"), source=PHONES, local_port=5075,
                         rtp_port=20010, hold_ms=6000, auth=("alice", password("alice")))
        second = sip.Call(pub("proxy1"), "+4930111602", pub("proxy1"), source=PHONES, local_port=5076,
                          rtp_port=20020, hold_ms=6000, auth=("alice", password("alice")))
        time.sleep(2)
        third = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, method="INVITE",
                            ruri=f"sip:+4930111603@{pub('proxy1')}", user="alice", password=password("alice"))
        results = [first.finish(), second.finish()]
        got = uas.finish()
    print("third call:", third["codes"], "first two:", [r.ok for r in results])
    assert third["codes"][-1] == 403 and "Too Many Calls" in third["response"], third
    assert all(r.ok for r in results), [r.stdout[-500:] for r in results]
    assert len(invites(got)) == 2


def test_adding_a_trunk_reloads_without_restart():
    before = {n: main_pid(n) for n in ("proxy1", "proxy2")}
    with carrier(timeout=8) as uas:
        refused = sip.request(pub("proxy1"), pub("proxy1"), source=TRUNK2, method="INVITE",
                              ruri=f"sip:+4930111701@{pub('proxy1')}", user="pbx2")
        uas.finish(timeout=3)
    assert refused["final"] == 407, refused
    trunks = [{"name": "pbx1", "sources": ["198.51.100.201/32"], "max_calls": 5},
              {"name": "pbx2", "sources": ["198.51.100.204/32"]}]
    rc, failures = converge("kamailio", {"kamailio_trunks": trunks})
    assert rc == 0, failures
    assert {n: main_pid(n) for n in ("proxy1", "proxy2")} == before
    with carrier(timeout=15) as uas:
        call = sip.call(pub("proxy1"), "+4930111702", pub("proxy1"), source=TRUNK2, local_port=5077)
        got = uas.finish()
    assert call.ok and len(invites(got)) == 1, call.stdout[-800:]
    rc, failures = converge("kamailio")
    assert rc == 0, failures


def test_tls_options_and_register_with_the_public_address():
    opt = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, method="OPTIONS", port=5061, transport="tls")
    print("OPTIONS over TLS:", opt["codes"], opt.get("tls_version"))
    assert opt["final"] == 200 and opt["tls_version"] in ("TLSv1.2", "TLSv1.3"), opt
    reg = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, port=5061, transport="tls", user="alice",
                      password=password("alice"), expires=60)
    print("REGISTER over TLS:", reg["codes"])
    assert reg["codes"] == [401, 200], reg


def test_tls_call_record_routes_with_the_public_address_and_transport_tls():
    # bob's UDP phone is busy: the INVITE that reaches it shows how the proxy routed the TLS leg.
    reg = sip.register(pub("proxy1"), "bob", pub("proxy1"), contact_port=5091, local_port=5078,
                       auth=("bob", password("bob")))
    assert reg.ok, reg.stdout[-500:]
    with sip.Uas(port=5091, source=PHONES, scenario="uas_busy.xml", timeout=10) as phone:
        res = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, method="INVITE", port=5061, transport="tls",
                          ruri=f"sip:bob@{pub('proxy1')}", user="alice", to="bob", password=password("alice"))
        got = phone.finish()
    invite = sip.relayed_invite(got)
    assert invite, got.stdout[-800:]
    rrs = sip.header_values(invite, "Record-Route")
    vias = sip.header_values(invite, "Via")
    print("TLS INVITE as bob's phone saw it:", rrs, vias[0], res["codes"])
    assert any(pub("proxy1") in rr and "transport=tls" in rr for rr in rrs), rrs
    assert vias[0].startswith(f"SIP/2.0/UDP {pub('proxy1')}:5060;"), vias
    assert P["proxy1"]["private_ipv4"] not in invite
    assert res["codes"][-1] == 486, res


@pytest.mark.parametrize("version,refused", [("1.0", True), ("1.1", True), ("1.2", False)])
def test_tls_old_versions_are_refused_by_the_server(version, refused):
    res = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, method="OPTIONS", port=5061, transport="tls",
                      tls_version=version)
    print(f"TLS {version}:", res["error"] or res["codes"])
    if refused:
        # The client offered it; the server's alert refused it (not a client that never tried).
        assert res["error"] and "ALERT_PROTOCOL_VERSION" in res["error"], res
    else:
        assert res["final"] == 200 and res["tls_version"] == "TLSv1.2", res


def test_firewall_opens_tls_only_when_tls_is_on():
    rules = ansible_host("proxy1").check_output("nft list table inet itsp_cluster")
    assert "tcp dport 5061 accept" in rules, rules


# --- Bad input: a preflight error naming the variable; nothing on the hosts changes.

def _live_state(name):
    host = ansible_host(name)
    # (proxy1 keeps its subscribers in PostgreSQL: no local table, which sha256sum reports too.)
    return (main_pid(name),
            host.run("sha256sum /etc/kamailio/kamailio-local.cfg /etc/kamailio/dbtext/address "
                     "/etc/kamailio/dbtext/subscriber").stdout)


EXPIRED_CERT = """-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDDAwyMDMuMC4x
MTMuMTEwHhcNMjAwMTAxMDAwMDAwWhcNMjAwMTAyMDAwMDAwWjAXMRUwEwYDVQQD
DAwyMDMuMC4xMTMuMTEwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT1
-----END CERTIFICATE-----"""


@pytest.mark.parametrize("extra,message", [
    ({"kamailio_subscribers": [{"username": "carol", "password": "in-the-clear"}],
      "kamailio_subscriber_plaintext_passwords": "refuse"},
     "kamailio_subscribers: the password of carol is plain text, not from Ansible Vault"),
    ({"kamailio_trunks": [{"name": "pbx9", "sources": ["198.51.100.0/33"]}]},
     "kamailio_trunks[0].sources (pbx9): '198.51.100.0/33' is not an IPv4 address or network (CIDR)"),
    ({"kamailio_carrier_networks": ["carrier.example"]},
     "kamailio_carrier_networks: carrier.example is not an IPv4 address or network"),
    ({"kamailio_subscribers_source": "database", "kamailio_auth_db_url": "mongodb://kamailio:pw@198.18.0.30/kamailio"},
     "kamailio_auth_db_url: 'mongodb://kamailio:***@198.18.0.30/kamailio' must be postgres://"),
    ({"kamailio_tls_self_signed": False, "kamailio_tls_certificate": EXPIRED_CERT,
      "kamailio_tls_private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
     "kamailio_tls_"),
])
def test_bad_security_input_stops_before_touching_the_hosts(extra, message):
    before = {n: _live_state(n) for n in ("proxy1", "proxy2")}
    rc, failures = converge("kamailio", extra)
    print("failures:", failures)
    assert rc != 0
    assert failures and failures[0].startswith(message), failures
    assert {n: _live_state(n) for n in ("proxy1", "proxy2")} == before


def pem_pair(serial=7):
    """A current self-signed certificate for 203.0.113.11 and its key, in PEM."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "203.0.113.11")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def served_serial(name):
    """The serial of the certificate the proxy's TLS listener serves (asked on the proxy itself)."""
    address = P[name]["private_ipv4"]
    out = ansible_host(name).run(f"echo | timeout 10 openssl s_client -connect {address}:5061 2>/dev/null "
                                 "| openssl x509 -noout -serial").stdout.strip()
    assert out.startswith("serial="), f"{name} served no certificate on {address}:5061: {out!r}"
    return int(out.split("=", 1)[1], 16)


def test_tls_certificate_that_does_not_match_its_key_is_refused(tmp_path):
    """A real, current certificate with someone else's key: named, nothing changed."""
    cert, _ = pem_pair()
    _, other_key = pem_pair()
    before = {n: _live_state(n) for n in ("proxy1", "proxy2")}
    rc, failures = converge("kamailio", {"kamailio_tls_self_signed": False, "kamailio_tls_certificate": cert,
                                         "kamailio_tls_private_key": other_key})
    assert rc != 0
    assert failures and failures[0] == "kamailio_tls_private_key does not match kamailio_tls_certificate", failures
    assert {n: _live_state(n) for n in ("proxy1", "proxy2")} == before


def test_a_given_certificate_is_served_also_after_a_run_that_died_before_its_restart():
    """An operator's certificate replaces the lab's self-signed one: site.yml killed right after the
    proxies wrote it, before any handler ran, serves the old one (what shows this test can fail);
    the next run, which writes no file, owes the restart and serves the new one."""
    import secrets

    serial = (1 << 40) + secrets.randbelow(1 << 40)
    cert, key = pem_pair(serial)
    # Restarted at once (no calls here to roll around; the rolling scenario tests the roll).
    given = {"kamailio_tls_self_signed": False, "kamailio_tls_certificate": cert, "kamailio_tls_private_key": key,
             "itsp_restart_strategy": "immediate"}
    before = served_serial("proxy1")
    converge_killed_at("proxy1", given, "Settle what the changed files need")
    assert ansible_host("proxy1").file("/var/lib/itsp-cluster/kamailio.apply-pending").exists
    assert served_serial("proxy1") == before != serial
    rc, failures = converge("proxy1", given)
    assert rc == 0, failures
    print(f"served serial before {before:X}, after {served_serial('proxy1'):X}, given {serial:X}")
    assert served_serial("proxy1") == serial
    assert not ansible_host("proxy1").file("/var/lib/itsp-cluster/kamailio.apply-pending").exists


# Last: with the credential store down a proxy must fail cleanly; whatever happens here touches no
# other test. If it fails, proxy1's journal since PostgreSQL stopped is printed (-r A shows it).
def test_database_down_gives_a_clean_503_and_service_resumes():
    proxy = ansible_host("proxy1")
    since = proxy.check_output("date '+%Y-%m-%d %H:%M:%S'")
    try:
        _database_down_and_back()
    except BaseException:
        print(proxy.run(f"journalctl --no-pager -o short-precise --since '{since}' | tail -n 80").stdout)
        print(proxy.run("systemctl show kamailio -p NRestarts -p ExecMainStartTimestamp -p Result").stdout)
        raise


def _database_down_and_back():
    db = ansible_host("db1")
    before = main_pid("proxy1")
    # The cluster's own unit too: stopping only postgresql.service (a oneshot the cluster is PartOf)
    # returns before the server has stopped, and a REGISTER sent at once still got its 200.
    db.check_output("systemctl stop postgresql 'postgresql@*'")
    try:
        assert db.run("pg_isready -q -t 2").rc != 0, "PostgreSQL still accepts connections after its stop"
        started = time.monotonic()
        down = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, user="bob", password=password("bob"),
                           expires=0, timeout=8)
        took = time.monotonic() - started
        print(f"database down: {down['codes']} in {took:.2f} s")
        assert down["codes"] == [401, 503], down
        assert "Retry-After:" in down["response"]
        assert took < 5, took
        # proxy2 (local table) is not affected.
        assert sip.request(pub("proxy2"), pub("proxy2"), source=PHONES, user="bob", password=password("bob"),
                           expires=0)["final"] == 200
    finally:
        db.check_output("systemctl start postgresql")
    deadline, codes = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        codes = sip.request(pub("proxy1"), pub("proxy1"), source=PHONES, user="bob", password=password("bob"),
                            expires=0)["codes"]
        if codes == [401, 200]:
            break
        time.sleep(1)
    print("database back:", codes)
    assert codes == [401, 200]
    assert main_pid("proxy1") == before
