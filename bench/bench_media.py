#!/usr/bin/env python3
"""Calls with RTP through one proxy and one rtpengine (userspace) in the lab: prints figures,
asserts nothing.

    .venv/bin/python bench/bench_media.py [--rates 5 10 20] [--hold 6] [--seconds 15]  # as root

For each call rate, SIPp on the public side places calls through proxy1's public address to a
SIPp UAS registered there; the caller plays G.711 RTP (SIPp's g711a.pcap, 50 pps) and the callee
echoes it back, so rtpengine on media1 relays both directions of every call. Reported per rate:
calls placed, failed calls, concurrent calls (rate x hold), rtpengine sessions seen at mid-run,
rtpengine CPU, and CPU per 100 concurrent calls. The proxy (SIP OPTIONS) and the relay (ng ping)
must answer before anything is measured, and a rate at which no call completed fails the run.
Load is bounded: -m calls, -l concurrency, -timeout, and an outer timeout.
"""

import argparse
import os
import subprocess
import tempfile
import threading
import time

import benchlib
from benchlib import LABCTL, ROOT, cpu_seconds, pub_sipp, sipp_counts, site, timed, write_lab

from lab import ng, sip

PROXY, MEDIA = "203.0.113.11", "198.18.0.21"
HERE = os.path.dirname(os.path.abspath(__file__))


def run_rate(rate, hold, seconds):
    calls = int(rate * seconds)
    concurrent = int(rate * hold)
    timeout = seconds + hold + 20
    uas = subprocess.Popen(
        ["ip", "netns", "exec", "itsp-pub", "timeout", "-s", "INT", str(timeout + 5), "sipp", "-nd",
         "-sf", os.path.join(sip.SIPP_DIR, "uas_rtp.xml"), "-i", sip.PUBLIC_CLIENT, "-p", "5080",
         "-mi", sip.PUBLIC_CLIENT, "-mp", "40000", "-rtp_echo", "-m", str(calls), "-buff_size", "4194304"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    sessions = []

    def sample():
        time.sleep(hold + seconds / 2)
        sessions.append(len(ng.call_ids((MEDIA, 2223))))

    sampler = threading.Thread(target=sample)
    sampler.start()
    cpu0, t0 = cpu_seconds(MEDIA, "rtpengine"), time.monotonic()
    res = pub_sipp([f"{PROXY}:5060", "-sf", os.path.join(sip.SIPP_DIR, "uac_rtp.xml"), "-s", "bench",
                    "-i", sip.PUBLIC_CLIENT, "-p", "5090", "-mi", sip.PUBLIC_CLIENT, "-mp", "42000",
                    "-r", str(rate), "-m", str(calls), "-l", str(concurrent + rate), "-d", str(hold * 1000)],
                   timeout)
    cpu1, t1 = cpu_seconds(MEDIA, "rtpengine"), time.monotonic()
    sampler.join()
    try:
        uas.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        uas.kill()
        uas.communicate()
    ok, failed = sipp_counts(res.stdout)
    cpu_pct = 100.0 * (cpu1 - cpu0) / (t1 - t0)
    return {"rate": rate, "calls": calls, "ok": ok, "failed": failed, "concurrent": concurrent,
            "sessions": sessions[0] if sessions else -1, "cpu_pct": cpu_pct,
            "cpu_per_100": cpu_pct * 100 / max(concurrent, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--hold", type=int, default=6, help="seconds each call lasts")
    p.add_argument("--seconds", type=int, default=15, help="seconds of new calls per rate")
    p.add_argument("--keep", action="store_true", help="leave the lab up")
    a = p.parse_args()
    if any(r < 1 or r > 200 for r in a.rates) or not 1 <= a.hold <= 60 or not 1 <= a.seconds <= 120:
        p.error("rates 1..200, hold 1..60 s, seconds 1..120 (bounded load only)")
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="bench-media-") as inv:
        # The load generator is one source address: trusted (like a carrier's SBC), so pike lets it through.
        spec = write_lab(inv, {"proxy1": {"n": 11, "groups": ["kamailio"],
                                          "vars": {"kamailio_trusted_networks": ["203.0.113.200/32"]}},
                               "media1": {"n": 21, "groups": ["rtpengine"],
                                          "vars": {"rtpengine_max_calls": 2000}}})
        try:
            timed(LABCTL + ["up", "--spec", spec])
            site(inv)
            benchlib.require_answers({"proxy1": benchlib.sip_probe(PROXY),
                                      "media1's rtpengine": benchlib.ng_probe(MEDIA)})
            reg = sip.register(PROXY, "bench", PROXY, contact_port=5080)
            if not reg.ok:
                raise benchlib.BenchFailure(f"the callee's REGISTER at proxy1 failed: {reg.stdout[-500:]}")
            rows = []
            for rate in a.rates:
                rows.append(run_rate(rate, a.hold, a.seconds))
                benchlib.require_some(f"calls at {rate}/s", rows[-1]["ok"])
        finally:
            if not a.keep:
                subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    print(f"one Kamailio (proxy1) + one rtpengine (media1, userspace), G.711 20 ms both ways, hold {a.hold} s")
    print(f"{'calls/s':>7} {'calls':>6} {'ok':>6} {'failed':>6} {'concurrent':>10} {'sessions':>8} "
          f"{'rtpengine CPU':>13} {'CPU/100 calls':>13}")
    for r in rows:
        print(f"{r['rate']:>7} {r['calls']:>6} {r['ok']:>6} {r['failed']:>6} {r['concurrent']:>10} "
              f"{r['sessions']:>8} {r['cpu_pct']:>12.1f}% {r['cpu_per_100']:>12.1f}%")
    print(f"(sessions: rtpengine's own list at mid-run; CPU from /proc on media1; lab root {ROOT})")


if __name__ == "__main__":
    main()
