"""A minimal client for rtpengine's ng control protocol (bencode over UDP: cookie, space, dict).

Used by tests and benchmarks from the controller, which sits on the lab's private network."""

import os
import socket


def bencode(value):
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data, i=0):
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n], colon + 1 + n


def _text(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value


def request(address, command, timeout=2.0, **args):
    """One ng request; returns the decoded answer as str/int/list/dict."""
    cookie = os.urandom(6).hex().encode()
    msg = dict(args, command=command)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(cookie + b" " + bencode(msg), address)
        data, _ = sock.recvfrom(65535)
    got_cookie, _, body = data.partition(b" ")
    if got_cookie != cookie:
        raise ValueError("ng answer with a foreign cookie")
    return _text(bdecode(body)[0])


def call_ids(address):
    return request(address, "list", limit=1000).get("calls", [])


def packets_relayed(address, call_id):
    """Packets rtpengine received per stream of a call: {tag: [packets per media stream]}."""
    answer = request(address, "query", **{"call-id": call_id})
    totals = {}
    for tag, data in answer.get("tags", {}).items():
        totals[tag] = [sum(sum(s.get("stats", {}).get("packets", 0) for s in m.get("streams", []))
                           for m in data.get("medias", []))]
    return totals
