#!/usr/bin/env python3
"""Elastic IP move on the lab: how long from the re-association to SIP reaching the new host.

    flock /run/itsp-lab.lock .venv/bin/python bench/bench_eip_move.py [--moves 6] [--mover]  # as root

Builds a two-host AWS lab (eipa, eipb; or reuses a lab that is up with --reuse), runs a tiny SIP
responder on each host's private address (it answers OPTIONS with 200 and says which host it is),
and from the public side sends one OPTIONS every 10 ms to eipa's Elastic IP, always from the same
source port (one UDP flow, as a phone or a carrier keeps). Then it moves the Elastic IP back and
forth: with the EC2 API called from the controller (boto3 AssociateAddress against moto), or with
--mover by running the EIP mover (/usr/local/sbin/itsp-eip-move) on the host that takes the address.
Per move it prints: the API call's duration, when the lab's NAT applied the new association (from
lab/eip_nat.py's log), when the first answer came from the new host, and how many probes in between
got no answer or an answer from the old host. Figures only; it asserts nothing but that answers came.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import LABCTL, ROOT, ssh

from lab import sip_responder

PORT = 5062
PROBE_SOURCE = ("203.0.113.200", 5091)
HOSTS = {"eipa": ("198.18.0.31", "203.0.113.31"), "eipb": ("198.18.0.32", "203.0.113.32")}


def prober(target, port, duration, interval):
    """Prints 'sent N T' and 'recv N T HOST' lines, one OPTIONS every interval s, for duration s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(PROBE_SOURCE)
    out = sys.stdout

    def receive():
        while True:
            answer = sip_responder.answered_by(sock.recv(4096))
            if answer:
                out.write(f"recv {answer[0]} {time.time():.4f} {answer[1]}\n")
                out.flush()

    threading.Thread(target=receive, daemon=True).start()
    for seq in range(int(duration / interval)):
        sock.sendto(sip_responder.options(target, port, PROBE_SOURCE, seq).encode(), (target, port))
        out.write(f"sent {seq} {time.time():.4f}\n")
        out.flush()
        time.sleep(interval)
    time.sleep(0.5)


def lab_status():
    return json.loads(subprocess.run(LABCTL + ["status"], capture_output=True, text=True, check=True).stdout)


def nat_applied_after(t0, public, private):
    """Wall-clock time of the first eip_nat 'applied' line after t0 that maps public to private."""
    with open("/run/itsp-lab/eip-nat.log") as fh:
        for line in fh:
            match = re.search(r"applied (.*) at ([\d.]+)$", line.strip())
            if match and float(match.group(2)) >= t0 and f"('{public}', '{private}')" in match.group(1):
                return float(match.group(2))
    return None


def install_mover(ec2, allocation):
    """The itsp.cluster.elastic_ip role on both hosts, pointed at the lab's EC2 API (moto)."""
    with tempfile.TemporaryDirectory(prefix="bench-eip-") as work:
        inventory = {"all": {"hosts": {n: {"ansible_host": priv} for n, (priv, _pub) in HOSTS.items()},
                             "vars": {"elastic_ip_allocation_id": allocation,
                                      "elastic_ip_region": ec2["regions"][0],
                                      "elastic_ip_endpoint_url": ec2["endpoint_url"],
                                      "elastic_ip_access_key_id": "testing",
                                      "elastic_ip_secret_access_key": "testing"}}}
        os.makedirs(os.path.join(work, "group_vars"))
        with open(os.path.join(work, "hosts.yml"), "w") as fh:
            json.dump(inventory, fh)
        with open(os.path.join(ROOT, "inventories", "lab", "group_vars", "all.yml")) as src, \
                open(os.path.join(work, "group_vars", "all.yml"), "w") as dst:
            dst.write(src.read())
        with open(os.path.join(work, "play.yml"), "w") as fh:
            fh.write("- name: The Elastic IP mover\n  hosts: all\n  gather_facts: false\n"
                     "  roles: [itsp.cluster.elastic_ip]\n")
        t0 = time.monotonic()
        result = subprocess.run(["ansible-playbook", "-i", os.path.join(work, "hosts.yml"),
                                 os.path.join(work, "play.yml")], cwd=ROOT, capture_output=True, text=True,
                                check=False, timeout=600)
        if result.returncode != 0:
            sys.exit(f"bench: the elastic_ip role failed:\n{result.stdout[-4000:]}")
        print(f"elastic_ip role on 2 hosts (python3-boto3 from the apt cache): {time.monotonic() - t0:.1f} s")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_prober":
        return prober(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    p = argparse.ArgumentParser()
    p.add_argument("--moves", type=int, default=6)
    p.add_argument("--settle", type=float, default=2.0, help="seconds between moves")
    p.add_argument("--mover", action="store_true", help="move with itsp-eip-move on the lab host")
    p.add_argument("--reuse", action="store_true", help="use the lab that is up (hosts eipa, eipb)")
    args = p.parse_args()
    built = False
    if not args.reuse:
        spec = {"hosts": [{"name": n, "private_ipv4": priv, "public_ipv4": pub, "cloud": "aws",
                           "groups": ["kamailio"]} for n, (priv, pub) in HOSTS.items()]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(spec, fh)
        t0 = time.monotonic()
        subprocess.run(LABCTL + ["up", "--spec", fh.name], check=True, capture_output=True)
        print(f"lab up (2 aws hosts, EC2 API, EIP NAT): {time.monotonic() - t0:.1f} s")
        built = True
    procs = []
    try:
        status = lab_status()
        ec2 = status["ec2"]
        instances = ec2["instances"]
        eip = HOSTS["eipa"][1]
        allocation = ec2["elastic_ips"][eip]["allocation_id"]
        lifetime = args.moves * (args.settle + 3) + 20
        for name, (priv, _pub) in HOSTS.items():
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", f"itsph-{name}", sys.executable, sip_responder.__file__, "serve", name,
                 priv, str(PORT), str(lifetime)]))
        time.sleep(0.5)
        probe = subprocess.Popen(["ip", "netns", "exec", "itsp-pub", sys.executable, __file__, "_prober", eip,
                                  str(PORT), str(lifetime - 5), "0.01"], stdout=subprocess.PIPE, text=True)
        procs.append(probe)
        sent, recv = {}, []

        def read():
            for line in probe.stdout:
                parts = line.split()
                if parts[0] == "sent":
                    sent[int(parts[1])] = float(parts[2])
                else:
                    recv.append((int(parts[1]), float(parts[2]), parts[3]))

        threading.Thread(target=read, daemon=True).start()
        time.sleep(args.settle)
        if not recv or recv[-1][2] != "eipa":
            sys.exit(f"bench: no answer from eipa through {eip} before any move ({len(recv)} answers)")
        if args.mover:
            install_mover(ec2, allocation)
        import boto3

        client = boto3.client("ec2", region_name=ec2["regions"][0], endpoint_url=ec2["endpoint_url"],
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        rows = []
        for move in range(args.moves):
            new = "eipb" if move % 2 == 0 else "eipa"
            old = "eipa" if new == "eipb" else "eipb"
            t0 = time.time()
            if args.mover:
                result = ssh(HOSTS[new][0], "/usr/local/sbin/itsp-eip-move", timeout=60)
                if result.returncode != 0:
                    sys.exit(f"bench: itsp-eip-move on {new} failed ({result.returncode}): {result.stderr}")
            else:
                client.associate_address(AllocationId=allocation, InstanceId=instances[new]["instance_id"],
                                         AllowReassociation=True)
            t_call = time.time()
            deadline = time.monotonic() + 10
            first_new = None
            while time.monotonic() < deadline and first_new is None:
                first_new = next((t for seq, t, host in list(recv) if host == new and sent.get(seq, 0) >= t0),
                                 None)
                time.sleep(0.01)
            if first_new is None:
                sys.exit(f"bench: move {move + 1}: no answer from {new} within 10 s of the association")
            window = [seq for seq, ts in sent.items() if t0 <= ts < first_new]
            answered = {seq: host for seq, _t, host in recv}
            rows.append({"move": f"{old}->{new}", "t0": t0, "new": new, "call": t_call - t0, "first": first_new - t0,
                         "unanswered": sum(1 for seq in window if seq not in answered),
                         "old_after": sum(1 for seq, _t, host in recv if host == old and sent.get(seq, 0) > t_call)})
            time.sleep(args.settle)
        for r in rows:  # eip_nat logs each change after applying it: read the log once all are done
            applied = nat_applied_after(r["t0"], eip, HOSTS[r["new"]][0])
            r["nat"] = (applied - r["t0"]) if applied else float("nan")
        how = "itsp-eip-move on the new host" if args.mover else "boto3 AssociateAddress from the controller"
        print(f"Elastic IP {eip} moved {args.moves} times with {how}; one OPTIONS/10 ms from one UDP flow")
        print(f"{'move':>11} {'call s':>7} {'NAT s':>7} {'1st answer s':>13} {'unanswered':>11} "
              f"{'old host after call':>20}")
        for r in rows:
            print(f"{r['move']:>11} {r['call']:7.3f} {r['nat']:7.3f} {r['first']:13.3f} {r['unanswered']:11d} "
                  f"{r['old_after']:20d}")
        firsts = [r["first"] for r in rows]
        print(f"association -> first answer from the new host: median {statistics.median(firsts):.3f} s, "
              f"max {max(firsts):.3f} s (eip_nat polls every 0.5 s)")
        print(f"probes sent {len(sent)}, answered {len(recv)}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
        if built:
            subprocess.run(LABCTL + ["down"], check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
