# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bare metal (and anything else without a metadata service): what the host itself holds.

LocalAddresses is also what every cloud provider's answer is checked against: an address bound
on the host means no NAT in front of it, a public address that is not bound means 1-to-1 NAT.
"""

import ipaddress
import json
import os
import socket
import struct
import time

from ansible_collections.itsp.cluster.plugins.module_utils.addresses import is_public_ipv4
from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import Detected, Nic, ProviderError

SOURCE = "local addresses (ip -j addr)"


class Link:
    """One interface; ``public_networks`` are the extra ranges counted as public (addresses.py)."""

    def __init__(self, name, mac, ipv4=None, ipv6=None, public_networks=()):
        self.name = name
        self.mac = mac
        self.ipv4 = list(ipv4 or [])
        self.ipv6 = list(ipv6 or [])
        self.public_networks = tuple(public_networks)

    @property
    def private_ipv4(self):
        """The link's own address: its first non-public IPv4, else its first IPv4."""
        for address in self.ipv4:
            if not is_public_ipv4(address, self.public_networks):
                return address
        return self.ipv4[0] if self.ipv4 else None

    @property
    def public_ipv4(self):
        for address in self.ipv4:
            if is_public_ipv4(address, self.public_networks):
                return address
        return None

    def describe(self):
        return f"{self.name} {', '.join(self.ipv4) or '(no IPv4)'}"


class LocalAddresses:
    """This host's interfaces and addresses, from iproute2's JSON output."""

    def __init__(self, links, default_dev=None):
        self.links = links
        self.default_dev = default_dev

    @classmethod
    def from_ip_json(cls, addr_json, route_json="[]", public_networks=()):
        """addr_json: `ip -j addr show`; route_json: `ip -j -4 route show default`."""
        links = []
        for entry in json.loads(addr_json or "[]"):
            # Old iproute2 prints {} for links filtered out; loopback holds nothing we want.
            if not entry.get("ifname") or "LOOPBACK" in entry.get("flags", []):
                continue
            ipv4, ipv6 = [], []
            for info in entry.get("addr_info", []):
                if info.get("scope") not in (None, "global"):
                    continue
                if info.get("family") == "inet":
                    ipv4.append(str(ipaddress.IPv4Address(info["local"])))
                elif info.get("family") == "inet6":
                    ipv6.append(str(ipaddress.IPv6Address(info["local"])))
            mac = (entry.get("address") or "").lower() or None
            links.append(Link(entry["ifname"], mac, ipv4, ipv6, public_networks))
        routes = [r for r in json.loads(route_json or "[]") if r.get("dst") == "default" and r.get("dev")]
        routes.sort(key=lambda route: route.get("metric", 0))
        return cls(links, routes[0]["dev"] if routes else None)

    @classmethod
    def collect(cls, run_command, ip_path, public_networks=()):
        """Runs iproute2 through run_command(args) -> (rc, out, err), e.g. AnsibleModule.run_command."""
        if not ip_path:
            raise ProviderError(
                "cannot list this host's addresses: the `ip` command is missing; install iproute2 "
                "(Debian/Ubuntu: apt-get install iproute2)"
            )
        outputs = []
        for args in ([ip_path, "-j", "addr", "show"], [ip_path, "-j", "-4", "route", "show", "default"]):
            rc, out, err = run_command(args)
            if rc != 0:
                raise ProviderError(
                    f"cannot list this host's addresses: `{' '.join(args)}` failed (rc={rc}): "
                    f"{(err or out).strip()}; iproute2 4.13 or later is needed for -j (JSON)"
                )
            outputs.append(out)
        try:
            return cls.from_ip_json(*outputs, public_networks=public_networks)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"cannot read the output of `{ip_path} -j addr show`: {exc}") from exc

    # -- questions the detection asks --------------------------------------------------------------
    def is_bound(self, address):
        return any(address in link.ipv4 or address in link.ipv6 for link in self.links)

    def link_for_mac(self, mac):
        for link in self.links:
            if mac and link.mac == mac:
                return link
        return None

    def link_for_address(self, address):
        for link in self.links:
            if address and (address in link.ipv4 or address in link.ipv6):
                return link
        return None

    def with_ipv4(self):
        return [link for link in self.links if link.ipv4]

    def describe(self):
        return "; ".join(link.describe() for link in self.with_ipv4()) or "no IPv4 address at all"

    def primary(self, preferred_ipv4=None):
        """The link whose address is this host's own: the one holding preferred_ipv4 if given and
        bound, else the default route's, else the only link with a global IPv4."""
        if preferred_ipv4:
            link = self.link_for_address(preferred_ipv4)
            if link:
                return link
        candidates = self.with_ipv4()
        for link in candidates:
            if link.name == self.default_dev:
                return link
        if len(candidates) == 1:
            return candidates[0]
        return None


class MetalProvider:
    name = "metal"
    source = SOURCE

    def __init__(self, local, preferred_ipv4=None):
        self.local = local
        self.preferred_ipv4 = preferred_ipv4

    def detect(self):
        primary = self.local.primary(self.preferred_ipv4)
        if primary is None:
            held = self.local.describe()
            raise ProviderError(
                "metal: cannot tell which address is this host's own: "
                + ("no default route and " if not self.local.default_dev else
                   f"the default route's interface {self.local.default_dev} has no IPv4 and ")
                + f"not exactly one interface with a global IPv4 ({held}); set private_ipv4"
            )
        others = [link for link in self.local.with_ipv4() if link is not primary]
        nics = [Nic(link.mac, link.private_ipv4, link.public_ipv4, link.ipv6, link.name)
                for link in [primary] + others]
        if nics[0].public_ipv4 is None:
            # A public address bound elsewhere on the host still reaches it without NAT.
            nics[0].public_ipv4 = next((nic.public_ipv4 for nic in nics[1:] if nic.public_ipv4), None)
        if self.preferred_ipv4 and self.local.is_bound(self.preferred_ipv4):
            nics[0].private_ipv4 = self.preferred_ipv4
        return Detected(provider=self.name, source=self.source, interfaces=nics)


# -- STUN (RFC 5389): "which address does the internet see me as?" -------------------------------------
STUN_MAGIC = 0x2112A442
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101
STUN_BINDING_ERROR = 0x0111
STUN_XOR_MAPPED_ADDRESS = 0x0020
STUN_MAPPED_ADDRESS = 0x0001  # RFC 3489 servers answer only this
STUN_ERROR_CODE = 0x0009
STUN_DEFAULT_PORT = 3478


def parse_stun_server(value):
    """HOST[:PORT] or [IPV6]:PORT -> (host, port). Raises ValueError with a message for the user."""
    text = str(value or "").strip()
    host, port = text, STUN_DEFAULT_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = 0
    if not host or any(c.isspace() for c in host) or not 0 < port < 65536:
        raise ValueError(
            f"stun_server must look like HOST or HOST:PORT (e.g. stun.example.net:3478), got {value!r}")
    return host, port


def stun_request(transaction):
    return struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC) + transaction


def stun_mapped_ipv4(packet, transaction):
    """The IPv4 address in a Binding success response, None when the packet is not the answer to
    this transaction. Raises ValueError for an error response or one without an IPv4 address."""
    if len(packet) < 20:
        return None
    kind, length, magic = struct.unpack("!HHI", packet[:8])
    if magic != STUN_MAGIC or packet[8:20] != transaction or len(packet) < 20 + length:
        return None
    attributes = {}
    offset = 20
    while offset + 4 <= 20 + length:
        attr, size = struct.unpack("!HH", packet[offset:offset + 4])
        attributes.setdefault(attr, packet[offset + 4:offset + 4 + size])
        offset += 4 + size + (-size % 4)
    if kind == STUN_BINDING_ERROR:
        error = attributes.get(STUN_ERROR_CODE, b"")
        code = error[2] * 100 + error[3] if len(error) >= 4 else 0
        reason = error[4:].decode("utf-8", "replace")
        raise ValueError(f"error response {code} {reason}".rstrip())
    if kind != STUN_BINDING_SUCCESS:
        return None
    xored = attributes.get(STUN_XOR_MAPPED_ADDRESS)
    if xored and len(xored) >= 8 and xored[1] == 0x01:
        value = struct.unpack("!I", xored[4:8])[0] ^ STUN_MAGIC
        return str(ipaddress.IPv4Address(value))
    plain = attributes.get(STUN_MAPPED_ADDRESS)
    if plain and len(plain) >= 8 and plain[1] == 0x01:
        return str(ipaddress.IPv4Address(plain[4:8]))
    raise ValueError("the response holds no IPv4 mapped address")


def stun_public_ipv4(server, timeout, tries=2):
    """Asks a STUN server over UDP which address this host's packets come from. One request,
    resent once (the RFC's retransmission, shortened: this is a one-off question)."""
    host, port = parse_stun_server(server)
    where = f"stun {host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0]
    except (OSError, IndexError) as exc:
        raise ProviderError(f"{where}: cannot resolve {host} ({exc}); public_ipv4 stays null") from exc
    transaction = os.urandom(12)
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            for _ in range(tries):
                sock.send(stun_request(transaction))
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    try:
                        packet = sock.recv(2048)
                    except socket.timeout:
                        break
                    try:
                        mapped = stun_mapped_ipv4(packet, transaction)
                    except ValueError as exc:
                        raise ProviderError(f"{where}: {exc}; public_ipv4 stays null") from exc
                    if mapped:
                        return mapped
        except OSError as exc:
            raise ProviderError(
                f"{where}: {(exc.strerror or str(exc)).lower()}; public_ipv4 stays null") from exc
    raise ProviderError(f"{where}: no answer within {tries} x {timeout:g} s; public_ipv4 stays null")
