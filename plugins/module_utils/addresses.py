# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one IPv4 classifier: public, private, loopback or neither, for the modules on the host and
the Jinja tests on the controller alike (standard library only, so it runs on managed hosts).

Public is what the internet routes (ipaddress' is_global), plus the networks the caller names in
``public_networks``: a lab that plays the internet with documentation ranges says so there, the
product does not assume it. Private is RFC 1918, 198.18.0.0/15 and the other non-global unicast
ranges; the documentation ranges are neither unless named public.
"""

import ipaddress

PUBLIC = "public"
PRIVATE = "private"
LOOPBACK = "loopback"
OTHER = "other"  # unspecified, multicast, broadcast, reserved, documentation, shared (CGNAT)

DOCUMENTATION_NETS = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
SHARED_NET = ipaddress.IPv4Network("100.64.0.0/10")


def parse_networks(values, option="public_networks"):
    """CIDR strings -> a tuple of IPv4Network; ValueError with a sentence naming ``option``."""
    networks = []
    for value in values or ():
        try:
            networks.append(ipaddress.IPv4Network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{option} must list IPv4 networks such as 203.0.113.0/24, got {value!r}") from None
    return tuple(networks)


def classify_ipv4(address, public_networks=()):
    """PUBLIC, PRIVATE, LOOPBACK or OTHER for one IPv4 address (str or IPv4Address); ValueError if it is none."""
    address = ipaddress.IPv4Address(address)
    if any(address in network for network in public_networks):
        return PUBLIC
    if address.is_loopback:
        return LOOPBACK
    if (address.is_unspecified or address.is_multicast or address.is_reserved
            or address == ipaddress.IPv4Address("255.255.255.255")):
        return OTHER
    if address.is_global:  # ipaddress calls 224.0.0.0/4 global; handled above
        return PUBLIC
    if address.is_private and not any(address in network for network in DOCUMENTATION_NETS):
        return PRIVATE
    return OTHER


def is_public_ipv4(address, public_networks=()):
    """True for an address the internet can route to (or one inside ``public_networks``)."""
    return classify_ipv4(address, public_networks) == PUBLIC


def is_private_ipv4(address, public_networks=()):
    """True for loopback or a private/VPC address: never a public one."""
    return classify_ipv4(address, public_networks) in (LOOPBACK, PRIVATE)
