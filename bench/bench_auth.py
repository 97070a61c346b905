#!/usr/bin/env python3
"""REGISTER and INVITE with digest auth: prints figures, asserts nothing.

    .venv/bin/python bench/bench_auth.py [--rates 250 500 1000 2000] [--seconds 5] [--users 2000]  # as root

Lab: three standalone proxies of the kamailio role (no DMQ, pike and the rate limit off, so only
authentication differs) and a PostgreSQL host of the sipdb role:
  proxy1  digest against the local table (HA1 from the inventory)
  proxy2  digest against PostgreSQL on db1 (Kamailio's schema, the same subscribers)
  proxy3  no authentication (the figure without auth, same run)
For each rate SIPp registers distinct subscribers (401, REGISTER with credentials, 200) for a few
seconds from the public side; the highest rate with no failure is reported per proxy, with
Kamailio's CPU. Then authenticated INVITEs (407, INVITE with credentials, 404) against proxy1 and
proxy2. Every side is checked to answer before anything is measured. Load is bounded by -m,
-timeout and an outer timeout.
"""

import argparse
import os
import subprocess
import tempfile

from bench_cluster import ladder
from benchlib import LABCTL, ratio, require_answers, sip_probe, site, write_lab

from lab import sip

PROXIES = {"proxy1": (11, "local table"), "proxy2": (12, "PostgreSQL"), "proxy3": (13, "no auth")}
REALM, SECRET = "bench.itsp", "bench-nonce-secret-0123456789"


def password(i):
    return f"bench-{i:05d}-pw"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--users", type=int, default=2000)
    a = p.parse_args()
    if max(a.rates) > 10000 or not 1 <= a.seconds <= 30 or not 10 <= a.users <= 20000:
        p.error("rates up to 10000/s, 1..30 s per step, 10..20000 users (bounded load only)")
    subprocess.run(LABCTL + ["down"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as work:
        subscribers = [{"username": f"bench{i:05d}", "password": password(i)} for i in range(a.users)]
        common = {"kamailio_dmq_enabled": False, "kamailio_pike_enabled": False, "kamailio_rate_limit_requests": 0,
                  "kamailio_auth_realm": REALM, "kamailio_auth_secret": SECRET, "kamailio_children": 4,
                  "kamailio_subscriber_plaintext_passwords": "warn", "kamailio_subscribers": subscribers}
        db_password = "bench-db-password-0123"
        spec = write_lab(work, {
            "proxy1": {"n": 11, "groups": ["kamailio"], "vars": common},
            "proxy2": {"n": 12, "groups": ["kamailio"], "vars": dict(
                common, kamailio_subscribers_source="database",
                kamailio_auth_db_url=f"postgres://kamailio:{db_password}@198.18.0.30:5432/kamailio")},
            "proxy3": {"n": 13, "groups": ["kamailio"], "vars": dict(common, kamailio_auth_enabled=False)},
            "db1": {"n": 30, "groups": ["sipdb"], "cloud": "metal", "vars": {
                "sipdb_password": db_password, "sipdb_realm": REALM, "sipdb_subscribers": subscribers}}})
        users = os.path.join(work, "users.csv")
        with open(users, "w") as fh:
            # field1 is SIPp's whole keyword: it does not expand [fieldN] inside [authentication ...].
            fh.write("SEQUENTIAL\n" + "".join(f"bench{i:05d};[authentication username=bench{i:05d} "
                                               f"password={password(i)}];\n" for i in range(a.users)))
        try:
            subprocess.run(LABCTL + ["up", "--spec", spec], check=True, capture_output=True, timeout=900)
            took, _ = site(os.path.join(work, "hosts.yml"))
            print(f"lab: 3 proxies + PostgreSQL converged in {took:.0f} s; {a.users} subscribers")
            require_answers({f"{name} ({what})": sip_probe(f"203.0.113.{n}") for name, (n, what) in PROXIES.items()})
            results = {}
            for name, (n, what) in PROXIES.items():
                scenario = "register_many.xml" if name == "proxy3" else "register_auth_many.xml"
                best, rows = ladder(n, os.path.join(sip.SIPP_DIR, scenario), a.rates, a.seconds, users)
                results[name] = (best, rows)
                print(f"REGISTER/s {what:12s}: best clean {best}/s  " + "  ".join(
                    f"[{r}/s ok {ok} failed {f} cpu {c:.0f}%]" for r, ok, f, c in rows))
            for name in ("proxy1", "proxy2"):
                share = ratio((f"{name} ({PROXIES[name][1]})", results[name][0]),
                              ("proxy3 (no auth)", results["proxy3"][0]))
                print(f"ratio {PROXIES[name][1]} / no auth: {share:.2f}")
            for name in ("proxy1", "proxy2"):
                n, what = PROXIES[name]
                best, rows = ladder(n, os.path.join(sip.SIPP_DIR, "invite_auth_many.xml"), a.rates, a.seconds, users)
                print(f"INVITE/s with auth, {what:12s}: best clean {best}/s  " + "  ".join(
                    f"[{r}/s ok {ok} failed {f} cpu {c:.0f}%]" for r, ok, f, c in rows))
        finally:
            subprocess.run(LABCTL + ["down"], capture_output=True, check=False)


if __name__ == "__main__":
    main()
