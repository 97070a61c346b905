#!/usr/bin/env python3
"""Where a REGISTER's cost goes on a cluster proxy: prints figures, asserts nothing.

    .venv/bin/python bench/bench_register.py [--rate 800] [--seconds 10] [--ladder 1000 2000 4000 8000]  # as root

Lab: proxy1 .. proxy4 of the kamailio role and plain1 with the minimal registrar of
bench/minimal-kamailio.cfg (OPTIONS 200, REGISTER save, nothing else). All in one run, at one fixed
offered rate below saturation, SIPp registers distinct users at proxy1 (or plain1) from the public side
and the run records, per accepted REGISTER: Kamailio's CPU time on the answering node (from /proc),
on each replication peer, and Kamailio's own counters (transactions it started = DMQ messages sent,
replies, usrloc inserts). The configurations change one thing at a time against a base proxy
(replication, pike and rate limit off, no digest auth, 4 UDP workers):

    minimal registrar | base | + pike and rate limit | + digest auth (local table)
    | + DMQ to 1, 2, 3 peers | 2 peers with 2 and 8 workers | 2 peers with the replication
    backlog guard (--only picks some)

After each step, once nothing proxy1 sent is still waiting for a peer's answer, it compares contacts
on proxy1 and every running peer (every registration answered 200 must be on every peer). Then the
highest clean rate (a ladder, completeness read after every rate) of the proxy replicating to 2 peers
without and with the guard, of the minimal registrar, and their ratios. A peer count is set by stopping
Kamailio on every proxy and starting proxy1 and the step's peers, so no node list holds a stopped
peer as active (DMQ sends only to active nodes); proxy1's list is checked (dmq.list_nodes) before
the step is measured, and the DMQ messages sent per REGISTER say how many peers it replicated to.
Every node is checked to answer OPTIONS before it is measured; a node that does not answer, or a
step with no accepted REGISTER, stops the run with an error. Load is bounded by -m, -timeout and an outer timeout.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

from bench_cluster import deploy_minimal, kamcmd, ladder, replication_gap
from benchlib import (
    LABCTL,
    BenchFailure,
    best_clean,
    cpu_seconds,
    pub_sipp,
    ratio,
    require_answers,
    require_some,
    rpc_probe,
    sip_probe,
    sipp_counts,
    site,
    ssh,
    write_lab,
)

from lab import sip

PROXIES = {"proxy1": 11, "proxy2": 12, "proxy3": 13, "proxy4": 14}
MINIMAL = 31
REALM, SECRET = "bench.itsp", "bench-nonce-secret-0123456789"
# Replication messages awaiting a peer's answer above which the guard step refuses REGISTER.
GUARD = 2000
# The base proxy: what the role does for every REGISTER, minus the parts measured one by one.
BASE = {"kamailio_dmq_enabled": False, "kamailio_pike_enabled": False, "kamailio_rate_limit_requests": 0,
        "kamailio_auth_enabled": False, "kamailio_children": 4}
STEPS = [
    # (label, configuration over BASE, running peers, SIPp scenario)
    ("base proxy", {}, 0, "register_many.xml"),
    # Thresholds far above the offered rate: every request is counted, none is refused.
    ("+ pike and rate limit", {"kamailio_pike_enabled": True, "kamailio_pike_requests": 1000000,
                               "kamailio_rate_limit_requests": 1000000}, 0, "register_many.xml"),
    ("+ digest auth", {"kamailio_auth_enabled": True}, 0, "register_auth_many.xml"),
    ("+ DMQ, 1 peer", {"kamailio_dmq_enabled": True}, 1, "register_many.xml"),
    ("+ DMQ, 2 peers", {"kamailio_dmq_enabled": True}, 2, "register_many.xml"),
    ("+ DMQ, 3 peers", {"kamailio_dmq_enabled": True}, 3, "register_many.xml"),
    ("2 peers, 2 workers", {"kamailio_dmq_enabled": True, "kamailio_children": 2}, 2, "register_many.xml"),
    ("2 peers, 8 workers", {"kamailio_dmq_enabled": True, "kamailio_children": 8}, 2, "register_many.xml"),
    # The role's tuning (TLSF, no CSeq tracking) is its default now; the guard is not.
    ("2 peers + guard", {"kamailio_dmq_enabled": True, "kamailio_dmq_max_pending": GUARD}, 2, "register_many.xml"),
    # The shared memory the role's default had before (512 MB now): replication ran out of it.
    ("2 peers, 128 MB shm", {"kamailio_dmq_enabled": True, "kamailio_shm_memory_mb": 128}, 2, "register_many.xml"),
]
# The ladders of the proxy replicating to 2 peers, after these steps (each step's completeness read).
LADDER_STEPS = ("+ DMQ, 2 peers", "2 peers + guard", "2 peers, 128 MB shm")
# Requests received (a digest REGISTER is two; retransmissions count too) and transactions Kamailio
# started itself (each is a DMQ message to a peer).
COUNTERS = ("core:rcv_requests", "tmx:UAC_transactions")


def password(i):
    return f"bench-{i:06d}-pw"


def statistics(n):
    """Kamailio's own counters on 198.18.0.n: {"group:name": int}."""
    stats = {}
    for line in kamcmd(n, "stats.get_statistics all").splitlines():
        if "=" in line:
            name, value = line.split("=", 1)
            try:
                stats[name.strip()] = int(value.strip())
            except ValueError:
                continue
    return stats


def udp_drops(n):
    """Datagrams the kernel dropped on 198.18.0.n for a full receive buffer (all sockets), from /proc."""
    out = ssh(f"198.18.0.{n}", "cat /proc/net/snmp").stdout.splitlines()
    rows = [line.split() for line in out if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return 0
    return int(rows[1][rows[0].index("RcvbufErrors")])


def in_flight(n):
    """Transactions proxy n started or relays without a final answer yet (tmx:active_transactions):
    here, its replication messages no peer has answered."""
    return statistics(n).get("tmx:active_transactions", 0)


def completeness(n, peers, bound=35.0):
    """({peer: registrations proxy n holds that the peer does not}, seconds waited, in flight left):
    read once nothing proxy n sent is still waiting for a peer's answer (tm retransmits a lost KDMQ
    for up to fr_timer), or after `bound` s."""
    t0 = time.monotonic()
    pending = in_flight(n)
    while pending and time.monotonic() - t0 < bound:
        time.sleep(1)
        pending = in_flight(n)
    time.sleep(2.5)  # tmx's counters are refreshed every 2 s: one more look
    pending = in_flight(n)
    missing = {}
    for m in peers:
        held, replicated, _ = replication_gap(n, m, settle=5.0)
        missing[m] = held - replicated
    return missing, time.monotonic() - t0, pending


def require_nodes(names):
    """Every node named answers SIP on its public address and Kamailio's RPC, or the run fails."""
    sides = {}
    for name in names:
        n = MINIMAL if name == "plain1" else PROXIES[name]
        sides[f"{name} SIP"] = sip_probe(f"203.0.113.{n}")
        sides[f"{name} RPC"] = rpc_probe(f"198.18.0.{n}")
    require_answers(sides, attempts=10, pause=1.0)


def dmq_nodes(n):
    """Peers proxy n replicates to: DMQ nodes other than itself that are active."""
    out = kamcmd(n, "dmq.list_nodes")
    hosts = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("host:")]
    states = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("status:")]
    return {h for h, s in zip(hosts, states) if h != f"198.18.0.{n}" and s in ("active", "1")}


def set_peers(count):
    """Run Kamailio on proxy1 and proxy2 .. proxy(count+1) only. Every proxy stops first: a node that
    kept running would hand a restarted one its list, stopped peers included as active until a ping
    times them out (what stopped an earlier run), and proxy1 would replicate to them meanwhile. The
    others stay in the notification addresses, "pending": DMQ sends only to active nodes."""
    peers = list(PROXIES)[1:]
    for name in PROXIES:
        ssh(f"198.18.0.{PROXIES[name]}", "systemctl stop kamailio")
    for name in peers[:count] + ["proxy1"]:
        ssh(f"198.18.0.{PROXIES[name]}", "systemctl start kamailio")
    require_nodes(peers[:count] + ["proxy1"])
    want = {f"198.18.0.{PROXIES[name]}" for name in peers[:count]}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if count == 0 or dmq_nodes(11) == want:
            return [PROXIES[name] for name in peers[:count]]
        time.sleep(1)
    raise BenchFailure(f"proxy1's DMQ nodes are {sorted(dmq_nodes(11))}, not the {count} running peers {sorted(want)}")


def printed_ladder(name, n, scenario, rates, seconds, users, after_step=None):
    """bench_cluster.ladder, one rate at a time, each step printed as it ends (a run stopped by its
    time bound keeps what it measured)."""
    rows = []
    for rate in rates:
        rows += ladder(n, scenario, [rate], seconds, users)[1]
        _, ok, failed, cpu = rows[-1]
        print(f"    ladder {name} {rate}/s: ok {ok} failed {failed} Kamailio CPU {cpu:.0f}%", flush=True)
        if after_step:
            after_step(rate)
    return best_clean([(rate, rate * seconds, ok, failed) for rate, ok, failed, _ in rows]), rows


def users_file(work, step, count, auth):
    path = os.path.join(work, f"users-{step}.csv")
    with open(path, "w") as fh:
        fh.write("SEQUENTIAL\n")
        for i in range(count):
            user = f"s{step}u{i:06d}"
            # field1 is SIPp's whole keyword: it does not expand [fieldN] inside [authentication ...].
            fh.write(f"{user};[authentication username={user} password={password(i)}];\n" if auth else f"{user};\n")
    return path


def measure(n, peers, scenario, rate, seconds, users):
    """One step at a fixed offered rate: accepted, failed, CPU per accepted REGISTER here and on the
    peers, counter deltas per accepted REGISTER, and the contacts each peer misses."""
    calls = rate * seconds
    before = statistics(n)
    cpu0 = {m: cpu_seconds(f"198.18.0.{m}", "kamailio") for m in [n, *peers]}
    drops0 = {m: udp_drops(m) for m in [n, *peers]}
    res = pub_sipp([f"203.0.113.{n}:5060", "-sf", os.path.join(sip.SIPP_DIR, scenario), "-i", sip.PUBLIC_CLIENT,
                    "-p", "5070", "-r", str(rate), "-m", str(calls), "-l", str(rate * 2), "-inf", users,
                    "-recv_timeout", "4000"], seconds + 25)
    ok, failed = sipp_counts(res.stdout)
    cpu = {m: cpu_seconds(f"198.18.0.{m}", "kamailio") - cpu0[m] for m in cpu0}
    after = statistics(n)
    drops = {m: udp_drops(m) - drops0[m] for m in drops0}
    # Every registration answered 200 on every peer, once replication in flight has landed.
    missing, _, _ = completeness(n, peers)
    deltas = {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}
    deltas["udp drops"] = sum(drops.values())
    return ok, failed, cpu, deltas, missing


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=800, help="fixed offered REGISTER/s for the breakdown")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--ladder", type=int, nargs="+", default=[2000, 3000, 4000, 5000, 6000],
                   help="offered rates of the replicating proxy's ladders")
    p.add_argument("--minimal-ladder", type=int, nargs="+", default=[4000, 6000, 8000, 10000],
                   help="offered rates of the minimal registrar's ladder")
    p.add_argument("--ladder-seconds", type=int, default=5)
    p.add_argument("--only", nargs="+", choices=[label for label, *_ in STEPS], metavar="STEP",
                   help="measure only these configurations (the minimal registrar always)")
    a = p.parse_args()
    if not 50 <= a.rate <= 5000 or not 2 <= a.seconds <= 30 or max(a.ladder + a.minimal_ladder) > 20000 \
            or not 1 <= a.ladder_seconds <= 30 or a.rate * a.seconds > 40000:
        p.error("rate 50..5000/s, 2..30 s, at most 40000 REGISTERs per step, ladder up to 20000/s (bounded load)")
    per_step = a.rate * a.seconds
    ladder_users = max(a.ladder + a.minimal_ladder) * a.ladder_seconds
    register = os.path.join(sip.SIPP_DIR, "register_many.xml")
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="bench-register-") as work:
        # Subscribers for the digest step (HA1 in the local table), users s2u000000 ...
        subscribers = [{"username": f"s2u{i:06d}", "password": password(i)} for i in range(per_step)]
        # No trusted network for the client: trusted sources skip pike and digest, which are measured here.
        # The DMQ port is the role's to open (turning DMQ on in a later converge is an operator's path).
        # Only replicating configurations: DMQ from the first converge (one converge less).
        dmq_first = bool(a.only) and all(config.get("kamailio_dmq_enabled")
                                         for label, config, *_ in STEPS if label in a.only)
        common = dict(BASE, kamailio_dmq_enabled=dmq_first, kamailio_auth_realm=REALM,
                      kamailio_auth_secret=SECRET, kamailio_subscriber_plaintext_passwords="warn",
                      kamailio_subscribers=subscribers)
        hosts = {name: {"n": n, "groups": ["kamailio"], "vars": common} for name, n in PROXIES.items()}
        # plain1 is a SIP node too (the lab builds it the same way); the firewall role opens SIP only
        # where the topology has a proxy, so the minimal registrar's port is opened here.
        hosts["plain1"] = {"n": MINIMAL, "groups": ["plain"],
                           "vars": {"firewall_extra_rules": [{"proto": "udp", "port": "5060", "sources": []}]}}
        spec = write_lab(work, hosts)
        inventory = os.path.join(work, "hosts.yml")
        rows, ladders, completeness_rows = [], {}, {}
        try:
            subprocess.run(LABCTL + ["up", "--spec", spec], check=True, capture_output=True, timeout=900)
            took, _ = site(inventory)
            print(f"lab: 4 proxies converged in {took:.0f} s; plain1 gets the minimal registrar", flush=True)
            deploy_minimal()
            require_nodes(["plain1"])
            ok, failed, cpu, deltas, _ = measure(MINIMAL, [], "register_many.xml", a.rate, a.seconds,
                                                 users_file(work, "m", per_step, False))
            require_some("the minimal registrar's REGISTERs", ok)
            rows.append(("minimal registrar", 0, ok, failed, cpu[MINIMAL], deltas, {}))
            print(f"  minimal registrar: {ok} ok {failed} failed; CPU {1e6 * cpu[MINIMAL] / ok:.0f} us per REGISTER",
                  flush=True)
            # The ratio's denominator first: a run its time bound stops still has it.
            ladders["minimal registrar"] = printed_ladder("minimal registrar", MINIMAL, register, a.minimal_ladder,
                                                          a.ladder_seconds, users_file(work, "k", ladder_users, False))
            applied = None
            for index, (label, config, peers, scenario) in enumerate(STEPS):
                if a.only and label not in a.only:
                    continue
                if config != applied:
                    # The previous step stopped the peers it did not use; the converge checks every
                    # proxy (drain, restart, DMQ peers), so every proxy runs again first.
                    for name in list(PROXIES)[1:]:
                        ssh(f"198.18.0.{PROXIES[name]}", "systemctl start kamailio")
                    require_nodes(list(PROXIES))
                    extra = os.path.join(work, f"vars-{index}.json")  # a file: the subscribers exceed an argument
                    with open(extra, "w") as fh:
                        json.dump(dict(common, **config), fh)
                    took, _ = site(inventory, "-e", f"@{extra}")
                    print(f"converged for {label!r} in {took:.0f} s", flush=True)
                    applied = config
                peer_nodes = set_peers(peers)
                users = users_file(work, index, per_step, scenario == "register_auth_many.xml")
                ok, failed, cpu, deltas, missing = measure(11, peer_nodes, scenario, a.rate, a.seconds, users)
                require_some(f"proxy1's REGISTERs in step {label!r}", ok)
                rows.append((label, peers, ok, failed, cpu[11], deltas,
                             {m: (cpu[m], missing[m]) for m in peer_nodes}))
                print(f"  {label}: {ok} ok {failed} failed; proxy1 CPU {1e6 * cpu[11] / ok:.0f} us per REGISTER, "
                      f"peers {[round(1e6 * cpu[m] / ok) for m in peer_nodes]} us, requests received "
                      f"{deltas['core:rcv_requests'] / ok:.2f}, "
                      f"DMQ transactions {deltas['tmx:UAC_transactions'] / ok:.2f}, UDP drops {deltas['udp drops']}, "
                      f"missing on peers {list(missing.values())}", flush=True)
                if label in LADDER_STEPS:
                    gaps = []

                    def after_step(rate, peers=peer_nodes, gaps=gaps, label=label):
                        gaps.append((rate, *completeness(11, peers)))
                        print(f"    ladder {label} {rate}/s: missing on peers {list(gaps[-1][1].values())}, "
                              f"read {gaps[-1][2]:.0f} s after, {gaps[-1][3]} still in flight", flush=True)

                    _, steps = printed_ladder(label, 11, register, a.ladder, a.ladder_seconds,
                                              users_file(work, f"l{index}", ladder_users, False),
                                              after_step=after_step)
                    # Clean = every REGISTER answered 200 AND the step added nothing to any peer's gap:
                    # a 200 the peers never got is not a clean answer (the shm-exhausted proxy gave many).
                    complete, before_step = [], {}
                    for (rate, ok, failed, _cpu), (_rate, missing, _waited, _left) in zip(steps, gaps):
                        if all(missing[m] <= before_step.get(m, 0) for m in missing):
                            complete.append((rate, rate * a.ladder_seconds, ok, failed))
                        before_step = missing
                    ladders[f"proxy, {label}"] = (best_clean(complete), steps)
                    completeness_rows[label] = gaps
        finally:
            subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    print(f"\nREGISTER cost at {a.rate}/s offered for {a.seconds} s (per accepted REGISTER; CPU = Kamailio, all "
          f"processes, user+system)")
    print(f"{'configuration':24} {'ok':>6} {'fail':>5} {'CPU us':>7} {'peer CPU us':>12} {'rcv req':>7} "
          f"{'DMQ tx':>7} {'drops':>6} {'missing on peers':>17}")
    base_cpu = None
    for label, _peers, ok, failed, cpu, deltas, peer in rows:
        per = 1e6 * cpu / ok
        base_cpu = per if label == "base proxy" else base_cpu
        peer_cpu = " ".join(f"{1e6 * c / ok:.0f}" for c, _ in peer.values()) or "-"
        missing = " ".join(str(m) for _, m in peer.values()) or "-"
        print(f"{label:24} {ok:>6} {failed:>5} {per:>7.0f} {peer_cpu:>12} {deltas['core:rcv_requests'] / ok:>7.2f} "
              f"{deltas['tmx:UAC_transactions'] / ok:>7.2f} {deltas['udp drops']:>6} {missing:>17}")
    dmq = {peers: 1e6 * cpu / ok for label, peers, ok, _f, cpu, _d, _p in rows if label.startswith("+ DMQ")}
    if base_cpu and dmq:
        print("marginal CPU per REGISTER of replication: " + ", ".join(
            f"{k} peer{'s' if k > 1 else ''}: +{v - base_cpu:.0f} us" for k, v in sorted(dmq.items())))
    for name, (best, steps) in ladders.items():
        print(f"ladder {name:24}: best clean (and complete) {best}/s  " + "  ".join(
            f"[{r}/s ok {ok} failed {f} cpu {c:.0f}%]" for r, ok, f, c in steps))
    for label, gaps in completeness_rows.items():
        print(f"completeness, {label}: " + "  ".join(
            f"[{rate}/s missing {sum(missing.values())}, {left} in flight after {waited:.0f} s]"
            for rate, missing, waited, left in gaps))
    for label in (step for step in LADDER_STEPS if f"proxy, {step}" in ladders):
        value = ratio((f"the proxy ({label})", ladders[f"proxy, {label}"][0]),
                      ("the minimal registrar", ladders["minimal registrar"][0]))
        print(f"ratio proxy ({label}) / minimal registrar: {value:.2f} (goal 0.6)")


if __name__ == "__main__":
    main()
