"""What DMQ replication costs each proxy as a full-mesh cluster grows. Pure arithmetic, no Ansible.

Kamailio's DMQ sends every replicated event as a SIP request (method KDMQ, JSON body) to every
other node, and every KDMQ is answered (200 OK). Three streams of events cross the mesh:

- registrations (dmq_usrloc): one KDMQ per contact inserted, updated or removed by a REGISTER, to
  each peer. Contacts that expire are expired by every node on its own (no message).
- dialogs (dialog module, enable_dmq): ``dmq_dialog_messages_per_call`` KDMQ per call to each peer
  (its state changes and CSeq updates: 5 for INVITE/ACK/BYE, measured by bench/bench_dmq_wire.py).
- peer pings (dmq notification peer): every node sends its node list to every other node every
  ``dmq_ping_interval_s`` seconds; request and reply list every node, so they grow with the cluster.

With E events per second fleet-wide, spread evenly over n nodes, one node originates E/n and sends
each to the n - 1 others, and receives the others' E (n - 1) / n:

    KDMQ out = KDMQ in = replies out = replies in = E (n - 1) / n        per node, per second
    packets  = 4 E (n - 1) / n
    bytes    = E (n - 1) / n x (request bytes + reply bytes)            per node, each direction

so a node's replication load tends to E, the WHOLE cluster's event rate, whatever n: adding nodes
does not dilute it. The fleet's replicated bytes, E (n - 1) (request + reply), grow linearly with n.
Pings add (n - 1) / P requests each way, each exchange (base + 2 x per_node x n) bytes: quadratic in
n fleet-wide, negligible below a few hundred nodes.

A node's useful work is its share of the fleet's traffic, U / n; its replication work tends to the
fixed X. Past n = 1 + U / X ("break-even", on the scarcest resource of the node type) every node
spends more on other nodes' events than on its own traffic - the mesh delivers less than half of
what n independent nodes would: that is where a full mesh stops paying for itself. However many
nodes, a mesh never carries more than capacity / X times the workload. And
once X alone exceeds ``budget`` percent of one node's usable capacity, no node count helps: the
cluster has to be split (registrations sharded by AOR over replication groups, or kept in a shared
store) or the event rate lowered (longer registration intervals, NAT kept open by proxy-side
keepalives instead of re-registrations).
"""

import math

from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

DEFAULT_GROWTH_NODES = (2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40, 50)
DEFAULT_BUDGET_PCT = 25.0
MAX_GROWTH_NODES = 1000
SECONDS_PER_MONTH = 730 * 3600
GB = 1e9


def check_options(options):
    """The module's ``replication`` option with defaults, checked; errors name the field."""
    options = dict(options or {})
    budget = options.get("budget")
    budget = DEFAULT_BUDGET_PCT if budget is None else budget
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 100 \
            or not math.isfinite(budget):
        raise SizingError(f"replication.budget is a percent of a node's capacity: above 0, at most 100 "
                          f"(got {budget!r})")
    price = options.get("transfer_price_per_gb")
    price = 0.0 if price is None else price
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) \
            or not 0 <= price <= 1000:
        raise SizingError(f"replication.transfer_price_per_gb must be a price from 0 to 1000 (got {price!r})")
    nodes = options.get("growth_nodes")
    nodes = list(DEFAULT_GROWTH_NODES) if nodes is None else nodes
    if not isinstance(nodes, list) or not nodes or any(
            isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_GROWTH_NODES for n in nodes):
        raise SizingError(f"replication.growth_nodes must be a non-empty list of node counts from 2 to "
                          f"{MAX_GROWTH_NODES} (got {nodes!r})")
    return {"budget": float(budget), "transfer_price_per_gb": float(price), "growth_nodes": sorted(set(nodes))}


def event_rates(wl, calib):
    """Replicated events per second, fleet-wide: (registration events, dialog messages)."""
    return (wl["registrations_per_second"],
            wl["calls_per_second"] * calib["dmq_dialog_messages_per_call"])


def ping_exchange_bytes(calib, nodes):
    """A peer ping and its reply: both carry the list of every node."""
    return (calib["dmq_ping_request_bytes"] + calib["dmq_reply_bytes"]
            + 2 * calib["dmq_ping_bytes_per_node"] * nodes)


def per_node(wl, calib, nodes):
    """DMQ traffic of one node in a full mesh of ``nodes`` proxies that share the load evenly."""
    regs, dialogs = event_rates(wl, calib)
    share = (nodes - 1) / float(nodes) if nodes > 1 else 0.0
    reply = calib["dmq_reply_bytes"]
    streams = {
        "registrations": (regs * share, calib["dmq_usrloc_request_bytes"] + reply),
        "dialogs": (dialogs * share, calib["dmq_dialog_request_bytes"] + reply),
        "pings": ((nodes - 1) / calib["dmq_ping_interval_s"], ping_exchange_bytes(calib, nodes)),
    }
    out = {}
    for name, (requests, exchange_bytes) in streams.items():
        out[name] = {
            "requests_per_second": requests,  # sent; as many received, and a reply for each
            "packets_per_second": 4.0 * requests,
            "bytes_per_second": requests * exchange_bytes,  # each direction
        }
    out["total"] = {key: sum(out[s][key] for s in streams) for key in out["registrations"]}
    out["total"]["mbit_per_second"] = out["total"]["bytes_per_second"] * 8.0 / 1e6
    return out


def fleet_bytes_per_second(wl, calib, nodes, zones=1):
    """(all replicated bytes, those crossing zones) per second for the whole fleet: every request
    and its reply, counted once each."""
    node = per_node(wl, calib, nodes)["total"]["bytes_per_second"]
    total = node * nodes
    if zones <= 1 or nodes <= 1:
        return total, 0.0
    # Round-robin over zones: of a node's n - 1 peers, n - ceil(n/Z) at most live in other zones.
    other_zone_peers = nodes - math.ceil(nodes / float(zones))
    return total, total * other_zone_peers / float(nodes - 1)


def cpu_per_node(wl, calib, nodes):
    """vCPU one node spends on replication: applying what it receives, sending what it originates."""
    regs, dialogs = event_rates(wl, calib)
    share = (nodes - 1) / float(nodes) if nodes > 1 else 0.0
    per_message = (calib["kamailio_replication_cost"] + calib["kamailio_replication_send_cost"]) \
        / calib["kamailio_registrations_per_vcpu"]
    return (regs + dialogs) * share * per_message


def demand(wl, calib):
    """Replication as the model's (fixed, variable) pairs: per node it is L (1 - 1/s) with s nodes up,
    i.e. fixed L and variable -L (the variable part is shared: -L/s). L is the limit for a large mesh."""
    limit = per_node_limit(wl, calib)
    return {res: (value, -value) for res, value in limit.items()}


def per_node_limit(wl, calib):
    """What one node carries as the mesh grows without bound (the fixed part of its load)."""
    regs, dialogs = event_rates(wl, calib)
    reply = calib["dmq_reply_bytes"]
    per_message = (calib["kamailio_replication_cost"] + calib["kamailio_replication_send_cost"]) \
        / calib["kamailio_registrations_per_vcpu"]
    bytes_per_second = (regs * (calib["dmq_usrloc_request_bytes"] + reply)
                        + dialogs * (calib["dmq_dialog_request_bytes"] + reply))
    return {
        "cpu": (regs + dialogs) * per_message,
        "pps": 4.0 * (regs + dialogs),
        "bandwidth_gbps": bytes_per_second * 8.0 / 1e9,
    }


def workload_multiple(useful, limit, capacity, nodes):
    """How many times the workload a full mesh of ``nodes`` nodes carries: per resource, a node's load
    for k workloads is k (limit (1 - 1/n) + useful / n); the scarcest resource decides."""
    best = None
    for res, cap in capacity.items():
        load = limit[res] * (1.0 - 1.0 / nodes) + useful[res] / float(nodes)
        if cap > 0 and load > 0:
            best = cap / load if best is None else min(best, cap / load)
    return best


def efficiency(useful, limit, capacity, nodes):
    """Share of n independent nodes' capacity a full mesh of n delivers (1 for one node)."""
    one = workload_multiple(useful, limit, capacity, 1)
    many = workload_multiple(useful, limit, capacity, nodes)
    return None if not one or many is None else many / (nodes * one)


def next_node_gain(useful, limit, capacity, nodes):
    """What one more node adds to a mesh of ``nodes``, as a share of one independent node."""
    one = workload_multiple(useful, limit, capacity, 1)
    if not one:
        return 0.0
    return (workload_multiple(useful, limit, capacity, nodes + 1)
            - workload_multiple(useful, limit, capacity, nodes)) / one


def break_even_nodes(useful, limit, capacity, largest=MAX_GROWTH_NODES):
    """Smallest mesh in which each node spends more of its scarcest resource on its peers' events than
    on its own traffic (efficiency below one half); None when that never happens up to ``largest``."""
    for nodes in range(2, largest + 1):
        value = efficiency(useful, limit, capacity, nodes)
        if value is not None and value < 0.5 - 1e-9:
            return nodes
    return None


def growth_rows(wl, calib, nodes_list, zones=1, price_per_gb=0.0):
    """One row per mesh size for the growth table and plot."""
    rows = []
    for n in nodes_list:
        node = per_node(wl, calib, n)
        total, cross = fleet_bytes_per_second(wl, calib, n, zones)
        rows.append({
            "nodes": n,
            "kdmq_sent_per_second": round(node["total"]["requests_per_second"], 1),
            "packets_per_second": round(node["total"]["packets_per_second"], 1),
            "mbit_per_second": round(node["total"]["mbit_per_second"], 3),
            "ping_bytes_per_second": round(node["pings"]["bytes_per_second"], 1),
            "cpu_vcpus": round(cpu_per_node(wl, calib, n), 3),
            "fleet_gb_per_month": round(total * SECONDS_PER_MONTH / GB, 1),
            "cross_zone_gb_per_month": round(cross * SECONDS_PER_MONTH / GB, 1),
            "cross_zone_cost_per_month": round(cross * SECONDS_PER_MONTH / GB * price_per_gb, 2),
        })
    return rows
