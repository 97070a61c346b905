"""inventories/aws (amazon.aws.aws_ec2, from the `ansible` package) against moto's EC2 on loopback,
with hosts registered the way the lab registers its own: the groups come from the itsp:role tag,
names from the Name tag, ansible_host is the private address; stopped and untagged instances stay out."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import standins_fixtures as standins
import yaml
from standins_fixtures import AMI_ID, ROOT, ansible_env, register_lab_instances

from lab import labctl
from lab.standins.cloud import moto_env

moto_server = standins.moto_server
clean_moto = standins.clean_moto

INVENTORY = os.path.join(ROOT, "inventories", "aws")
BIN = os.path.dirname(sys.executable)
SPEC = {"hosts": [
    {"name": "proxy1", "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11", "cloud": "aws",
     "groups": ["sip_nodes", "kamailio", "rtpengine"]},
    # No groups (a scenario's converge leaves it alone), its role tag from ec2_roles: still found.
    {"name": "proxy2", "private_ipv4": "198.18.0.12", "public_ipv4": "203.0.113.12", "cloud": "aws",
     "ec2_roles": ["kamailio"]},
    {"name": "media1", "private_ipv4": "198.18.0.21", "public_ipv4": "203.0.113.21", "cloud": "aws",
     "groups": ["sip_nodes", "rtpengine"]},
    {"name": "old1", "private_ipv4": "198.18.0.13", "public_ipv4": None, "cloud": "aws", "groups": ["kamailio"]},
]}


def inventory(moto, tmp_path, *args):
    env = moto_env(moto.url, ansible_env(tmp_path))
    result = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", INVENTORY, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Failed to parse" not in result.stderr, result.stderr
    return result.stdout


@pytest.fixture
def lab_fleet(clean_moto):
    spec = labctl.normalise_spec(SPEC)
    fleet = register_lab_instances(clean_moto, [dict(h, tags=labctl.ec2_tags(h)) for h in spec["hosts"]],
                                   "198.18.0.0/24")
    ec2 = clean_moto.client("ec2", "eu-west-1")
    ec2.stop_instances(InstanceIds=[fleet["instances"]["old1"]["instance_id"]])
    # Someone else's instance in the same account: no itsp:role tag, not ours.
    ec2.run_instances(ImageId=AMI_ID, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                      TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "bastion"}]}])
    return fleet


def test_groups_come_from_the_role_tag(clean_moto, lab_fleet, tmp_path):
    listing = json.loads(inventory(clean_moto, tmp_path, "--list"))
    assert sorted(listing["kamailio"]["hosts"]) == ["proxy1", "proxy2"]
    assert sorted(listing["rtpengine"]["hosts"]) == ["media1", "proxy1"]
    assert sorted(listing["sip_nodes"]["hosts"]) == ["media1", "proxy1", "proxy2"]
    hostvars = listing["_meta"]["hostvars"]
    assert "bastion" not in hostvars and "old1" not in hostvars
    assert {name: hostvars[name]["ansible_host"] for name in hostvars} == {
        "proxy1": "198.18.0.11", "proxy2": "198.18.0.12", "media1": "198.18.0.21"}
    assert hostvars["proxy1"]["instance_id"] == lab_fleet["instances"]["proxy1"]["instance_id"]
    assert hostvars["proxy2"]["public_ip_address"] == "203.0.113.12"
    # The operator's group_vars apply to what the plugin found.
    assert hostvars["proxy2"]["ansible_user"] == "admin"


def test_graph_lists_the_hosts(clean_moto, lab_fleet, tmp_path):
    graph, group = {}, None
    for line in inventory(clean_moto, tmp_path, "--graph").splitlines():
        name = line.strip(" |-")
        if name.startswith("@"):
            group = graph.setdefault(name[1:-1], set())
        elif name:
            group.add(name)
    assert graph["kamailio"] == {"proxy1", "proxy2"}
    assert graph["rtpengine"] == {"proxy1", "media1"}


def collection_settings():
    """Every variable name the collection defines (role defaults and argument specs, playbook vars,
    the inventories' group_vars) or reads with a default (roles, playbooks)."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "defaults", "main.yml")) + glob.glob(
            os.path.join(ROOT, "playbooks", "vars", "*.yml")) + glob.glob(
            os.path.join(ROOT, "inventories", "*", "group_vars", "**", "*.yml"), recursive=True):
        with open(path) as fh:
            names |= set(yaml.safe_load(fh) or {})
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "meta", "argument_specs.yml")):
        with open(path) as fh:
            names |= {o for entry in yaml.safe_load(fh)["argument_specs"].values() for o in entry.get("options", {})}
    for path in glob.glob(os.path.join(ROOT, "roles", "**", "*.yml"), recursive=True) + glob.glob(
            os.path.join(ROOT, "roles", "**", "*.j2"), recursive=True) + glob.glob(
            os.path.join(ROOT, "playbooks", "*.yml")) + [os.path.join(ROOT, "site.yml")]:
        with open(path) as fh:
            names |= set(re.findall(r"(?<![\w.\]'\"])([a-z_]\w*)\s*\|\s*default\(", fh.read()))
    return names


def test_the_plugins_host_vars_clash_with_no_setting(clean_moto, lab_fleet, tmp_path):
    # aws_ec2 sets some 40 host vars per instance (state, tags, placement, platform, ...); host vars
    # beat group vars, so one named like a setting of the collection would silently override it.
    hostvars = json.loads(inventory(clean_moto, tmp_path, "--list"))["_meta"]["hostvars"]
    from_plugin = {name for name in hostvars["proxy1"] if not name.startswith("ansible_")}
    settings = collection_settings()
    assert {"instance_id", "state", "tags", "placement"} <= from_plugin
    assert {"kamailio_dmq_enabled", "migrate_target_group", "itsp_public_networks"} <= settings
    assert from_plugin & settings == set()
