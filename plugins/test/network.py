# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests the roles' preflight checks use: ``x is itsp.cluster.ipv4_address`` and friends.

Each test is documented in its own file next to this one (ipv4_address.yml, usable_ipv4.yml,
private_ipv4.yml, port_number.yml). Kept in the collection so roles need neither ansible.utils nor
netaddr on the controller; addresses are classified by module_utils/addresses.py, the same
classifier the cloud_facts module uses on the hosts."""

import ipaddress

from ansible_collections.itsp.cluster.plugins.module_utils.addresses import is_private_ipv4, parse_networks


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


def private_ipv4(value, public_networks=None):
    """Loopback or a private/VPC address: where control sockets (RPC, rtpengine ng) may listen.

    ``public_networks`` (CIDRs) are never private, whatever else they are."""
    addr = _ipv4(value)
    if addr is None:
        return False
    return is_private_ipv4(addr, parse_networks(public_networks))


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
