#!/usr/bin/env python3
"""Cloud metadata stand-in for the lab: AWS IMDSv2, GCE and Azure IMDS dialects on one socket.

The lab runs it inside a network namespace bound to 169.254.169.254:80. It tells callers apart by
their TCP source address and answers with that host's record from the config, in that host's own
cloud dialect only; every other path (and every path for a `metal` host) is a 404, as on a real
cloud. Standard library only (python3 >= 3.9), so it runs on any lab machine without a venv.

    python3 lab/metadata_server.py --config FILE --bind ADDR --port N [--pidfile F]

Config (a contract with the lab; unknown keys are refused so a typo cannot pass silently):

    {"hosts": {"198.18.0.11": {"cloud": "aws", "name": "proxy1", "instance_id": "i-0a11...",
      "instance_type": "c6i.large", "region": "eu-west-1", "zone": "eu-west-1a",
      "mac": "02:18:00:00:00:11", "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11",
      "ipv6": [], "hop_limit": 2, "fault": null}}}

Optional per host: "azure_public_via": "loadbalancer" (Standard SKU: the instance document has an
empty publicIpAddress and /metadata/loadbalancer carries the address).

Faults ("fault" per host; they apply to that host's own dialect only):
    "timeout"  accept, say nothing for --fault-delay seconds (longer than any client timeout), close
    "401" / "403"  that status on every request
    "garbage"  200 with a body that is neither JSON nor an address
    "429"      throttled, with Retry-After

SIGTERM/SIGINT stop it cleanly (the pidfile is removed); SIGHUP re-reads the config. One line per
request goes to stderr. With --port 0 the kernel picks the port; the "listening on" line says which.
"""

import argparse
import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CLOUDS = ("aws", "gce", "azure", "metal")
FAULTS = (None, "timeout", "401", "403", "garbage", "429")
REQUIRED_KEYS = (
    "cloud", "name", "instance_id", "instance_type", "region", "zone", "mac",
    "private_ipv4", "public_ipv4", "ipv6", "hop_limit", "fault",
)
OPTIONAL_KEYS = ("azure_public_via",)
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
GARBAGE = b"<html><body>\xff\xfe captive portal {not metadata</body></html>\n"
AWS_MAX_TTL = 21600
# Fixed, made-up project number: GCE zone and machine-type values are project-qualified paths.
GCE_PROJECT_NUMBER = "123456789012"
AZURE_API_VERSIONS = ("2017-08-01", "2019-06-01", "2020-10-01", "2021-02-01", "2021-12-13", "2023-07-01")


class ConfigError(Exception):
    pass


def load_config(path):
    """Reads and checks the config; returns {source address: host record}."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise ConfigError(f'{path}: expected an object with a "hosts" object')
    hosts = {}
    for address, record in data["hosts"].items():
        where = f"{path}: hosts[{address!r}]"
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise ConfigError(f"{where}: key is not an IP address") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: expected an object")
        missing = [key for key in REQUIRED_KEYS if key not in record]
        unknown = sorted(set(record) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if missing:
            raise ConfigError(f"{where}: missing keys: {', '.join(missing)}")
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys: {', '.join(unknown)} "
                f"(allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})"
            )
        if record["cloud"] not in CLOUDS:
            raise ConfigError(f"{where}: cloud must be one of {', '.join(CLOUDS)}")
        if record["fault"] not in FAULTS:
            raise ConfigError(f"{where}: fault must be null or one of {', '.join(FAULTS[1:])}")
        if not isinstance(record["mac"], str) or not MAC_RE.match(record["mac"]):
            raise ConfigError(f"{where}: mac must look like 02:18:00:00:00:11 (lower case)")
        for key in ("private_ipv4", "public_ipv4"):
            value = record[key]
            if value is None and key == "public_ipv4":
                continue
            try:
                ipaddress.IPv4Address(value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where}: {key} is not an IPv4 address: {value!r}") from exc
        if not isinstance(record["ipv6"], list):
            raise ConfigError(f"{where}: ipv6 must be a list")
        for value in record["ipv6"]:
            try:
                ipaddress.IPv6Address(value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where}: ipv6 entry is not an IPv6 address: {value!r}") from exc
        hop_limit = record["hop_limit"]
        if hop_limit is not None and (not isinstance(hop_limit, int) or not 1 <= hop_limit <= 64):
            raise ConfigError(f"{where}: hop_limit must be null or an integer 1..64")
        if record.get("azure_public_via", "instance") not in ("instance", "loadbalancer"):
            raise ConfigError(f"{where}: azure_public_via must be instance or loadbalancer")
        hosts[str(ipaddress.ip_address(address))] = record
    return hosts


# ---------------------------------------------------------------------------------------------
# Documents per dialect. Each builder returns (status, content type, body, extra headers) or None
# for "no such path" (404).

def _text(body):
    return 200, "text/plain", body.encode(), {}


def _listing(entries):
    return _text("\n".join(entries))


def _eni(record):
    return "eni-" + record["mac"].replace(":", "")[-12:].rjust(17, "0")


def aws_document(record, path):
    mac = record["mac"]
    base = "/latest/meta-data/"
    if path in ("/latest/meta-data", base):
        entries = ["instance-id", "instance-type", "local-ipv4", "mac", "network/", "placement/"]
        if record["public_ipv4"]:
            entries.append("public-ipv4")
        return _listing(sorted(entries))
    if not path.startswith(base):
        return None
    key = path[len(base):]
    simple = {
        "instance-id": record["instance_id"],
        "instance-type": record["instance_type"],
        "local-ipv4": record["private_ipv4"],
        "public-ipv4": record["public_ipv4"],
        "mac": mac,
        "placement/availability-zone": record["zone"],
        "placement/region": record["region"],
    }
    if key in simple:
        return _text(simple[key]) if simple[key] else None
    if key.rstrip("/") == "placement":
        return _listing(["availability-zone", "region"])
    if key.rstrip("/") == "network":
        return _listing(["interfaces/"])
    if key.rstrip("/") == "network/interfaces":
        return _listing(["macs/"])
    if key.rstrip("/") == "network/interfaces/macs":
        return _listing([mac + "/"])
    prefix = f"network/interfaces/macs/{mac}"
    if key.rstrip("/") == prefix:
        entries = ["device-number", "interface-id", "local-ipv4s", "mac"]
        if record["public_ipv4"]:
            entries.append("public-ipv4s")
        if record["ipv6"]:
            entries.append("ipv6s")
        return _listing(sorted(entries))
    per_mac = {
        "device-number": "0",
        "interface-id": _eni(record),
        "local-ipv4s": record["private_ipv4"],
        "public-ipv4s": record["public_ipv4"],
        "ipv6s": "\n".join(record["ipv6"]),
        "mac": mac,
    }
    if key.startswith(prefix + "/"):
        value = per_mac.get(key[len(prefix) + 1:])
        return _text(value) if value else None
    return None


def _gce_zone(record):
    return f"projects/{GCE_PROJECT_NUMBER}/zones/{record['zone']}"


def _gce_interfaces(record):
    access = []
    if record["public_ipv4"]:
        access.append({"externalIp": record["public_ipv4"], "type": "ONE_TO_ONE_NAT"})
    interface = {
        "accessConfigs": access,
        "dnsServers": ["169.254.169.254"],
        "forwardedIps": [],
        "gateway": str(ipaddress.IPv4Network(record["private_ipv4"] + "/24", strict=False)[1]),
        "ip": record["private_ipv4"],
        "ipAliases": [],
        "mac": record["mac"],
        "mtu": 1460,
        "network": f"projects/{GCE_PROJECT_NUMBER}/networks/default",
        "subnetmask": "255.255.255.0",
        "targetInstanceIps": [],
    }
    if record["ipv6"]:
        interface["ipv6s"] = list(record["ipv6"])
    return [interface]


def _json(value):
    return 200, "application/json", json.dumps(value).encode(), {}


def gce_document(record, path, query):
    base = "/computeMetadata/v1/instance/"
    if not path.startswith(base):
        return None
    key = path[len(base):]
    recursive = query.get("recursive", ["false"])[0].lower() == "true"
    interfaces = _gce_interfaces(record)
    simple = {
        "id": record["instance_id"],
        "name": record["name"],
        "hostname": f"{record['name']}.{record['zone']}.c.itsp-lab.internal",
        "zone": _gce_zone(record),
        "machine-type": f"projects/{GCE_PROJECT_NUMBER}/machineTypes/{record['instance_type']}",
    }
    if key in simple:
        return _text(simple[key])
    if key.rstrip("/") == "network-interfaces":
        return _json(interfaces) if recursive else _listing(["0/"])
    match = re.match(r"^network-interfaces/0/?(.*)$", key)
    if not match:
        return None
    sub = match.group(1)
    nic = interfaces[0]
    if sub == "":
        return _json(nic) if recursive else _listing(sorted(k + ("/" if isinstance(v, list) else "")
                                                            for k, v in nic.items()))
    if sub in ("ip", "mac", "network", "gateway", "subnetmask"):
        return _text(str(nic[sub]))
    if sub == "mtu":
        return _text(str(nic["mtu"]))
    if sub.rstrip("/") == "access-configs":
        if recursive:
            return _json(nic["accessConfigs"])
        return _listing([f"{i}/" for i in range(len(nic["accessConfigs"]))])
    match = re.match(r"^access-configs/(\d+)/(external-ip|type)$", sub)
    if match and int(match.group(1)) < len(nic["accessConfigs"]):
        config = nic["accessConfigs"][int(match.group(1))]
        return _text(config["externalIp"] if match.group(2) == "external-ip" else config["type"])
    if sub.rstrip("/") == "ipv6s" and record["ipv6"]:
        return _listing(record["ipv6"])
    return None


def _azure_mac(mac):
    return mac.replace(":", "").upper()


def azure_document(record, path):
    via_lb = record.get("azure_public_via") == "loadbalancer"
    if path == "/metadata/instance":
        return _json({
            "compute": {
                "location": record["region"],
                "name": record["name"],
                "vmId": record["instance_id"],
                "vmSize": record["instance_type"],
                "zone": record["zone"] or "",
                "osType": "Linux",
            },
            "network": {"interface": [{
                "ipv4": {
                    "ipAddress": [{
                        "privateIpAddress": record["private_ipv4"],
                        "publicIpAddress": "" if via_lb else (record["public_ipv4"] or ""),
                    }],
                    "subnet": [{"address": str(ipaddress.IPv4Network(
                        record["private_ipv4"] + "/24", strict=False).network_address), "prefix": "24"}],
                },
                "ipv6": {"ipAddress": [{"privateIpAddress": a} for a in record["ipv6"]]},
                "macAddress": _azure_mac(record["mac"]),
            }]},
        })
    if path == "/metadata/loadbalancer":
        public = []
        if via_lb and record["public_ipv4"]:
            public.append({"frontendIpAddress": record["public_ipv4"],
                           "privateIpAddress": record["private_ipv4"]})
        return _json({"loadbalancer": {"publicIpAddresses": public, "inboundRules": [],
                                       "outboundRules": []}})
    return None


# ---------------------------------------------------------------------------------------------

def dialect_of(method, path):
    if path.startswith("/latest/"):
        return "aws"
    if path.startswith("/computeMetadata/"):
        return "gce"
    if path.startswith("/metadata/"):
        return "azure"
    return None


class MetadataServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, config_path, fault_delay, retry_after):
        self.config_path = config_path
        self.hosts = load_config(config_path)
        self.fault_delay = fault_delay
        self.retry_after = retry_after
        self.tokens = {}
        self.tokens_lock = threading.Lock()
        self.stopping = threading.Event()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, MetadataHandler)

    def handle_error(self, request, client_address):
        # One line instead of socketserver's traceback (a client hanging up mid-reply is routine).
        log(f"{client_address[0]} error: {sys.exc_info()[1]!r}")

    def reload(self):
        try:
            self.hosts = load_config(self.config_path)
            log(f"reloaded {self.config_path}: {len(self.hosts)} hosts")
        except ConfigError as exc:
            log(f"reload failed, keeping the old config: {exc}")

    def new_token(self, client, ttl):
        token = secrets.token_urlsafe(42)
        with self.tokens_lock:
            now = time.monotonic()
            for stale in [t for t, (expiry, _) in self.tokens.items() if expiry <= now]:
                del self.tokens[stale]
            self.tokens[token] = (now + ttl, client)
        return token

    def token_valid(self, token, client):
        with self.tokens_lock:
            entry = self.tokens.get(token)
        return entry is not None and entry[1] == client and entry[0] > time.monotonic()


def log(line):
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} metadata_server: {line}\n")
    sys.stderr.flush()


class MetadataHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "itsp-lab-metadata/1"

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        # Only http.server's own errors (malformed requests) arrive here: send_response() below
        # skips log_request() and _finish() writes the one line per request.
        log(f"{self.client_address[0]} " + format % args)

    def do_GET(self):
        self._handle("GET")

    def do_PUT(self):
        self._handle("PUT")

    def do_POST(self):
        self._handle("POST")

    def do_HEAD(self):
        self._handle("HEAD")

    # -----------------------------------------------------------------------------------------
    def _handle(self, method):
        self._started = time.monotonic()
        self._note = ""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        client = str(ipaddress.ip_address(self.client_address[0].split("%")[0]))
        if client.startswith("::ffff:"):
            client = client[7:]
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        record = self.server.hosts.get(client)
        self._who = f"{client} {record['name'] if record else '-'}"
        dialect = dialect_of(method, path)
        if record is None or dialect is None or dialect != record["cloud"]:
            self._note = "unknown host" if record is None else "other dialect"
            return self._reply(404, "text/plain", b"Not Found\n")
        if record["fault"]:
            return self._fault(record)
        getattr(self, "_" + dialect)(method, path, query, record, client)

    def _fault(self, record):
        fault = record["fault"]
        self._note = f"fault {fault}"
        if fault == "timeout":
            self.server.stopping.wait(self.server.fault_delay)
            self.close_connection = True
            return self._finish("-")
        if fault == "garbage":
            return self._reply(200, "text/html", GARBAGE)
        if fault == "429":
            return self._reply(429, "text/plain", b"Too Many Requests\n",
                               {"Retry-After": str(self.server.retry_after)})
        return self._reply(int(fault), "text/plain", (
            b"Unauthorized\n" if fault == "401" else b"Forbidden\n"))

    def _aws(self, method, path, query, record, client):
        if path == "/latest/api/token":
            if method != "PUT":
                return self._reply(405, "text/plain", b"Method Not Allowed\n")
            if self.headers.get("X-Forwarded-For"):
                return self._reply(403, "text/plain", b"Forbidden\n")
            raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not raw.strip().isdigit() or not 1 <= int(raw) <= AWS_MAX_TTL:
                return self._reply(400, "text/plain", b"Bad Request\n")
            ttl = int(raw)
            token = self.server.new_token(client, ttl)
            if record["hop_limit"]:
                # The real IMDS sends the token with this IP TTL, so a reply that has to cross one
                # hop too many (a container bridge, a proxy) is dropped by the kernel on the way.
                if self.server.address_family == socket.AF_INET6:
                    self.connection.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, record["hop_limit"])
                else:
                    self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, record["hop_limit"])
            self.close_connection = True
            return self._reply(200, "text/plain", token.encode(),
                               {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
        if method not in ("GET", "HEAD"):
            return self._reply(405, "text/plain", b"Method Not Allowed\n")
        token = self.headers.get("X-aws-ec2-metadata-token")
        if not token or not self.server.token_valid(token, client):
            self._note = "no valid token" if token else "imdsv1 refused"
            return self._reply(401, "text/plain", b"Unauthorized\n")
        document = aws_document(record, path)
        if document is None:
            return self._reply(404, "text/plain", b"Not Found\n")
        self._reply(*document)

    def _gce(self, method, path, query, record, client):
        headers = {"Metadata-Flavor": "Google"}
        if self.headers.get("Metadata-Flavor") != "Google" or self.headers.get("X-Forwarded-For"):
            return self._reply(403, "text/html", (
                b"Your client does not have permission to get URL from this server. "
                b"Missing Metadata-Flavor:Google header.\n"), headers)
        if method not in ("GET", "HEAD"):
            return self._reply(405, "text/plain", b"Method Not Allowed\n", headers)
        document = gce_document(record, path, query)
        if document is None:
            return self._reply(404, "text/html", b"Not Found\n", headers)
        status, ctype, body, _ = document
        self._reply(status, ctype, body, headers)

    def _azure(self, method, path, query, record, client):
        if self.headers.get("Metadata", "").lower() != "true" or self.headers.get("X-Forwarded-For"):
            return self._reply(400, "application/json", json.dumps(
                {"error": "Bad request. Required metadata header not specified"}).encode())
        if "api-version" not in query:
            return self._reply(400, "application/json", json.dumps({
                "error": "Bad request. api-version was not specified in the request. "
                         "For more information refer to aka.ms/azureimds",
                "newest-versions": list(reversed(AZURE_API_VERSIONS[-3:])),
            }).encode())
        if query["api-version"][0] not in AZURE_API_VERSIONS:
            return self._reply(400, "application/json", json.dumps({
                "error": "Bad request. api-version is invalid or was not specified in the request. "
                         "For more information refer to aka.ms/azureimds",
                "newest-versions": list(reversed(AZURE_API_VERSIONS[-3:])),
            }).encode())
        if method != "GET":
            return self._reply(405, "application/json", b'{"error": "Method not allowed"}')
        document = azure_document(record, path)
        if document is None:
            return self._reply(404, "application/json", b'{"error": "Not found"}')
        self._reply(*document)

    def _reply(self, status, ctype, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._finish(status)

    def send_response(self, code, message=None):
        # Skip BaseHTTPRequestHandler's log_request(); _finish() logs once per request.
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())

    def _finish(self, status):
        elapsed = (time.monotonic() - self._started) * 1000
        note = f" ({self._note})" if self._note else ""
        log(f"{self._who} {self.command} {self.path} {status} {elapsed:.1f}ms{note}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="hosts JSON (see the module docstring)")
    parser.add_argument("--bind", required=True, help="address to listen on, e.g. 169.254.169.254")
    parser.add_argument("--port", required=True, type=int, help="TCP port (0: let the kernel pick)")
    parser.add_argument("--pidfile", help="write the process id here; removed on exit")
    parser.add_argument("--fault-delay", type=float, default=5.0,
                        help='seconds a "timeout" fault stays silent before closing (default 5)')
    parser.add_argument("--retry-after", type=int, default=1,
                        help='Retry-After seconds sent with a "429" fault (default 1)')
    args = parser.parse_args(argv)

    try:
        server = MetadataServer((args.bind, args.port), args.config, args.fault_delay, args.retry_after)
    except ConfigError as exc:
        log(str(exc))
        return 2
    except OSError as exc:
        log(f"cannot listen on {args.bind}:{args.port}: {exc}")
        return 1
    if args.pidfile:
        with open(args.pidfile, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: server.reload())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    host, port = server.server_address[:2]
    log(f"listening on {host}:{port} with {len(server.hosts)} hosts from {args.config}")
    try:
        while not stop.wait(3600):
            pass
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        if args.pidfile:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.pidfile)
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
