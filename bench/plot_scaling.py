#!/usr/bin/env python3
"""Draw docs/scaling.svg: the DMQ growth model (instance_size's, module_utils/sizing/replication.py)
next to the lab's measured points (docs/scaling-lab-points.json, from bench/bench_dmq_wire.py --json).
Plain SVG written by hand: no plotting library.

    .venv/bin/python bench/plot_scaling.py [--points docs/scaling-lab-points.json] [--out docs/scaling.svg]

Left: DMQ traffic per proxy, each way, as a full mesh grows, for four ITSP workloads (the model's
defaults). Right: replicated bytes per event for the whole mesh - a registration, a call - and one
node's peer pings per second, the model with the lab's own sizes as lines and the lab's captures
as dots.
"""

import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.itsp.cluster.plugins.module_utils.sizing import model, replication  # noqa: E402

WORKLOADS = (
    ("100k subscribers / 600 s, 50 calls/s", 100000, 600, 50, "#1b9e77"),
    ("1M / 600 s, 500 calls/s", 1000000, 600, 500, "#7570b3"),
    ("1M / 60 s (NAT), 500 calls/s", 1000000, 60, 500, "#d95f02"),
    ("1M / 30 s (NAT), 500 calls/s", 1000000, 30, 500, "#e7298a"),
)
NODES = list(range(2, 51))
W, H = 980, 440
PANEL = (70, 40, 400, 320)  # left, top, width, height


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Panel:
    def __init__(self, x0, y0, w, h, ymin, ymax, title, ylabel):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.lmin, self.lmax = math.log10(ymin), math.log10(ymax)
        self.parts = [f'<text x="{x0 + w / 2}" y="{y0 - 14}" text-anchor="middle" font-weight="bold">'
                      f'{esc(title)}</text>',
                      f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>',
                      f'<text transform="translate({x0 - 52},{y0 + h / 2}) rotate(-90)" text-anchor="middle">'
                      f'{esc(ylabel)}</text>',
                      f'<text x="{x0 + w / 2}" y="{y0 + h + 36}" text-anchor="middle">'
                      'proxies in the full mesh (N, log)</text>']
        for n in (2, 3, 5, 10, 20, 50):
            x = self.x(n)
            self.parts.append(f'<line x1="{x}" y1="{y0 + h}" x2="{x}" y2="{y0 + h + 5}" stroke="#444"/>'
                              f'<text x="{x}" y="{y0 + h + 18}" text-anchor="middle">{n}</text>')
        for exp in range(math.ceil(self.lmin), math.floor(self.lmax) + 1):
            y = self.y(10 ** exp)
            label = f"{10 ** exp:g}" if -3 <= exp <= 5 else f"1e{exp}"
            self.parts.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + w}" y2="{y}" stroke="#ddd"/>'
                              f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end">{label}</text>')

    def x(self, n):  # log scale: the lab's small meshes and N = 50 on one axis
        span = math.log(NODES[-1]) - math.log(NODES[0])
        return round(self.x0 + (math.log(n) - math.log(NODES[0])) / span * self.w, 1)

    def y(self, value):
        return round(self.y0 + self.h - (math.log10(value) - self.lmin) / (self.lmax - self.lmin) * self.h, 1)

    def line(self, points, colour, dash=""):
        path = " ".join(f"{self.x(n)},{self.y(v)}" for n, v in points if v > 0)
        style = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{style}/>')

    def dot(self, n, value, colour):
        self.parts.append(f'<circle cx="{self.x(n)}" cy="{self.y(value)}" r="5" fill="white" stroke="{colour}" '
                          'stroke-width="2.5"/>')

    def legend(self, row, text, colour, dot=False, bottom=False, indent=10):
        x, y = self.x0 + indent, (self.y0 + self.h - 70 if bottom else self.y0 + 16) + 16 * row
        mark = (f'<circle cx="{x + 10}" cy="{y - 4}" r="4" fill="white" stroke="{colour}" stroke-width="2.5"/>' if dot
                else f'<line x1="{x}" y1="{y - 4}" x2="{x + 20}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>')
        self.parts.append(f'{mark}<text x="{x + 26}" y="{y}">{esc(text)}</text>')


def model_panel(calib):
    panel = Panel(PANEL[0], PANEL[1], PANEL[2], PANEL[3], 0.1, 1000, "Model: DMQ per proxy, each way",
                  "Mbit/s per proxy (log)")
    for row, (label, subs, interval, cps, colour) in enumerate(WORKLOADS):
        wl = model.normalise_workload({"concurrent_calls": cps * 120, "calls_per_second": cps,
                                       "registered_endpoints": subs, "registration_interval": interval})
        panel.line([(n, replication.per_node(wl, calib, n)["total"]["mbit_per_second"]) for n in NODES], colour)
        panel.legend(row, label, colour, bottom=True)
    return panel


def lab_panel(calib, points):
    lab = dict(calib)
    # The model with the lab's own message sizes (SIPp's short values), to compare like with like.
    lab.update(dmq_usrloc_request_bytes=779, dmq_dialog_request_bytes=627, dmq_reply_bytes=416)
    panel = Panel(PANEL[0] + 480, PANEL[1], PANEL[2], PANEL[3], 10, 1e6, "Model (lines) and lab (dots)",
                  "bytes (log)")
    reply = lab["dmq_reply_bytes"]
    series = (
        ("bytes per registration, whole mesh", "#7570b3",
         lambda n: (n - 1) * (lab["dmq_usrloc_request_bytes"] + reply),
         lambda p: p.get("register", {}).get("usrloc", {}).get("bytes_per_event")),
        ("bytes per call, whole mesh", "#d95f02",
         lambda n: (n - 1) * lab["dmq_dialog_messages_per_call"] * (lab["dmq_dialog_request_bytes"] + reply),
         lambda p: p.get("calls", {}).get("dialog", {}).get("bytes_per_event")),
        ("peer pings, bytes/s one proxy sends", "#1b9e77",
         lambda n: (n - 1) / lab["dmq_ping_interval_s"] * replication.ping_exchange_bytes(lab, n),
         lambda p: p.get("idle", {}).get("ping_bytes_out_per_second")),
    )
    for row, (label, colour, curve, measured) in enumerate(series):
        panel.line([(n, curve(n)) for n in NODES], colour)
        panel.legend(row, label, colour, bottom=True, indent=120)
        for point in points:
            value = measured(point)
            if value:
                panel.dot(point["nodes"], value, colour)
    panel.legend(len(series), "lab capture (bench/bench_dmq_wire.py)", "#444", dot=True, bottom=True, indent=120)
    return panel


def print_tables(calib, sizes=(2, 3, 5, 10, 20, 50), zones=3, price=0.02):
    """Markdown: per proxy and per fleet, for each workload, as the mesh grows (3 zones, 0.02 per GB)."""
    for label, subs, interval, cps, _ in WORKLOADS:
        wl = model.normalise_workload({"concurrent_calls": cps * 120, "calls_per_second": cps,
                                       "registered_endpoints": subs, "registration_interval": interval})
        print(f"\n{label}: {wl['registrations_per_second']:,.0f} contact changes/s, "
              f"{cps * calib['dmq_dialog_messages_per_call']:,.0f} dialog messages/s\n")
        print("| N | KDMQ/s sent per proxy | packets/s per proxy | Mbit/s each way | vCPU per proxy | "
              "fleet TB/month | cross-zone cost/month |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for row in replication.growth_rows(wl, calib, sizes, zones, price):
            print(f"| {row['nodes']} | {row['kdmq_sent_per_second']:,.0f} | {row['packets_per_second']:,.0f} | "
                  f"{row['mbit_per_second']:,.1f} | {row['cpu_vcpus']:.2f} | {row['fleet_gb_per_month'] / 1000:,.1f} | "
                  f"{row['cross_zone_cost_per_month']:,.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", default=os.path.join(ROOT, "docs", "scaling-lab-points.json"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "scaling.svg"))
    p.add_argument("--table", action="store_true", help="also print the growth tables docs/scaling.md shows")
    a = p.parse_args()
    calib = model.merge_calibration(None)
    if a.table:
        print_tables(calib)
    with open(a.points) as fh:
        points = json.load(fh)["points"]
    parts = model_panel(calib).parts + lab_panel(calib, points).parts
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
           + "\n".join(parts) + "\n</svg>\n")
    with open(a.out, "w") as fh:
        fh.write(svg)
    print(f"wrote {a.out} ({len(points)} lab points)")


if __name__ == "__main__":
    main()
