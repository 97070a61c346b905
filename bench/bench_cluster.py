#!/usr/bin/env python3
"""A cluster proxy against a minimal Kamailio, and DMQ sync time: prints figures, asserts nothing.

    .venv/bin/python bench/bench_cluster.py [--options 2000 4000 6000] [--register 1000 2000 3000]  # as root

Lab: proxy1 and proxy2 from the kamailio role (DMQ usrloc + dialog replication, rtpengine off,
pike exempting the benchmark's client as a trusted network), and plain1 with the minimal
configuration in bench/minimal-kamailio.cfg (OPTIONS 200, REGISTER save, nothing else). Both
have 4 UDP workers. For each rate SIPp sends OPTIONS (or REGISTERs of distinct users) for a few
seconds from the public side; the highest rate with zero failures is reported for each, and the
ratio; after each REGISTER step of the cluster proxy, the contacts proxy1 holds and those its peer
proxy2 holds (replication completeness: registrations acknowledged but never replicated). Every
side is checked to answer (SIP OPTIONS, Kamailio's RPC) before anything is measured, and a side
with no clean step fails the run instead of giving a ratio. Then 10,000 users register
at proxy1, proxy2 is restarted empty, and the time until it holds all 10,000 (dmq_usrloc sync) is
measured. Load is bounded by -m, -timeout and an outer timeout.
"""

import argparse
import os
import subprocess
import tempfile
import time

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
    timed,
    write_lab,
)

from lab import sip

HERE = os.path.dirname(os.path.abspath(__file__))
NODES = {"proxy1": 11, "proxy2": 12, "plain1": 31}


def kamcmd(n, cmd):
    return ssh(f"198.18.0.{n}", f"kamcmd -s unix:/run/kamailio/kamailio_ctl {cmd}").stdout


def contacts(n, starting=False):
    """Contacts a Kamailio holds; a failure when its RPC does not answer (-1 while `starting`)."""
    out = kamcmd(n, "stats.get_statistics location_contacts")
    for line in out.splitlines():
        if "location_contacts" in line:
            return int(line.rsplit("=", 1)[1].strip())
    if starting:
        return -1
    raise BenchFailure(f"198.18.0.{n}: Kamailio's RPC gave no location_contacts ({out.strip()[:200] or 'no answer'})")


def load(n, scenario, rate, seconds, users_file=None):
    calls = rate * seconds
    args = [f"203.0.113.{n}:5060", "-sf", scenario, "-i", sip.PUBLIC_CLIENT, "-p", "5070",
            "-r", str(rate), "-m", str(calls), "-l", str(rate * 2), "-recv_timeout", "4000"]
    if users_file:
        args += ["-inf", users_file]
    cpu0 = cpu_seconds(f"198.18.0.{n}", "kamailio")
    t0 = time.monotonic()
    res = pub_sipp(args, seconds + 25)
    elapsed = time.monotonic() - t0
    cpu = 100 * (cpu_seconds(f"198.18.0.{n}", "kamailio") - cpu0) / elapsed
    ok, failed = sipp_counts(res.stdout)
    return ok, failed, cpu


def replication_gap(answering, peer, settle=10.0):
    """(contacts on the proxy that answered, on its peer, seconds waited): read once the peer holds
    as many as the answering proxy, or its count has not grown for 2 s, or after `settle` s."""
    t0 = time.monotonic()
    seen, still_since = None, t0
    while True:
        held, replicated = contacts(answering), contacts(peer)
        now = time.monotonic()
        if replicated >= held or now - t0 >= settle:
            return held, replicated, now - t0
        if replicated != seen:
            seen, still_since = replicated, now
        elif now - still_since >= 2:
            return held, replicated, now - t0
        time.sleep(0.5)


def ladder(n, scenario, rates, seconds, users_file=None, after_step=None):
    """(highest clean rate or 0, [(rate, ok, failed, cpu %)]) for one side; after_step(rate) after each step."""
    rows = []
    for rate in rates:
        ok, failed, cpu = load(n, scenario, rate, seconds, users_file)
        rows.append((rate, ok, failed, cpu))
        if after_step:
            after_step(rate)
        time.sleep(1)
    return best_clean([(rate, rate * seconds, ok, failed) for rate, ok, failed, _ in rows]), rows


def deploy_minimal():
    with open(os.path.join(HERE, "minimal-kamailio.cfg")) as fh:
        cfg = fh.read()
    cfg = cfg.replace("PRIVATE", "198.18.0.31").replace("PUBLIC", "203.0.113.31")
    ssh("198.18.0.31", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kamailio",
        timeout=300)
    ssh("198.18.0.31", "cat > /etc/kamailio/kamailio.cfg && kamailio -c -f /etc/kamailio/kamailio.cfg >/dev/null "
        "&& systemctl restart kamailio", input_text=cfg, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--options", type=int, nargs="+", default=[4000, 8000, 12000, 16000])
    p.add_argument("--register", type=int, nargs="+", default=[2000, 4000, 6000, 8000])
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--sync-users", type=int, default=10000)
    p.add_argument("--sync-only", action="store_true", help="skip the rate ladders")
    p.add_argument("--dmq-module-defaults", action="store_true",
                   help="sync with dmq_usrloc's own defaults (1 contact per message, no pause) for comparison")
    a = p.parse_args()
    if max(a.options + a.register) > 20000 or not 1 <= a.seconds <= 30 or not 1 <= a.sync_users <= 50000:
        p.error("rates up to 20000/s, 1..30 s per step, up to 50000 users (bounded load only)")
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as work:
        users = os.path.join(work, "users.csv")
        with open(users, "w") as fh:
            fh.write("SEQUENTIAL\n" + "".join(f"user{i:06d};\n" for i in range(max(a.sync_users, 50000))))
        trusted = {"kamailio_trusted_networks": ["203.0.113.200/32"]}
        if a.dmq_module_defaults:
            trusted.update(kamailio_dmq_sync_batch_contacts=1, kamailio_dmq_sync_batch_pause_us=0)
        # plain1 is a SIP node too (so the lab builds it the same way), and the firewall role
        # opens only what a role publishes: the minimal Kamailio's port is opened here.
        minimal_port = {"firewall_extra_rules": [{"proto": "udp", "port": "5060", "sources": []}]}
        spec = write_lab(work, {"proxy1": {"n": 11, "groups": ["kamailio"], "vars": trusted},
                                "proxy2": {"n": 12, "groups": ["kamailio"], "vars": trusted},
                                "plain1": {"n": 31, "groups": ["plain"], "vars": minimal_port}})
        try:
            timed(LABCTL + ["up", "--spec", spec])
            site(work)
            deploy_minimal()
            require_answers({"cluster proxy proxy1": sip_probe("203.0.113.11"),
                             "cluster proxy proxy2": sip_probe("203.0.113.12"),
                             "minimal plain1": sip_probe("203.0.113.31"),
                             "proxy1's RPC": rpc_probe("198.18.0.11"), "proxy2's RPC": rpc_probe("198.18.0.12"),
                             "plain1's RPC": rpc_probe("198.18.0.31")})
            options = os.path.join(sip.SIPP_DIR, "options.xml")
            register = os.path.join(sip.SIPP_DIR, "register_many.xml")
            results, gaps = {}, []

            def completeness(rate):  # REGISTERs answered by proxy1: are they all on its peer?
                gaps.append((rate, *replication_gap(11, 12)))

            for name, n in () if a.sync_only else (("cluster proxy", 11), ("minimal", 31)):
                results[name] = (ladder(n, options, a.options, a.seconds),
                                 ladder(n, register, a.register, a.seconds, users,
                                        after_step=completeness if n == 11 else None))
            # DMQ sync: fresh registrations at proxy1, proxy2 restarted empty.
            ssh("198.18.0.11", "systemctl restart kamailio")
            ssh("198.18.0.12", "systemctl restart kamailio")
            require_answers({"proxy1 after its restart": sip_probe("203.0.113.11"),
                             "proxy2 after its restart": sip_probe("203.0.113.12")})
            rate = 2000
            res = pub_sipp(["203.0.113.11:5060", "-sf", register, "-i", sip.PUBLIC_CLIENT, "-p", "5071",
                            "-r", str(rate), "-m", str(a.sync_users), "-l", str(rate * 2), "-inf", users,
                            "-recv_timeout", "4000"], a.sync_users // rate + 30)
            registered = sipp_counts(res.stdout)
            require_some("DMQ sync: registrations at proxy1", registered[0])
            time.sleep(2)
            replicated_live = contacts(12)
            total = contacts(11)  # what proxy1 holds (earlier steps' users too: they survive restarts)
            ssh("198.18.0.12", "systemctl stop kamailio")
            ssh("198.18.0.12", "systemctl start kamailio")
            t0 = time.monotonic()
            synced = -1
            while time.monotonic() - t0 < 60:
                synced = contacts(12, starting=True)
                if synced >= total:
                    break
                time.sleep(0.2)
            sync_time = time.monotonic() - t0
            if synced < 0:
                raise BenchFailure("proxy2's RPC did not answer within 60 s of its start: no sync time")
        finally:
            subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    for what, idx, unit in () if a.sync_only else (("OPTIONS", 0, "req/s"), ("REGISTER", 1, "req/s")):
        print(f"{what}: highest rate with zero failures over {a.seconds} s")
        for name in ("cluster proxy", "minimal"):
            best, rows = results[name][idx]
            steps = ", ".join(f"{r}/s: {ok} ok {bad} failed cpu {cpu:.0f}%" for r, ok, bad, cpu in rows)
            print(f"  {name:<14} {best:>6} {unit}   ({steps})")
        c, m = results["cluster proxy"][idx][0], results["minimal"][idx][0]
        print(f"  ratio cluster/minimal: {ratio((f'cluster proxy ({what})', c), (f'minimal ({what})', m)):.2f}",
              flush=True)
    if gaps:
        print("REGISTER replication completeness after each step (proxy1 answered, proxy2 its DMQ peer):")
        for rate, held, replicated, waited in gaps:
            print(f"  after {rate}/s: proxy1 {held} contacts, proxy2 {replicated}: {held - replicated} not replicated "
                  f"({100 * (held - replicated) / max(held, 1):.2f} %), read {waited:.1f} s after the step")
    print(f"DMQ: {registered[0]} new registrations at proxy1 ({registered[1]} failed); proxy1 held {total} "
          f"contacts, proxy2 {replicated_live} by live replication; restarted empty, proxy2 held {synced} "
          f"of {total} after {sync_time:.2f} s (dmq_usrloc sync)")


if __name__ == "__main__":
    main()
