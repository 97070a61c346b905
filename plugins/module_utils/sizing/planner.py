"""SizingManager: catalog in, plan out. The module builds one from its parameters and calls run()."""

from ansible_collections.itsp.cluster.plugins.module_utils.sizing import catalog as catalogs
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model, optimiser, replication
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

HOURS_PER_MONTH = 730
ROLE_LABELS = {"proxy": "proxy (Kamailio)", "media": "media (rtpengine)", "combined": "proxy+media"}
RESOURCE_LABELS = {"cpu": "cpu", "memory_mb": "memory", "pps": "pps", "bandwidth_gbps": "bandwidth",
                   "internet_gbps": "internet", "ports": "ports"}


class SizingManager:
    def __init__(self, params, fetchers=None, check_mode=False):
        self.params = params
        self.fetchers = fetchers or {}
        self.check_mode = check_mode
        self.cache_outcome = {"cache": "not used"}
        self.calib = model.merge_calibration(params.get("calibration"))
        self.workload = model.normalise_workload(params.get("workload"))
        self.replication = replication.check_options(params.get("replication"))
        zones = params.get("zones") or []
        zone_count = len(zones) if zones else int(params.get("zone_count") or 1)
        if zone_count < 1:
            raise SizingError(f"zone_count must be at least 1 (got {zone_count})")
        self.target = optimiser.Target(
            max_instances=params.get("max_instances", 64), redundancy=params.get("redundancy", 1),
            zones=zone_count, headroom=params.get("headroom", 30),
            topology=params.get("topology", "auto"), forwarding=params.get("rtpengine_forwarding", "kernel"))

    # -- catalog -------------------------------------------------------------------------------
    def records(self):
        p = self.params
        provider = p["provider"]
        if provider == "static":
            if not p.get("catalog"):
                raise SizingError("provider=static needs catalog: a list of "
                                  "{name, vcpus, memory_mb, baseline_gbps}")
            return catalogs.static_records(p["catalog"]), "option"
        key = catalogs.cache_key(provider=provider, region=p.get("region"),
                                 zones=sorted(p.get("zones") or []), endpoint=p.get("endpoint_url"),
                                 project=p.get("project"),
                                 profile=p.get("profile"))
        return catalogs.cached_records(key, self.fetchers[provider], p.get("catalog_cache"),
                                       p.get("catalog_cache_max_age", 3600), check_mode=self.check_mode,
                                       outcome=self.cache_outcome)

    # -- the answer ----------------------------------------------------------------------------
    def run(self):
        records, source = self.records()
        candidates, summary = catalogs.select_candidates(
            records, self.params["provider"], self.calib, families=self.params.get("families"),
            architectures=self.params.get("architectures") or catalogs.DEFAULT_ARCHITECTURES,
            prices=self.params.get("prices"), unpriced=self.params.get("unpriced", "fail"),
            region=self.params.get("region") or "")
        summary.update({"provider": self.params["provider"], "region": self.params.get("region"),
                        "source": source, "cache": self.cache_outcome["cache"]})
        found = optimiser.optimise(candidates, self.workload, self.calib, self.target)
        plan = self.describe(found["chosen"], found["topology"])
        alternatives = {name: (self.describe(found[name], name) if found[name] else None)
                        for name in ("separate", "combined")}
        mesh = self.describe_replication(found["chosen"])
        table = render_table(plan, self.workload, self.params, summary, alternatives)
        if mesh:
            table += render_replication(mesh)
        return {
            # The plan changes nothing; writing the catalog_cache file does (or would, in check mode).
            "changed": self.cache_outcome["cache"] in ("written", "would write"),
            "plan": plan,
            "replication": mesh,
            "alternatives": {k: ({"cost_per_hour": v["cost_per_hour"],
                                  "fleets": [f"{r['count']} x {r['instance_type']} ({r['role']})"
                                             for r in v["roles"]]} if v else None)
                             for k, v in alternatives.items()},
            "workload": self.describe_workload(),
            "catalog": summary,
            "assumptions": self.assumptions(),
            "table": table,
        }

    def describe(self, fleets, topology):
        roles = [self.describe_fleet(f) for f in fleets]
        cost = sum(r["cost_per_hour"] for r in roles)
        return {"topology": topology, "roles": roles, "instances": sum(r["count"] for r in roles),
                "cost_per_hour": round(cost, 4), "cost_per_month": round(cost * HOURS_PER_MONTH, 2)}

    def describe_fleet(self, fleet):
        itype, t = fleet.itype, self.target
        demand = model.node_demand(fleet.role, itype, self.workload, self.calib, t.forwarding)
        cap = model.capacity(itype, self.calib)
        survivors = model.survivors_of(fleet.count, t.redundancy, t.zones)
        normal = model.utilisation(demand, cap, fleet.count)
        after = model.utilisation(demand, cap, survivors)
        return {
            "role": fleet.role,
            "instance_type": itype["name"],
            "count": fleet.count,
            "survivors": survivors,
            "survivors_needed": fleet.survivors_needed,
            "zones": self.params.get("zones") or t.zones,
            "price_per_hour": itype["price"],
            "cost_per_hour": round(fleet.cost, 4),
            "vcpus": itype["vcpus"],
            "memory_mb": itype["memory_mb"],
            "baseline_gbps": itype["baseline_gbps"],
            "bandwidth_rule": itype["bandwidth_rule"],
            "pps_allowance": cap["pps"],
            "pps_rule": model.pps_allowance(itype, self.calib)[1],
            "binding": fleet.binding,
            "count_driver": fleet.driver,
            "utilisation": {res: {"normal": normal[res], "after_failure": after[res]}
                            for res in model.RESOURCES},
            "tuning": model.tuning(fleet.role, itype, self.workload, self.calib, t.forwarding,
                                   survivors, t.headroom),
        }

    def describe_replication(self, fleets):
        """DMQ full-mesh cost on the plan's Kamailio fleet, where the mesh stops paying, the growth table."""
        proxies = [f for f in fleets if f.role in ("proxy", "combined")]
        if not proxies:
            return None
        fleet, wl, calib, opts = proxies[0], self.workload, self.calib, self.replication
        n, zones = fleet.count, self.target.zones
        cap = model.capacity(fleet.itype, calib)
        usable = 1.0 - self.target.headroom / 100.0
        node = replication.per_node(wl, calib, n)
        now = {"cpu": replication.cpu_per_node(wl, calib, n), "pps": node["total"]["packets_per_second"],
               "bandwidth_gbps": node["total"]["bytes_per_second"] * 8.0 / 1e9}
        limit = replication.per_node_limit(wl, calib)
        own = model.signalling_load(wl, calib)
        share = {res: round(100.0 * now[res] / cap[res], 2) if cap[res] else None for res in now}
        share_limit = {res: round(100.0 * limit[res] / (cap[res] * usable), 2) if cap[res] else None
                       for res in limit}
        usable_cap = {res: cap[res] * usable for res in limit}
        break_even = replication.break_even_nodes(own, limit, usable_cap)
        efficiency = replication.efficiency(own, limit, usable_cap, n) or 1.0
        gain = replication.next_node_gain(own, limit, usable_cap, n)
        # The fleet cannot be smaller than its zones and its redundancy ask for.
        smallest = max(zones, 1 + self.target.redundancy)
        ceiling = replication.workload_multiple(own, limit, usable_cap, replication.MAX_GROWTH_NODES)
        fleet_month = fleet.count * fleet.itype["price"] * HOURS_PER_MONTH
        total, cross = replication.fleet_bytes_per_second(wl, calib, n, zones)
        month = replication.SECONDS_PER_MONTH / replication.GB
        worst = max(((v, res) for res, v in share_limit.items() if v is not None), default=(0.0, "cpu"))
        transfer = cross * month * opts["transfer_price_per_gb"]
        lower = ("lower the event rate first (kamailio_registrar_min_expires of 600 s or more, NAT kept "
                 "open by the phones' keepalives), then shard registrations by AOR over replication groups "
                 "or keep them in a shared store")
        if worst[0] > opts["budget"]:
            verdict = "split"
            advice = (f"DMQ replication alone would use {worst[0]:.0f}% of a {fleet.itype['name']}'s usable "
                      f"{RESOURCE_LABELS[worst[1]]} however many nodes the mesh has (budget {opts['budget']:g}%): "
                      f"use larger nodes, or {lower}")
        elif break_even is not None and n >= break_even and n > smallest:
            verdict = "past break-even"
            advice = (f"from {break_even} nodes each node spends more on its peers' registrations and dialogs "
                      f"than on its own traffic; this fleet has {n} (it needs {smallest} for its zones and "
                      f"redundancy): prefer fewer, larger nodes, or {lower}")
        else:
            verdict = "full mesh"
            advice = (f"a full mesh is sensible here: replication takes {worst[0]:.1f}% of a node's usable "
                      f"{RESOURCE_LABELS[worst[1]]} at most; {n} nodes deliver {100 * efficiency:.0f}% of what "
                      f"{n} independent nodes would, and one more would add {100 * gain:.0f}% of a node: "
                      "grow the proxies up rather than out")
        if transfer > fleet_month > 0:
            advice += (f"; the replicated bytes crossing zones ({transfer:,.0f} per month) cost more than these "
                       f"proxies ({fleet_month:,.0f} per month)")
        rounded = {stream: {k: round(v, 3) for k, v in figures.items()} for stream, figures in node.items()}
        return {
            "nodes": n, "instance_type": fleet.itype["name"], "per_node": rounded,
            "share_of_capacity": share, "share_limit": share_limit, "break_even_nodes": break_even,
            "workload_ceiling": round(ceiling, 2) if ceiling else None,
            "efficiency": round(efficiency, 3), "next_node_gain": round(gain, 3),
            "budget": opts["budget"],
            "fleet_gb_per_month": round(total * month, 1),
            "cross_zone_gb_per_month": round(cross * month, 1),
            "cross_zone_cost_per_month": round(transfer, 2),
            "verdict": verdict, "advice": advice,
            "growth": replication.growth_rows(wl, calib, opts["growth_nodes"], zones, opts["transfer_price_per_gb"]),
        }

    def describe_workload(self):
        wl, calib = self.workload, self.calib
        stream = wl["stream"]
        rates = model.signalling_rates(wl, calib)
        return {
            "concurrent_calls": wl["concurrent_calls"], "calls_per_second": wl["calls_per_second"],
            "registered_endpoints": wl["registered_endpoints"],
            "registration_interval": wl["registration_interval"],
            "keepalive_interval": wl["keepalive_interval"],
            "codec": wl["codec"], "ptime": wl["ptime"], "srtp": wl["srtp"], "tls_share": wl["tls_share"],
            "media_relay_share": wl["media_relay_share"], "media_internet_share": wl["media_internet_share"],
            "relayed_calls": wl["relayed_calls"],
            "stream_pps": round(stream["pps"], 3),
            "stream_packet_bytes": round(stream["packet_bytes"], 2),
            "stream_kbps": round(stream["bps"] / 1000.0, 3),
            "streams_per_relayed_call": model.STREAMS_PER_RELAYED_CALL,
            "media_pps_total": round(wl["relayed_calls"] * model.STREAMS_PER_RELAYED_CALL * stream["pps"], 1),
            "media_gbps_per_direction": round(wl["relayed_calls"] * 2 * stream["bps"] / 1e9, 4),
            "registrations_per_second": round(wl["registrations_per_second"], 3),
            "keepalives_per_second": round(wl["keepalives_per_second"], 3),
            "sip_packets_per_second": round(rates["packets_per_second"], 1),
            "sip_transactions_per_second": round(rates["transactions_per_second"], 1),
        }

    def assumptions(self):
        c, t, wl = self.calib, self.target, self.workload
        fwd = t.forwarding
        srtp = " + SRTP tag 10" if wl["srtp"] else ""
        srtp_cpu = f", SRTP x{c[f'rtpengine_srtp_cpu_factor_{fwd}']}" if wl["srtp"] else ""
        pps_rules = "; ".join(f"{r['match']}: {r['per_vcpu']}/vCPU up to {r['max']}"
                              for r in c["pps_allowance"])
        lines = [
            f"Media on the wire: payload + RTP 12 + UDP 8 + IPv4 20 + Ethernet 18 bytes{srtp}; "
            f"{wl['codec']} at {wl['ptime']} ms is {wl['stream']['pps']:.1f} packets/s and "
            f"{wl['stream']['bps'] / 1000.0:.1f} "
            "kbit/s per stream per direction; a relayed call is 4 streams (2 in, 2 out of the relay).",
            "RTCP traffic (one packet per stream every ~5 s) is not counted; the headroom covers it.",
            f"Kamailio CPU per vCPU-second: {c['kamailio_call_setups_per_vcpu']} call setups, "
            f"{c['kamailio_registrations_per_vcpu']} registrations (digest auth), "
            f"{c['kamailio_options_per_vcpu']} OPTIONS; TLS costs x{c['kamailio_tls_cpu_factor']}; a "
            f"DMQ-replicated contact or dialog update costs {c['kamailio_replication_cost']} of a REGISTER to "
            f"apply and {c['kamailio_replication_send_cost']} per peer to send. The OPTIONS and "
            "REGISTER rates come from this project's lab (bench/bench_cluster.py: ~10k OPTIONS/s and 5k "
            "REGISTER/s on 2 "
            "shared cores); the call figure is an estimate: calibrate with SIPp.",
            f"Every proxy node holds the whole location table (dmq_usrloc full replication): "
            f"{c['contact_bytes']} bytes per contact; dialogs {c['dialog_bytes']} bytes, transactions "
            f"{c['transaction_bytes']} bytes for {c['transaction_lifetime_s']} s, TLS connections "
            f"{c['tls_connection_bytes']} bytes each.",
            f"DMQ full mesh (measured sizes, bench/bench_dmq_wire.py): one KDMQ per contact change and "
            f"{c['dmq_dialog_messages_per_call']:g} per call to every peer, each answered; "
            f"{c['dmq_usrloc_request_bytes']} / {c['dmq_dialog_request_bytes']} bytes per contact / dialog "
            f"request, {c['dmq_reply_bytes']} per reply; per node that tends to the whole fleet's event rate "
            f"as the mesh grows (the fixed part of its load). Peer pings every {c['dmq_ping_interval_s']:g} s "
            "are reported, not sized (well under 0.1% of a node below 50 nodes).",
            f"Kamailio processes: children = {c['kamailio_children_per_vcpu']} per vCPU within "
            f"{c['kamailio_children_min']}..{c['kamailio_children_max']}, as many TCP children when TLS is "
            f"used (else {c['kamailio_tcp_children_without_tls']}), plus {c['kamailio_aux_processes']} "
            f"others, each with {c['kamailio_pkg_mb']} MB private memory; {c['os_reserve_mb']} MB OS "
            "reserve per node.",
            f"rtpengine {fwd} forwarding: {c[f'rtpengine_pps_per_vcpu_{fwd}']} packets (in + out) per "
            f"vCPU-second{srtp_cpu}; {c['rtpengine_call_bytes']} bytes per relayed call; "
            f"{c['ports_per_relayed_call']} ports per relayed call from port {c['rtpengine_port_min']} "
            "(ASSUMPTION, not measured: calibrate).",
            f"Packets per second per instance: ASSUMED allowance (clouds do not publish one): {pps_rules}.",
            "Bandwidth is the baseline, never the burst figure, counted per direction.",
            "A fleet of n nodes over Z zones (round-robin) must still carry the load, within "
            f"{t.headroom:g}% headroom on every resource, after losing any {t.redundancy} node(s) or "
            f"(Z >= 2) its fullest zone, ceil(n/Z) nodes; Z = {t.zones} here.",
            "Burstable (EC2 T-class) and shared-core (GCE e2-micro/small/medium) types are left out: their "
            "sustained CPU is a fraction of their vCPUs.",
        ]
        provider = self.params["provider"]
        if provider == "aws":
            lines.append(
                "EC2 bandwidth: NetworkCards[default].BaselineBandwidthInGbps; where only "
                f"'Up to X Gigabit' is given, {c['ec2_up_to_baseline_fraction']} x X is ASSUMED. "
                "Internet egress: "
                f"{c['ec2_internet_small_gbps']} Gbit/s below {c['ec2_internet_large_vcpus']} vCPUs, "
                f"{c['ec2_internet_large_fraction']} of the baseline from there (AWS documentation).")
        elif provider == "gce":
            caps = ", ".join(f"{k} {v}" for k, v in sorted(c["gce_series_cap_gbps"].items()))
            lines.append(
                f"GCE bandwidth: ASSUMED {c['gce_gbps_per_vcpu']} Gbit/s per vCPU up to a per-series cap "
                f"({caps}), which Google documents as a maximum rather than a guarantee; internet egress "
                f"{c['gce_internet_gbps']} Gbit/s per VM without Tier_1.")
        lines.append(f"Prices are the ones given in prices (per hour); a month is {HOURS_PER_MONTH} hours.")
        return lines


# -- the readable table -------------------------------------------------------------------------

ROW = "{:<18} {:<16} {:>5} {:>5} {:>7} {:>9} {:>8}  {:<10} {:<18}"


def _fmt_util(value):
    return "-" if value is None else f"{value:.0f}%"


def render_table(plan, wl, params, summary, alternatives):
    where = params.get("region") or "static catalog"
    srtp = ", SRTP" if wl["srtp"] else ""
    lines = [
        f"Sizing for {params['provider']} {where}: {_num(wl['concurrent_calls'])} concurrent calls, "
        f"{_num(wl['calls_per_second'])} CPS, {_num(wl['registered_endpoints'])} registrations every "
        f"{_num(wl['registration_interval'])} s, {wl['codec']}/{wl['ptime']} ms{srtp}",
        f"Catalog: {summary['types_fetched']} types fetched, {summary['candidates']} candidates "
        f"({len(summary['skipped_unpriced'])} left out without a price)",
    ]
    header = ROW.format("role", "instance type", "count", "vCPU", "mem GiB", "$/h each", "$/h", "binding",
                        "count set by")
    lines += [header.rstrip(), "-" * len(header.rstrip())]
    for r in plan["roles"]:
        lines.append(ROW.format(
            ROLE_LABELS[r["role"]], r["instance_type"], r["count"], r["vcpus"],
            f"{r['memory_mb'] / 1024.0:.1f}", f"{r['price_per_hour']:.4f}", f"{r['cost_per_hour']:.4f}",
            RESOURCE_LABELS[r["binding"]],
            r["count_driver"]).rstrip())
    lines.append(f"Total: {plan['instances']} instances, {plan['cost_per_hour']:.4f} per hour, "
                 f"{plan['cost_per_month']:.2f} per month ({plan['topology']})")
    other = "combined" if plan["topology"] == "separate" else "separate"
    if alternatives.get(other):
        alt = alternatives[other]
        fleets = " + ".join(f"{r['count']} x {r['instance_type']}" for r in alt["roles"])
        lines.append(f"Alternative {other}: {fleets}, {alt['cost_per_hour']:.4f} per hour")
    lines.append("Utilisation per node, all up / after the worst failure:")
    for r in plan["roles"]:
        cells = [f"{RESOURCE_LABELS[res]} {_fmt_util(u['normal'])}/{_fmt_util(u['after_failure'])}"
                 for res, u in r["utilisation"].items() if u["normal"] not in (None, 0.0)]
        lines.append(f"  {r['role']:<9} {', '.join(cells)}")
    lines.append("Tuning:")
    for r in plan["roles"]:
        values = ", ".join(f"{k}={v}" for k, v in sorted(r["tuning"].items()))
        lines.append(f"  {r['role']:<9} {values}")
    return lines


def render_replication(mesh):
    total = mesh["per_node"]["total"]
    share = ", ".join(f"{RESOURCE_LABELS[res]} {v:.1f}%" for res, v in mesh["share_of_capacity"].items()
                      if v is not None)
    lines = [
        f"DMQ replication per proxy ({mesh['nodes']}-node full mesh): {total['requests_per_second']:.0f} KDMQ/s "
        f"sent and as many received, {total['packets_per_second']:.0f} packets/s, "
        f"{total['bytes_per_second'] * 8 / 1e6:.2f} Mbit/s each way ({share} of the node)",
        f"  replicated bytes, whole fleet: {mesh['fleet_gb_per_month']:,.0f} GB/month, across zones "
        f"{mesh['cross_zone_gb_per_month']:,.0f} GB/month"
        + (f" ({mesh['cross_zone_cost_per_month']:,.2f} per month)" if mesh["cross_zone_cost_per_month"] else ""),
        f"  mesh: {mesh['verdict']}: {mesh['advice']}",
    ]
    return lines


def _num(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}"
