# -*- coding: utf-8 -*-
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DNS names clients find the platform by: checks on the records the dns_records role points at
the SIP entry. Unit-tested in tests/unit/plugins/filter/test_dns.py."""

import ipaddress
import re

LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _fqdn(name):
    return str(name).rstrip(".").lower()


def _valid_name(name):
    labels = _fqdn(name).split(".")
    return len(_fqdn(name)) <= 253 and len(labels) >= 2 and all(LABEL.match(label) for label in labels)


def dns_record_problems(records, values, variable="dns_records_entries", values_variable="dns_records_values"):
    """What is wrong with ``records`` (a list of {zone, record, ttl?}) pointed at ``values`` (the
    addresses), each problem naming the variable and entry to fix; [] when nothing is."""
    problems = []
    if not isinstance(records, list):
        return [f"{variable} must be a list of {{zone, record}} (got {type(records).__name__})"]
    seen = set()
    for index, entry in enumerate(records):
        where = f"{variable}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a dict with zone and record")
            continue
        unknown = set(entry) - {"zone", "record", "ttl", "private_zone"}
        if unknown:
            problems.append(f"{where} has unknown keys {sorted(unknown)} (zone, record, ttl, private_zone)")
        zone, record = entry.get("zone"), entry.get("record")
        if not zone or not _valid_name(zone):
            problems.append(f"{where}.zone {zone!r} must be a DNS zone name such as example.net")
            continue
        if not record or not _valid_name(record):
            problems.append(f"{where}.record {record!r} must be a DNS name such as sip.example.net")
            continue
        if not (_fqdn(record) == _fqdn(zone) or _fqdn(record).endswith("." + _fqdn(zone))):
            problems.append(f"{where}.record {record} is not in its zone {zone}")
        ttl = entry.get("ttl", 60)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= 86400:
            problems.append(f"{where}.ttl {ttl!r} must be seconds between 1 and 86400")
        if _fqdn(record) in seen:
            problems.append(f"{where}.record {record} is listed twice")
        seen.add(_fqdn(record))
    if not isinstance(values, list) or not values:
        problems.append(f"{values_variable} must be a non-empty list of the addresses the records point at")
        return problems
    families = set()
    for index, value in enumerate(values):
        try:
            address = ipaddress.ip_address(str(value))
        except ValueError:
            problems.append(f"{values_variable}[{index}] {value!r} is not an IP address")
            continue
        if address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local:
            problems.append(f"{values_variable}[{index}] {value} is not an address clients can reach")
        families.add(address.version)
    if len(families) > 1:
        problems.append(f"{values_variable} mixes IPv4 and IPv6: one record type per list (A or AAAA)")
    return problems


def dns_record_type(values):
    """A for IPv4 addresses, AAAA for IPv6 (the list is one family: dns_record_problems says so)."""
    return "AAAA" if values and ipaddress.ip_address(str(values[0])).version == 6 else "A"


class FilterModule:
    def filters(self):
        return {"dns_record_problems": dns_record_problems, "dns_record_type": dns_record_type}
