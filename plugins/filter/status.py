# -*- coding: utf-8 -*-
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rows and the table of playbooks/status.yml, from what the nodes answered."""

import re

COLUMNS = [("node", "node"), ("role", "role"), ("where", "provider/zone"), ("private", "private"),
           ("public", "public"), ("state", "state"), ("registrations", "regs"), ("calls", "calls"),
           ("sessions", "sessions"), ("dmq_peers", "dmq peers")]


def _stat(stats, name):
    for line in stats or []:
        key, _, value = str(line).partition("=")
        if key.strip() == name:
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def status_row(cloud, name, groups, proxy=None, relay=None):
    """One node's row: what cloud_facts found, plus the proxy's and relay's answers (registered
    results of the status play's RPC loop and rtpengine-ctl)."""
    cloud = cloud or {}
    kinds = (("proxy", "kamailio"), ("relay", "rtpengine"), ("db", "sipdb"), ("monitoring", "monitoring"))
    roles = [r for r, g in kinds if name in (groups.get(g) or [])]
    row = {"node": name, "role": "+".join(roles) or "-",
           "where": f"{cloud.get('provider', '?')}/{cloud.get('zone') or '-'}",
           "private": cloud.get("private_ipv4") or "-", "public": cloud.get("public_ipv4") or "-",
           "state": "active", "registrations": "-", "calls": "-", "sessions": "-", "dmq_peers": "-"}
    answers = {r.get("item"): r for r in (proxy or {}).get("results", []) if isinstance(r, dict)}
    if "proxy" in roles:
        statistics = answers.get("stats.get_statistics", {})
        if statistics.get("failed") or "result" not in statistics:
            row["state"] = "down"
        else:
            stats = statistics.get("result")
            row["registrations"] = _stat(stats, "usrloc:location_contacts")
            row["calls"] = _stat(stats, "dialog:active_dialogs")
            flag = answers.get("htable.get", {}).get("result") or {}
            if (flag.get("item") or {}).get("value") == 1:
                row["state"] = "draining"
            nodes = answers.get("dmq.list_nodes", {}).get("result") or []
            row["dmq_peers"] = sum(1 for n in nodes if n.get("local") == 0 and n.get("status") == "active")
    if "relay" in roles:
        out = (relay or {}).get("stdout", "")
        m = re.search(r"own:\s*(\d+)", out)
        if m:
            row["sessions"] = int(m.group(1))
        elif row["state"] != "down":
            row["state"] = "down" if "proxy" not in roles else row["state"] + " (relay down)"
    return row


def status_table(rows):
    """The rows as lines of a fixed-width table (a list of strings, as debug prints it)."""
    rows = [r for r in rows if r]
    widths = [max([len(title)] + [len(str(r.get(key))) for r in rows]) for key, title in COLUMNS]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line([t for _, t in COLUMNS])] + [line([r.get(k) for k, _ in COLUMNS]) for r in sorted(
        rows, key=lambda r: r["node"])]


class FilterModule:
    def filters(self):
        return {"status_row": status_row, "status_table": status_table}
