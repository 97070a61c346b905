#!/usr/bin/env python3
"""Calls with RTP through one proxy and one rtpengine (userspace) in the lab: prints figures,
asserts nothing.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_media.py --rates 5 10 20 40  # as root

For each call rate, SIPp on the public side places calls through proxy1's public address to a
SIPp UAS registered there; the caller plays G.711 RTP (SIPp's g711a.pcap: 236 packets of 30 ms,
7.05 s, ~33.5 packets/s) and the callee echoes it back, so rtpengine on media1 relays both
directions of every call. The hold (default 8 s) outlasts the pcap, so every packet a caller sends
has been echoed before its BYE closes the relay's ports.

Reported per rate: calls placed, failed calls, concurrent calls (rate x hold), rtpengine sessions
seen mid-run, and, over a steady window (after the first calls' RTP ended, before new calls stop):
packets/s the relay forwarded, rtpengine CPU, CPU per 100 calls. RTP is counted by nftables counters
in the public namespace (caller sent, callee received, callee echoed, caller received back), so
packet loss through the relay is measured per direction. "per 100 calls" is normalised to a real
G.711 20 ms call (50 packets/s each way, 100 relayed per second): CPU per relayed packet x 10,000.

The proxy (SIP OPTIONS) and the relay (ng ping) must answer before anything is measured; a rate at
which no call completed, or no RTP came back through the relay, fails the run. Load is bounded:
-m calls, -l concurrency, -timeout, and an outer timeout.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import benchlib
from benchlib import LABCTL, ROOT, cpu_seconds, pub_sipp, sipp_counts, site, timed, write_lab

from lab import ng, sip

PROXY, MEDIA = "203.0.113.11", "198.18.0.21"
HERE = os.path.dirname(os.path.abspath(__file__))
PCAP_SECONDS, PCAP_PACKETS = 7.05, 236          # /usr/share/sip-tester/g711a.pcap
CALLER_MEDIA, CALLEE_MEDIA = 42000, 40000       # SIPp -mp of the caller and of the echoing callee
COUNTERS = ("caller_sent", "callee_received", "callee_echoed", "caller_received")
NFT_TABLE = "itsp_bench_media"
NFT_RULES = f"""table inet {NFT_TABLE} {{
  counter caller_sent {{ }}
  counter callee_received {{ }}
  counter callee_echoed {{ }}
  counter caller_received {{ }}
  chain out {{
    type filter hook output priority 0; policy accept;
    udp sport {CALLER_MEDIA}-{CALLER_MEDIA + 99} counter name caller_sent
    udp sport {CALLEE_MEDIA}-{CALLEE_MEDIA + 99} counter name callee_echoed
  }}
  chain in {{
    type filter hook input priority 0; policy accept;
    udp dport {CALLER_MEDIA}-{CALLER_MEDIA + 99} counter name caller_received
    udp dport {CALLEE_MEDIA}-{CALLEE_MEDIA + 99} counter name callee_received
  }}
}}
"""


def nft(*args, input_text=None):
    return subprocess.run(["ip", "netns", "exec", sip.PUB_NS, "nft", *args], input=input_text,
                          capture_output=True, text=True, timeout=20, check=False)


def install_counters():
    nft("delete", "table", "inet", NFT_TABLE)
    res = nft("-f", "-", input_text=NFT_RULES)
    if res.returncode != 0:
        raise benchlib.BenchFailure(f"cannot install the RTP counters in {sip.PUB_NS}: {res.stderr.strip()}")


def read_counters():
    """{counter: packets} from the public namespace's nftables counters."""
    res = nft("-j", "list", "counters", "table", "inet", NFT_TABLE)
    if res.returncode != 0:
        raise benchlib.BenchFailure(f"cannot read the RTP counters: {res.stderr.strip()}")
    found = {}
    for item in json.loads(res.stdout).get("nftables", []):
        c = item.get("counter")
        if c and c.get("name") in COUNTERS:
            found[c["name"]] = c.get("packets", 0)
    return found


def relay_split(address):
    """Packets rtpengine says it relayed in userspace and in the kernel, from ng 'statistics'
    ((None, None) where this rtpengine does not say)."""
    try:
        answer = ng.request((address, 2223), "statistics", timeout=3.0)
    except (OSError, ValueError):
        return None, None
    found = {}

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("relayedpackets_user", "relayedpackets_kernel") and isinstance(v, int):
                    found.setdefault(k, v)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(answer)
    return found.get("relayedpackets_user"), found.get("relayedpackets_kernel")


def diff(after, before):
    return {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}


def steady_window(hold, seconds):
    """(start, end) seconds after the first call in which the relay carries a steady load: the first
    calls' RTP has ended (so calls end as fast as they start) and new calls are still being placed."""
    start = min(hold, PCAP_SECONDS) + 1.0
    return start, seconds - 0.5


def run_rate(rate, hold, seconds):
    calls = int(rate * seconds)
    concurrent = int(rate * hold)
    timeout = seconds + hold + 20
    w_start, w_end = steady_window(hold, seconds)
    uas = subprocess.Popen(
        ["ip", "netns", "exec", "itsp-pub", "timeout", "-s", "INT", str(timeout + 5), "sipp", "-nd",
         "-sf", os.path.join(sip.SIPP_DIR, "uas_rtp.xml"), "-i", sip.PUBLIC_CLIENT, "-p", "5080",
         "-mi", sip.PUBLIC_CLIENT, "-mp", str(CALLEE_MEDIA), "-rtp_echo", "-m", str(calls),
         "-buff_size", "4194304"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    window = {}

    def sample():
        # Sessions mid-run, and CPU, packets and the relay's own counters at both ends of the window;
        # a sample that fails leaves the window incomplete, which fails the run after SIPp ended.
        try:
            take_samples()
        except (OSError, ValueError, SystemExit, subprocess.SubprocessError) as exc:
            window["error"] = exc

    def take_samples():
        time.sleep(w_start)
        window["a"] = (time.monotonic(), cpu_seconds(MEDIA, "rtpengine"), read_counters(), relay_split(MEDIA))
        window["sessions"] = len(ng.call_ids((MEDIA, 2223)))
        time.sleep(max(0.0, w_end - (time.monotonic() - t_run)))
        window["b"] = (time.monotonic(), cpu_seconds(MEDIA, "rtpengine"), read_counters(), relay_split(MEDIA))

    run_before = read_counters()
    sampler = threading.Thread(target=sample)
    t_run = time.monotonic()
    sampler.start()
    res = pub_sipp([f"{PROXY}:5060", "-sf", os.path.join(sip.SIPP_DIR, "uac_rtp.xml"), "-s", "bench",
                    "-i", sip.PUBLIC_CLIENT, "-p", "5090", "-mi", sip.PUBLIC_CLIENT, "-mp", str(CALLER_MEDIA),
                    "-r", str(rate), "-m", str(calls), "-l", str(concurrent + rate), "-d", str(hold * 1000)],
                   timeout)
    sampler.join()
    if "b" not in window:
        raise benchlib.BenchFailure(f"at {rate}/s the steady window was not sampled: {window.get('error')}")
    try:
        uas.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        uas.kill()
        uas.communicate()
    time.sleep(1.0)  # the last echoes in flight
    run = diff(read_counters(), run_before)
    ok, failed = sipp_counts(res.stdout)
    (ta, ca, na, (ua, ka)), (tb, cb, nb, (ub, kb)) = window["a"], window["b"]
    span = tb - ta
    win = diff(nb, na)
    relayed_pps = (win["callee_received"] + win["caller_received"]) / span
    cpu_pct = 100.0 * (cb - ca) / span
    cpu_per_pps = cpu_pct / max(relayed_pps, 1e-9)
    return {"rate": rate, "calls": calls, "ok": ok, "failed": failed, "concurrent": concurrent,
            "sessions": window.get("sessions", -1), "window": span, "relayed_pps": relayed_pps,
            "rtp_calls": relayed_pps / (2 * PCAP_PACKETS / PCAP_SECONDS),
            "cpu_pct": cpu_pct, "cpu_per_100": cpu_per_pps * 100 * 100,
            "user_pps": None if ua is None or ub is None else (ub - ua) / span,
            "kernel_pps": None if ka is None or kb is None else (kb - ka) / span,
            **run}


def loss(sent, received):
    return 100.0 * (sent - received) / sent if sent else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--hold", type=int, default=8, help="seconds each call lasts")
    p.add_argument("--seconds", type=int, default=20, help="seconds of new calls per rate")
    p.add_argument("--keep", action="store_true", help="leave the lab up")
    a = p.parse_args()
    if any(r < 1 or r > 200 for r in a.rates) or not 1 <= a.hold <= 60 or not 1 <= a.seconds <= 120:
        p.error("rates 1..200, hold 1..60 s, seconds 1..120 (bounded load only)")
    w_start, w_end = steady_window(a.hold, a.seconds)
    if w_end - w_start < 3:
        p.error(f"--seconds must leave a steady window of 3 s or more after {w_start:.1f} s")
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="bench-media-") as inv:
        # The load generator is one source address: trusted (like a carrier's SBC), so pike lets it through.
        spec = write_lab(inv, {"proxy1": {"n": 11, "groups": ["kamailio"],
                                          "vars": {"kamailio_trusted_networks": ["203.0.113.200/32"]}},
                               "media1": {"n": 21, "groups": ["rtpengine"],
                                          "vars": {"rtpengine_max_calls": 2000}}})
        try:
            timed(LABCTL + ["up", "--spec", spec])
            _, converge = site(inv)
            # What the role decided about kernel forwarding on media1: the table it wrote, and its
            # userspace notice in its own words (the YAML callback may wrap and quote it).
            conf = benchlib.ssh(MEDIA, "grep -E '^table *=' /etc/rtpengine/rtpengine.conf", timeout=20).stdout
            table = int(conf.split("=", 1)[1]) if "=" in conf else None
            said = [" ".join(m.split()) for m in re.findall(r"(rtpengine on media1 forwards media in userspace.*?"
                                                             r"per call\.)", converge.stdout, re.S)]
            print(f"media1: table = {table}; the role's userspace notice, said {len(said)} time(s) in the converge: "
                  f"{said[0] if said else '-'}", flush=True)
            if table is None:
                raise benchlib.BenchFailure(f"no table in media1's rtpengine.conf ({conf.strip() or 'nothing'})")
            benchlib.require_answers({"proxy1": benchlib.sip_probe(PROXY),
                                      "media1's rtpengine": benchlib.ng_probe(MEDIA)})
            reg = sip.register(PROXY, "bench", PROXY, contact_port=5080)
            if not reg.ok:
                raise benchlib.BenchFailure(f"the callee's REGISTER at proxy1 failed: {reg.stdout[-500:]}")
            install_counters()
            rows = []
            for rate in a.rates:
                rows.append(run_rate(rate, a.hold, a.seconds))
                benchlib.require_some(f"calls at {rate}/s", rows[-1]["ok"])
                benchlib.require_some(f"RTP echoed back through media1 at {rate}/s", rows[-1]["caller_received"])
                if table >= 0:
                    # The role chose the kernel: the relay's own counters must show it forwarding there.
                    benchlib.require_some(f"packets forwarded in the kernel at {rate}/s (the role chose kernel "
                                          f"forwarding)", int(rows[-1]["kernel_pps"] or 0))
        finally:
            nft("delete", "table", "inet", NFT_TABLE)
            if not a.keep:
                subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    print(f"one Kamailio (proxy1) + one rtpengine (media1, userspace), G.711 PCAP both ways, hold {a.hold} s, "
          f"{os.cpu_count()} CPUs shared by every host, SIPp and the controller")
    print(f"{'calls/s':>7} {'calls':>6} {'ok':>6} {'failed':>6} {'concurrent':>10} {'sessions':>8} {'RTP calls':>9} "
          f"{'relayed pps':>11} {'user/kernel pps':>15} {'rtpengine CPU':>13} {'CPU/100 calls':>13} {'calls/core':>10}")
    for r in rows:
        split = ("n/a" if r["user_pps"] is None else f"{r['user_pps']:.0f}/{r['kernel_pps'] or 0:.0f}")
        per_core = 100.0 * 100 / r["cpu_per_100"] if r["cpu_per_100"] > 0 else float("inf")
        print(f"{r['rate']:>7} {r['calls']:>6} {r['ok']:>6} {r['failed']:>6} {r['concurrent']:>10} "
              f"{r['sessions']:>8} {r['rtp_calls']:>9.0f} {r['relayed_pps']:>11.0f} {split:>15} "
              f"{r['cpu_pct']:>12.1f}% {r['cpu_per_100']:>12.1f}% {per_core:>10.0f}")
    print("RTP packets (whole run, nftables counters in the public namespace):")
    print(f"{'calls/s':>7} {'caller sent':>11} {'callee got':>10} {'loss out':>8} {'echoed':>8} "
          f"{'caller got':>10} {'loss back':>9} {'round trip':>10}")
    for r in rows:
        print(f"{r['rate']:>7} {r['caller_sent']:>11} {r['callee_received']:>10} "
              f"{loss(r['caller_sent'], r['callee_received']):>7.2f}% {r['callee_echoed']:>8} "
              f"{r['caller_received']:>10} {loss(r['callee_echoed'], r['caller_received']):>8.2f}% "
              f"{loss(r['caller_sent'], r['caller_received']):>9.2f}%")
    print("(sessions: rtpengine's own list at the window's start, with the ended calls it keeps for delete-delay;\n"
          " CPU from /proc on media1 over the steady window;\n"
          " RTP calls = relayed packets/s / 67 (this pcap's rate both ways); CPU/100 calls normalised to G.711 20 ms,\n"
          " 100 relayed packets/s per call; calls/core = 100 / that x 100, extrapolated from the measured rate;\n"
          " user/kernel pps: rtpengine's own counters over the window; loss out/back: through the relay each way;\n"
          f" lab root {ROOT})")


if __name__ == "__main__":
    main()
