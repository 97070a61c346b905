#!/usr/bin/env python3
"""Replication completeness after a peer stalls, and its repair: prints figures, asserts nothing.

    .venv/bin/python bench/bench_completeness.py [--rate 50] [--seconds 40] [--stall 38] [--preload 20000]

On loopback, no lab (no lab lock): the kamailio role renders its configuration (kamailio.cfg,
kamailio-local.cfg, dmq-peers.cfg, the address and dispatcher tables) for two proxies on
127.0.60.11 and 127.0.60.12 (SIP 25060, DMQ 25062); each Kamailio runs from that configuration as
the role's service would (same memory options), in the foreground, as root (--nodes 3: a third,
proxy3 on 127.0.60.13, that keeps running). Per mode:

  1. both answer OPTIONS and RPC, and each lists the other as an active DMQ node (else it fails);
  2. preload: SIPp registers --preload users at proxy1, replicated while proxy2 runs (the table the
     repair later copies: its size is what a sync costs);
  3. SIPp registers --rate REGISTER/s for --seconds at proxy1 while proxy2 is stopped (SIGSTOP on
     all its processes) for --stall s, longer than tm's fr_timer (30 s), then resumed (SIGCONT);
  4. every 2 s until --watch s after the load: contacts on each proxy; missing = acknowledged on
     proxy1 (it holds every registration it answered 200) but not on proxy2.

Modes: "repair off" (kamailio_dmq_repair_stall 0, the negative control: the gap must stay) and
"repair on" (the role's default; at the end proxy2 is stopped once more, --second-stall s, to see
kamailio_dmq_repair_interval refuse a second repair within 300 s). Printed: answered 200/failed,
the gap 17 s after the resume (before any repair), the gap at the end, when it reached 0 (seconds
after the resume), and the sync's cost read from the answering peers' counters (KDMQ messages they
sent, at most how long it took, so at least how many contacts/s). A negative control that ends
without a gap means the stall did not produce one: the run fails (it cannot tell).
Load is bounded: SIPp with -m, -timeout, -recv_timeout and an outer timeout -s INT.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, BenchFailure, sipp_counts

NODES = {"proxy1": "127.0.60.11", "proxy2": "127.0.60.12"}  # --nodes 3 adds proxy3 on 127.0.60.13
CLIENT = "127.0.60.1"
SIP_PORT, DMQ_PORT, CLIENT_PORT = 25060, 25062, 25070
REGISTER = os.path.join(ROOT, "lab", "sipp", "register_many.xml")
KAMAILIO = "/usr/sbin/kamailio"

# The role's files for each host of the inventory, as the kamailio -c integration test renders them.
PLAYBOOK = os.path.join(ROOT, "tests", "integration", "render_kamailio.yml")


def render(work, repair):
    """The role's files for both proxies under work/<name>/; returns {name: run.json}."""
    hosts = {}
    for rank, (name, address) in enumerate(NODES.items(), start=1):
        node = os.path.join(work, name)
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "itsp_cloud": {"provider": "metal", "private_ipv4": address, "public_ipv4": "", "nat": "none"},
                       "kamailio_server_id": rank, "kamailio_ctl_socket": os.path.join(node, "ctl"),
                       "kamailio_rpc_socket": os.path.join(node, "rpc"),
                       "kamailio_dispatcher_list_path": os.path.join(node, "dispatcher.list"),
                       # SIPp's REGISTER names the host without the port: ours too.
                       "kamailio_domains": [address]}
    with open(os.path.join(work, "hosts.yml"), "w") as fh:
        json.dump({"all": {"children": {"kamailio": {"hosts": hosts}}}}, fh)
    variables = {"root": ROOT, "out": work, "kamailio_sip_port": SIP_PORT, "kamailio_dmq_port": DMQ_PORT,
                 "kamailio_transports": ["udp"], "kamailio_metrics_enabled": False, "kamailio_cdr_target": "none",
                 "kamailio_auth_enabled": False, "kamailio_log_target": "stderr",
                 "kamailio_dmq_repair_stall": 20 if repair else 0,
                 # A role variable (vars/main.yml): only an extra variable overrides it.
                 "__kamailio_dbtext_dir": "{{ out }}/{{ inventory_hostname }}/dbtext"}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    res = subprocess.run(["ansible-playbook", "-i", os.path.join(work, "hosts.yml"), PLAYBOOK,
                          "-e", json.dumps(variables)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    if res.returncode != 0:
        raise BenchFailure(f"rendering the role's configuration failed:\n{res.stdout[-3000:]}{res.stderr[-2000:]}")
    runs = {}
    for name in NODES:
        node = os.path.join(work, name)
        with open(os.path.join(ROOT, "roles", "kamailio", "files", "kamailio.cfg")) as src, \
                open(os.path.join(node, "kamailio.cfg"), "w") as dst:
            dst.write(src.read())
        with open(os.path.join(node, "run.json")) as fh:
            runs[name] = json.load(fh)
        if ("DMQ_REPAIR" in runs[name]["features"]) != repair or "DMQ" not in runs[name]["features"]:
            raise BenchFailure(f"{name}'s rendered features {runs[name]['features']} do not match the mode")
    return runs


class Proxy:
    """One Kamailio from the rendered files, in the foreground (-DD), its log in log.txt."""

    def __init__(self, work, name, run):
        self.name, self.address, self.dir = name, NODES[name], os.path.join(work, name)
        cmd = [KAMAILIO, "-DD", "-E", "-f", os.path.join(self.dir, "kamailio.cfg"), "-m", str(run["shm"]),
               "-M", str(run["pkg"]), "-x", run["allocator"], "-X", run["allocator"]]
        check = subprocess.run(cmd[:1] + ["-c"] + cmd[3:], cwd=self.dir, capture_output=True, text=True,
                               timeout=60, check=False)
        if check.returncode != 0:
            raise BenchFailure(f"kamailio -c refused {name}'s configuration:\n{check.stderr[-2000:]}")
        self.log = open(os.path.join(self.dir, "log.txt"), "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def rpc(self, command, timeout=10):
        res = subprocess.run(["kamcmd", "-s", f"unix:{os.path.join(self.dir, 'ctl')}", *command.split()],
                             capture_output=True, text=True, timeout=timeout, check=False)
        return res.stdout

    def stat(self, name):
        """One of Kamailio's counters (e.g. location_contacts), -1 when the RPC gives none."""
        for line in self.rpc(f"stats.get_statistics {name}").splitlines():
            if "=" in line:
                return int(line.split("=", 1)[1].strip())
        return -1

    def pids(self):
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True,
                                  check=False).stdout.split()
        return [self.proc.pid] + [int(p) for p in children]

    def signal(self, sig):
        for pid in self.pids():
            os.kill(pid, sig)

    def options_ok(self):
        """One OPTIONS to the proxy's SIP port: 200 back within 2 s."""
        msg = (f"OPTIONS sip:{self.address}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {CLIENT}:{CLIENT_PORT + 1};"
               f"branch=z9hG4bK-probe{time.monotonic_ns()}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{CLIENT}>;tag=p\r\n"
               f"To: <sip:{self.address}>\r\nCall-ID: probe-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\n"
               f"Content-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((CLIENT, CLIENT_PORT + 1))
            sock.settimeout(2.0)
            sock.sendto(msg.encode(), (self.address, SIP_PORT))
            try:
                return sock.recv(4096).split(b"\r\n", 1)[0].split(b" ")[1] == b"200"
            except (OSError, IndexError):
                return False

    def dmq_active_peers(self):
        out = self.rpc("dmq.list_nodes")
        hosts = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("host:")]
        states = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("status:")]
        return {h for h, s in zip(hosts, states) if h != self.address and s in ("active", "1")}

    def log_lines(self, text):
        self.log.flush()
        with open(os.path.join(self.dir, "log.txt"), errors="replace") as fh:
            return [line.rstrip() for line in fh if text in line]

    def stop(self):
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                for pid in self.pids():
                    os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.log.close()


def require_ready(proxies):
    """Every proxy answers OPTIONS and RPC and lists the others as active DMQ nodes; else the run fails."""
    deadline = time.monotonic() + 40
    while True:
        problems = []
        for p in proxies.values():
            if p.proc.poll() is not None:
                raise BenchFailure(f"{p.name}'s Kamailio exited ({p.proc.returncode}):\n"
                                   + "\n".join(p.log_lines("")[-15:]))
            if not p.options_ok():
                problems.append(f"{p.name} does not answer OPTIONS")
            elif p.stat("location_contacts") < 0:
                problems.append(f"{p.name} does not answer RPC")
            elif p.dmq_active_peers() != {q.address for q in proxies.values() if q is not p}:
                problems.append(f"{p.name}'s active DMQ peers are {sorted(p.dmq_active_peers())}")
        if not problems:
            print(f"answering: {len(proxies)} proxies answer OPTIONS and RPC, each lists the others as active DMQ",
                  flush=True)
            return
        if time.monotonic() > deadline:
            raise BenchFailure("; ".join(problems) + ". Nothing was measured.")
        time.sleep(1)


def sipp(target, users, rate, count, seconds, background=False):
    cmd = ["timeout", "-s", "INT", str(seconds + 20), "sipp", f"{target}:{SIP_PORT}", "-sf", REGISTER, "-i", CLIENT,
           "-p", str(CLIENT_PORT), "-r", str(rate), "-m", str(count), "-l", str(max(rate * 2, 100)),
           "-inf", users, "-nd", "-buff_size", "4194304", "-recv_timeout", "4000",
           "-timeout", f"{seconds + 15}s", "-timeout_error"]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 40, check=False)


def users_file(work, prefix, count):
    path = os.path.join(work, f"users-{prefix}.csv")
    with open(path, "w") as fh:
        fh.write("SEQUENTIAL\n" + "".join(f"{prefix}{i:07d};\n" for i in range(count)))
    return path


def run_mode(work, label, repair, a):
    mode_dir = os.path.join(work, "on" if repair else "off")
    os.makedirs(mode_dir)
    runs = render(mode_dir, repair)
    proxies = {}
    try:
        for name in NODES:
            proxies[name] = Proxy(mode_dir, name, runs[name])
        time.sleep(2)
        require_ready(proxies)
        p1, p2 = proxies["proxy1"], proxies["proxy2"]
        others = [p for name, p in proxies.items() if name not in ("proxy1", "proxy2")]
        answering = [p1, *others]  # the peers that answer proxy2's sync
        preload_ok = 0
        if a.preload:
            res = sipp(p1.address, users_file(mode_dir, "p", a.preload), a.preload_rate, a.preload,
                       a.preload // a.preload_rate + 5)
            preload_ok, failed = sipp_counts(res.stdout)
            deadline = time.monotonic() + 60
            while min(q.stat("location_contacts") for q in [p2, *others]) < p1.stat("location_contacts") \
                    and time.monotonic() < deadline:
                time.sleep(1)
            print(f"  {label}: preload {preload_ok} ok {failed} failed; proxy1 {p1.stat('location_contacts')} "
                  f"proxy2 {p2.stat('location_contacts')} contacts", flush=True)
        sent0 = sum(q.stat("UAC_transactions") for q in answering)
        load = sipp(p1.address, users_file(mode_dir, "s", a.rate * a.seconds), a.rate, a.rate * a.seconds,
                    a.seconds, background=True)
        time.sleep(1)
        p2.signal(signal.SIGSTOP)
        time.sleep(a.stall)
        p2.signal(signal.SIGCONT)
        resumed = time.monotonic()
        out, _ = load.communicate(timeout=a.seconds + 60)
        ok, failed = sipp_counts(out)
        if ok == 0:
            raise BenchFailure(f"{label}: proxy1 answered no REGISTER with 200 during the stall")
        series, repaired_at, sent, others_gap = [], None, [], 0
        end = time.monotonic() + a.watch
        while time.monotonic() < end:
            held, copied = p1.stat("location_contacts"), p2.stat("location_contacts")
            t = time.monotonic() - resumed
            series.append((t, held - copied))
            sent.append((t, sum(q.stat("UAC_transactions") for q in answering)))
            others_gap = max([held - q.stat("location_contacts") for q in others], default=0)
            if held - copied == 0 and repaired_at is None:
                repaired_at = t
            elif held - copied != 0:
                repaired_at = None
            time.sleep(0.2)
        # Before any repair (it is asked 20 s after the resume), once retransmissions have landed.
        after_load = min(series, key=lambda s: abs(s[0] - 17))[1]
        # The sync's cost: KDMQ messages the answering peers sent after the load (pings aside, the
        # sync's batches).
        # From the last sample before the first burst to the last sample of one: at most that long
        # (a burst: more KDMQs between two samples than the peers' pings, a few every 15 s).
        steps = [i for i in range(1, len(sent)) if sent[i][1] - sent[i - 1][1] > 5]
        sync = (sent[steps[0] - 1][0], sent[steps[-1]][0], sent[-1][1] - sent[0][1]) if steps else None
        if repair and a.second_stall:
            # A second stall within kamailio_dmq_repair_interval (300 s): noticed, not repaired again.
            p2.signal(signal.SIGSTOP)
            time.sleep(a.second_stall)
            p2.signal(signal.SIGCONT)
            time.sleep(23)
        asked = p2.log_lines("dmq repair: asking")
        refused = p2.log_lines("not asking again")
        frozen = p2.log_lines("was frozen for")
        return {"label": label, "ok": ok, "failed": failed, "preload": preload_ok,
                "held": p1.stat("location_contacts"), "copied": p2.stat("location_contacts"),
                "after_load": after_load, "end": series[-1][1], "repaired_at": repaired_at, "series": series,
                "sync": sync, "asked": len(asked), "frozen": frozen[0].split("frozen for ")[-1] if frozen else "",
                "kdmq_during_load": sent[0][1] - sent0, "others_gap": others_gap,
                "refused": len(refused), "frozen_count": len(frozen)}
    finally:
        for p in proxies.values():
            p.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=50, help="REGISTER/s at proxy1 during the stall")
    p.add_argument("--seconds", type=int, default=40, help="seconds of that load")
    p.add_argument("--stall", type=int, default=38, help="seconds proxy2 is stopped (SIGSTOP), > fr_timer 30 s")
    p.add_argument("--preload", type=int, default=20000, help="registrations before the stall (the sync's size)")
    p.add_argument("--preload-rate", type=int, default=1000)
    p.add_argument("--watch", type=int, default=80, help="seconds the gap is followed after the load")
    p.add_argument("--only", choices=["off", "on"], help="one mode only")
    p.add_argument("--second-stall", type=int, default=22,
                   help="with the repair on, stop proxy2 again this long (> 20 s) to see the interval bound it; 0 = no")
    p.add_argument("--nodes", type=int, choices=[2, 3], default=2,
                   help="proxies (with 3, proxy3 keeps running and answers proxy2's sync too)")
    a = p.parse_args()
    if not (1 <= a.rate <= 500 and 5 <= a.seconds <= 120 and 31 <= a.stall < a.seconds
            and 0 <= a.preload <= 200000 and 100 <= a.preload_rate <= 5000 and 30 <= a.watch <= 300
            and (a.second_stall == 0 or 21 <= a.second_stall <= 60)):
        p.error("rate 1..500/s for 5..120 s, a stall of 31 s .. the load's length, preload up to 200000 "
                "at 100..5000/s, watch 30..300 s, a second stall of 0 or 21..60 s (bounded load)")
    NODES.clear()
    NODES.update({f"proxy{i}": f"127.0.60.{10 + i}" for i in range(1, a.nodes + 1)})
    modes = [("repair off (negative control)", False), ("repair on", True)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-completeness-") as work:
        for label, repair in modes:
            if a.only and a.only != ("on" if repair else "off"):
                continue
            r = run_mode(work, label, repair, a)
            results.append(r)
            print(f"  {label}: gap over time (s after the resume: missing) "
                  + " ".join(f"{t:.0f}:{m}" for t, m in r["series"][::25]), flush=True)
    print(f"\n{a.nodes} proxies; proxy2 stopped {a.stall} s while proxy1 took {a.rate} REGISTER/s for {a.seconds} s "
          f"(after a preload of {a.preload}); loopback, role-rendered configuration")
    print(f"{'mode':30} {'200':>5} {'fail':>5} {'proxy1':>7} {'proxy2':>7} {'gap at 17 s':>14} {'gap at end':>10} "
          f"{'repaired':>9} {'sync':>28}")
    for r in results:
        repaired = f"{r['repaired_at']:.0f} s" if r["repaired_at"] is not None else "no"
        if r["sync"]:
            first, last, messages = r["sync"]
            sync = f"{messages} KDMQ in <= {last - first:.1f} s, >= {r['held'] / (last - first):.0f} c/s"
        else:
            sync = "none"
        print(f"{r['label']:30} {r['ok']:>5} {r['failed']:>5} {r['held']:>7} {r['copied']:>7} {r['after_load']:>14} "
              f"{r['end']:>10} {repaired:>9} {sync:>28}")
        print(f"{'':30} proxy2 saw itself frozen: {r['frozen'] or 'not logged'}; repairs asked: {r['asked']}"
              + (f"; proxy3 lacks {r['others_gap']} at the end" if a.nodes > 2 else ""))
        if r["label"] == "repair on" and a.second_stall:
            print(f"{'':30} a second stall of {a.second_stall} s within the interval: stalls seen "
                  f"{r['frozen_count']}, repairs asked {r['asked']}, refused by the interval {r['refused']}")
    control = next((r for r in results if not r["label"].startswith("repair on")), None)
    if control and control["end"] <= 0:
        raise BenchFailure("the negative control (repair off) ended without a gap: the stall did not lose "
                           "registrations, so this run cannot show a repair")


if __name__ == "__main__":
    main()
