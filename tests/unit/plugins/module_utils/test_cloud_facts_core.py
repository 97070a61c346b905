"""CloudFacts (the order of providers, static addresses, NAT, validation) and the metal provider
(LocalAddresses from iproute2's JSON). HTTP providers are replaced by fakes here."""

import json

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils import cloud_facts
from ansible_collections.itsp.cluster.plugins.module_utils.addresses import is_public_ipv4, parse_networks
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_facts import CloudFacts, CloudFactsError
from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import (
    Detected,
    Nic,
    NoReply,
    NotHere,
    ProviderError,
    Unreachable,
)
from ansible_collections.itsp.cluster.plugins.module_utils.providers.metal import LocalAddresses, MetalProvider

MAC = "02:18:00:00:00:11"
# These tests play the internet with documentation ranges, as the lab does (itsp_public_networks).
LAB_PUBLIC = ["203.0.113.0/24", "198.51.100.0/24"]


def link(name, mac, *addresses, flags=("BROADCAST", "UP"), ipv6=(), scope="global"):
    return {"ifname": name, "flags": list(flags), "address": mac,
            "addr_info": [{"family": "inet", "local": a, "prefixlen": 24, "scope": scope} for a in addresses]
            + [{"family": "inet6", "local": a, "prefixlen": 64, "scope": "global"} for a in ipv6]
            + [{"family": "inet6", "local": "fe80::18:ff:fe00:11", "prefixlen": 64, "scope": "link"}]}


LOOPBACK = link("lo", "00:00:00:00:00:00", "127.0.0.1", flags=("LOOPBACK", "UP"), scope="host")


def local(*links, default="eth0"):
    route = [{"dst": "default", "gateway": "198.18.0.1", "dev": default}] if default else []
    return LocalAddresses.from_ip_json(json.dumps([LOOPBACK, *links]), json.dumps(route),
                                       public_networks=parse_networks(LAB_PUBLIC))


def fake_provider(name, outcome, calls):
    class Fake:
        source = f"{name} fake http://169.254.169.254"

        def __init__(self, endpoint, timeout, sleep=None):
            calls.append(name)

        def detect(self):
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    return Fake


@pytest.fixture
def providers(monkeypatch):
    """providers(aws=outcome, gce=outcome, azure=outcome) -> list of the providers asked, in order.
    An outcome is a Detected, or an exception to raise; a provider not named answers 404."""
    calls = []

    def install(**outcomes):
        fakes = {name: fake_provider(name, outcomes.get(name, NotHere("404")), calls)
                 for name in ("aws", "gce", "azure")}
        monkeypatch.setattr(cloud_facts, "HTTP_PROVIDERS", fakes)
        return calls

    return install


def aws_detected(public="203.0.113.11", private="198.18.0.11", mac=MAC):
    return Detected("aws", "aws fake http://169.254.169.254", [Nic(mac, private, public)], region="eu-west-1",
                    zone="eu-west-1a", instance_id="i-0a11bb22cc33dd44e", instance_type="c6i.large")


def gather(host, **options):
    options.setdefault("public_networks", LAB_PUBLIC)
    return CloudFacts(local_addresses=lambda: host, **options).gather()


NO_PUBLIC = ("no public IPv4 on this host, so public_ipv4 is null; if the internet reaches it through "
             "NAT, set public_ipv4 (or stun_server)")


# -- the fact contract ------------------------------------------------------------------------------

def test_aws_one_to_one_nat_and_the_exact_keys(providers):
    calls = providers(aws=aws_detected())
    facts = gather(local(link("ens5", MAC, "198.18.0.11"), default="ens5"))
    assert facts == {
        "provider": "aws", "region": "eu-west-1", "zone": "eu-west-1a", "instance_id": "i-0a11bb22cc33dd44e",
        "instance_type": "c6i.large", "source": "aws fake http://169.254.169.254",
        "interfaces": [{"name": "ens5", "mac": MAC, "private_ipv4": "198.18.0.11",
                        "public_ipv4": "203.0.113.11", "ipv6": [], "nat": "one_to_one"}],
        "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11", "nat": "one_to_one", "warnings": [],
    }
    assert list(facts) == list(cloud_facts.FACT_KEYS)
    assert calls == ["aws"]


def test_public_address_bound_on_the_host_means_no_nat(providers):
    providers(gce=Detected("gce", "gce fake", [Nic("42:01:c6:12:00:15", "198.18.0.21", "203.0.113.21")]))
    facts = gather(local(link("ens4", "42:01:c6:12:00:15", "198.18.0.21", "203.0.113.21"), default="ens4"))
    assert (facts["provider"], facts["nat"], facts["interfaces"][0]["nat"]) == ("gce", "none", "none")


def test_interface_name_found_by_address_when_the_mac_differs(providers):
    providers(aws=aws_detected(mac="02:18:00:00:00:99"))
    facts = gather(local(link("eth0", MAC, "198.18.0.11"), link("eth1", "02:18:00:00:01:11", "198.18.1.11")))
    assert [(i["name"], i["mac"]) for i in facts["interfaces"]] == [("eth0", "02:18:00:00:00:99")]


def test_interface_name_null_when_nothing_matches(providers):
    providers(aws=Detected("aws", "aws fake", [Nic(MAC, "198.18.0.11", None),
                                               Nic("02:18:00:00:07:11", "198.18.7.11", None)]))
    facts = gather(local(link("eth0", MAC, "198.18.0.11")))
    assert [i["name"] for i in facts["interfaces"]] == ["eth0", None]


def test_ipv6_from_the_host_when_the_provider_has_none(providers):
    providers(aws=aws_detected())
    facts = gather(local(link("ens5", MAC, "198.18.0.11", ipv6=["2001:db8::11"]), default="ens5"))
    assert facts["interfaces"][0]["ipv6"] == ["2001:db8::11"]


# -- provider order and how each outcome is handled ------------------------------------------------------

def test_404_everywhere_is_metal(providers):
    calls = providers()
    facts = gather(local(link("eth0", MAC, "198.18.0.41")))
    assert calls == ["aws", "gce", "azure"]
    assert (facts["provider"], facts["source"], facts["private_ipv4"], facts["public_ipv4"], facts["nat"],
            facts["region"], facts["instance_id"]) == (
        "metal", "local addresses (ip -j addr)", "198.18.0.41", None, "none", None, None)
    assert facts["warnings"] == [NO_PUBLIC]


def test_unreachable_endpoint_is_asked_once(providers):
    calls = providers(aws=Unreachable("http://169.254.169.254: connection refused"))
    facts = gather(local(link("eth0", MAC, "198.18.0.41")))
    assert calls == ["aws"]
    assert facts["provider"] == "metal"
    assert facts["warnings"] == [NO_PUBLIC]  # refused is what bare metal looks like: no warning for it


def test_silent_endpoint_warns_and_is_asked_once(providers):
    calls = providers(gce=NoReply("gce fake at http://169.254.169.254: connected, but no reply"))
    facts = gather(local(link("eth0", MAC, "198.18.0.41")))
    assert calls == ["aws", "gce"]
    assert facts["warnings"] == [
        "gce fake at http://169.254.169.254: connected, but no reply; did not ask the same endpoint again",
        NO_PUBLIC]


def test_provider_error_fails(providers):
    calls = providers(aws=ProviderError("aws says no"))
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", MAC, "198.18.0.11")))
    assert str(failure.value) == "aws says no"
    assert calls == ["aws"]


def test_provider_error_with_static_addresses_uses_them(providers):
    providers(azure=ProviderError("azure says no"))
    facts = gather(local(link("eth0", MAC, "198.18.0.31")), public_ipv4="198.51.100.31")
    assert (facts["provider"], facts["source"], facts["private_ipv4"], facts["public_ipv4"],
            facts["nat"]) == (
        "azure", "static (public_ipv4; azure fake http://169.254.169.254 failed)", "198.18.0.31",
        "198.51.100.31", "one_to_one")
    assert facts["warnings"] == ["azure says no. Used the static addresses given instead"]


def test_only_the_providers_asked_for(providers):
    calls = providers(azure=aws_detected())
    facts = gather(local(link("ens5", MAC, "198.18.0.11")), providers=["azure", "aws"])
    assert calls == ["azure"]
    assert facts["provider"] == "aws"  # whatever the provider reports


def test_nobody_answered_and_metal_not_allowed(providers):
    providers(aws=Unreachable("http://169.254.169.254: no route to host"))
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", MAC, "198.18.0.11")), providers=["aws", "gce", "azure"])
    assert str(failure.value) == (
        "no metadata service answered at http://169.254.169.254 (aws tried; http://169.254.169.254: no route "
        "to host); on bare metal add metal to providers, in a cloud check that the host can reach "
        "http://169.254.169.254 (a firewall, a network namespace, a container without the hop limit)")


def test_all_404_and_metal_not_allowed(providers):
    providers()
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", MAC, "198.18.0.11")), providers=["gce", "azure"])
    assert str(failure.value).startswith(
        "no metadata service answered at http://169.254.169.254 (gce, azure tried; it answered 404 (no such "
        "cloud) for each); ")


# -- static addresses -----------------------------------------------------------------------------------

def test_static_public_overrides_with_a_warning(providers):
    providers(aws=aws_detected())
    facts = gather(local(link("ens5", MAC, "198.18.0.11")), public_ipv4="203.0.113.99")
    assert (facts["public_ipv4"], facts["source"]) == (
        "203.0.113.99", "aws fake http://169.254.169.254 + static public_ipv4")
    assert facts["warnings"] == [
        "public_ipv4 203.0.113.99 (option) overrides 203.0.113.11 from aws fake http://169.254.169.254"]


def test_static_equal_to_detected_is_silent(providers):
    providers(aws=aws_detected())
    facts = gather(local(link("ens5", MAC, "198.18.0.11")), public_ipv4="203.0.113.11",
                   private_ipv4="198.18.0.11")
    assert facts["warnings"] == []
    assert facts["source"] == "aws fake http://169.254.169.254 + static private_ipv4 and public_ipv4"


def test_metal_behind_someone_elses_nat(providers):
    providers()
    facts = gather(local(link("eth0", MAC, "198.18.0.41")), public_ipv4="203.0.113.41")
    assert (facts["provider"], facts["public_ipv4"], facts["nat"], facts["warnings"]) == (
        "metal", "203.0.113.41", "one_to_one", [])
    assert facts["source"] == "local addresses (ip -j addr) + static public_ipv4"


def test_metal_static_private_picks_the_interface(providers):
    providers()
    host = local(link("eth0", MAC, "198.18.0.41"), link("eth1", "02:18:00:00:01:41", "198.18.1.41"))
    facts = gather(host, private_ipv4="198.18.1.41")
    assert [(i["name"], i["private_ipv4"]) for i in facts["interfaces"]] == [
        ("eth1", "198.18.1.41"), ("eth0", "198.18.0.41")]
    assert facts["private_ipv4"] == "198.18.1.41"


@pytest.mark.parametrize("option", ["private_ipv4", "public_ipv4"])
@pytest.mark.parametrize("value", ["198.18.0", "2001:db8::1", "proxy1.example"])
def test_static_must_be_ipv4(option, value):
    with pytest.raises(CloudFactsError) as failure:
        CloudFacts(local_addresses=None, **{option: value})
    assert str(failure.value) == f"{option} {value!r} is not an IPv4 address (expected e.g. 203.0.113.10)"


def test_bad_providers_and_timeout():
    with pytest.raises(CloudFactsError) as failure:
        CloudFacts(local_addresses=None, providers=["aws", "openstack"])
    assert str(failure.value) == (
        "providers must be a non-empty list of aws, gce, azure, metal; got ['aws', 'openstack']")
    with pytest.raises(CloudFactsError) as failure:
        CloudFacts(local_addresses=None, timeout=0)
    assert str(failure.value) == "timeout must be more than 0 and at most 60 seconds, got 0"


def test_bad_endpoint_fails_clearly():
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", MAC, "198.18.0.41")), metadata_endpoint="https://169.254.169.254")
    assert str(failure.value) == (
        "metadata_endpoint must look like http://HOST[:PORT], got 'https://169.254.169.254'")


# -- validation -----------------------------------------------------------------------------------------

def test_wildcard_private_is_refused(providers):
    providers()
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", MAC, "198.18.0.41")), private_ipv4="0.0.0.0")
    assert str(failure.value) == (
        "private_ipv4 0.0.0.0 is the wildcard, not an address of this host; Kamailio and rtpengine need the "
        "concrete one: set private_ipv4 to one this host holds (eth0 198.18.0.41)")


def test_wildcard_public_is_refused(providers):
    providers()
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", MAC, "198.18.0.41")), public_ipv4="0.0.0.0")
    assert str(failure.value) == (
        "public_ipv4 0.0.0.0 is the wildcard, not an address; set public_ipv4 to the address the internet "
        "reaches this host on, or leave it unset")


def test_swapped_static_addresses(providers):
    providers(aws=ProviderError("aws says no"))
    host = local(link("eth0", MAC, "198.18.0.11"))
    with pytest.raises(CloudFactsError) as failure:
        gather(host, private_ipv4="203.0.113.11", public_ipv4="198.18.0.11")
    assert str(failure.value) == (
        "private_ipv4 203.0.113.11 is not bound on this host but public_ipv4 198.18.0.11 is: the two look "
        "swapped; set private_ipv4: 198.18.0.11 and public_ipv4: 203.0.113.11")


def test_detected_private_not_bound(providers):
    providers(aws=aws_detected(private="198.18.0.12"))
    with pytest.raises(CloudFactsError) as failure:
        gather(local(link("eth0", "02:18:00:00:00:12", "198.18.0.99")))
    assert str(failure.value) == (
        "private_ipv4 198.18.0.12 (from aws fake http://169.254.169.254) is not bound on this host (eth0 "
        "198.18.0.99); set private_ipv4 to the address Kamailio should listen on, or validate: false if it "
        "is bound later (keepalived, a floating IP)")


def test_validate_false_lets_it_through(providers):
    providers(aws=aws_detected(private="198.18.0.12"))
    facts = gather(local(link("eth0", "02:18:00:00:00:12", "198.18.0.99")), validate=False)
    assert (facts["private_ipv4"], facts["interfaces"][0]["name"]) == ("198.18.0.12", None)


def test_static_public_that_is_not_public_warns(providers):
    providers()
    facts = gather(local(link("eth0", MAC, "198.18.0.41")), public_ipv4="198.19.0.41")
    assert facts["warnings"] == [
        "public_ipv4 198.19.0.41 is not a public address; the internet cannot reach it unless this is "
        "deliberate (a private peering)"]


# -- metal and LocalAddresses -----------------------------------------------------------------------------

def test_metal_with_a_public_address_on_the_default_route():
    facts_host = local(link("eth0", MAC, "203.0.113.41"), link("eth1", "02:18:00:00:01:41", "198.18.1.41"))
    found = MetalProvider(facts_host).detect()
    assert [(n.name, n.private_ipv4, n.public_ipv4) for n in found.interfaces] == [
        ("eth0", "203.0.113.41", "203.0.113.41"), ("eth1", "198.18.1.41", None)]


def test_metal_public_bound_on_another_interface(providers):
    providers()
    facts = gather(local(link("eth0", MAC, "198.18.0.41"),
                         link("eth1", "02:18:00:00:01:41", "198.51.100.41")))
    assert (facts["private_ipv4"], facts["public_ipv4"], facts["nat"], facts["warnings"]) == (
        "198.18.0.41", "198.51.100.41", "none", [])


def test_metal_only_one_interface_without_default_route():
    found = MetalProvider(local(link("eth0", MAC, "198.18.0.41"), default=None)).detect()
    assert found.interfaces[0].private_ipv4 == "198.18.0.41"


def test_metal_cannot_choose():
    host = local(link("eth0", MAC, "198.18.0.41"), link("eth1", "02:18:00:00:01:41", "198.18.1.41"),
                 default=None)
    with pytest.raises(ProviderError) as failure:
        MetalProvider(host).detect()
    assert str(failure.value) == (
        "metal: cannot tell which address is this host's own: no default route and not exactly one interface "
        "with a global IPv4 (eth0 198.18.0.41; eth1 198.18.1.41); set private_ipv4")


def test_metal_default_route_on_an_interface_without_ipv4(providers):
    providers()
    host = local(link("eth0", MAC, "198.18.0.41"), link("eth1", "02:18:00:00:01:41", "198.18.1.41"),
                 link("wg0", None), default="wg0")
    with pytest.raises(CloudFactsError) as failure:
        gather(host)
    assert str(failure.value) == (
        "metal: cannot tell which address is this host's own: the default route's interface wg0 has no IPv4 "
        "and not exactly one interface with a global IPv4 (eth0 198.18.0.41; eth1 198.18.1.41); set "
        "private_ipv4")


def test_local_addresses_parsing():
    addr = json.dumps([
        LOOPBACK, {},  # old iproute2 prints {} for links it filtered out
        link("eth0", "02:18:00:00:00:41", "198.18.0.41", "203.0.113.41", ipv6=["2001:db8::41"]),
        link("docker0", "02:42:AA:BB:CC:DD"),
    ])
    routes = json.dumps([{"dst": "default", "gateway": "198.18.1.1", "dev": "eth1", "metric": 200},
                         {"dst": "default", "gateway": "198.18.0.1", "dev": "eth0", "metric": 100}])
    host = LocalAddresses.from_ip_json(addr, routes, public_networks=parse_networks(LAB_PUBLIC))
    assert [(lk.name, lk.mac, lk.ipv4, lk.ipv6) for lk in host.links] == [
        ("eth0", "02:18:00:00:00:41", ["198.18.0.41", "203.0.113.41"], ["2001:db8::41"]),
        ("docker0", "02:42:aa:bb:cc:dd", [], [])]
    assert host.default_dev == "eth0"  # lowest metric
    assert host.is_bound("203.0.113.41") and not host.is_bound("127.0.0.1")
    assert (host.links[0].private_ipv4, host.links[0].public_ipv4) == ("198.18.0.41", "203.0.113.41")


def test_collect_runs_iproute2_and_reports_its_failure():
    runs = []

    def run_command(args):
        runs.append(args)
        return (0, json.dumps([link("eth0", MAC, "198.18.0.41")]), "") if "addr" in args else (0, "[]", "")

    host = LocalAddresses.collect(run_command, "/usr/sbin/ip")
    assert runs == [["/usr/sbin/ip", "-j", "addr", "show"],
                    ["/usr/sbin/ip", "-j", "-4", "route", "show", "default"]]
    assert host.links[0].ipv4 == ["198.18.0.41"]
    with pytest.raises(ProviderError) as failure:
        LocalAddresses.collect(lambda args: (255, "", 'Option "-j" is unknown, try "ip -help".\n'),
                               "/sbin/ip")
    assert str(failure.value) == (
        "cannot list this host's addresses: `/sbin/ip -j addr show` failed (rc=255): Option \"-j\" is "
        "unknown, try \"ip -help\".; iproute2 4.13 or later is needed for -j (JSON)")
    with pytest.raises(ProviderError) as failure:
        LocalAddresses.collect(run_command, None)
    assert str(failure.value) == (
        "cannot list this host's addresses: the `ip` command is missing; install iproute2 (Debian/Ubuntu: "
        "apt-get install iproute2)")
    with pytest.raises(ProviderError) as failure:
        LocalAddresses.collect(lambda args: (0, "not json", ""), "/sbin/ip")
    assert str(failure.value).startswith("cannot read the output of `/sbin/ip -j addr show`: ")


def test_local_addresses_failure_is_a_cloud_facts_error():
    def broken():
        raise ProviderError("cannot list this host's addresses: nope")

    with pytest.raises(CloudFactsError) as failure:
        CloudFacts(local_addresses=broken).gather()
    assert str(failure.value) == "cannot list this host's addresses: nope"


@pytest.mark.parametrize("address, public, lab_public", [
    ("203.0.113.7", False, True), ("198.51.100.7", False, True),  # documentation ranges: the lab's internet
    ("192.0.2.7", False, False),
    ("198.18.0.7", False, False), ("198.19.255.7", False, False),  # benchmark range: the lab's private side
    ("100.64.0.7", False, False), ("127.0.0.1", False, False), ("169.254.169.254", False, False),
    ("0.0.0.0", False, False), ("224.0.0.5", False, False), ("240.0.0.5", False, False),
    ("255.255.255.255", False, False), ("8.8.8.8", True, True),
])
def test_is_public_ipv4(address, public, lab_public):
    assert is_public_ipv4(address) is public
    assert is_public_ipv4(address, parse_networks(LAB_PUBLIC)) is lab_public


def test_public_networks_must_be_networks():
    with pytest.raises(CloudFactsError) as failure:
        CloudFacts(local_addresses=None, public_networks=["203.0.113.0/24", "the internet"])
    assert str(failure.value) == "public_networks must list IPv4 networks such as 203.0.113.0/24, got 'the internet'"


def test_without_public_networks_documentation_ranges_are_not_public():
    host = LocalAddresses.from_ip_json(json.dumps([link("eth0", MAC, "198.18.0.41", "203.0.113.41")]),
                                       json.dumps([{"dst": "default", "dev": "eth0"}]))
    facts = gather(host, providers=["metal"], public_networks=[])
    assert (facts["private_ipv4"], facts["public_ipv4"]) == ("198.18.0.41", None)
