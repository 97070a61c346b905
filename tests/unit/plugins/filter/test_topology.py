"""The topology filters: who a node's peers, relays and carriers are, on which address/port."""
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.itsp.cluster.plugins.filter.topology import (
    address_table,
    cluster_members,
    dispatcher_sets,
    entry_address,
    firewall_openings,
    media_relays,
    node_address,
    proxy_topology,
    scrape_targets,
    server_id,
)

HOSTVARS = {
    "proxy1": {"ansible_host": "198.18.0.11", "itsp_cloud": {"private_ipv4": "198.18.0.11"}},
    "proxy2": {"ansible_host": "mgmt-proxy2", "itsp_cloud": {"private_ipv4": "198.18.0.12"},
               "kamailio_sip_port": 5070},
    # No facts this run (--limit): falls back to ansible_host.
    "proxy3": {"ansible_host": "198.18.0.13"},
    "media1": {"ansible_host": "198.18.0.21", "itsp_cloud": {"private_ipv4": "198.18.0.21"}},
    "media2": {"ansible_host": "198.18.0.22", "rtpengine_ng_address": "198.19.0.22", "rtpengine_ng_port": 2299},
    "sbc1": {"ansible_host": "198.18.1.5", "itsp_cloud": {"private_ipv4": "198.18.1.5"}},
}
GROUPS = {"kamailio": ["proxy1", "proxy2", "proxy3"], "rtpengine": ["proxy1", "media1", "media2"],
          "gateways": ["sbc1", "proxy2"]}


def test_entry_address_is_the_floating_public_address_else_the_nodes_own():
    box = {"kamailio_floating_advertise_address": "203.0.113.30",
           "itsp_cloud": {"private_ipv4": "198.18.0.31", "public_ipv4": "203.0.113.31"}}
    assert entry_address(box) == "203.0.113.30"
    assert entry_address(dict(box, kamailio_floating_advertise_address="")) == "203.0.113.31"
    assert entry_address({"itsp_cloud": {"private_ipv4": "198.18.0.41", "public_ipv4": None}}) == ""
    assert entry_address({}) == ""


def test_node_address_prefers_the_facts_then_ansible_host():
    assert node_address(HOSTVARS["proxy2"]) == "198.18.0.12"
    assert node_address(HOSTVARS["proxy3"]) == "198.18.0.13"
    assert node_address({}) == ""


def test_cluster_members_in_inventory_order_with_their_sip_port():
    assert cluster_members(HOSTVARS, GROUPS, "kamailio") == [
        {"name": "proxy1", "address": "198.18.0.11", "sip_port": 5060},
        {"name": "proxy2", "address": "198.18.0.12", "sip_port": 5070},
        {"name": "proxy3", "address": "198.18.0.13", "sip_port": 5060},
    ]
    assert cluster_members(HOSTVARS, GROUPS, "missing") == []


def test_media_relays_co_located_dedicated_or_all():
    # A proxy that is also a relay drives its own rtpengine (the big box).
    assert media_relays(HOSTVARS, GROUPS, "proxy1") == ["udp:198.18.0.11:2223"]
    # Other proxies drive the dedicated media hosts, at their ng address and port.
    assert media_relays(HOSTVARS, GROUPS, "proxy2") == ["udp:198.18.0.21:2223", "udp:198.19.0.22:2299"]
    # Only co-located relays: every relay of the group.
    assert media_relays(HOSTVARS, {"kamailio": ["proxy1", "proxy2"], "rtpengine": ["proxy1"]}, "proxy2") == [
        "udp:198.18.0.11:2223"]
    assert media_relays(HOSTVARS, {"kamailio": ["proxy1"]}, "proxy1") == []


def test_dispatcher_group_members_join_at_their_private_address_and_sip_port():
    sets = [{"id": 1, "destinations": [{"uri": "sip:203.0.113.50:5060", "priority": 5}], "group": "gateways"},
            {"id": "2", "algorithm": "8"}]
    assert dispatcher_sets(sets, HOSTVARS, GROUPS) == [
        {"id": 1, "algorithm": 4, "destinations": [
            {"uri": "sip:203.0.113.50:5060", "priority": 5, "attrs": ""},
            {"uri": "sip:198.18.1.5:5060", "priority": 0, "attrs": ""},
            {"uri": "sip:198.18.0.12:5070", "priority": 0, "attrs": ""}]},
        {"id": 2, "algorithm": 8, "destinations": []},
    ]


def test_dispatcher_set_without_id_is_refused():
    with pytest.raises(AnsibleFilterError, match="every set needs an id"):
        dispatcher_sets([{"destinations": []}], HOSTVARS, GROUPS)


@pytest.mark.parametrize("address,expected", [("198.18.0.11", 11), ("198.18.1.5", 261), ("198.19.255.255", 65535)])
def test_server_id_from_the_last_two_octets(address, expected):
    assert server_id(address) == expected


def test_server_id_of_a_non_address_names_it():
    with pytest.raises(AnsibleFilterError, match="'proxy1' is not an IPv4 address"):
        server_id("proxy1")


def test_proxy_topology_peers_relays_carriers():
    sets = [{"id": 1, "destinations": [{"uri": "sip:+49@203.0.113.50:5060;transport=udp"},
                                       {"uri": "sip:203.0.113.50"}, {"uri": "sip:198.51.100.7:5080"}]},
            {"id": 2, "group": "kamailio"}]
    topo = proxy_topology(HOSTVARS, GROUPS, "proxy2", sets=sets)
    assert topo["address"] == "198.18.0.12"
    assert topo["cluster"] == ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
    assert topo["dmq_peers"] == ["198.18.0.11", "198.18.0.13"]
    assert topo["relays"] == ["udp:198.18.0.21:2223", "udp:198.19.0.22:2299"]
    # Carriers are the destinations' hosts, once each; cluster members are not carriers.
    assert topo["carriers"] == ["203.0.113.50", "198.51.100.7"]


def test_proxy_topology_explicit_lists_win():
    topo = proxy_topology(HOSTVARS, GROUPS, "proxy1", relays=["udp:127.0.0.1:2223"], dmq_peers=["198.18.0.12"])
    assert topo["relays"] == ["udp:127.0.0.1:2223"]
    assert topo["dmq_peers"] == ["198.18.0.12"]


def test_address_table_rows_networks_and_duplicates():
    rows = address_table({2: ["198.51.100.0/24", "198.51.100.9/24"], 1: ["198.18.0.11", "198.18.0.11"]})
    # Sorted by group; one row per network and group (198.51.100.9/24 is the same network).
    assert rows == [
        {"group": 1, "address": "198.18.0.11", "mask": 32, "tag": "198.18.0.11"},
        {"group": 2, "address": "198.51.100.0", "mask": 24, "tag": "198.51.100.0/24"},
    ]


def test_address_table_names_a_bad_source():
    with pytest.raises(AnsibleFilterError, match=r"'198\.51\.100\.0/33' \(group 2\) is not an IPv4"):
        address_table({2: ["198.51.100.0/33"]})


def test_firewall_openings_one_per_protocol():
    assert firewall_openings(["udp", "tcp"], 5060, comment="SIP") == [
        {"proto": "udp", "port": "5060", "comment": "SIP", "management": False, "sources": "any"},
        {"proto": "tcp", "port": "5060", "comment": "SIP", "management": False, "sources": "any"}]
    assert firewall_openings(["udp"], 2223, sources=("198.18.0.11",), management=True)[0]["sources"] == [
        "198.18.0.11"]
    with pytest.raises(AnsibleFilterError, match="sources must be 'any' or a list"):
        firewall_openings(["udp"], 5062, sources="198.18.0.11")


def test_cluster_set_lists_the_other_members_at_their_sip_port():
    topo = proxy_topology(HOSTVARS, GROUPS, "proxy1", sets=[{"id": 1, "destinations": [{"uri": "sip:203.0.113.50"}]}],
                          cluster_set=900)
    assert topo["dispatcher_sets"][-1] == {"id": 900, "algorithm": 4, "destinations": [
        {"uri": "sip:198.18.0.12:5070", "priority": 0, "attrs": ""},
        {"uri": "sip:198.18.0.13:5060", "priority": 0, "attrs": ""}]}
    assert topo["carriers"] == ["203.0.113.50"]
    with pytest.raises(AnsibleFilterError, match="set 900 is the cluster's own set"):
        proxy_topology(HOSTVARS, GROUPS, "proxy1", sets=[{"id": 900}], cluster_set=900)


def test_cluster_set_of_a_proxy_alone_is_kept_empty():
    # A big box with DMQ on and no peers yet: the set exists (empty), so joining peers is a reload.
    topo = proxy_topology(HOSTVARS, {"kamailio": ["proxy1"]}, "proxy1", cluster_set=900)
    assert topo["dispatcher_sets"] == [{"id": 900, "algorithm": 4, "destinations": []}]
    assert topo["dmq_peers"] == []
    assert proxy_topology(HOSTVARS, {"kamailio": ["proxy1"]}, "proxy1")["dispatcher_sets"] == []


def test_dispatcher_states_finds_every_set_holding_the_uri():
    from ansible_collections.itsp.cluster.plugins.filter.topology import dispatcher_states

    listing = {"NRSETS": 2, "RECORDS": [
        {"SET": {"ID": 900, "TARGETS": [{"DEST": {"URI": "sip:198.18.0.12:5060", "FLAGS": "IP"}},
                                         {"DEST": {"URI": "sip:198.18.0.13:5060", "FLAGS": "AX"}}]}},
        {"SET": {"ID": 1, "TARGETS": [{"DEST": {"URI": "sip:198.18.0.12:5060", "FLAGS": "AX"}}]}}]}
    assert dispatcher_states(listing, "sip:198.18.0.12:5060") == [{"set": 900, "state": "I"}, {"set": 1, "state": "A"}]
    assert dispatcher_states(listing, "sip:198.18.0.99:5060") == []
    assert dispatcher_states(None, "sip:198.18.0.12:5060") == []


def test_dispatcher_changes_only_where_the_state_differs():
    from ansible_collections.itsp.cluster.plugins.filter.topology import dispatcher_changes

    results = [{"item": "proxy2", "result": {"RECORDS": [
                   {"SET": {"ID": 900, "TARGETS": [{"DEST": {"URI": "sip:198.18.0.11:5060", "FLAGS": "AX"}}]}},
                   {"SET": {"ID": 1, "TARGETS": [{"DEST": {"URI": "sip:198.18.0.11:5060", "FLAGS": "IX"}}]}}]}},
               {"item": "proxy3", "failed": True, "error": {"message": "Method Not Found"}}]
    assert dispatcher_changes(results, "sip:198.18.0.11:5060", active=False) == [{"peer": "proxy2", "set": 900}]
    assert dispatcher_changes(results, "sip:198.18.0.11:5060", active=True) == [{"peer": "proxy2", "set": 1}]


def test_in_service_leaves_out_the_retired_hosts():
    from ansible_collections.itsp.cluster.plugins.filter.topology import in_service

    groups = {"kamailio": ["proxy1", "proxy2", "proxy3"], "rtpengine": ["media1"], "retired": ["proxy3"]}
    assert in_service(groups) == {"kamailio": ["proxy1", "proxy2"], "rtpengine": ["media1"]}
    assert in_service({"kamailio": ["proxy1"]}) == {"kamailio": ["proxy1"]}
    assert proxy_topology(HOSTVARS, in_service(dict(GROUPS, retired=["proxy3"])), "proxy1")["cluster"] == [
        "198.18.0.11", "198.18.0.12"]


def test_own_calls_counts_live_local_dialogs_only():
    from ansible_collections.itsp.cluster.plugins.filter.topology import own_calls

    # As Kamailio 5.6 lists them (dlg.list) with enable_dmq: its own dialogs carry the DMQ iflag
    # (64) too once replicated; only the socket tells a peer's replica (null) from its own.
    ours = {"socket": "udp:198.18.0.11:5060", "tag": "a"}
    replica = {"socket": None, "tag": "b"}
    dialogs = [{"state": 4, "iflags": 64, "caller": ours}, {"state": 2, "iflags": 0, "caller": ours},
               {"state": 3, "iflags": 64, "caller": ours},                     # confirmed, no ACK yet
               {"state": 4, "iflags": 64, "caller": replica},                  # a peer's call
               {"state": 5, "iflags": 64, "caller": ours},                     # deleted
               {"state": 4, "iflags": 64, "caller": None}, {"state": 4},       # no leg data
               {"state": "x", "caller": ours}, "garbage"]
    assert own_calls(dialogs) == 3
    assert own_calls(None) == 0


def test_relay_changes_only_where_the_relay_is_listed_in_the_other_state():
    from ansible_collections.itsp.cluster.plugins.filter.topology import relay_changes

    url = "udp:198.18.0.21:2223"
    results = [{"item": "proxy1", "result": [{"url": url, "disabled": 0}]},
               {"item": "proxy2", "result": [{"url": url, "disabled": "1(permanent)"}]},
               {"item": "proxy3", "result": [{"url": "udp:127.0.0.1:2223", "disabled": 0}]},  # its own relay only
               {"item": "proxy4", "result": [{"url": url, "disabled": 1}]},  # the module's own, rechecked
               {"item": "proxy5", "failed": True, "error": {"message": "Method Not Found"}}]
    assert relay_changes(results, url, disabled=True) == ["proxy1", "proxy4"]
    assert relay_changes(results, url, disabled=False) == ["proxy2"]


def test_read_results_take_each_nodes_own_read_and_leave_out_the_missing_ones():
    from ansible_collections.itsp.cluster.plugins.filter.topology import dispatcher_changes, read_results

    listing = {"RECORDS": [{"SET": {"ID": 900, "TARGETS": [{"DEST": {"URI": "sip:198.18.0.11:5060", "FLAGS": "IP"}}]}}]}
    hostvars = {
        "proxy1": {"sets": {"changed": False, "result": {"RECORDS": []}}},
        "proxy2": {"sets": {"changed": False, "result": listing}},
        "proxy3": {"sets": {"failed": False, "error": {"message": "Method Not Found"}}},  # tolerated: no sets
        "proxy4": {"sets": {"failed": True, "msg": "no answer"}},  # its peers read it themselves
        "proxy5": {"sets": {"skipped": True}},
        "proxy6": {},  # did not read in this play
    }
    hosts = ["proxy2", "proxy1", "proxy3", "proxy4", "proxy5", "proxy6", "gone"]
    results = read_results(hostvars, hosts, "sets")
    assert results == [{"item": "proxy2", "result": listing}, {"item": "proxy1", "result": {"RECORDS": []}},
                       {"item": "proxy3", "result": None}]
    # Shaped like a loop's registered results: the decisions take them as they took the peers' reads.
    assert dispatcher_changes(results, "sip:198.18.0.11:5060", active=True) == [{"peer": "proxy2", "set": 900}]
    assert read_results(hostvars, None, "sets") == []


def test_read_results_take_one_methods_answer_from_a_calls_run():
    from ansible_collections.itsp.cluster.plugins.filter.topology import read_results

    listing = {"RECORDS": []}
    hostvars = {
        "proxy1": {"reads": {"changed": False, "results": [{"method": "dispatcher.list", "result": listing},
                                                            {"method": "rtpengine.show", "result": []}]}},
        # A tolerated error (failed_when said no): kept, with no result.
        "proxy2": {"reads": {"failed": False, "results": [
            {"method": "dispatcher.list", "error": {"code": 500, "message": "No Destination Sets"}}]}},
        "proxy3": {"reads": {"failed": True, "msg": "no answer"}},
    }
    hosts = ["proxy1", "proxy2", "proxy3"]
    assert read_results(hostvars, hosts, "reads", "dispatcher.list") == [
        {"item": "proxy1", "result": listing}, {"item": "proxy2", "result": None}]
    # proxy2 did not read its relay sets (no relays in service): left out, its peers read it themselves.
    assert read_results(hostvars, hosts, "reads", "rtpengine.show") == [{"item": "proxy1", "result": []}]


def test_scrape_targets_use_private_addresses_ports_and_name_each_node():
    hostvars = dict(HOSTVARS, proxy2=dict(HOSTVARS["proxy2"], kamailio_metrics_port=9600),
                    proxy3=dict(HOSTVARS["proxy3"], kamailio_metrics_enabled=False))
    assert scrape_targets(hostvars, GROUPS, "kamailio", "kamailio_metrics_port", 9494) == [
        {"targets": ["198.18.0.11:9494"], "labels": {"node": "proxy1", "group": "kamailio"}},
        {"targets": ["198.18.0.12:9600"], "labels": {"node": "proxy2", "group": "kamailio"}},
    ]
    # rtpengine listens on its control address when one is set.
    assert scrape_targets(HOSTVARS, GROUPS, "rtpengine", "rtpengine_metrics_port", 9495,
                          address_var="rtpengine_ng_address")[2] == {
        "targets": ["198.19.0.22:9495"], "labels": {"node": "media2", "group": "rtpengine"}}
    assert scrape_targets(HOSTVARS, GROUPS, "monitoring", "kamailio_metrics_port", 9494) == []


def test_scrape_targets_refuse_a_host_without_an_address():
    with pytest.raises(AnsibleFilterError, match="host 'ghost' of group 'kamailio' has no private address"):
        scrape_targets({"ghost": {}}, {"kamailio": ["ghost"]}, "kamailio", "kamailio_metrics_port", 9494)
