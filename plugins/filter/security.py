# -*- coding: utf-8 -*-
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may use the platform: subscribers' HA1 (computed on the controller), address checks,
TLS certificate checks. Unit-tested in tests/unit/plugins/filter/test_security.py."""

import datetime
import hashlib
import ipaddress
import re

from ansible.errors import AnsibleFilterError

try:
    from ansible.parsing.yaml.objects import AnsibleVaultEncryptedUnicode
except ImportError:  # pragma: no cover
    AnsibleVaultEncryptedUnicode = ()

USERNAME = re.compile(r"^[A-Za-z0-9+_.\-]{1,64}$")
HA1 = re.compile(r"^[0-9a-f]{32}$")


def digest_ha1(username, realm, password):
    """HA1 of RFC 2617 digest (MD5): what Kamailio's auth_db compares, so no password is stored."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 (the digest scheme)


def _named_entries(entries, variable, key, shape, problems):
    """Yield (where, name, entry) of a list of named dicts, adding to ``problems`` what is wrong
    with the entry itself, its name (``key``) or a name listed twice."""
    names = set()
    for index, entry in enumerate(entries or []):
        where = f"{variable}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a dict with {shape}")
            continue
        name = str(entry.get(key, ""))
        if not USERNAME.match(name):
            problems.append(f"{where}.{key} {name!r} must be 1-64 of letters, digits, + _ . -")
        elif name in names:
            problems.append(f"{where}.{key} {name!r} is listed twice")
        names.add(name)
        yield where, name, entry


def subscriber_problems(subscribers):
    """Messages naming each unusable kamailio_subscribers entry (empty list: all fine)."""
    problems = []
    for where, name, entry in _named_entries(subscribers, "kamailio_subscribers", "username",
                                             "username and password (or ha1)", problems):
        has_password = entry.get("password") not in (None, "")
        has_ha1 = entry.get("ha1") not in (None, "")
        if has_password == has_ha1:
            problems.append(f"{where} ({name}) needs exactly one of password (from Vault) and ha1")
        if has_ha1 and not HA1.match(str(entry["ha1"])):
            problems.append(f"{where}.ha1 ({name}) must be 32 lowercase hex digits (md5 of username:realm:password)")
        if "max_calls" in entry and not str(entry["max_calls"]).isdigit():
            problems.append(f"{where}.max_calls ({name}) must be a number >= 0")
    return problems


def plaintext_passwords(subscribers):
    """Usernames whose password is plain text in the inventory rather than a Vault value."""
    return [str(e.get("username")) for e in subscribers or []
            if isinstance(e, dict) and e.get("password") not in (None, "")
            and not isinstance(e.get("password"), AnsibleVaultEncryptedUnicode)]


def subscriber_rows(subscribers, realm):
    """[{username, ha1}] for the subscriber table: HA1 from the password, or the ha1 given."""
    problems = subscriber_problems(subscribers)
    if problems:
        raise AnsibleFilterError("; ".join(problems))
    return [{"username": str(e["username"]),
             "ha1": str(e["ha1"]) if e.get("ha1") else digest_ha1(e["username"], realm, str(e["password"]))}
            for e in subscribers or []]


def trunk_problems(trunks):
    """Messages naming each unusable kamailio_trunks entry."""
    problems = []
    for where, name, trunk in _named_entries(trunks, "kamailio_trunks", "name", "name and sources", problems):
        sources = trunk.get("sources")
        if not isinstance(sources, list) or not sources:
            problems.append(f"{where}.sources ({name}) must list the trunk's addresses or networks (CIDR)")
        else:
            problems += [f"{where}.sources ({name}): {bad!r} is not an IPv4 address or network (CIDR)"
                         for bad in invalid_networks(sources)]
        if not re.match(r"^[0-9*#+]*$", str(trunk.get("prefix", ""))):
            problems.append(f"{where}.prefix ({name}) may hold only digits, *, # and +")
        if "max_calls" in trunk and not str(trunk["max_calls"]).isdigit():
            problems.append(f"{where}.max_calls ({name}) must be a number >= 0")
    return problems


def trunk_sources(trunks):
    """[{source, tag}] of every trunk address, tagged with the trunk's name (permissions' peer tag)."""
    return [{"source": source, "tag": str(t["name"])} for t in trunks or [] for source in t.get("sources") or []]


def htable_rows(subscribers, trunks, blocked_prefixes):
    """Rows of the db_text tables htable loads: blocked_prefix, call_limit, trunk (tech prefixes)."""
    return {
        "blocked_prefix": [{"key": str(p), "type": 1, "value": 1} for p in blocked_prefixes or []],
        "call_limit": ([{"key": f"user:{e['username']}", "type": 1, "value": int(e["max_calls"])}
                        for e in subscribers or [] if "max_calls" in e]
                       + [{"key": f"trunk:{t['name']}", "type": 1, "value": int(t["max_calls"])}
                          for t in trunks or [] if "max_calls" in t]),
        "trunk": [{"key": str(t["name"]), "type": 0, "value": str(t["prefix"])}
                  for t in trunks or [] if t.get("prefix")],
    }


def invalid_networks(values):
    """The entries of a list that are not IPv4 addresses or networks (CIDR)."""
    bad = []
    for value in values or []:
        try:
            ipaddress.IPv4Network(str(value), strict=False)
        except ValueError:
            bad.append(value)
    return bad


def tls_pair_problem(certificate, private_key, now=None):
    """'' when the PEM certificate is current and matches the PEM key, else what is wrong."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(str(certificate).encode())
    except ValueError as exc:
        return f"kamailio_tls_certificate is not a PEM certificate ({exc})"
    try:
        key = serialization.load_pem_private_key(str(private_key).encode(), password=None)
    except (ValueError, TypeError) as exc:
        return f"kamailio_tls_private_key is not an unencrypted PEM private key ({exc})"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    not_before = (getattr(cert, "not_valid_before_utc", None)
                  or cert.not_valid_before.replace(tzinfo=datetime.timezone.utc))
    if not_after <= now:
        return f"kamailio_tls_certificate expired on {not_after:%Y-%m-%d %H:%M} UTC"
    if not_before > now:
        return f"kamailio_tls_certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        return "kamailio_tls_private_key does not match kamailio_tls_certificate"
    return ""


class FilterModule:
    def filters(self):
        return {
            "digest_ha1": digest_ha1,
            "subscriber_problems": subscriber_problems,
            "plaintext_passwords": plaintext_passwords,
            "subscriber_rows": subscriber_rows,
            "invalid_networks": invalid_networks,
            "trunk_problems": trunk_problems,
            "trunk_sources": trunk_sources,
            "htable_rows": htable_rows,
            "tls_pair_problem": tls_pair_problem,
        }
