"""STUN (RFC 5389) for bare metal behind someone else's NAT: the packet codec, and a real UDP
exchange with a small responder on 127.0.0.1."""

import json
import socket
import struct
import threading

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_facts import CloudFacts, CloudFactsError
from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import ProviderError
from ansible_collections.itsp.cluster.plugins.module_utils.providers.metal import (
    STUN_MAGIC,
    LocalAddresses,
    parse_stun_server,
    stun_mapped_ipv4,
    stun_public_ipv4,
    stun_request,
)

TX = bytes(range(12))


def attribute(kind, value):
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def xor_mapped(address, port=40000):
    packed = struct.unpack("!I", socket.inet_aton(address))[0] ^ STUN_MAGIC
    return attribute(0x0020, struct.pack("!BBHI", 0, 1, port ^ (STUN_MAGIC >> 16), packed))


def mapped(address, port=40000):
    return attribute(0x0001, struct.pack("!BBH", 0, 1, port) + socket.inet_aton(address))


def message(kind, transaction, *attributes):
    body = b"".join(attributes)
    return struct.pack("!HHI", kind, len(body), STUN_MAGIC) + transaction + body


# -- codec ----------------------------------------------------------------------------------------

def test_request_is_a_binding_request_with_the_cookie():
    assert stun_request(TX) == bytes.fromhex("0001 0000 2112a442") + TX


def test_xor_mapped_address_wins_over_mapped_address():
    packet = message(0x0101, TX, attribute(0x8022, b"lab"), mapped("198.51.100.9"), xor_mapped("203.0.113.50"))
    assert stun_mapped_ipv4(packet, TX) == "203.0.113.50"


def test_mapped_address_from_an_old_server():
    assert stun_mapped_ipv4(message(0x0101, TX, mapped("198.51.100.9")), TX) == "198.51.100.9"


def test_other_transactions_and_junk_are_ignored():
    assert stun_mapped_ipv4(message(0x0101, bytes(12), xor_mapped("203.0.113.50")), TX) is None
    assert stun_mapped_ipv4(b"hello", TX) is None
    assert stun_mapped_ipv4(b"\0" * 40, TX) is None


def test_error_response():
    error = attribute(0x0009, struct.pack("!HBB", 0, 4, 20) + b"Unknown Attribute")
    with pytest.raises(ValueError) as failure:
        stun_mapped_ipv4(message(0x0111, TX, error), TX)
    assert str(failure.value) == "error response 420 Unknown Attribute"


def test_success_without_an_ipv4():
    with pytest.raises(ValueError) as failure:
        stun_mapped_ipv4(message(0x0101, TX, attribute(0x8022, b"lab")), TX)
    assert str(failure.value) == "the response holds no IPv4 mapped address"


@pytest.mark.parametrize("value, parsed", [
    ("stun.example.net", ("stun.example.net", 3478)),
    ("stun.example.net:19302", ("stun.example.net", 19302)),
    ("203.0.113.3", ("203.0.113.3", 3478)),
    ("[2001:db8::3]:3479", ("2001:db8::3", 3479)),
])
def test_parse_stun_server(value, parsed):
    assert parse_stun_server(value) == parsed


@pytest.mark.parametrize("value", ["", "stun.example.net:0", "stun.example.net:port", "a b:3478", "[::1]x"])
def test_parse_stun_server_refuses(value):
    with pytest.raises(ValueError) as failure:
        parse_stun_server(value)
    assert str(failure.value) == (
        f"stun_server must look like HOST or HOST:PORT (e.g. stun.example.net:3478), got {value!r}")


# -- over UDP on loopback ----------------------------------------------------------------------------

@pytest.fixture
def responder():
    """A STUN server on 127.0.0.1 answering with a fixed mapped address; behaviour by attribute:
    answer = "xor" | "silent" | "error"; the first `drop` requests are ignored (lost packets)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    state = {"answer": "xor", "drop": 0, "seen": 0}
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                packet, peer = sock.recvfrom(2048)
            except socket.timeout:
                continue
            state["seen"] += 1
            if state["seen"] <= state["drop"] or state["answer"] == "silent":
                continue
            transaction = packet[8:20]
            if state["answer"] == "error":
                error = attribute(0x0009, struct.pack("!HBB", 0, 5, 0) + b"Server Error")
                sock.sendto(message(0x0111, transaction, error), peer)
            else:
                sock.sendto(message(0x0101, bytes(12), xor_mapped("198.51.100.1")), peer)  # stray
                sock.sendto(message(0x0101, transaction, xor_mapped("203.0.113.50")), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    state["server"] = f"127.0.0.1:{sock.getsockname()[1]}"
    yield state
    stop.set()
    thread.join()
    sock.close()


def test_stun_over_udp(responder):
    assert stun_public_ipv4(responder["server"], 0.5) == "203.0.113.50"


def test_stun_resends_once_after_a_lost_packet(responder):
    responder["drop"] = 1
    assert stun_public_ipv4(responder["server"], 0.2) == "203.0.113.50"
    assert responder["seen"] == 2


def test_stun_silence(responder):
    responder["answer"] = "silent"
    with pytest.raises(ProviderError) as failure:
        stun_public_ipv4(responder["server"], 0.1)
    assert str(failure.value) == f"stun {responder['server']}: no answer within 2 x 0.1 s; public_ipv4 stays null"


def test_stun_error(responder):
    responder["answer"] = "error"
    with pytest.raises(ProviderError) as failure:
        stun_public_ipv4(responder["server"], 0.5)
    assert str(failure.value) == f"stun {responder['server']}: error response 500 Server Error; public_ipv4 stays null"


def test_stun_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(ProviderError) as failure:
        stun_public_ipv4(f"127.0.0.1:{port}", 0.5)
    assert str(failure.value) == f"stun 127.0.0.1:{port}: connection refused; public_ipv4 stays null"


# -- in the detection ---------------------------------------------------------------------------------

def metal_host():
    addr = json.dumps([{"ifname": "eth0", "flags": ["UP"], "address": "02:18:00:00:00:41",
                        "addr_info": [{"family": "inet", "local": "198.18.0.41", "scope": "global"}]}])
    return LocalAddresses.from_ip_json(addr, json.dumps([{"dst": "default", "dev": "eth0"}]))


def test_metal_public_address_from_stun(responder):
    facts = CloudFacts(local_addresses=metal_host, providers=["metal"], stun_server=responder["server"],
                       timeout=0.5).gather()
    assert (facts["public_ipv4"], facts["nat"], facts["warnings"]) == ("203.0.113.50", "one_to_one", [])
    assert facts["source"] == f"local addresses (ip -j addr) + stun {responder['server']}"


def test_metal_stun_failure_is_a_warning(responder):
    responder["answer"] = "silent"
    facts = CloudFacts(local_addresses=metal_host, providers=["metal"], stun_server=responder["server"],
                       timeout=0.1).gather()
    assert facts["public_ipv4"] is None
    assert facts["warnings"] == [
        f"stun {responder['server']}: no answer within 2 x 0.1 s; public_ipv4 stays null",
        "no public IPv4 on this host, so public_ipv4 is null; if the internet reaches it through NAT, set "
        "public_ipv4 (or stun_server)"]


def test_stun_is_not_asked_when_a_static_public_address_is_given():
    asked = []
    facts = CloudFacts(local_addresses=metal_host, providers=["metal"], stun_server="stun.example.net",
                       public_ipv4="203.0.113.41", stun=lambda *args: asked.append(args)).gather()
    assert (asked, facts["public_ipv4"]) == ([], "203.0.113.41")


def test_bad_stun_server_option():
    with pytest.raises(CloudFactsError) as failure:
        CloudFacts(local_addresses=metal_host, stun_server="stun.example.net:99999")
    assert str(failure.value) == (
        "stun_server must look like HOST or HOST:PORT (e.g. stun.example.net:3478), got "
        "'stun.example.net:99999'")
