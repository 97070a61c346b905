# -*- coding: utf-8 -*-
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who are my peers, relays and carriers, and on which address/port: one place for the roles.

Every role asks these filters instead of looping over ``hostvars`` in Jinja, so the topology
rules are unit-tested (tests/unit/plugins/filter/test_topology.py) and the same everywhere.
"""



import ipaddress

from ansible.errors import AnsibleFilterError

DEFAULT_SIP_PORT = 5060
DEFAULT_NG_PORT = 2223


def _vars(hostvars, name):
    try:
        return hostvars[name]
    except KeyError:
        raise AnsibleFilterError(f"host {name!r} is in a group but has no hostvars") from None


def in_service(groups, retired_group="retired"):
    """The inventory groups without the hosts being retired (the group ``retired_group``).

    A host moved into ``retired`` is drained, dropped from every peer's lists and stopped by
    site.yml; everything that lists peers asks for them through this filter.
    """
    retired = set(groups.get(retired_group) or [])
    return {name: [h for h in hosts if h not in retired] for name, hosts in groups.items()
            if name != retired_group}


def node_address(node_vars):
    """The private address other nodes reach this node on.

    The address cloud_facts found (``itsp_cloud.private_ipv4``), else ``ansible_host`` (a host
    whose facts this run did not gather, e.g. with --limit), else nothing.
    """
    cloud = node_vars.get("itsp_cloud") or {}
    address = cloud.get("private_ipv4") if hasattr(cloud, "get") else None
    return address or node_vars.get("ansible_host") or ""


def entry_address(node_vars):
    """The public address clients reach this proxy on: its floating address's public side when it
    has one (an active-passive pair: the VIP, whichever box holds it), else its own public address
    (``itsp_cloud.public_ipv4``), else nothing."""
    floating = node_vars.get("kamailio_floating_advertise_address") or ""
    if floating:
        return floating
    cloud = node_vars.get("itsp_cloud") or {}
    return (cloud.get("public_ipv4") if hasattr(cloud, "get") else None) or ""


def _members(hostvars, groups, group):
    return [(name, _vars(hostvars, name)) for name in (groups.get(group) or [])]


def cluster_members(hostvars, groups, group):
    """[{name, address, sip_port}] of every host in ``group``, in inventory order."""
    return [{"name": name, "address": node_address(hv),
             "sip_port": int(hv.get("kamailio_sip_port", DEFAULT_SIP_PORT))}
            for name, hv in _members(hostvars, groups, group)]


def media_relays(hostvars, groups, me, relay_group="rtpengine", cluster_group="kamailio"):
    """The ng control URIs (``udp:ADDRESS:PORT``) a proxy drives.

    The local rtpengine when this host is a relay too (co-located, as on a big box), else the
    group's dedicated media hosts (those that are not proxies), else every relay of the group.
    """
    relays = groups.get(relay_group) or []
    proxies = set(groups.get(cluster_group) or [])
    if me in relays:
        chosen = [me]
    else:
        dedicated = [h for h in relays if h not in proxies]
        chosen = dedicated or list(relays)
    out = []
    for name in chosen:
        hv = _vars(hostvars, name)
        address = hv.get("rtpengine_ng_address") or node_address(hv)
        out.append(f"udp:{address}:{int(hv.get('rtpengine_ng_port', DEFAULT_NG_PORT))}")
    return out


def dispatcher_sets(sets, hostvars, groups):
    """Dispatcher sets with defaults filled in and inventory groups expanded.

    A set may name ``group``: its hosts join as destinations at their private address and SIP
    port (not ansible_host: that is the management address).
    """
    out = []
    for entry in sets or []:
        if "id" not in entry:
            raise AnsibleFilterError(f"kamailio_dispatcher_sets: every set needs an id (got {entry!r})")
        destinations = [{"uri": d["uri"], "priority": int(d.get("priority", 0)), "attrs": d.get("attrs", "")}
                        for d in entry.get("destinations") or []]
        for member in cluster_members(hostvars, groups, entry["group"]) if entry.get("group") else []:
            destinations.append({"uri": f"sip:{member['address']}:{member['sip_port']}",
                                 "priority": 0, "attrs": ""})
        out.append({"id": int(entry["id"]), "algorithm": int(entry.get("algorithm", 4)),
                    "destinations": destinations})
    return out


def server_id(address):
    """A node's Kamailio server_id from its private IPv4 address: the last two octets."""
    try:
        packed = ipaddress.IPv4Address(str(address)).packed
    except ValueError:
        raise AnsibleFilterError(f"server_id: {address!r} is not an IPv4 address") from None
    return packed[2] * 256 + packed[3]


def uri_host(uri):
    """The host part of a SIP URI (sip:user@HOST:port;params)."""
    rest = str(uri).split(":", 1)[1] if ":" in str(uri) else str(uri)
    rest = rest.split(";", 1)[0].rsplit("@", 1)[-1]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def address_table(groups_of_sources):
    """Rows of permissions' address table from {group id: [address or CIDR, ...]}.

    Each row: {group, address (the network address), mask (prefix length), tag}; a source
    listed twice in one group is one row. Group ids are the GRP_* defines of kamailio.cfg. A
    source may be {source, tag} to set the tag (a trunk's name); else the tag is the source.
    """
    rows = []
    seen = set()
    for group in sorted(groups_of_sources, key=int):
        for item in groups_of_sources[group] or []:
            source, tag = (item.get("source"), item.get("tag")) if isinstance(item, dict) else (item, None)
            try:
                network = ipaddress.IPv4Network(str(source), strict=False)
            except ValueError:
                raise AnsibleFilterError(
                    f"address_table: {source!r} (group {group}) is not an IPv4 address or network") from None
            key = (int(group), str(network))
            if key in seen:
                continue
            seen.add(key)
            rows.append({"group": int(group), "address": str(network.network_address),
                         "mask": network.prefixlen, "tag": str(tag or source)})
    return rows


def firewall_openings(protos, port, sources="any", comment="", management=False):
    """What a service publishes for the firewall role: one opening per protocol.

    ``sources`` is "any" or a list of addresses/CIDRs (an empty list opens nothing);
    ``management`` adds the firewall's management sources.
    """
    if sources != "any" and not isinstance(sources, (list, tuple)):
        raise AnsibleFilterError(f"firewall_openings: sources must be 'any' or a list, not {sources!r}")
    return [{"proto": str(proto), "port": str(port), "comment": comment, "management": bool(management),
             "sources": sources if sources == "any" else list(sources)} for proto in protos]


def scrape_targets(hostvars, groups, group, port_var, default_port, address_var=None):
    """Prometheus static_configs for the hosts of ``group``: one entry per host,
    ``{targets: ["PRIVATE:PORT"], labels: {node: NAME, group: GROUP}}``.

    The port is the host's ``port_var`` (e.g. kamailio_metrics_port), else ``default_port``; the
    address its ``address_var`` when set (rtpengine_ng_address), else its private address. A host
    with ``<role>_metrics_enabled: false`` (the prefix of ``port_var``) is left out.
    """
    prefix = str(port_var).rsplit("_metrics_port", 1)[0]
    out = []
    for name, hv in _members(hostvars, groups, group):
        enabled = hv.get(f"{prefix}_metrics_enabled", True)
        if str(enabled).lower() in ("false", "no", "0", "off"):
            continue
        address = (hv.get(address_var) if address_var else "") or node_address(hv)
        if not address:
            raise AnsibleFilterError(f"scrape_targets: host {name!r} of group {group!r} has no private address")
        port = int(hv.get(port_var, default_port))
        out.append({"targets": [f"{address}:{port}"], "labels": {"node": name, "group": group}})
    return out


def dispatcher_states(listing, uri):
    """[{set, state}] for every set of a ``dispatcher.list`` RPC result that holds ``uri``.

    state is the first letter of Kamailio's FLAGS: A(ctive), I(nactive), D(isabled), T(rying).
    """
    records = ((listing or {}).get("RECORDS") or []) if isinstance(listing, dict) else []
    out = []
    for record in records:
        entry = record.get("SET") or {}
        for target in entry.get("TARGETS") or []:
            dest = target.get("DEST") or {}
            if dest.get("URI") == uri:
                out.append({"set": int(entry.get("ID")), "state": str(dest.get("FLAGS", "?"))[:1]})
    return out


def dispatcher_changes(results, uri, active):
    """From the registered results of a ``dispatcher.list`` loop over peers: [{peer, set}] where
    ``uri`` is not yet in the wanted state (active or inactive)."""
    changes = []
    for res in results or []:
        for state in dispatcher_states(res.get("result"), uri):
            if (state["state"] == "A") != bool(active):
                changes.append({"peer": res.get("item"), "set": state["set"]})
    return changes


def relay_changes(results, url, disabled):
    """From the registered results of an ``rtpengine.show all`` loop over proxies: the proxies whose
    relay set lists ``url`` in the other state. "1(permanent)" is an operator's disable; a plain 1
    is the module's own (a failed ping, rechecked), which counts as enabled here."""
    changes = []
    for res in results or []:
        entries = res.get("result") if isinstance(res.get("result"), list) else []
        for entry in entries:
            listed = isinstance(entry, dict) and entry.get("url") == url
            if listed and (str(entry.get("disabled")) == "1(permanent)") != bool(disabled):
                changes.append(res.get("item"))
    return changes




def read_results(hostvars, hosts, name, method=None):
    """The reads each of ``hosts`` registered as ``name`` (one kamailio_rpc call on the node itself),
    shaped like a loop's registered results: [{item: host, result: ...}], in the order of ``hosts``.
    With ``method``, ``name`` holds a kamailio_rpc ``calls`` run and the answer to that method is
    taken from its ``results`` (a host that did not make that call is left out).

    A host whose read did not run, was skipped or failed is left out: whoever needs it reads it
    itself. The sip_node role decides from these, one read per proxy, instead of every node reading
    every proxy (N x (N - 1) calls)."""
    out = []
    for name_ in hosts or []:
        try:
            hv = hostvars[name_]
        except KeyError:
            continue
        res = hv.get(name) if hasattr(hv, "get") else None
        if not isinstance(res, dict) or res.get("failed") or res.get("skipped"):
            continue
        if method is not None:
            res = next((r for r in res.get("results") or [] if isinstance(r, dict) and r.get("method") == method), None)
            if res is None:
                continue
        out.append({"item": name_, "result": res.get("result")})
    return out


def own_calls(dialogs):
    """Calls this proxy set up and still carries, from a ``dlg.list`` RPC result: dialogs not yet
    deleted (state 1-4) bound to one of this proxy's sockets. A dialog a peer replicated over DMQ
    has no socket here (``caller.socket`` is null); the ``iflags`` DMQ bit cannot tell them apart,
    since Kamailio sets it on its own replicated dialogs too. (Profile counts are not used: a peer's
    replicated and deleted dialogs can leave them behind.)"""
    count = 0
    for dialog in dialogs or []:
        try:
            state = int(dialog.get("state", 5))
            socket = (dialog.get("caller") or {}).get("socket")
        except (TypeError, ValueError, AttributeError):
            continue
        if 1 <= state <= 4 and socket:
            count += 1
    return count


def proxy_topology(hostvars, groups, me, cluster_group="kamailio", relay_group="rtpengine",
                   relays=None, dmq_peers=None, sets=None, cluster_set=None):
    """Everything a proxy needs to know about the others, as one dict.

    cluster: private addresses of every proxy of the cluster (this one included);
    dmq_peers: the members to notify (explicit list, else every other member);
    relays: ng URIs of the media relays (explicit list, else media_relays());
    dispatcher_sets: dispatcher_sets() of ``sets``, plus set ``cluster_set`` of the other members
        at their SIP port when given (where a draining proxy passes new calls);
    carriers: addresses of every dispatcher destination (they may reach our users).
    """
    members = cluster_members(hostvars, groups, cluster_group)
    own = node_address(_vars(hostvars, me))
    cluster = [m["address"] for m in members]
    expanded = dispatcher_sets(sets, hostvars, groups)
    peers = [m for m in members if m["name"] != me]
    # A DMQ-enabled proxy alone (a big box about to be migrated) keeps its cluster set, empty:
    # peers that join later are a dispatcher.reload away, not a restart (WITH_DISPATCHER stays).
    if cluster_set is not None:
        if int(cluster_set) in [e["id"] for e in expanded]:
            raise AnsibleFilterError(
                f"kamailio_dispatcher_sets: set {cluster_set} is the cluster's own set; use another id")
        expanded.append({"id": int(cluster_set), "algorithm": 4, "destinations": [
            {"uri": f"sip:{m['address']}:{m['sip_port']}", "priority": 0, "attrs": ""} for m in peers]})
    carriers = []
    for entry in expanded:
        for dest in entry["destinations"]:
            host = uri_host(dest["uri"])
            if host not in carriers and host not in cluster:
                carriers.append(host)
    return {
        "address": own,
        "cluster": cluster,
        "dmq_peers": list(dmq_peers) if dmq_peers else [a for a in cluster if a != own],
        "relays": list(relays) if relays else media_relays(hostvars, groups, me, relay_group, cluster_group),
        "dispatcher_sets": expanded,
        "carriers": carriers,
    }


DEFAULT_VRID = 51
DEFAULT_PRIORITY = 100


def _int_in(value, low, high):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if low <= number <= high else None


def vrrp_pair(hostvars, groups, me, group="keepalived", default_vrid=DEFAULT_VRID, default_prefix=24,
              default_priority=DEFAULT_PRIORITY):
    """The VRRP instance ``me`` runs with its partner: an active-passive pair is exactly the two
    hosts of ``group``, sharing keepalived_vip (in both hosts' subnet, neither's own address) and
    keepalived_virtual_router_id (used by no other pair on that network), with different
    keepalived_priority. Returns {address, peers, vip, prefix, vrid, priority, preferred, problems}:
    preferred is true on the box with the higher priority; problems lists what is wrong, each naming
    the variable to fix (the role's preflight stops on them)."""
    members = list(groups.get(group) or [])
    problems = []
    if len(members) != 2:
        problems.append(f"{group}: an active-passive pair is exactly 2 hosts; the group has {len(members)}"
                        f" ({', '.join(members) or 'none'})")
    hv = {name: _vars(hostvars, name) for name in members}
    mine = _vars(hostvars, me)
    address = node_address(mine)
    vip = str(mine.get("keepalived_vip") or "")
    prefix = _int_in(mine.get("keepalived_vip_prefix", default_prefix), 1, 32)
    vrid = _int_in(mine.get("keepalived_virtual_router_id", default_vrid), 1, 255)
    priority = _int_in(mine.get("keepalived_priority", default_priority), 1, 254)
    if prefix is None:
        problems.append(f"keepalived_vip_prefix: {mine.get('keepalived_vip_prefix')!r} is not a prefix length (1-32)")
    if vrid is None:
        problems.append(f"keepalived_virtual_router_id: {mine.get('keepalived_virtual_router_id')!r} is not "
                        f"a VRRP router id (1-255)")
    if priority is None:
        problems.append(f"keepalived_priority: {mine.get('keepalived_priority')!r} on {me} is not a VRRP "
                        f"priority (1-254)")
    try:
        vip_address = ipaddress.IPv4Address(vip)
    except ValueError:
        vip_address = None
        problems.append(f"keepalived_vip: {vip!r} is not an IPv4 address")
    for name, hvars in hv.items():
        if str(hvars.get("keepalived_vip") or "") != vip:
            problems.append(f"keepalived_vip: the pair disagrees ({me}: {vip!r}, {name}: "
                            f"{hvars.get('keepalived_vip')!r}); give it once, for the group {group}")
        if _int_in(hvars.get("keepalived_virtual_router_id", default_vrid), 1, 255) != vrid:
            problems.append(f"keepalived_virtual_router_id: the pair disagrees ({me}: {vrid}, {name}: "
                            f"{hvars.get('keepalived_virtual_router_id', default_vrid)})")
        if vip_address is None or prefix is None:
            continue
        own = node_address(hvars)
        try:
            subnet = ipaddress.IPv4Interface(f"{own}/{prefix}").network
        except ValueError:
            problems.append(f"{name}: its address {own!r} is not an IPv4 address")
            continue
        if vip == own:
            problems.append(f"keepalived_vip: {vip} is {name}'s own address; the VIP must be a free address")
        elif vip_address not in subnet:
            problems.append(f"keepalived_vip: {vip} is outside {name}'s subnet {subnet} "
                            f"(keepalived_vip_prefix {prefix})")
        elif vip_address in (subnet.network_address, subnet.broadcast_address) and prefix < 31:
            problems.append(f"keepalived_vip: {vip} is the network or broadcast address of {subnet}")
    theirs = None
    if len(members) == 2 and priority is not None:
        other = [n for n in members if n != me]
        theirs = _int_in(hv[other[0]].get("keepalived_priority", default_priority), 1, 254) if other else None
        if theirs == priority:
            problems.append(f"keepalived_priority: {' and '.join(members)} both have {priority}; give the "
                            f"preferred box a higher one (a tie leaves the choice to their addresses)")
    # Another pair on the same network with the same router id: their adverts would mix.
    if vrid is not None and prefix is not None and vip_address is not None:
        subnet = ipaddress.IPv4Interface(f"{vip}/{prefix}").network
        for name in groups.get("all") or []:
            if name in members:
                continue
            other = _vars(hostvars, name)
            other_vip = other.get("keepalived_vip")
            if not other_vip or str(other_vip) == vip:
                continue
            try:
                in_subnet = ipaddress.IPv4Address(str(other_vip)) in subnet
            except ValueError:
                continue
            if in_subnet and _int_in(other.get("keepalived_virtual_router_id", default_vrid), 1, 255) == vrid:
                problems.append(f"keepalived_virtual_router_id: {vrid} is also used by {name} (VIP {other_vip}) "
                                f"on {subnet}; every pair on a network needs its own")
                break
    peers = [node_address(hv[n]) for n in members if n != me]
    return {"address": address, "peers": peers, "vip": vip, "prefix": prefix, "vrid": vrid,
            "priority": priority, "preferred": priority is not None and (theirs is None or priority > theirs),
            "problems": list(dict.fromkeys(problems))}


class FilterModule:
    def filters(self):
        return {
            "node_address": node_address,
            "entry_address": entry_address,
            "in_service": in_service,
            "cluster_members": cluster_members,
            "media_relays": media_relays,
            "dispatcher_sets": dispatcher_sets,
            "server_id": server_id,
            "address_table": address_table,
            "firewall_openings": firewall_openings,
            "scrape_targets": scrape_targets,
            "dispatcher_states": dispatcher_states,
            "dispatcher_changes": dispatcher_changes,
            "own_calls": own_calls,
            "relay_changes": relay_changes,
            "read_results": read_results,
            "proxy_topology": proxy_topology,
            "vrrp_pair": vrrp_pair,
        }
