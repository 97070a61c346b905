"""Usage: sip_options.py ADDRESS PORT [TIMEOUT]: one SIP OPTIONS over UDP; exit 0 on 200, else 1.

The health check a load balancer or a carrier's dispatcher does, run on the node itself after a
restart. Standard library only; prints the status line it got.
"""
import secrets
import socket
import sys

address, port = sys.argv[1], int(sys.argv[2])
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(timeout)
sock.connect((address, port))
local, lport = sock.getsockname()
tag = secrets.token_hex(6)
sock.send((f"OPTIONS sip:{address}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local}:{lport};branch=z9hG4bK{tag};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:health@{local}>;tag={tag}\r\nTo: <sip:{address}:{port}>\r\n"
           f"Call-ID: {tag}@health\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode())
try:
    status = sock.recv(65535).decode(errors="replace").split("\r\n", 1)[0]
except OSError as exc:
    print(f"no answer from {address}:{port}: {exc}")
    sys.exit(1)
print(status)
sys.exit(0 if status.startswith("SIP/2.0 200") else 1)
