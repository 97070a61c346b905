"""plugins/filter/dns.py: the checks the dns_records role runs before it touches a record."""

import pytest
from ansible_collections.itsp.cluster.plugins.filter.dns import dns_record_problems, dns_record_type

GOOD = [{"zone": "example.net", "record": "sip.example.net", "ttl": 30},
        {"zone": "example.net.", "record": "example.net"}]


def test_good_records_and_addresses_have_no_problem():
    assert dns_record_problems(GOOD, ["203.0.113.41", "198.51.100.7"]) == []
    assert dns_record_type(["203.0.113.41"]) == "A"
    assert dns_record_type(["2001:db8::1"]) == "AAAA"


@pytest.mark.parametrize(("records", "values", "problem"), [
    ("sip.example.net", ["203.0.113.41"], "dns_records_entries must be a list"),
    (["sip.example.net"], ["203.0.113.41"], "dns_records_entries[0] must be a dict"),
    ([{"zone": "example.net"}], ["203.0.113.41"], "dns_records_entries[0].record None must be a DNS name"),
    ([{"zone": "net", "record": "sip.example.net"}], ["203.0.113.41"], "dns_records_entries[0].zone 'net'"),
    ([{"zone": "example.net", "record": "sip.example.org"}], ["203.0.113.41"], "not in its zone example.net"),
    ([{"zone": "example.net", "record": "sip.example.net", "ttl": "60"}], ["203.0.113.41"],
     "dns_records_entries[0].ttl '60'"),
    ([{"zone": "example.net", "record": "sip.example.net", "tll": 60}], ["203.0.113.41"], "unknown keys ['tll']"),
    (GOOD + [{"zone": "example.net", "record": "SIP.example.net."}], ["203.0.113.41"],
     "dns_records_entries[2].record SIP.example.net. is listed twice"),
    (GOOD, "203.0.113.41", "dns_records_values must be a non-empty list"),
    (GOOD, ["127.0.0.1"], "dns_records_values[0] 127.0.0.1 is not an address clients can reach"),
    (GOOD, ["203.0.113.41", "2001:db8::1"], "mixes IPv4 and IPv6"),
])
def test_each_problem_names_what_to_fix(records, values, problem):
    problems = dns_record_problems(records, values)
    assert any(problem in p for p in problems), problems
