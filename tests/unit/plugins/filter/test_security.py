"""Who may use the platform: HA1 on the controller, subscriber/trunk checks, TLS pair checks."""
import datetime
import hashlib
import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.yaml.objects import AnsibleVaultEncryptedUnicode
from ansible_collections.itsp.cluster.plugins.filter.security import (
    digest_ha1,
    htable_rows,
    invalid_networks,
    plaintext_passwords,
    subscriber_problems,
    subscriber_rows,
    tls_pair_problem,
    trunk_problems,
    trunk_sources,
)


def test_ha1_is_md5_of_user_realm_password():
    assert digest_ha1("alice", "itsp.cluster", "s3cret") == hashlib.md5(b"alice:itsp.cluster:s3cret").hexdigest()


def test_subscriber_rows_carry_ha1_never_the_password():
    rows = subscriber_rows([{"username": "alice", "password": "s3cret"},
                            {"username": "bob", "ha1": "0" * 32, "max_calls": 1}], "itsp.cluster")
    assert rows == [{"username": "alice", "ha1": digest_ha1("alice", "itsp.cluster", "s3cret")},
                    {"username": "bob", "ha1": "0" * 32}]
    assert "s3cret" not in repr(rows)


@pytest.mark.parametrize("entry,message", [
    ({"username": "al ice", "password": "x"}, "kamailio_subscribers[0].username 'al ice' must be"),
    ({"username": "alice"}, "kamailio_subscribers[0] (alice) needs exactly one of password"),
    ({"username": "alice", "password": "x", "ha1": "0" * 32}, "kamailio_subscribers[0] (alice) needs exactly one of"),
    ({"username": "alice", "ha1": "XYZ"}, "kamailio_subscribers[0].ha1 (alice) must be 32 lowercase hex"),
    ({"username": "alice", "password": "x", "max_calls": -1}, "kamailio_subscribers[0].max_calls (alice) must be"),
    ("alice", "kamailio_subscribers[0] must be a dict"),
])
def test_bad_subscribers_are_named(entry, message):
    problems = subscriber_problems([entry])
    assert problems and problems[0].startswith(message), problems
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        subscriber_rows([entry], "itsp.cluster")


def test_duplicate_subscriber_is_named():
    assert subscriber_problems([{"username": "a", "password": "x"}, {"username": "a", "password": "y"}]) == [
        "kamailio_subscribers[1].username 'a' is listed twice"]


def test_plaintext_passwords_are_told_from_vault_values():
    vaulted = AnsibleVaultEncryptedUnicode("$ANSIBLE_VAULT;1.1;AES256\n0000")
    subs = [{"username": "alice", "password": "plain"}, {"username": "bob", "password": vaulted},
            {"username": "carol", "ha1": "0" * 32}]
    assert plaintext_passwords(subs) == ["alice"]


def test_trunk_checks_and_sources():
    assert trunk_problems([{"name": "pbx1", "sources": ["198.51.100.0/28"], "prefix": "123#", "max_calls": 10}]) == []
    problems = trunk_problems([{"name": "pbx1", "sources": ["198.51.100.0/33", "pbx.example"]},
                               {"name": "pbx1", "sources": []}, {"name": "x", "sources": ["198.51.100.9"],
                                                                  "prefix": "12a"}])
    assert problems == [
        "kamailio_trunks[0].sources (pbx1): '198.51.100.0/33' is not an IPv4 address or network (CIDR)",
        "kamailio_trunks[0].sources (pbx1): 'pbx.example' is not an IPv4 address or network (CIDR)",
        "kamailio_trunks[1].name 'pbx1' is listed twice",
        "kamailio_trunks[1].sources (pbx1) must list the trunk's addresses or networks (CIDR)",
        "kamailio_trunks[2].prefix (x) may hold only digits, *, # and +",
    ]
    assert trunk_sources([{"name": "pbx1", "sources": ["198.51.100.0/28", "198.51.100.77"]}]) == [
        {"source": "198.51.100.0/28", "tag": "pbx1"}, {"source": "198.51.100.77", "tag": "pbx1"}]


def test_htable_rows_for_limits_prefixes_and_blocked_destinations():
    rows = htable_rows([{"username": "alice", "password": "x", "max_calls": 2}, {"username": "bob", "password": "y"}],
                       [{"name": "pbx1", "sources": ["198.51.100.9"], "prefix": "77#", "max_calls": 30},
                        {"name": "pbx2", "sources": ["198.51.100.10"]}],
                       ["+1900", "00882"])
    assert rows == {
        "blocked_prefix": [{"key": "+1900", "type": 1, "value": 1}, {"key": "00882", "type": 1, "value": 1}],
        "call_limit": [{"key": "user:alice", "type": 1, "value": 2}, {"key": "trunk:pbx1", "type": 1, "value": 30}],
        "trunk": [{"key": "pbx1", "type": 0, "value": "77#"}],
    }


def test_invalid_networks():
    assert invalid_networks(["198.51.100.0/24", "203.0.113.7", "203.0.113.0/40", "carrier"]) == [
        "203.0.113.0/40", "carrier"]


def _pair(days_valid=30, start_offset=-1):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "203.0.113.11")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now + datetime.timedelta(days=start_offset))
            .not_valid_after(now + datetime.timedelta(days=days_valid)).sign(key, hashes.SHA256()))
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem_cert, pem_key


def test_tls_pair_good_expired_mismatched_garbage():
    cert, key = _pair()
    assert tls_pair_problem(cert, key) == ""
    expired, expired_key = _pair(days_valid=-1, start_offset=-10)
    assert tls_pair_problem(expired, expired_key).startswith("kamailio_tls_certificate expired on ")
    _, other_key = _pair()
    assert tls_pair_problem(cert, other_key) == "kamailio_tls_private_key does not match kamailio_tls_certificate"
    assert tls_pair_problem("not a cert", key).startswith("kamailio_tls_certificate is not a PEM certificate")
    assert tls_pair_problem(cert, "nope").startswith("kamailio_tls_private_key is not an unencrypted PEM private key")
