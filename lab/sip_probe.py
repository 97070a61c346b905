#!/usr/bin/env python3
"""A bounded SIP OPTIONS prober for failover measurements, run on the public side:

    ip netns exec itsp-pub python3 lab/sip_probe.py TARGET [--port 5060] [--interval 0.05] [--seconds 60]

Sends one OPTIONS every INTERVAL s for at most SECONDS s (so at most SECONDS/INTERVAL requests),
each a new transaction, no retransmission; prints one line per answer: "SENT RECEIVED CODE" (Unix
times). A failover shows as the gap between two answers. Stops early on SIGINT/SIGTERM and
prints what it has.
"""

import argparse
import contextlib
import os
import select
import signal
import socket
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target")
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--source", default="203.0.113.200")
    p.add_argument("--local-port", type=int, default=5079)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args(argv)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.source, args.local_port))
    sent, answers = {}, []
    tag = os.urandom(4).hex()
    end = time.time() + args.seconds
    n, next_send = 0, time.time()
    while not stop and time.time() < end:
        now = time.time()
        if now >= next_send:
            n += 1
            call_id = f"{tag}-{n}"
            msg = (f"OPTIONS sip:{args.target}:{args.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {args.source}:{args.local_port};branch=z9hG4bK{call_id};rport\r\n"
                   f"Max-Forwards: 5\r\nFrom: <sip:probe@{args.source}>;tag={tag}\r\n"
                   f"To: <sip:{args.target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
                   f"Content-Length: 0\r\n\r\n")
            sent[call_id] = now
            with contextlib.suppress(OSError):  # no route while the address moves: a lost probe
                sock.sendto(msg.encode(), (args.target, args.port))
            next_send += args.interval
        ready, _, _ = select.select([sock], [], [], max(0.0, min(next_send - time.time(), 0.05)))
        if ready:
            data = sock.recv(65535).decode(errors="replace")
            code = data.split(" ", 2)[1] if data.startswith("SIP/2.0 ") else "?"
            for line in data.split("\r\n"):
                if line.lower().startswith("call-id:"):
                    call_id = line.split(":", 1)[1].strip()
                    if call_id in sent:
                        answers.append((sent.pop(call_id), time.time(), code))
    for s, r, code in answers:
        print(f"{s:.3f} {r:.3f} {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
