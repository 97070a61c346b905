import pytest
from ansible_collections.itsp.cluster.plugins.test.network import ipv4_address, port_number, private_ipv4, usable_ipv4


@pytest.mark.parametrize("value,expected", [
    ("198.18.0.10", True), ("203.0.113.7", True), (" 203.0.113.7 ", True),
    ("203.0.113", False), ("203.0.113.300", False), ("sip.example.net", False),
    ("2001:db8::1", False), ("198.18.0.0/24", False), ("", False), (None, False), (5060, False),
])
def test_ipv4_address(value, expected):
    assert ipv4_address(value) is expected


@pytest.mark.parametrize("value,expected", [
    ("198.18.0.10", True), ("0.0.0.0", False), ("127.0.0.1", False), ("224.0.0.1", False),
    ("255.255.255.255", False), ("nonsense", False),
])
def test_usable_ipv4(value, expected):
    assert usable_ipv4(value) is expected


@pytest.mark.parametrize("value,expected", [
    (5060, True), ("5060", True), (1, True), (65535, True), (0, False), (65536, False),
    (-1, False), ("50a", False), (True, False), (None, False), ("5060.0", False),
])
def test_port_number(value, expected):
    assert port_number(value) is expected


@pytest.mark.parametrize("value,expected", [
    ("127.0.0.1", True), ("198.18.0.21", True), ("198.19.255.1", True),
    ("203.0.113.21", False), ("198.51.100.7", False), ("0.0.0.0", False), ("8.8.8.8", False),
    ("not-an-ip", False), (None, False),
])
def test_private_ipv4(value, expected):
    assert private_ipv4(value) is expected


def test_public_networks_are_never_private():
    assert private_ipv4("198.18.0.21", ["198.18.0.0/24"]) is False
    assert private_ipv4("198.18.1.21", ["198.18.0.0/24"]) is True


def test_the_test_and_the_module_share_one_classifier():
    from ansible_collections.itsp.cluster.plugins.module_utils import addresses
    from ansible_collections.itsp.cluster.plugins.test import network

    assert network.is_private_ipv4 is addresses.is_private_ipv4
