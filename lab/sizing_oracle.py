"""The brute-force reference for the sizing optimiser: every type and every count, nothing clever.

Shared by the unit tests (tests/unit/plugins/module_utils/test_sizing_optimiser.py) and the bench
(bench/bench_sizing.py); it is not product code, so it lives here rather than in module_utils.
"""

from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.optimiser import roles_needed


def exhaustive(candidates, wl, calib, target):
    """Reference answer by brute force: every type and every count from 1 to max_instances for
    each role, and every pair for separate fleets. Uses only the model's definitions (fits,
    survivors_of, count_valid), none of the shortcuts above. Returns (cost, description) or
    (None, None). Far too slow for real catalogs and large max_instances."""
    roles = roles_needed(wl)

    def options(role):
        found = []
        for itype in candidates:
            demand = model.node_demand(role, itype, wl, calib, target.forwarding)
            cap_eff = model.effective_capacity(itype, calib, target.headroom)
            for count in range(1, target.max_instances + 1):
                if not model.count_valid(count, target.zones):
                    continue
                survivors = model.survivors_of(count, target.redundancy, target.zones)
                if survivors >= 1 and model.fits(demand, cap_eff, survivors):
                    found.append((count * itype["price"], count, itype["name"]))
        return found

    best = (None, None)

    def consider(cost, what):
        nonlocal best
        if best[0] is None or cost < best[0]:
            best = (cost, what)

    if target.topology in ("auto", "separate"):
        proxy = options("proxy")
        if "media" in roles:
            media = options("media")
            for p_cost, p_count, p_name in proxy:
                for m_cost, m_count, m_name in media:
                    if p_count + m_count <= target.max_instances:
                        consider(p_cost + m_cost, (("proxy", p_name, p_count), ("media", m_name, m_count)))
        else:
            for cost, count, name in proxy:
                consider(cost, (("proxy", name, count),))
    if target.topology in ("auto", "combined"):
        role = "combined" if "media" in roles else "proxy"
        for cost, count, name in options(role):
            consider(cost, ((role, name, count),))
    return best
