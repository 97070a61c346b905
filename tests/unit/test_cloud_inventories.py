"""inventories/gcp and inventories/azure: the clouds' own inventory plugins (google.cloud.gcp_compute,
azure.azcollection.azure_rm, from the `ansible` package) accept the files as they are, and the group and
host-variable expressions put a node where its label or tag says, with the host variables the plugins
give (as their documentation names them). The lab has no GCE or Azure API stand-in; the AWS inventory
is tested end to end against moto (tests/integration/test_inventory_aws.py)."""

from __future__ import annotations

import os

import pytest
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.template import Templar

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLOUDS = {
    # plugin, config file, the option that holds the group conditions, a node's host variables
    "gcp": ("google.cloud.gcp_compute", "gcp_compute.yml", "groups",
            {"name": "proxy1", "zone": "europe-west1-b", "labels": {"itsp-role": "kamailio-rtpengine"},
             "networkInterfaces": [{"networkIP": "198.18.0.11",
                                    "accessConfigs": [{"natIP": "203.0.113.11"}]}]}),
    "azure": ("azure.azcollection.azure_rm", "azure_rm.yml", "conditional_groups",
              {"name": "proxy1", "location": "westeurope", "powerstate": "running",
               "tags": {"itsp:role": "kamailio,rtpengine"},
               "private_ipv4_addresses": ["198.18.0.11"], "public_ipv4_addresses": ["203.0.113.11"]}),
}


@pytest.fixture(scope="module", autouse=True)
def _collections():
    init_plugin_loader()


def load(cloud):
    name, filename, _, _ = CLOUDS[cloud]
    plugin = inventory_loader.get(name)
    assert plugin is not None, f"{name} is not installed (the `ansible` package brings it)"
    path = os.path.join(ROOT, "inventories", cloud, filename)
    assert plugin.verify_file(path), f"{name} does not take {path} (file name or plugin key)"
    loader = DataLoader()
    plugin.inventory = InventoryData()
    plugin.loader = loader
    plugin.templar = Templar(loader=loader)
    config = plugin._read_config_data(path)
    unknown = set(config) - set(plugin._options)  # the options the plugin documents
    assert not unknown, f"{path}: not options of {name}: {sorted(unknown)}"
    return plugin


def place(cloud, hostvars):
    plugin = load(cloud)
    _, _, groups_option, _ = CLOUDS[cloud]
    plugin.inventory.add_host("node")
    for key, value in hostvars.items():
        plugin.inventory.set_variable("node", key, value)
    strict = True
    # azure_rm composes from hostvar_expressions when set, else compose (as its parse does).
    compose = plugin.get_option("hostvar_expressions") if cloud == "azure" else None
    plugin._set_composite_vars(compose or plugin.get_option("compose"), hostvars, "node", strict=strict)
    plugin._add_host_to_composed_groups(plugin.get_option(groups_option), hostvars, "node", strict=strict)
    plugin._add_host_to_keyed_groups(plugin.get_option("keyed_groups"), hostvars, "node", strict=strict)
    host = plugin.inventory.get_host("node")
    return {g.name for g in host.get_groups()} - {"all"}, host.get_vars()


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_a_node_with_both_roles_is_in_both_groups_and_reached_privately(cloud):
    groups, hostvars = place(cloud, CLOUDS[cloud][3])
    assert {"kamailio", "rtpengine", "sip_nodes"} <= groups, groups
    assert "retired" not in groups
    assert hostvars["ansible_host"] == "198.18.0.11"
    zone_group = {"gcp": "gcp_zone_europe_west1_b", "azure": "azure_location_westeurope"}[cloud]
    assert zone_group in groups, groups
    # The fleet's login applies to this inventory's hosts only (not to a big box combined with it).
    fleet = {"gcp": "gcp_compute", "azure": "azure_rm"}[cloud]
    assert fleet in groups, groups
    assert os.path.exists(os.path.join(ROOT, "inventories", cloud, "group_vars", f"{fleet}.yml"))
    assert not os.path.exists(os.path.join(ROOT, "inventories", cloud, "group_vars", "all.yml"))


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_a_relay_only_node_is_not_a_proxy(cloud):
    hostvars = dict(CLOUDS[cloud][3])
    if cloud == "gcp":
        hostvars["labels"] = {"itsp-role": "rtpengine"}
    else:
        hostvars["tags"] = {"itsp:role": "rtpengine"}
    groups, _ = place(cloud, hostvars)
    assert "rtpengine" in groups and "kamailio" not in groups, groups


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_an_unlabelled_node_is_in_no_group_of_ours(cloud):
    hostvars = dict(CLOUDS[cloud][3])
    hostvars.pop("labels" if cloud == "gcp" else "tags")
    hostvars["labels" if cloud == "gcp" else "tags"] = {}
    groups, _ = place(cloud, hostvars)
    assert not groups & {"kamailio", "rtpengine", "sip_nodes", "retired"}, groups


def test_the_gcp_filter_keeps_only_running_labelled_instances():
    plugin = load("gcp")
    filters = plugin.get_option("filters")
    assert "status = RUNNING" in filters and "labels.itsp-role:*" in filters, filters


def test_the_azure_filters_drop_stopped_and_untagged_machines():
    plugin = load("azure")
    templar = plugin.templar
    untagged = {"tags": {}, "powerstate": "running"}
    tagged = {"tags": {"itsp:role": "kamailio"}, "powerstate": "running"}
    stopped = {"tags": {"itsp:role": "kamailio"}, "powerstate": "deallocated"}

    def dropped(hostvars):
        exprs = plugin.get_option("default_host_filters") + plugin.get_option("exclude_host_filters")
        templar.available_variables = hostvars
        return any(templar.template("{{ " + e + " }}") in (True, "True") for e in exprs)

    assert dropped(untagged) and dropped(stopped) and not dropped(tagged)
