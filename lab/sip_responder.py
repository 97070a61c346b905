#!/usr/bin/env python3
"""A minimal SIP endpoint for tests of where traffic goes: it answers OPTIONS with 200 and names itself.

    sip_responder.py serve NAME ADDRESS PORT LIFETIME   answer on ADDRESS:PORT for LIFETIME s, then exit
    sip_responder.py ask TARGET PORT [SOURCE [SPORT]]   one OPTIONS (retried every 0.1 s for up to 2 s);
                                                        prints the NAME that answered, or nothing

Run each side in the namespace it belongs to (`ip netns exec itsph-HOST ...` for a host,
`ip netns exec itsp-pub ...` for the public side). Standard library only; bounded in time.
"""

import re
import socket
import sys
import time

HOST_HEADER = "X-Lab-Host"


def serve(name, address, port, lifetime):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    sock.settimeout(0.5)
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(4096)
        except socket.timeout:
            continue
        headers = [line for line in data.decode(errors="replace").split("\r\n")
                   if line.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
        sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(headers) + f"\r\n{HOST_HEADER}: {name}\r\n"
                     "Content-Length: 0\r\n\r\n").encode(), peer)


def options(target, port, source, sequence):
    return (f"OPTIONS sip:{target}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {source[0]}:{source[1]};"
            f"branch=z9hG4bK-{sequence}\r\nFrom: <sip:probe@{source[0]}>;tag=p\r\nTo: <sip:{target}>\r\n"
            f"Call-ID: probe-{sequence}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def answered_by(response):
    """(sequence, host name) of a response, or None."""
    text = response.decode(errors="replace")
    sequence = re.search(r"Call-ID: probe-(\d+)", text)
    host = re.search(rf"{HOST_HEADER}: (\S+)", text)
    return (int(sequence.group(1)), host.group(1)) if sequence and host else None


def ask(target, port, source="203.0.113.200", source_port=5092, deadline=2.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, source_port))
    sock.settimeout(0.1)
    started = time.monotonic()
    sequence = 0
    while time.monotonic() - started < deadline:
        sock.sendto(options(target, port, (source, source_port), sequence).encode(), (target, port))
        try:
            answer = answered_by(sock.recv(4096))
        except socket.timeout:
            answer = None
        if answer:
            return answer[1]
        sequence += 1
    return ""


def main(argv):
    if argv[:1] == ["serve"] and len(argv) == 5:
        serve(argv[1], argv[2], int(argv[3]), float(argv[4]))
        return 0
    if argv[:1] == ["ask"] and 3 <= len(argv) <= 5:
        source = argv[3] if len(argv) > 3 else "203.0.113.200"
        source_port = int(argv[4]) if len(argv) > 4 else 5092
        print(ask(argv[1], int(argv[2]), source, source_port))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
