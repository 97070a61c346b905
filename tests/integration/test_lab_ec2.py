"""The lab's EC2 side without building a lab: the spec's groups and Elastic IPs, the hosts registered
in moto (on loopback) with the lab's own addresses and tags, the metadata stand-in reporting moto's
instance ids, and the NAT rules lab/eip_nat.py derives from DescribeAddresses before and after a move.
The lab run (bench/bench_eip_move.py) shows the same rules carrying traffic."""

from __future__ import annotations

import pytest
import standins_fixtures as standins
from standins_fixtures import register_lab_instances

from lab import eip_nat, labctl

moto_server = standins.moto_server
clean_moto = standins.clean_moto

SPEC = {
    "hosts": [
        {"name": "proxy1", "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11", "cloud": "aws",
         "groups": ["sip_nodes", "kamailio", "rtpengine"]},
        {"name": "proxy2", "private_ipv4": "198.18.0.12", "public_ipv4": "203.0.113.12", "cloud": "aws",
         "groups": ["kamailio"]},
        {"name": "proxy3", "private_ipv4": "198.18.0.13", "public_ipv4": "203.0.113.13", "cloud": "gce"},
    ],
    "elastic_ips": [{"public_ipv4": "203.0.113.50", "host": None}],
}


def aws_hosts(spec):
    return [dict(h, tags=labctl.ec2_tags(h)) for h in spec["hosts"] if h["cloud"] == "aws"]


def test_spec_keeps_groups_and_floating_addresses():
    spec = labctl.normalise_spec(SPEC)
    assert spec["hosts"][0]["groups"] == ["kamailio", "rtpengine", "sip_nodes"]
    assert spec["hosts"][2]["groups"] == []
    assert spec["elastic_ips"] == [{"public_ipv4": "203.0.113.50", "host": None, "region": "eu-west-1"}]
    per_host = dict(SPEC, hosts=[dict(SPEC["hosts"][0], elastic_ips=["198.51.100.50"])] + SPEC["hosts"][1:])
    assert labctl.normalise_spec(per_host)["elastic_ips"][1] == {"public_ipv4": "198.51.100.50", "host": "proxy1",
                                                                "region": "eu-west-1"}
    assert labctl.ec2_tags(spec["hosts"][0]) == {"Name": "proxy1", "itsp:cluster": "lab",
                                                 "itsp:role": "kamailio,rtpengine"}


def test_ec2_roles_name_the_role_tag_instead_of_the_groups():
    # A host the converge leaves alone (no groups) that inventories/aws must still find as a proxy.
    hosts = [dict(SPEC["hosts"][1], ec2_roles=["rtpengine", "kamailio"]), dict(SPEC["hosts"][0], ec2_roles=[]),
             dict(SPEC["hosts"][2], groups=["kamailio"], ec2_roles=None),
             # molecule/shared/create.yml writes "" for a platform without ec2_roles
             {"name": "proxy4", "private_ipv4": "198.18.0.14", "groups": ["rtpengine"], "ec2_roles": ""}]
    spec = labctl.normalise_spec({"hosts": hosts})
    assert [h["ec2_roles"] for h in spec["hosts"]] == [["kamailio", "rtpengine"], [], None, None]
    assert spec["hosts"][0]["groups"] == ["kamailio"]
    assert [labctl.ec2_tags(h).get("itsp:role") for h in spec["hosts"]] == [
        "kamailio,rtpengine", None, "kamailio", "rtpengine"]


@pytest.mark.parametrize("roles", [["sip_nodes"], "kamailio", [None]])
def test_bad_ec2_roles_are_refused_naming_the_host(roles):
    with pytest.raises(labctl.LabError, match=None) as caught:
        labctl.normalise_spec({"hosts": [dict(SPEC["hosts"][0], ec2_roles=roles)]})
    assert f"hosts[0].ec2_roles {roles!r}: a list of kamailio, rtpengine" in str(caught.value)


@pytest.mark.parametrize(("extra", "message"), [
    ({"public_ipv4": "203.0.113.11", "host": None}, "elastic_ips[0].public_ipv4 203.0.113.11 must be a free"),
    ({"public_ipv4": "198.18.0.50", "host": None}, "must be a free address in 203.0.113.0/24"),
    ({"public_ipv4": "203.0.113.51", "host": "proxy3"}, "elastic_ips[0].host 'proxy3' must be the name of an aws"),
])
def test_bad_elastic_ips_are_refused_naming_the_entry(extra, message):
    with pytest.raises(labctl.LabError, match=None) as caught:
        labctl.normalise_spec(dict(SPEC, elastic_ips=[extra]))
    assert message in str(caught.value)


def test_hosts_become_instances_with_the_lab_addresses_and_tags(clean_moto):
    spec = labctl.normalise_spec(SPEC)
    fleet = register_lab_instances(clean_moto, aws_hosts(spec), "198.18.0.0/24", spec["elastic_ips"])

    ec2 = clean_moto.client("ec2", "eu-west-1")
    found = {i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert len(found) == 2
    proxy1 = found[fleet["instances"]["proxy1"]["instance_id"]]
    assert proxy1["PrivateIpAddress"] == "198.18.0.11"
    assert proxy1["PublicIpAddress"] == "203.0.113.11"
    assert {t["Key"]: t["Value"] for t in proxy1["Tags"]}["itsp:role"] == "kamailio,rtpengine"
    assert sorted(fleet["elastic_ips"]) == ["203.0.113.11", "203.0.113.12", "203.0.113.50"]

    metadata = labctl.metadata_config(spec, fleet)["hosts"]
    assert metadata["198.18.0.11"]["instance_id"] == fleet["instances"]["proxy1"]["instance_id"]
    assert metadata["198.18.0.13"]["instance_id"].isdigit()  # gce keeps its own kind of id


def test_nat_rules_follow_the_association(clean_moto):
    spec = labctl.normalise_spec(SPEC)
    fleet = register_lab_instances(clean_moto, aws_hosts(spec), "198.18.0.0/24", spec["elastic_ips"])
    ec2 = clean_moto.client("ec2", "eu-west-1")
    privates = ["198.18.0.11", "198.18.0.12"]

    before = eip_nat.associations([ec2])
    assert before == {"203.0.113.11": "198.18.0.11", "203.0.113.12": "198.18.0.12", "203.0.113.50": None}
    rules = eip_nat.ruleset(before, privates, "itsp-edge-out")
    assert "ip daddr 203.0.113.11 dnat to 198.18.0.11" in rules
    assert 'ip saddr 198.18.0.11 oifname "itsp-edge-out" snat to 203.0.113.11' in rules
    assert "ip daddr { 203.0.113.50 } drop" in rules

    ec2.associate_address(AllocationId=fleet["elastic_ips"]["203.0.113.11"]["allocation_id"],
                          InstanceId=fleet["instances"]["proxy2"]["instance_id"], AllowReassociation=True)
    after = eip_nat.associations([ec2])
    assert after["203.0.113.11"] == "198.18.0.12"
    rules = eip_nat.ruleset(after, privates, "itsp-edge-out")
    assert "ip daddr 203.0.113.11 dnat to 198.18.0.12" in rules
    # proxy1 lost its only public address: like an EC2 instance without one, it reaches no internet.
    assert 'ip saddr { 198.18.0.11 } oifname "itsp-edge-out" ct direction original drop' in rules
    # proxy2 holds two: its own traffic leaves from the lower one, each keeps its inbound DNAT.
    assert 'ip saddr 198.18.0.12 oifname "itsp-edge-out" snat to 203.0.113.11' in rules
    assert "ip daddr 203.0.113.12 dnat to 198.18.0.12" in rules
