#!/usr/bin/env python3
"""A STUN server (RFC 5389 Binding only) for the lab's public side: answers each Binding request
with the address and port it came from (XOR-MAPPED-ADDRESS), so a host behind the lab's NAT can
learn its public address the way bare metal behind somebody else's NAT does.

    python3 lab/stun_server.py --bind 203.0.113.200 --port 3478
"""

import argparse
import signal
import socket
import struct
import sys

MAGIC = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101
XOR_MAPPED_ADDRESS = 0x0020


def binding_response(request, addr):
    """The success response to a Binding request from addr, or None for anything else."""
    if len(request) < 20:
        return None
    msg_type, _length, magic = struct.unpack("!HHI", request[:8])
    if msg_type != BINDING_REQUEST or magic != MAGIC:
        return None
    txid = request[8:20]
    ip = struct.unpack("!I", socket.inet_aton(addr[0]))[0]
    value = struct.pack("!BBHI", 0, 0x01, addr[1] ^ (MAGIC >> 16), ip ^ MAGIC)
    attr = struct.pack("!HH", XOR_MAPPED_ADDRESS, len(value)) + value
    return struct.pack("!HHI", BINDING_SUCCESS, len(attr), MAGIC) + txid + attr


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, default=3478)
    a = p.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.bind, a.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"stun: listening on {a.bind}:{a.port}", file=sys.stderr, flush=True)
    while True:
        data, addr = sock.recvfrom(2048)
        answer = binding_response(data, addr)
        if answer:
            sock.sendto(answer, addr)
            print(f"stun: {addr[0]}:{addr[1]} mapped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
