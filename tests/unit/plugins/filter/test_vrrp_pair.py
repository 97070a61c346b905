"""vrrp_pair: the active-passive pair's VRRP instance, and the bad input its preflight refuses."""
import pytest
from ansible_collections.itsp.cluster.plugins.filter.topology import vrrp_pair


def pair(**overrides):
    box1 = {"ansible_host": "198.18.0.31", "itsp_cloud": {"private_ipv4": "198.18.0.31"},
            "keepalived_vip": "198.18.0.30", "keepalived_virtual_router_id": 30, "keepalived_priority": 150}
    box2 = {"ansible_host": "198.18.0.32", "keepalived_vip": "198.18.0.30", "keepalived_virtual_router_id": 30,
            "keepalived_priority": 100}
    hostvars = {"box1": box1, "box2": box2}
    for key, value in overrides.items():
        host, var = key.split("__", 1)
        hostvars[host][var] = value
    return hostvars


GROUPS = {"all": ["box1", "box2"], "bigbox": ["box1", "box2"]}


def test_a_good_pair_names_the_partner_and_the_instance():
    assert vrrp_pair(pair(), GROUPS, "box1", group="bigbox") == {
        "address": "198.18.0.31", "peers": ["198.18.0.32"], "vip": "198.18.0.30", "prefix": 24, "vrid": 30,
        "priority": 150, "preferred": True, "problems": []}
    assert vrrp_pair(pair(), GROUPS, "box2", group="bigbox")["peers"] == ["198.18.0.31"]


def test_only_the_box_with_the_higher_priority_is_preferred():
    assert vrrp_pair(pair(), GROUPS, "box2", group="bigbox")["preferred"] is False
    swapped = pair(box1__keepalived_priority=90)
    assert [vrrp_pair(swapped, GROUPS, b, group="bigbox")["preferred"] for b in ("box1", "box2")] == [False, True]


@pytest.mark.parametrize("overrides, groups, problem", [
    ({"box1__keepalived_vip": "198.18.1.30", "box2__keepalived_vip": "198.18.1.30"}, GROUPS,
     "keepalived_vip: 198.18.1.30 is outside box1's subnet 198.18.0.0/24 (keepalived_vip_prefix 24)"),
    ({"box1__keepalived_vip": "198.18.0.32", "box2__keepalived_vip": "198.18.0.32"}, GROUPS,
     "keepalived_vip: 198.18.0.32 is box2's own address; the VIP must be a free address"),
    ({"box1__keepalived_vip": "vip", "box2__keepalived_vip": "vip"}, GROUPS,
     "keepalived_vip: 'vip' is not an IPv4 address"),
    ({"box2__keepalived_vip": "198.18.0.29"}, GROUPS,
     "keepalived_vip: the pair disagrees (box1: '198.18.0.30', box2: '198.18.0.29'); "
     "give it once, for the group bigbox"),
    ({"box2__keepalived_priority": 150}, GROUPS,
     "keepalived_priority: box1 and box2 both have 150; give the preferred box a higher one "
     "(a tie leaves the choice to their addresses)"),
    ({"box1__keepalived_priority": 255}, GROUPS, "keepalived_priority: 255 on box1 is not a VRRP priority (1-254)"),
    ({"box1__keepalived_virtual_router_id": 0}, GROUPS,
     "keepalived_virtual_router_id: 0 is not a VRRP router id (1-255)"),
    ({}, {"all": ["box1", "box2"], "bigbox": ["box1"]},
     "bigbox: an active-passive pair is exactly 2 hosts; the group has 1 (box1)"),
    ({}, {"all": ["box1", "box2", "box3"], "bigbox": ["box1", "box2", "box3"]},
     "bigbox: an active-passive pair is exactly 2 hosts; the group has 3 (box1, box2, box3)"),
])
def test_bad_input_names_the_variable(overrides, groups, problem):
    hostvars = pair(**overrides)
    hostvars.setdefault("box3", {"ansible_host": "198.18.0.33", "keepalived_vip": hostvars["box1"]["keepalived_vip"],
                                 "keepalived_virtual_router_id": 30, "keepalived_priority": 50})
    assert problem in vrrp_pair(hostvars, groups, "box1", group="bigbox")["problems"]


def test_another_pair_with_the_same_router_id_on_the_network_clashes():
    hostvars = pair()
    hostvars["edge1"] = {"ansible_host": "198.18.0.41", "keepalived_vip": "198.18.0.40",
                         "keepalived_virtual_router_id": 30}
    groups = dict(GROUPS, all=["box1", "box2", "edge1"])
    assert vrrp_pair(hostvars, groups, "box1", group="bigbox")["problems"] == [
        "keepalived_virtual_router_id: 30 is also used by edge1 (VIP 198.18.0.40) on 198.18.0.0/24; "
        "every pair on a network needs its own"]
    # Another network, or another id: no clash.
    hostvars["edge1"]["keepalived_vip"] = "198.19.0.40"
    assert vrrp_pair(hostvars, groups, "box1", group="bigbox")["problems"] == []
    hostvars["edge1"].update(keepalived_vip="198.18.0.40", keepalived_virtual_router_id=31)
    assert vrrp_pair(hostvars, groups, "box1", group="bigbox")["problems"] == []


def test_defaults_apply_where_the_inventory_says_nothing():
    hostvars = pair()
    for box in ("box1", "box2"):
        del hostvars[box]["keepalived_virtual_router_id"]
    del hostvars["box2"]["keepalived_priority"]
    result = vrrp_pair(hostvars, GROUPS, "box2", group="bigbox", default_vrid=51, default_priority=100)
    assert (result["vrid"], result["priority"], result["problems"]) == (51, 100, [])


def test_an_unset_partner_gets_the_roles_defaults_not_this_boxs_values():
    import os

    import yaml
    from ansible_collections.itsp.cluster.plugins.filter import topology

    hostvars = pair()
    del hostvars["box2"]["keepalived_priority"]
    del hostvars["box1"]["keepalived_virtual_router_id"], hostvars["box2"]["keepalived_virtual_router_id"]
    assert vrrp_pair(hostvars, GROUPS, "box1", group="bigbox")["problems"] == []
    assert vrrp_pair(hostvars, GROUPS, "box2", group="bigbox")["priority"] == 100
    # roles/keepalived/tasks/pair.yml relies on the filter's defaults being the role's.
    defaults = os.path.join(os.path.dirname(topology.__file__), "..", "..", "roles", "keepalived", "defaults",
                            "main.yml")
    with open(defaults) as fh:
        role = yaml.safe_load(fh)
    assert (role["keepalived_virtual_router_id"], role["keepalived_priority"]) == (
        topology.DEFAULT_VRID, topology.DEFAULT_PRIORITY)
