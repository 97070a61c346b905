"""Kamailio behind a kernel 1-to-1 NAT: on the hosts, and over the wire from the public side."""

import os
import re

import pytest
import testinfra.utils.ansible_runner
from testlib import ansible_host, converge, platforms, run_module, sip

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kamailio")

PLATFORMS = platforms()
# proxy3 is the negative control: advertise switched off (kamailio_advertise_mode: never).
ADVERTISING = [p for p in PLATFORMS.values() if p["name"] != "proxy3"]
NEGATIVE = PLATFORMS["proxy3"]


# What each host's facts must say: the provider from its metadata service (or STUN on metal).
EXPECTED_PROVIDER = {"aws": "aws", "gce": "gce", "azure": "azure", "metal": "metal"}


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_facts_name_the_place_and_the_addresses(name):
    me = PLATFORMS[name]
    args = "stun_server=203.0.113.200:3478" if me["cloud"] == "metal" else ""
    facts = run_module(name, "itsp.cluster.cloud_facts", args)["ansible_facts"]["itsp_cloud"]
    print(name, facts)
    assert facts["provider"] == EXPECTED_PROVIDER[me["cloud"]]
    assert facts["private_ipv4"] == me["private_ipv4"]
    assert facts["public_ipv4"] == me["public_ipv4"]
    assert facts["nat"] == "one_to_one"


def test_kamailio_running_and_enabled(host):
    svc = host.service("kamailio")
    assert svc.is_running
    assert svc.is_enabled


def test_listens_on_private_address_only(host):
    me = PLATFORMS[host.backend.get_hostname()]
    assert host.socket(f"udp://{me['private_ipv4']}:5060").is_listening
    assert host.socket(f"tcp://{me['private_ipv4']}:5060").is_listening
    assert not host.socket("udp://0.0.0.0:5060").is_listening


def test_config_has_the_advertise_line_from_the_facts(host):
    me = PLATFORMS[host.backend.get_hostname()]
    cfg = host.file("/etc/kamailio/kamailio-local.cfg").content_string
    line = f"listen=udp:{me['private_ipv4']}:5060 advertise {me['public_ipv4']}:5060"
    if me is NEGATIVE:
        assert "advertise" not in cfg.split("listen=", 1)[1].splitlines()[0]
        assert f"listen=udp:{me['private_ipv4']}:5060\n" in cfg
    else:
        assert line in cfg


def test_config_passes_kamailio_check(host):
    res = host.run("kamailio -c -f /etc/kamailio/kamailio.cfg")
    assert res.rc == 0, res.stderr


@pytest.mark.parametrize("name", [p["name"] for p in ADVERTISING])
def test_options_to_public_address_gets_200(name):
    res = sip.options(PLATFORMS[name]["public_ipv4"])
    assert res.ok, res.stdout[-800:]
    assert res.first_response_code() == 200


def test_options_to_public_address_without_advertise_is_not_ours():
    """Without advertise the public address is not 'myself': the proxy refuses to relay."""
    res = sip.options(NEGATIVE["public_ipv4"], local_port=5073)
    assert not res.ok
    assert res.first_response_code() == 403


def _relay(proxy_public, domain, uas_port):
    """REGISTER bob (contact: a UAS on the public side), then call bob through the proxy."""
    reg = sip.register(proxy_public, "bob", domain, contact_port=uas_port)
    assert reg.ok, reg.stdout[-800:]
    with sip.Uas(port=uas_port) as uas:
        call = sip.call(proxy_public, "bob", domain)
        got = uas.finish()
    assert call.ok, call.stdout[-800:]
    assert got.ok, got.stdout[-800:]
    invite = sip.relayed_invite(got)
    assert invite, "the UAS never saw the INVITE"
    return invite


@pytest.mark.parametrize("name", [p["name"] for p in ADVERTISING])
def test_relayed_request_carries_public_address(name):
    me = PLATFORMS[name]
    invite = _relay(me["public_ipv4"], me["public_ipv4"], uas_port=5080)
    vias = sip.header_values(invite, "Via")
    rrs = sip.header_values(invite, "Record-Route")
    print(f"{name}: INVITE at the public-side UAS:\n{invite}")
    assert vias[0].startswith(f"SIP/2.0/UDP {me['public_ipv4']}:5060;"), vias
    # The dialog module (on in a cluster) adds its own did= parameter; the address is what matters.
    assert len(rrs) == 1 and re.match(rf"<sip:{re.escape(me['public_ipv4'])};lr(;did=[^;>]+)?>$", rrs[0]), rrs
    assert me["private_ipv4"] not in invite


def test_without_advertise_the_private_address_leaks():
    """The negative control: same relay, advertise off, and the private address shows."""
    me = NEGATIVE
    invite = _relay(me["public_ipv4"], me["private_ipv4"], uas_port=5081)
    vias = sip.header_values(invite, "Via")
    rrs = sip.header_values(invite, "Record-Route")
    # Kamailio leaves out the default port when it writes its own (private) address.
    assert re.match(rf"SIP/2\.0/UDP {re.escape(me['private_ipv4'])}(:5060)?;", vias[0]), vias
    assert len(rrs) == 1 and re.match(rf"<sip:{re.escape(me['private_ipv4'])};lr(;did=[^;>]+)?>$", rrs[0]), rrs
    assert me["public_ipv4"] not in "\n".join(vias + rrs)


# --- Bad input: stopped before the host is touched; a config failing `kamailio -c` never goes live.

def _converge_proxy1(*extra):
    """site.yml on proxy1 with extra vars given as key=value; returns (rc, failure messages)."""
    return converge("proxy1", dict(e.split("=", 1) for e in extra))


def _live_state(host):
    return (host.check_output("cat /run/kamailio/kamailio.pid"),
            host.check_output("sha256sum /etc/kamailio/kamailio.cfg /etc/kamailio/kamailio-local.cfg"),
            host.check_output("sha256sum /etc/default/kamailio"))


@pytest.mark.parametrize("extra,message", [
    ("kamailio_advertise_address=not-an-ip",
     "kamailio_advertise_address: 'not-an-ip' is not a usable IPv4 address"),
    ("kamailio_advertise_address=0.0.0.0",
     "kamailio_advertise_address: '0.0.0.0' is not a usable IPv4 address"),
    ("kamailio_sip_port=70000", "kamailio_sip_port: '70000' is not a port (1-65535)"),
    ("kamailio_listen_address=198.18.0.11 kamailio_advertise_address=198.18.0.11",
     "kamailio_advertise_address: 198.18.0.11 is the address Kamailio binds"),
])
def test_bad_variables_stop_before_touching_the_host(extra, message):
    host = ansible_host("proxy1")
    before = _live_state(host)
    rc, failures = _converge_proxy1(*extra.split())
    assert rc != 0
    assert failures and failures[0].startswith(message), failures
    assert _live_state(host) == before


def test_config_failing_kamailio_check_never_replaces_the_live_one():
    host = ansible_host("proxy1")
    before = _live_state(host)
    rc, failures = _converge_proxy1("kamailio_log_facility=LOG_NOT_A_FACILITY")
    assert rc != 0
    assert len(failures) == 1, failures
    assert failures[0].startswith("kamailio -c rejected the configuration; the live one is unchanged."), failures
    assert "bad facility" in failures[0], failures
    assert _live_state(host)[:2] == before[:2]
    assert "LOG_NOT_A_FACILITY" not in host.file("/etc/kamailio/kamailio-local.cfg").content_string
    assert sip.options(PLATFORMS["proxy1"]["public_ipv4"], local_port=5074).ok
