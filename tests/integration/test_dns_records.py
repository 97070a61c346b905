"""roles/dns_records against moto's Route 53 on loopback: records pointed at the cloud proxies and
back, as the migration's shift and rollback do; idempotent; check mode writes nothing; bad input
stops before any record changes, naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
import standins_fixtures as standins
from standins_fixtures import FAKE_CREDENTIALS, ROOT, ansible_env

moto_server = standins.moto_server
clean_moto = standins.clean_moto

BIN = os.path.dirname(sys.executable)
BIG_BOX = ["203.0.113.30"]
CLOUD = ["203.0.113.41", "203.0.113.42", "203.0.113.43"]
RECORDS = [{"zone": "example.net", "record": "sip.example.net", "ttl": 30},
           {"zone": "example.net", "record": "carriers.example.net"}]


@pytest.fixture
def zone(clean_moto):
    client = boto3.client("route53", endpoint_url=clean_moto.url, region_name="us-east-1", **FAKE_CREDENTIALS)
    zone_id = client.create_hosted_zone(Name="example.net.", CallerReference="itsp-test")["HostedZone"]["Id"]
    return client, zone_id


def records(client, zone_id):
    found = {}
    for rrset in client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if rrset["Type"] in ("A", "AAAA"):
            found[rrset["Name"].rstrip(".")] = (rrset["Type"], rrset["TTL"],
                                                sorted(r["Value"] for r in rrset["ResourceRecords"]))
    return found


def point(moto, tmp_path, values, *args, recs=None):
    play = [{"name": "Point the SIP entry", "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": "itsp.cluster.dns_records", "dns_records_entries": RECORDS if recs is None else recs,
                        "dns_records_values": values, "dns_records_endpoint_url": moto.url,
                        "dns_records_wait": False,
                        "dns_records_access_key": FAKE_CREDENTIALS["aws_access_key_id"],
                        "dns_records_secret_key": FAKE_CREDENTIALS["aws_secret_access_key"]}]}]
    path = tmp_path / "point.yml"
    path.write_text(json.dumps(play))
    env = dict(ansible_env(tmp_path), ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(path), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)


def changed(result):
    recap = [line for line in result.stdout.splitlines() if line.startswith("localhost")][-1]
    return int(recap.split("changed=")[1].split()[0])


def test_records_follow_the_shift_and_the_rollback(clean_moto, zone, tmp_path):
    client, zone_id = zone
    res = point(clean_moto, tmp_path, BIG_BOX)
    assert res.returncode == 0, res.stdout + res.stderr
    assert records(client, zone_id) == {"sip.example.net": ("A", 30, BIG_BOX),
                                        "carriers.example.net": ("A", 60, BIG_BOX)}
    res = point(clean_moto, tmp_path, CLOUD)
    assert res.returncode == 0, res.stdout + res.stderr
    assert records(client, zone_id)["sip.example.net"] == ("A", 30, CLOUD)
    assert "sip.example.net A: 203.0.113.30 -> 203.0.113.41, 203.0.113.42, 203.0.113.43" in res.stdout, res.stdout
    again = point(clean_moto, tmp_path, CLOUD)
    assert again.returncode == 0 and changed(again) == 0, again.stdout
    back = point(clean_moto, tmp_path, BIG_BOX)
    assert back.returncode == 0 and records(client, zone_id)["carriers.example.net"] == ("A", 60, BIG_BOX)


def test_check_mode_says_and_writes_nothing(clean_moto, zone, tmp_path):
    client, zone_id = zone
    assert point(clean_moto, tmp_path, BIG_BOX).returncode == 0
    res = point(clean_moto, tmp_path, CLOUD, "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "(check mode: not changed)" in res.stdout, res.stdout
    assert records(client, zone_id)["sip.example.net"] == ("A", 30, BIG_BOX)


@pytest.mark.parametrize(("recs", "values", "message"), [
    ([{"zone": "example.net", "record": "sip.example.org"}], CLOUD,
     "dns_records_entries[0].record sip.example.org is not in its zone"),
    (RECORDS, [], "dns_records_values must be a non-empty list"),
    (RECORDS, ["203.0.113.41", "2001:db8::1"], "dns_records_values mixes IPv4 and IPv6"),
    (RECORDS, ["sip.example.net"], "dns_records_values[0] 'sip.example.net' is not an IP address"),
    ([{"zone": "example.net", "record": "sip.example.net", "ttl": 0}], CLOUD,
     "dns_records_entries[0].ttl 0 must be seconds"),
])
def test_bad_input_names_the_variable_and_changes_nothing(clean_moto, zone, tmp_path, recs, values, message):
    client, zone_id = zone
    res = point(clean_moto, tmp_path, values, recs=recs)
    assert res.returncode != 0 and message in res.stdout, res.stdout
    assert records(client, zone_id) == {}
