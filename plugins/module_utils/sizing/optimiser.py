"""The exact optimiser.

A fleet for one role is one instance type and a count. For a type, the smallest count that
works has a closed form: the survivors the load needs (model.survivors_needed) turned into a
fleet size (model.count_for_survivors); more nodes of the same type only cost more, and
survivors grow with the count, so that smallest count is that type's cheapest fleet.

* combined: every node runs Kamailio and rtpengine; the cheapest type wins.
* separate: a proxy fleet plus a media fleet with at most ``max_instances`` nodes between them.
  For each role, best[c] is the cheapest fleet of at most c nodes (a prefix minimum over the
  per-type answers); the answer is min over c of best_proxy[c] + best_media[max - c]. That is
  O(types + max_instances) and exact: any feasible pair (p, m) is dominated by
  (best_proxy[p.count], best_media[max - p.count]).

Ties are broken by fewer nodes, then separate before combined, then type name, so the answer
is the same on every run. tests/ compare the cost with model.exhaustive on generated catalogs.
"""

from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError


class Target:
    """Where and how the fleet must run: counts, failures to survive, headroom."""

    def __init__(self, max_instances=64, redundancy=1, zones=1, headroom=30, topology="auto",
                 forwarding="kernel"):
        self.max_instances = int(max_instances)
        self.redundancy = int(redundancy)
        self.zones = int(zones)
        self.headroom = float(headroom)
        self.topology = topology
        self.forwarding = forwarding
        if self.max_instances < 1:
            raise SizingError(f"max_instances must be at least 1 (got {max_instances})")
        if self.redundancy < 0:
            raise SizingError(f"redundancy must be 0 or more (got {redundancy})")
        if not 0 <= self.headroom < 100:
            raise SizingError(f"headroom is a percentage of capacity kept free and must be 0 to 99 "
                              f"(got {headroom})")
        if topology not in ("auto", "separate", "combined"):
            raise SizingError(f"topology must be auto, separate or combined (got {topology})")
        if forwarding not in ("kernel", "userspace"):
            raise SizingError(f"rtpengine_forwarding must be kernel or userspace (got {forwarding})")


class Fleet:
    """One role's fleet: ``count`` nodes of ``itype``."""

    __slots__ = ("role", "itype", "count", "survivors_needed", "binding", "driver")

    def __init__(self, role, itype, count, survivors_needed, binding, driver):
        self.role = role
        self.itype = itype
        self.count = count
        self.survivors_needed = survivors_needed
        self.binding = binding
        self.driver = driver

    @property
    def cost(self):
        return self.count * self.itype["price"]

    def key(self):
        return (self.cost, self.count, self.itype["name"])


def roles_needed(wl):
    return ("proxy", "media") if wl["relayed_calls"] > 0 else ("proxy",)


def fleet_for(role, itype, wl, calib, target):
    """(Fleet, None) with the smallest working count for this type, or (None, why)."""
    demand = model.node_demand(role, itype, wl, calib, target.forwarding)
    cap_eff = model.effective_capacity(itype, calib, target.headroom)
    survivors, binding = model.survivors_needed(demand, cap_eff)
    if survivors is None:
        return None, {"itype": itype["name"], "per_node": binding,
                      "fixed": demand[binding][0], "capacity": cap_eff[binding]}
    count, driver = model.count_for_survivors(survivors, target.redundancy, target.zones)
    fleet = Fleet(role, itype, count, survivors, binding, driver)
    if count > target.max_instances:
        return None, {"itype": itype["name"], "count": count, "binding": binding}
    return fleet, None


def per_role(role, candidates, wl, calib, target):
    """(fleets that fit, reasons the others do not), one entry per candidate type."""
    fleets, misses = [], []
    for itype in candidates:
        fleet, miss = fleet_for(role, itype, wl, calib, target)
        if fleet is not None:
            fleets.append(fleet)
        else:
            misses.append(miss)
    return fleets, misses


def cheapest_up_to(fleets, max_instances):
    """best[c] = cheapest fleet with at most c nodes (None where there is none), c = 0..max."""
    exact = [None] * (max_instances + 1)
    for fleet in fleets:
        held = exact[fleet.count]
        if held is None or fleet.key() < held.key():
            exact[fleet.count] = fleet
    best = [None] * (max_instances + 1)
    for count in range(1, max_instances + 1):
        candidates = [f for f in (best[count - 1], exact[count]) if f is not None]
        best[count] = min(candidates, key=Fleet.key) if candidates else None
    return best


def best_separate(proxy_fleets, media_fleets, max_instances):
    if not proxy_fleets:
        return None
    if media_fleets is None:  # nothing to relay: the proxy fleet alone
        return [min(proxy_fleets, key=Fleet.key)]
    best_proxy = cheapest_up_to(proxy_fleets, max_instances)
    best_media = cheapest_up_to(media_fleets, max_instances)
    chosen, chosen_key = None, None
    for proxy_count in range(1, max_instances):
        proxy, media = best_proxy[proxy_count], best_media[max_instances - proxy_count]
        if proxy is None or media is None:
            continue
        key = (proxy.cost + media.cost, proxy.count + media.count, proxy.itype["name"], media.itype["name"])
        if chosen_key is None or key < chosen_key:
            chosen, chosen_key = [proxy, media], key
    return chosen


def plan_cost(fleets):
    return sum(f.cost for f in fleets)


def optimise(candidates, wl, calib, target):
    """{"chosen": [Fleet...], "topology", "separate": [...]|None, "combined": [...]|None} or SizingError."""
    roles = roles_needed(wl)
    proxy_fleets, proxy_misses = per_role("proxy", candidates, wl, calib, target)
    media_fleets, media_misses = (per_role("media", candidates, wl, calib, target)
                                  if "media" in roles else (None, []))
    separate = combined = None
    combined_misses = []
    if target.topology in ("auto", "separate"):
        separate = best_separate(proxy_fleets, media_fleets, target.max_instances)
    if target.topology in ("auto", "combined") and "media" in roles:
        combined_fleets, combined_misses = per_role("combined", candidates, wl, calib, target)
        if combined_fleets:
            combined = [min(combined_fleets, key=Fleet.key)]
    elif target.topology == "combined":
        # Nothing to relay: a "combined" node is a proxy node.
        combined = best_separate(proxy_fleets, None, target.max_instances)
    options = [(plan_cost(p), sum(f.count for f in p), order, name, p)
               for order, (name, p) in enumerate((("separate", separate), ("combined", combined))) if p]
    if not options:
        raise SizingError(no_fleet_message(target, roles, proxy_fleets, proxy_misses, media_fleets,
                                           media_misses, combined_misses))
    options.sort(key=lambda o: o[:3])
    _, _, _, topology, chosen = options[0]
    return {"chosen": chosen, "topology": topology, "separate": separate, "combined": combined}


def _closest(misses):
    counted = [m for m in misses if "count" in m]
    if counted:
        best = min(counted, key=lambda m: (m["count"], m["itype"]))
        return f"the closest, {best['itype']}, needs {best['count']} nodes (binding: {best['binding']})"
    best = max(misses, key=lambda m: (m["capacity"] - m["fixed"], m["itype"]))
    why = (" (its share of the DMQ full mesh: every proxy applies every registration and dialog; "
           "see the replication section of docs/scaling.md)"
           if best["per_node"] in ("cpu", "pps", "bandwidth_gbps") else "")
    return (f"no instance type can carry one node's share: every node needs {best['fixed']:.1f} "
            f"{model.RESOURCE_UNITS[best['per_node']]} of {best['per_node']} before any load{why} and the "
            f"closest, {best['itype']}, offers {best['capacity']:.1f} after headroom")


def no_fleet_message(target, roles, proxy_fleets, proxy_misses, media_fleets, media_misses, combined_misses):
    parts = []
    if not proxy_fleets:
        parts.append("proxy: " + _closest(proxy_misses))
    if "media" in roles and not media_fleets:
        parts.append("media: " + _closest(media_misses))
    if "media" in roles and target.topology != "separate" and combined_misses:
        parts.append("combined: " + _closest(combined_misses))
    if proxy_fleets and media_fleets:
        fewest_proxy = min(f.count for f in proxy_fleets)
        fewest_media = min(f.count for f in media_fleets)
        parts.insert(0, f"proxy needs at least {fewest_proxy} nodes and media at least {fewest_media}, "
                        "more than max_instances together")
    return (f"no fleet of at most {target.max_instances} instances carries this workload with redundancy "
            f"{target.redundancy} over {target.zones} zone(s) and {target.headroom:g}% headroom: "
            f"{'; '.join(parts)}. Raise max_instances, allow larger instance families, or lower headroom "
            "or redundancy")
