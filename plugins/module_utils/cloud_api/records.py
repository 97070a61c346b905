# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The normalized instance record every discovery path produces.

The on-host module (cloud_facts) and the controller-side module (cloud_instances) both return
these keys, so a playbook can use either source without caring which one answered. Public
addresses on AWS and GCE are always 1-to-1 NAT: the instance itself only ever sees its private
address, and the cloud maps one public address onto it.
"""

from __future__ import annotations

NAT_ONE_TO_ONE = "one_to_one"
NAT_NONE = "none"

RECORD_KEYS = (
    "provider",
    "region",
    "zone",
    "instance_id",
    "instance_type",
    "name",
    "state",
    "interfaces",
    "private_ipv4",
    "public_ipv4",
    "nat",
)
INTERFACE_KEYS = ("name", "mac", "private_ipv4", "public_ipv4", "ipv6", "nat")


def nat_kind(public_ipv4):
    """A cloud public IPv4 is a 1-to-1 NAT onto the private one; no public address, no NAT."""
    return NAT_ONE_TO_ONE if public_ipv4 else NAT_NONE


def make_interface(name, mac, private_ipv4, public_ipv4, ipv6=None):
    return {
        "name": name or None,
        "mac": mac or None,
        "private_ipv4": private_ipv4 or None,
        "public_ipv4": public_ipv4 or None,
        "ipv6": [address for address in (ipv6 or []) if address],
        "nat": nat_kind(public_ipv4),
    }


def make_record(provider, region, zone, instance_id, instance_type, name, state, interfaces):
    """Instance-level addresses are those of the first (primary) interface."""
    primary = interfaces[0] if interfaces else {}
    public_ipv4 = primary.get("public_ipv4")
    return {
        "provider": provider,
        "region": region or None,
        "zone": zone or None,
        "instance_id": instance_id,
        "instance_type": instance_type or None,
        "name": name or None,
        "state": state or None,
        "interfaces": list(interfaces),
        "private_ipv4": primary.get("private_ipv4"),
        "public_ipv4": public_ipv4,
        "nat": nat_kind(public_ipv4),
    }


def sort_key(record):
    """Stable order so that two runs against the same fleet return the same list."""
    return (record["region"] or "", record["zone"] or "", record["name"] or "", record["instance_id"])
