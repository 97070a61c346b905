#!/usr/bin/env python3
"""A bounded RTP endpoint for the lab's public side: sends N G.711 packets to a peer at a fixed
rate and counts the RTP packets it receives, then prints JSON. Stops by itself.

    ip netns exec itsp-pub python3 lab/rtp.py --bind 203.0.113.200:20000 --to 203.0.113.21:30012 \
        --count 100 --pps 50 --linger 1.5
"""

import argparse
import json
import os
import random
import select
import socket
import struct
import time

PCMU = 0


def rtp_packet(seq, ts, ssrc, payload=b"\xff" * 160):
    return struct.pack("!BBHII", 0x80, PCMU, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def run(bind, to, count, pps, linger, start_delay=0.0, max_seconds=30.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(bind)
    time.sleep(start_delay)  # so the peer is bound too before the first packet arrives
    ssrc = random.getrandbits(32)
    interval = 1.0 / pps
    sent = received = 0
    sources = set()
    start = time.monotonic()
    next_send = start
    end_send = None
    deadline = start + max_seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        if sent < count and now >= next_send and to:
            sock.sendto(rtp_packet(sent, sent * 160, ssrc), to)
            sent += 1
            next_send += interval
            if sent == count:
                end_send = now
        if sent >= count and end_send is not None and now - end_send > linger:
            break
        if not to and now - start > linger + count * interval:
            break
        wait = max(0.0, min(next_send - now, 0.05)) if sent < count else 0.05
        r, _, _ = select.select([sock], [], [], wait)
        if r:
            data, src = sock.recvfrom(2048)
            if len(data) >= 12 and data[0] >> 6 == 2:
                received += 1
                sources.add(f"{src[0]}:{src[1]}")
    return {"bind": f"{bind[0]}:{bind[1]}", "to": f"{to[0]}:{to[1]}" if to else None, "sent": sent,
            "received": received, "from": sorted(sources), "pid": os.getpid()}


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bind", type=addr, required=True)
    p.add_argument("--to", type=addr)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--pps", type=float, default=50.0)
    p.add_argument("--linger", type=float, default=1.5)
    p.add_argument("--start-delay", type=float, default=0.3)
    a = p.parse_args()
    if not 0 < a.count <= 100000 or not 0 < a.pps <= 10000 or not 0 <= a.start_delay <= 5:
        p.error("--count must be 1..100000, --pps 1..10000, --start-delay 0..5 (bounded load only)")
    print(json.dumps(run(a.bind, a.to, a.count, a.pps, a.linger, a.start_delay)))


if __name__ == "__main__":
    main()
