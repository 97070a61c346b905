"""A small SIP user agent for single requests with digest authentication, over UDP or TLS.

SIPp carries the calls and the load; this answers the questions a security test asks of one
request: which final response did it get, did a challenge come, does a TLS 1.0 client get in.
Run it inside the lab's public namespace (`ip netns exec itsp-pub python3 lab/sipclient.py ...`)
so it sends from the public side; it prints one JSON object:

    {"codes": [401, 200], "final": 200, "response": "SIP/2.0 200 OK\\r\\n...", "error": null}

Every request is bounded: `--timeout` per transaction, at most one retry with credentials.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import socket
import ssl
import sys
import time


def _token(n=10):
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def digest_response(method, uri, user, password, challenge, nc="00000001", cnonce=None):
    """The Authorization/Proxy-Authorization value answering a WWW/Proxy-Authenticate challenge."""
    fields = dict(re.findall(r'(\w+)="?([^",]+)"?', challenge))
    realm, nonce = fields["realm"], fields["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 (digest scheme)
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()  # noqa: S324
    qop = fields.get("qop", "").split(",")[0].strip()
    cnonce = cnonce or _token(12)
    if qop:
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()  # noqa: S324
        extra = f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()  # noqa: S324
        extra = ""
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5{extra}')


class Transport:
    def __init__(self, args):
        self.target = (args.target, args.port)
        self.transport = args.transport
        if args.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((args.source, 0))
            self.sock.connect(self.target)
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if args.cafile:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(args.cafile)
            version = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                       "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.tls_version] \
                if args.tls_version else None
            if version:
                # Old versions need the lowest security level OpenSSL allows to even offer them.
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = version
                ctx.maximum_version = version
            raw = socket.create_connection(self.target, timeout=args.timeout, source_address=(args.source, 0))
            self.sock = ctx.wrap_socket(raw)
            self.tls_version = self.sock.version()
            self.peer_certificate = self.sock.getpeercert(binary_form=True)
        self.sock.settimeout(args.timeout)
        self.local = self.sock.getsockname()
        self.buffer = b""

    def send(self, text):
        self.sock.send(text.encode())

    def receive(self):
        if self.transport == "udp":
            return self.sock.recv(65535).decode(errors="replace")
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65535)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buffer += chunk
        head, rest = self.buffer.split(b"\r\n\r\n", 1)
        length = int((re.search(rb"(?im)^(?:content-length|l):\s*(\d+)", head) or [0, b"0"])[1])
        while len(rest) < length:
            rest += self.sock.recv(65535)
        self.buffer = rest[length:]
        return (head + b"\r\n\r\n" + rest[:length]).decode(errors="replace")


def request(tr, args, cseq, auth_header=None, call_id=None, from_tag=None, branch=None):
    via_proto = "TLS" if tr.transport == "tls" else "UDP"
    host, port = tr.local
    ruri = args.ruri or f"sip:{args.domain}"
    lines = [f"{args.method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/{via_proto} {host}:{port};branch={branch or 'z9hG4bK' + _token()};rport",
             "Max-Forwards: 70",
             f"From: <sip:{args.user}@{args.domain}>;tag={from_tag}",
             f"To: <sip:{args.to or args.user}@{args.domain}>{args.to_tag and ';tag=' + args.to_tag or ''}",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {args.method}",
             f"Contact: <sip:{args.user}@{host}:{args.contact_port or port}"
             f"{';transport=tls' if tr.transport == 'tls' else ''}>",
             "User-Agent: itsp-lab-sipclient"]
    if args.route:
        lines.append(f"Route: <{args.route}>")
    if args.method == "REGISTER":
        lines.append(f"Expires: {args.expires}")
    if auth_header:
        lines.append(auth_header)
    body = ""
    if args.method == "INVITE":
        body = (f"v=0\r\no=lab 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
                f"m=audio {args.rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    tr.send("\r\n".join(lines) + "\r\n\r\n" + body)
    return ruri


def transaction(tr, args, cseq, call_id, from_tag, auth_header=None):
    """Send one request, collect responses until a final one (or the timeout)."""
    ruri = request(tr, args, cseq, auth_header, call_id, from_tag)
    codes, last = [], None
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            msg = tr.receive()
        except (socket.timeout, TimeoutError):
            break
        m = re.match(r"SIP/2\.0 (\d{3})", msg)
        if not m or f"CSeq: {cseq} {args.method}" not in msg:
            continue
        codes.append(int(m.group(1)))
        last = msg
        if int(m.group(1)) >= 200:
            break
    return ruri, codes, last


def ack_error(tr, args, call_id, from_tag, cseq, response):
    """ACK a final error to an INVITE (same branch would be ideal; Kamailio matches by Call-ID/CSeq)."""
    to = re.search(r"(?im)^(?:To|t):\s*(.+)$", response).group(1).strip()
    via = re.search(r"(?im)^(?:Via|v):\s*(.+)$", response).group(1).strip()
    tr.send(f"ACK {args.ruri or 'sip:' + args.domain} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{args.user}@{args.domain}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target")
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--transport", choices=["udp", "tls"], default="udp")
    p.add_argument("--tls-version", choices=["1.0", "1.1", "1.2", "1.3"])
    p.add_argument("--cafile")
    p.add_argument("--source", default="0.0.0.0")  # noqa: S104 (the lab namespace's own addresses)
    p.add_argument("--method", default="REGISTER", choices=["REGISTER", "INVITE", "OPTIONS", "MESSAGE"])
    p.add_argument("--domain", required=True)
    p.add_argument("--ruri")
    p.add_argument("--user", default="anonymous")
    p.add_argument("--to")
    p.add_argument("--to-tag", default="")
    p.add_argument("--route")
    p.add_argument("--auth-user")
    p.add_argument("--password", default=os.environ.get("SIPCLIENT_PASSWORD"))
    p.add_argument("--contact-port", type=int)
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--rtp-port", type=int, default=24000)
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args()

    out = {"codes": [], "final": None, "response": None, "error": None}
    try:
        tr = Transport(args)
        out["tls_version"] = getattr(tr, "tls_version", None)
        call_id, from_tag = _token(16) + "@lab", _token(8)
        ruri, codes, last = transaction(tr, args, 1, call_id, from_tag)
        out["codes"] += codes
        if codes and codes[-1] in (401, 407) and args.password is not None and last:
            if args.method == "INVITE":
                ack_error(tr, args, call_id, from_tag, 1, last)
            name = "WWW-Authenticate" if codes[-1] == 401 else "Proxy-Authenticate"
            challenge = re.search(rf"(?im)^{name}:\s*(.+)$", last).group(1)
            header = "Authorization" if codes[-1] == 401 else "Proxy-Authorization"
            value = digest_response(args.method, ruri, args.auth_user or args.user, args.password, challenge)
            ruri, codes, last = transaction(tr, args, 2, call_id, from_tag, f"{header}: {value}")
            out["codes"] += codes
            if args.method == "INVITE" and codes and codes[-1] >= 300 and last:
                ack_error(tr, args, call_id, from_tag, 2, last)
        out["final"] = out["codes"][-1] if out["codes"] and out["codes"][-1] >= 200 else None
        out["response"] = last
    except (OSError, ssl.SSLError, ValueError, AttributeError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
