# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests the roles' preflight checks use: ``x is itsp.cluster.ipv4_address`` and friends.

Kept in the collection so roles need neither ansible.utils nor netaddr on the controller."""

import ipaddress

DOCUMENTATION = r"""
name: ipv4_address
short_description: is the value a literal IPv4 address
version_added: 0.1.0
description:
  - True for a dotted-quad IPv4 address such as C(198.18.0.10); false for names, CIDRs and IPv6.
  - "Also provides C(usable_ipv4) (an address a daemon can bind or advertise: not 0.0.0.0,
    loopback, multicast or broadcast), C(private_ipv4) (loopback or a private/VPC address, never a
    public one: where control sockets may listen) and C(port_number) (an integer 1..65535)."
options:
  _input:
    description: The value to test.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Stop before touching the host when the advertised address is not an IP
  ansible.builtin.assert:
    that: kamailio_advertise_address is itsp.cluster.ipv4_address
    fail_msg: "kamailio_advertise_address: {{ kamailio_advertise_address }} is not an IPv4 address"
"""

RETURN = r"""
_value:
  description: Whether the value passes the test.
  type: bool
"""


def _ipv4(value):
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        return None


def ipv4_address(value):
    return _ipv4(value) is not None


def usable_ipv4(value):
    addr = _ipv4(value)
    return bool(addr) and not (addr.is_unspecified or addr.is_loopback or addr.is_multicast
                               or addr == ipaddress.IPv4Address("255.255.255.255"))


# Python counts the documentation ranges as private; this project uses them as the public side.
_DOCUMENTATION_NETS = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def private_ipv4(value):
    """Loopback or a private/VPC address: where control sockets (RPC, rtpengine ng) may listen."""
    addr = _ipv4(value)
    if addr is None:
        return False
    if addr.is_loopback:
        return True
    return addr.is_private and not addr.is_unspecified and not any(addr in n for n in _DOCUMENTATION_NETS)


def port_number(value):
    if isinstance(value, bool):
        return False
    try:
        port = int(value)
    except (TypeError, ValueError):
        return False
    return str(port) == str(value).strip() and 1 <= port <= 65535


class TestModule:
    def tests(self):
        return {"ipv4_address": ipv4_address, "usable_ipv4": usable_ipv4, "private_ipv4": private_ipv4,
                "port_number": port_number}
