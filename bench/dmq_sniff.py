#!/usr/bin/env python3
"""Count DMQ (KDMQ over UDP) packets and bytes seen by one lab host: run inside its namespace.

    ip netns exec itsph-proxy1 python3 bench/dmq_sniff.py --address 198.18.0.11 --seconds 20 --out f.json

An AF_PACKET socket (no tcpdump on this machine) sees every frame the host sends and receives.
Frames to or from UDP port --port are classed by the DMQ peer of their transaction (the user part
of the KDMQ Request-URI: usrloc, dialog, notification_peer; replies by their Call-ID), direction
(out = source is --address) and kind (request, reply). Bytes are counted as the model counts them:
the frame (Ethernet header, IPv4, UDP, SIP) plus 4 bytes of FCS. One sample of each class is kept.
Bounded by --seconds; stdlib only.
"""

import argparse
import json
import re
import socket
import struct
import time

ETH_P_ALL = 0x0003
FCS = 4


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=5062)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    own = socket.inet_aton(a.address)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.settimeout(0.2)
    peer_of_call, counts, samples = {}, {}, {}
    deadline = time.monotonic() + min(a.seconds, 600)
    while time.monotonic() < deadline:
        try:
            frame, meta = sock.recvfrom(65535)
        except socket.timeout:
            continue
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        src, dst = frame[26:30], frame[30:34]
        sport, dport = struct.unpack("!HH", frame[14 + ihl:18 + ihl])
        if a.port not in (sport, dport) or own not in (src, dst):
            continue
        if meta[0] == "lo":  # DMQ between hosts crosses the veth; never count a frame twice
            continue
        payload = bytes(frame[22 + ihl:]).decode("utf-8", "replace")
        callid = re.search(r"(?im)^(?:call-id|i)\s*:\s*(\S+)", payload)
        callid = callid.group(1) if callid else ""
        first = payload.split("\r\n", 1)[0]
        if first.startswith("KDMQ "):
            kind = "request"
            user = re.match(r"KDMQ sip:([^@;>]+)@", first)
            peer = user.group(1) if user else "?"
            peer_of_call[callid] = peer
        elif first.startswith("SIP/2.0"):
            kind = "reply"
            peer = peer_of_call.get(callid, "?")
        else:
            continue
        direction = "out" if src == own else "in"
        name = f"{peer} {kind} {direction}"
        c = counts.setdefault(name, {"packets": 0, "bytes": 0})
        c["packets"] += 1
        c["bytes"] += len(frame) + FCS
        samples.setdefault(f"{peer} {kind}", payload)
    with open(a.out, "w") as fh:
        json.dump({"counts": counts, "samples": samples}, fh)


if __name__ == "__main__":
    main()
