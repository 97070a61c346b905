#!/usr/bin/env python3
"""What DMQ replication puts on the wire, per registration, per call and per second idle: prints
figures for the growth model (docs/scaling.md, instance_size's calibration), asserts nothing.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_dmq_wire.py [--nodes 3] [--users 2000] [--rate 200]
        [--calls 200] [--json FILE]

Lab: --nodes proxies (proxy1, proxy2, ...) of the kamailio role (dmq_usrloc + dialog replication, full mesh,
rtpengine off, the benchmark client trusted so pike and the rate limit stay out of the way).
A stdlib packet counter (bench/dmq_sniff.py) runs in proxy1's and proxy2's namespaces while
  1. nothing happens (DMQ peer pings only),
  2. --users distinct users register at proxy1 (new contacts), then
  3. the same users register again (contact updates), then
  4. --calls calls go through proxy1 to a registered called party on the public side.
For each phase it prints KDMQ requests and replies per event, bytes per message as on Ethernet
(header, FCS) and Kamailio CPU seconds on each proxy. Every side is checked to answer before
anything is measured; load is bounded by -m, -timeout and outer timeouts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchlib import (
    LABCTL,
    ROOT,
    BenchFailure,
    cpu_seconds,
    pub_sipp,
    require_answers,
    require_some,
    sip_probe,
    sipp_counts,
    site,
    timed,
    write_lab,
)

from lab import sip

HERE = os.path.dirname(os.path.abspath(__file__))
PROXIES = {}
SNIFFED = ("proxy1", "proxy2")


class Sniffers:
    """dmq_sniff.py in each sniffed host's namespace for one phase."""

    def __init__(self, work, phase, seconds):
        self.files, self.procs = {}, []
        for name in SNIFFED:
            out = os.path.join(work, f"{phase}-{name}.json")
            self.files[name] = out
            self.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", f"itsph-{name}", sys.executable, os.path.join(HERE, "dmq_sniff.py"),
                 "--address", f"198.18.0.{PROXIES[name]}", "--seconds", str(seconds), "--out", out]))
        self.cpu0 = {n: cpu_seconds(f"198.18.0.{i}", "kamailio") for n, i in PROXIES.items()}
        self.t0 = time.monotonic()
        time.sleep(0.5)

    def finish(self):
        for proc in self.procs:
            proc.wait(timeout=700)
        cpu = {n: cpu_seconds(f"198.18.0.{i}", "kamailio") - self.cpu0[n] for n, i in PROXIES.items()}
        result = {}
        for name, path in self.files.items():
            with open(path) as fh:
                result[name] = json.load(fh)
        return result, cpu, time.monotonic() - self.t0


SAMPLES = {}


def per_event(result, events, elapsed):
    """The whole mesh's DMQ per event, seen on proxy1 (it took every registration and call): requests
    it sent with their replies, bytes on the wire; and proxy1's own ping traffic per second."""
    counts = result["proxy1"]["counts"]
    out = {}
    for peer in ("usrloc", "dialog"):
        req, rep = counts.get(f"{peer} request out"), counts.get(f"{peer} reply in")
        if req and events:
            out[peer] = {"requests_per_event": req["packets"] / events,
                         "request_bytes": req["bytes"] / req["packets"],
                         "reply_bytes": rep["bytes"] / rep["packets"] if rep else None,
                         "bytes_per_event": (req["bytes"] + (rep["bytes"] if rep else 0)) / events}
    pings = [c for name, c in counts.items() if name.startswith("notification_peer") and name.endswith("out")]
    out["ping_bytes_out_per_second"] = sum(c["bytes"] for c in pings) / elapsed
    return out


def show(phase, events, unit, result, cpu, elapsed):
    for name in SNIFFED:
        for cls, text in result[name]["samples"].items():
            SAMPLES.setdefault(cls, text)
    print(f"\n{phase}: {events} {unit} in {elapsed:.1f} s")
    for name in SNIFFED:
        for cls, c in sorted(result[name]["counts"].items()):
            per = f"{c['packets'] / events:.3f} per {unit.rstrip('s')}" if events else f"{c['packets'] / elapsed:.3f}/s"
            print(f"  {name} {cls:<28} {c['packets']:>7} packets {c['bytes'] / max(c['packets'], 1):7.1f} B avg"
                  f"  ({per})")
    print("  kamailio CPU s: " + ", ".join(f"{n} {v:.2f}" for n, v in cpu.items()))


def register_users(users_file, count, rate, port):
    register = os.path.join(sip.SIPP_DIR, "register_many.xml")
    res = pub_sipp(["203.0.113.11:5060", "-sf", register, "-i", sip.PUBLIC_CLIENT, "-p", str(port),
                    "-r", str(rate), "-m", str(count), "-l", str(rate * 2), "-inf", users_file,
                    "-recv_timeout", "4000"], count // rate + 30)
    return sipp_counts(res.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=3, help="proxies in the mesh (2..5)")
    p.add_argument("--json", help="write the per-event figures here (for bench/plot_scaling.py)")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--idle", type=int, default=31, help="seconds of the idle phase (pings)")
    p.add_argument("--keep", action="store_true", help="leave the lab up (tear it down yourself, under the lock)")
    a = p.parse_args()
    if not 1 <= a.users <= 20000 or not 1 <= a.rate <= 2000 or not 1 <= a.calls <= 2000 or not 5 <= a.idle <= 120:
        p.error("up to 20000 users at up to 2000/s, up to 2000 calls, 5..120 s idle (bounded load only)")
    if not 2 <= a.nodes <= 5:
        p.error("--nodes must be 2..5")
    PROXIES.update({f"proxy{i}": 10 + i for i in range(1, a.nodes + 1)})
    figures = {"nodes": a.nodes}
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="bench-dmq-") as work:
        users = os.path.join(work, "users.csv")
        with open(users, "w") as fh:
            fh.write("SEQUENTIAL\n" + "".join(f"user{i:06d};\n" for i in range(a.users)))
        trusted = {"kamailio_trusted_networks": ["203.0.113.200/32"], "kamailio_auth_enabled": False}
        spec = write_lab(work, {n: {"n": i, "groups": ["kamailio"], "vars": trusted} for n, i in PROXIES.items()})
        try:
            timed(LABCTL + ["up", "--spec", spec])
            site(work)
            require_answers({name: sip_probe(f"203.0.113.{i}") for name, i in PROXIES.items()})
            time.sleep(3)  # DMQ peers find each other
            sniff = Sniffers(work, "idle", a.idle)
            result = sniff.finish()
            show("idle (DMQ pings)", 0, "s", *result)
            figures["idle"] = per_event(result[0], 0, result[2])

            for phase in ("register (new contacts)", "re-register (updates)"):
                sniff = Sniffers(work, phase.split()[0], a.users / a.rate + 8)
                ok, failed = register_users(users, a.users, a.rate, 5071)
                result = sniff.finish()
                print(f"\nSIPp: {ok} registered, {failed} failed")
                require_some(phase, ok)
                show(phase, ok, "registrations", *result)
                figures[phase.split()[0]] = per_event(result[0], ok, result[2])
                figures[phase.split()[0]]["cpu_seconds"] = result[1]
                figures[phase.split()[0]]["events"] = ok

            callee = sip.register("203.0.113.11", "callee", "203.0.113.11", contact_port=5080, expires=3600)
            if not callee.ok:
                raise BenchFailure("the called party could not register at proxy1; calls not measured")
            time.sleep(1)
            rate = 10
            sniff = Sniffers(work, "calls", a.calls / rate + 12)
            with sip.Uas(port=5080, calls=a.calls, timeout=a.calls // rate + 25):
                res = pub_sipp(["203.0.113.11:5060", "-sf", os.path.join(sip.SIPP_DIR, "call.xml"), "-s", "callee",
                                "-key", "domain", "203.0.113.11", "-key", "rtp_port", "20000", "-d", "1000",
                                "-i", sip.PUBLIC_CLIENT, "-p", "5072", "-r", str(rate), "-m", str(a.calls),
                                "-recv_timeout", "6000"], a.calls // rate + 20)
            ok, failed = sipp_counts(res.stdout)
            result = sniff.finish()
            print(f"\nSIPp: {ok} calls completed, {failed} failed")
            require_some("calls (dialog replication)", ok)
            show("calls (dialog replication)", ok, "calls", *result)
            figures["calls"] = per_event(result[0], ok, result[2])
            figures["calls"]["cpu_seconds"] = result[1]
            figures["calls"]["events"] = ok
            print("\nper event, whole mesh (seen on proxy1): " + json.dumps(figures))
            if a.json:
                with open(a.json, "w") as fh:
                    json.dump(figures, fh, indent=1)
            print("\nsamples:")
            for cls, text in sorted(SAMPLES.items()):
                print(f"--- {cls} ({len(text.encode())} bytes of SIP)\n{text.strip()}")
        finally:
            if not a.keep:
                subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    print(f"\n(lab: {', '.join(PROXIES)}; ROOT {ROOT})")


if __name__ == "__main__":
    main()
