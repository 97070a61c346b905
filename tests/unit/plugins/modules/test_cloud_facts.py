"""The cloud_facts module as Ansible runs it: arguments in, exit_json/fail_json out (both raise
here). iproute2 is faked; the metadata endpoint is a closed loopback port or not asked at all."""


import pytest
from ansible.module_utils import basic
from ansible_collections.itsp.cluster.plugins.modules import cloud_facts
from conftest import HOST_MAC
from module_harness import closed_port, failure_of

MAC = HOST_MAC


@pytest.fixture
def run(run_module, fake_iproute2):
    """run(args) -> the kwargs of exit_json; raises Fail(kwargs) from fail_json."""
    run_module.commands = fake_iproute2
    return run_module.bind(cloud_facts.main)


def test_metal_behind_nat(run):
    result = run({"providers": ["metal"], "public_ipv4": "203.0.113.41",
                  "public_networks": ["203.0.113.0/24", "198.51.100.0/24"]})
    assert result == {"changed": False, "ansible_facts": {"itsp_cloud": {
        "provider": "metal", "region": None, "zone": None, "instance_id": None, "instance_type": None,
        "source": "local addresses (ip -j addr) + static public_ipv4",
        "interfaces": [{"name": "eth0", "mac": MAC, "private_ipv4": "198.18.0.41",
                        "public_ipv4": "203.0.113.41", "ipv6": [], "nat": "one_to_one"}],
        "private_ipv4": "198.18.0.41", "public_ipv4": "203.0.113.41", "nat": "one_to_one", "warnings": [],
    }}}
    assert run.commands == [["/usr/sbin/ip", "-j", "addr", "show"],
                            ["/usr/sbin/ip", "-j", "-4", "route", "show", "default"]]
    assert run.warnings == []


def test_without_public_networks_a_documentation_address_is_not_public(run):
    result = run({"providers": ["metal"], "public_ipv4": "203.0.113.41"})
    assert run.warnings == result["ansible_facts"]["itsp_cloud"]["warnings"] == [
        "public_ipv4 203.0.113.41 is not a public address; the internet cannot reach it unless this is "
        "deliberate (a private peering)"]


def test_refused_endpoint_falls_back_to_metal_and_warns(run):
    result = run({"metadata_endpoint": f"http://127.0.0.1:{closed_port()}", "timeout": 0.5})
    facts = result["ansible_facts"]["itsp_cloud"]
    assert (facts["provider"], facts["public_ipv4"]) == ("metal", None)
    assert run.warnings == facts["warnings"] == [
        "no public IPv4 on this host, so public_ipv4 is null; if the internet reaches it through NAT, set "
        "public_ipv4 (or stun_server)"]


def test_check_mode_returns_the_same_facts(run):
    args = {"providers": ["metal"], "public_ipv4": "203.0.113.41"}
    assert run(args, check_mode=True) == run(args)


def test_bad_static_address(run):
    assert failure_of(run, {"providers": ["metal"], "public_ipv4": "203.0.113"}) == {
        "msg": "public_ipv4 '203.0.113' is not an IPv4 address (expected e.g. 203.0.113.10)"}


def test_unknown_provider(run):
    assert failure_of(run, {"providers": ["aws", "openstack"]}) == {
        "msg": "value of providers must be one or more of: aws, gce, azure, metal. "
               "Got no match for: openstack"}


def test_wildcard_private(run):
    assert failure_of(run, {"providers": ["metal"], "private_ipv4": "0.0.0.0"}) == {
        "msg": "private_ipv4 0.0.0.0 is the wildcard, not an address of this host; Kamailio and rtpengine "
               "need the concrete one: set private_ipv4 to one this host holds (eth0 198.18.0.41)"}


def test_cloud_only_and_nothing_answers(run):
    port = closed_port()
    assert failure_of(run, {"providers": ["aws"], "metadata_endpoint": f"http://127.0.0.1:{port}"}) == {
        "msg": f"no metadata service answered at http://127.0.0.1:{port} (aws tried; "
               f"http://127.0.0.1:{port}: connection refused); on bare metal add metal to providers, in a "
               f"cloud check that the host can reach http://127.0.0.1:{port} (a firewall, a network "
               "namespace, a container without the hop limit)"}


def test_bad_endpoint(run):
    assert failure_of(run, {"metadata_endpoint": "169.254.169.254"}) == {
        "msg": "metadata_endpoint must look like http://HOST[:PORT], got '169.254.169.254'"}


def test_iproute2_missing(run, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    assert failure_of(run, {"providers": ["metal"]}) == {
        "msg": "cannot list this host's addresses: the `ip` command is missing; install iproute2 "
               "(Debian/Ubuntu: apt-get install iproute2)"}


def test_documentation_is_yaml_with_the_options_of_the_argument_spec():
    import yaml

    doc = yaml.safe_load(cloud_facts.DOCUMENTATION)
    assert set(doc["options"]) == {"providers", "timeout", "metadata_endpoint", "private_ipv4", "public_ipv4",
                                   "validate", "stun_server", "public_networks"}
    assert set(doc["attributes"]) >= {"check_mode", "diff_mode", "idempotent"}
    returned = yaml.safe_load(cloud_facts.RETURN)["ansible_facts"]["contains"]["itsp_cloud"]["contains"]
    from ansible_collections.itsp.cluster.plugins.module_utils.cloud_facts import FACT_KEYS

    assert list(returned) == list(FACT_KEYS)
    yaml.safe_load(cloud_facts.EXAMPLES)
