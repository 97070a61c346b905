#!/usr/bin/env python3
"""Compute Engine v1 REST stand-in: the instance and machine-type list calls, on loopback.

google-cloud-compute's REST transport talks to it unchanged (client_options api_endpoint
"http://127.0.0.1:PORT", anonymous credentials). It counts requests per route so tests and
benches measure API calls at the server, not in the client. Standard library only.

    python3 lab/standins/gce_compute_api.py --state FILE --bind 127.0.0.1 --port N [--pidfile F]

With --port 0 the kernel picks the port; the first line on stdout says which:
"listening on http://127.0.0.1:PORT". One line per request goes to stderr. SIGTERM/SIGINT stop
it cleanly (the pidfile is removed). The state file is re-read whenever it changes on disk, so a
test can switch faults between calls; write it atomically (temp file + rename).

Routes (GET; others answer 404 in Compute's error format):
    /compute/v1/projects/{p}/aggregated/instances        route "aggregated_instances"
    /compute/v1/projects/{p}/zones/{z}/instances         route "zone_instances"
    /compute/v1/projects/{p}/aggregated/machineTypes     route "aggregated_machine_types"
    /compute/v1/projects/{p}/zones/{z}/machineTypes      route "zone_machine_types"
    /compute/v1/projects/{p}/zones/{z}/instances/{name}  route "instance_get" (the per-host baseline)
    /_stats  (GET, JSON: {"counts": {route: n}, "requests": [...]})   /_stats/reset  (POST)
List routes take maxResults (1..500, default 500), pageToken and filter. Aggregated answers carry
every zone of the project: zones with nothing on the page get Compute's NO_RESULTS_ON_PAGE warning.

State file (unknown keys are refused, so a typo cannot pass silently):

    {"projects": {"itsp-lab": {
        "zones": ["europe-west1-b", "europe-west1-c"],            optional; else the instances' zones
        "instances": [{"name": "sip-1", "zone": "europe-west1-b", "machineType": "e2-standard-2",
                       "status": "RUNNING", "labels": {"role": "sip"},
                       "networkInterfaces": [{"name": "nic0", "networkIP": "198.18.0.2",
                           "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "natIP": "203.0.113.2"}]}]}]}},
     "machineTypes": [...],                                       optional, see below
     "fault": {"route": "aggregated_instances", "status": 429, "times": 2}}

Instances are Compute Instance resources in REST JSON. A short "zone" or "machineType" is expanded
to the full URL, and "id" (a stable number derived from project/zone/name), "kind", "selfLink" and
"status" (RUNNING) are filled in when absent.

Machine types come from the state's "machineTypes" if present, else from the --machine-types file
(default lab/standins/data/gce_machine_types.json), else none. Either holds a list of Compute MachineType
resources ({"name", "guestCpus", "memoryMb", ...}), or {"machineTypes": [...]}, or
{zone: [...]}. A type with "zone" (or "zones": [...]) is served there only, else in every zone.

"fault" is one object or a list. Each: "route" (a route name above, or "*"), "status" (HTTP),
optional "after" (how many matching requests pass untouched first; default 0), "times" (how many
requests it then hits; default every one), "message", "reason" (goes into
error.errors[0].reason, e.g. "rateLimitExceeded"), "retry_after" (header), and "body" (a raw body
sent instead of the Compute error JSON, e.g. with status 200 to answer garbage). The first fault
with times left that matches the route is applied; the request is still counted.

Filter subset (what `filter=` understands; anything else is a 400 INVALID_ARGUMENT):
    expression := term (["AND"] term | "OR" term)*        AND binds tighter than OR
    term       := "NOT" term | "(" expression ")" | FIELD OP VALUE
    OP         := "=" | "!=" | ":" | "eq" | "ne"
    FIELD      dotted path into the resource JSON: name, status, id, labels.role, ...
    VALUE      "double quoted" or a bare word
"=" and "!=" compare whole strings, "*" in the value matching any run of characters; ":" is
"has": a substring test, and FIELD:* tests that the field exists; "eq" and "ne" take a regular
expression that must match the whole value. Fields that hold URLs (zone, machineType) compare
against the full URL, so match them with wildcards: zone = "*/zones/europe-west1-b".
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import fnmatch
import hashlib
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MACHINE_TYPES = os.path.join(HERE, "data", "gce_machine_types.json")
MAX_RESULTS = 500
REQUEST_LOG_LIMIT = 1000
ROUTES = ("aggregated_instances", "zone_instances", "aggregated_machine_types", "zone_machine_types",
          "instance_get")
STATE_KEYS = ("projects", "machineTypes", "fault")
PROJECT_KEYS = ("zones", "instances")
FAULT_KEYS = ("route", "status", "after", "times", "message", "reason", "retry_after", "body")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
REASONS = {400: "invalid", 401: "authError", 403: "forbidden", 404: "notFound", 429: "rateLimitExceeded",
           500: "backendError", 503: "backendError"}
PATTERNS = [
    (re.compile(r"^/compute/v1/projects/([^/]+)/aggregated/instances$"), "aggregated_instances"),
    (re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances$"), "zone_instances"),
    (re.compile(r"^/compute/v1/projects/([^/]+)/aggregated/machineTypes$"), "aggregated_machine_types"),
    (re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/machineTypes$"), "zone_machine_types"),
    (re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$"), "instance_get"),
]


class StateError(Exception):
    pass


class ApiError(Exception):
    """An answer in Compute's error format."""

    def __init__(self, status, message, reason=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or REASONS.get(status, "error")


# ---------------------------------------------------------------------------------------------
# State


def _refuse_unknown(where, data, allowed):
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise StateError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def stable_id(*parts):
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(10**18 + int.from_bytes(digest[:8], "big") % (9 * 10**18))


def load_state(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: cannot read state: {exc}") from exc
    if not isinstance(data, dict):
        raise StateError(f"{path}: expected a JSON object")
    _refuse_unknown(path, data, STATE_KEYS)
    projects = {}
    for project, spec in (data.get("projects") or {}).items():
        where = f"{path}: projects[{project!r}]"
        if not isinstance(spec, dict):
            raise StateError(f"{where}: expected an object")
        _refuse_unknown(where, spec, PROJECT_KEYS)
        instances = []
        for index, instance in enumerate(spec.get("instances") or []):
            if not isinstance(instance, dict) or not instance.get("name") or not instance.get("zone"):
                raise StateError(f"{where}.instances[{index}]: needs at least name and zone")
            instance = dict(instance)
            instance["zone"] = instance["zone"].rstrip("/").rpartition("/")[2]
            instance.setdefault("id", stable_id(project, instance["zone"], instance["name"]))
            instance["id"] = str(instance["id"])
            instance.setdefault("status", "RUNNING")
            instances.append(instance)
        zones = list(spec.get("zones") or [])
        for instance in instances:
            if instance["zone"] not in zones:
                zones.append(instance["zone"])
        projects[project] = {"zones": sorted(zones), "instances": instances}
    faults = data.get("fault") or []
    faults = [faults] if isinstance(faults, dict) else list(faults)
    for index, fault in enumerate(faults):
        where = f"{path}: fault[{index}]"
        if not isinstance(fault, dict):
            raise StateError(f"{where}: expected an object")
        _refuse_unknown(where, fault, FAULT_KEYS)
        if fault.get("route") not in ROUTES + ("*",):
            raise StateError(f"{where}: route must be one of {', '.join(ROUTES)} or *")
        if not isinstance(fault.get("status"), int):
            raise StateError(f"{where}: status must be an HTTP status number")
    return {"projects": projects, "machine_types": data.get("machineTypes"), "faults": faults}


def load_machine_types(state, data_file):
    """The raw machine-type source: the state's own list, else the data file, else none."""
    if state["machine_types"] is not None:
        return state["machine_types"]
    try:
        with open(data_file, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ApiError(500, f"{data_file}: cannot read machine types: {exc}") from exc


def machine_types_by_zone(source, zones):
    """{zone: [machine type, ...]} from any of the accepted source shapes."""
    if isinstance(source, dict) and "machineTypes" in source:
        source = source["machineTypes"]
    result = {zone: [] for zone in zones}
    if isinstance(source, dict):
        for zone, types in source.items():
            if zone in result:
                result[zone].extend(dict(item) for item in types)
        return result
    for item in source or []:
        where = item.get("zones") or zones
        if item.get("zone"):
            where = [item["zone"].rstrip("/").rpartition("/")[2]]
        for zone in where:
            if zone in result:
                entry = {key: value for key, value in item.items() if key != "zones"}
                result[zone].append(entry)
    return result


# ---------------------------------------------------------------------------------------------
# Filter


TOKEN_RE = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|!=|=|:|[^\s()=!:"]+)')


def tokenize(text):
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN_RE.match(text, position)
        if not match or match.end() == position:
            raise ApiError(400, f"Invalid value for field 'filter': {text!r}. Unexpected text at {position}.")
        tokens.append(match.group(1))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class FilterParser:
    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0

    def parse(self):
        if not self.tokens:
            return lambda _resource: True
        node = self._or()
        if self.position != len(self.tokens):
            self._fail(f"unexpected {self.tokens[self.position]!r}")
        return node

    def _fail(self, why):
        raise ApiError(400, f"Invalid value for field 'filter': {self.text!r}. {why[0].upper()}{why[1:]}.")

    def _peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self):
        token = self._peek()
        if token is None:
            self._fail("unexpected end of expression")
        self.position += 1
        return token

    def _or(self):
        nodes = [self._and()]
        while self._peek() == "OR":
            self.position += 1
            nodes.append(self._and())
        return nodes[0] if len(nodes) == 1 else (lambda resource: any(node(resource) for node in nodes))

    def _and(self):
        nodes = [self._term()]
        while self._peek() not in (None, ")", "OR"):
            if self._peek() == "AND":
                self.position += 1
            nodes.append(self._term())
        return nodes[0] if len(nodes) == 1 else (lambda resource: all(node(resource) for node in nodes))

    def _term(self):
        word = self._next()
        if word == "NOT":
            inner = self._term()
            return lambda resource: not inner(resource)
        if word == "(":
            inner = self._or()
            if self._next() != ")":
                self._fail("missing )")
            return inner
        if word in (")", "=", "!=", ":", "AND", "OR") or word.startswith('"'):
            self._fail(f"expected a field name, got {word!r}")
        operator = self._next()
        if operator not in ("=", "!=", ":", "eq", "ne"):
            self._fail(f"expected =, !=, :, eq or ne after {word!r}, got {operator!r}")
        value = self._next()
        if value in ("(", ")"):
            self._fail(f"expected a value after {word} {operator}")
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        return comparison(word, operator, value)


def field_value(resource, path):
    value = resource
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return None if value is None else str(value)


def comparison(field, operator, wanted):
    if operator in ("eq", "ne"):
        try:
            pattern = re.compile(wanted)
        except re.error as exc:
            raise ApiError(400, f"Invalid value for field 'filter': bad regular expression {wanted!r}: {exc}."
                           ) from exc

    def test(resource):
        value = field_value(resource, field)
        if operator == ":":
            if wanted == "*":
                return value is not None
            return value is not None and wanted.lower() in value.lower()
        if operator in ("eq", "ne"):
            matched = value is not None and pattern.fullmatch(value) is not None
            return matched if operator == "eq" else not matched
        matched = value is not None and fnmatch.fnmatchcase(value, wanted)
        return matched if operator == "=" else not matched

    return test


# ---------------------------------------------------------------------------------------------
# Answers


def encode_token(offset):
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_token(token):
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, offset = text.partition(":")
        if kind != "offset":
            raise ValueError(text)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Invalid value for field 'pageToken': '{token}'.") from exc


def paging(query):
    raw = (query.get("maxResults") or [str(MAX_RESULTS)])[0]
    try:
        max_results = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"Invalid value for field 'maxResults': '{raw}'.") from exc
    if not 0 < max_results <= MAX_RESULTS:
        raise ApiError(400, f"Invalid value for field 'maxResults': '{raw}'. "
                            f"Must be between 1 and {MAX_RESULTS}.")
    token = (query.get("pageToken") or [""])[0]
    offset = decode_token(token) if token else 0
    return offset, max_results


def render_instance(instance, base, project):
    rendered = copy.deepcopy(instance)
    zone = instance["zone"]
    zone_url = f"{base}projects/{project}/zones/{zone}"
    rendered["zone"] = zone_url
    rendered.setdefault("kind", "compute#instance")
    rendered.setdefault("selfLink", f"{zone_url}/instances/{instance['name']}")
    machine_type = rendered.get("machineType")
    if machine_type and "/" not in machine_type:
        rendered["machineType"] = f"{zone_url}/machineTypes/{machine_type}"
    return rendered


def render_machine_type(machine_type, base, project, zone):
    rendered = dict(machine_type)
    zone_url = f"{base}projects/{project}/zones/{zone}"
    rendered["zone"] = zone
    rendered.setdefault("kind", "compute#machineType")
    rendered.setdefault("id", stable_id(project, zone, "machineTypes", str(rendered.get("name"))))
    rendered.setdefault("selfLink", f"{zone_url}/machineTypes/{rendered.get('name')}")
    return rendered


def no_results_warning(scope):
    return {"warning": {
        "code": "NO_RESULTS_ON_PAGE",
        "message": f"There are no results for scope '{scope}' on this page.",
        "data": [{"key": "scope", "value": scope}],
    }}


def error_body(status, message, reason):
    return {"error": {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }}


class ComputeStandIn:
    """State, counters and the answers; the HTTP handler only parses and writes."""

    def __init__(self, state_path, machine_types_path=DEFAULT_MACHINE_TYPES):
        self.state_path = state_path
        self.machine_types_path = machine_types_path
        self.lock = threading.Lock()
        self.state = load_state(state_path)
        self.state_error = None
        self.state_stamp = self._stamp()
        self.fault_hits = [0] * len(self.state["faults"])
        self.counts = {}
        self.requests = []

    def _stamp(self):
        try:
            stat = os.stat(self.state_path)
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _refresh(self):
        stamp = self._stamp()
        if stamp == self.state_stamp:
            return
        self.state_stamp = stamp
        try:
            self.state = load_state(self.state_path)
            self.state_error = None
            self.fault_hits = [0] * len(self.state["faults"])
            log(f"state re-read from {self.state_path}")
        except StateError as exc:
            self.state_error = str(exc)
            log(f"state NOT re-read: {exc}")

    def stats(self):
        with self.lock:
            return {"counts": dict(sorted(self.counts.items())), "requests": list(self.requests)}

    def reset_stats(self):
        with self.lock:
            self.counts = {}
            self.requests = []

    def record(self, route, path, query, status):
        with self.lock:
            self.counts[route] = self.counts.get(route, 0) + 1
            self.requests.append({"route": route, "path": path, "query": query, "status": status})
            del self.requests[:-REQUEST_LOG_LIMIT]

    def take_fault(self, route):
        with self.lock:
            self._refresh()
            for index, fault in enumerate(self.state["faults"]):
                if fault["route"] not in (route, "*"):
                    continue
                self.fault_hits[index] += 1
                hit = self.fault_hits[index] - fault.get("after", 0)
                times = fault.get("times")
                if hit < 1 or (times is not None and hit > times):
                    continue
                return fault
        return None

    def answer(self, route, match, query, base):
        """(status, body dict) for a list route."""
        with self.lock:
            self._refresh()
            if self.state_error:
                raise ApiError(500, f"stand-in state is invalid: {self.state_error}")
            state = self.state
        project_name = match.group(1)
        project = state["projects"].get(project_name)
        if project is None:
            raise ApiError(404, f"The resource 'projects/{project_name}' was not found")
        zone = match.group(2) if match.lastindex and match.lastindex > 1 else None
        if zone is not None and zone not in project["zones"]:
            raise ApiError(404, f"The resource 'projects/{project_name}/zones/{zone}' was not found")
        if route == "instance_get":
            return 200, self._get_instance(project, project_name, zone, match.group(3), base)
        matches = FilterParser((query.get("filter") or [""])[0]).parse()
        offset, max_results = paging(query)

        if route.endswith("instances"):
            # Zone by zone, as Compute pages an aggregated list; state order within a zone.
            ordered = sorted(project["instances"], key=lambda item: project["zones"].index(item["zone"]))
            pool = [(item["zone"], render_instance(item, base, project_name)) for item in ordered]
            kind, key = "compute#instance", "instances"
        else:
            source = load_machine_types(state, self.machine_types_path)
            by_zone = machine_types_by_zone(source, project["zones"])
            pool = [(name, render_machine_type(item, base, project_name, name))
                    for name in project["zones"] for item in by_zone[name]]
            kind, key = "compute#machineType", "machineTypes"
        chosen = [(name, item) for name, item in pool if (zone is None or name == zone) and matches(item)]
        page = chosen[offset:offset + max_results]
        next_offset = offset + max_results if offset + max_results < len(chosen) else None
        path = f"projects/{project_name}/" + (f"zones/{zone}/{key}" if zone else f"aggregated/{key}")
        body = {"kind": kind + ("AggregatedList" if zone is None else "List"), "id": path,
                "selfLink": base + path}
        if zone is not None:
            body["items"] = [item for _name, item in page]
        else:
            items = {f"zones/{name}": no_results_warning(f"zones/{name}") for name in project["zones"]}
            for name, item in page:
                items.setdefault(f"zones/{name}", {}).pop("warning", None)
                items[f"zones/{name}"].setdefault(key, []).append(item)
            body["items"] = items
        if next_offset is not None:
            body["nextPageToken"] = encode_token(next_offset)
        return 200, body


    @staticmethod
    def _get_instance(project, project_name, zone, name, base):
        for instance in project["instances"]:
            if instance["zone"] == zone and instance["name"] == name:
                return render_instance(instance, base, project_name)
        resource = f"projects/{project_name}/zones/{zone}/instances/{name}"
        raise ApiError(404, f"The resource '{resource}' was not found")


class Handler(BaseHTTPRequestHandler):
    server_version = "gce-compute-standin/1"
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, keep-alive clients stall ~40 ms per call.
    disable_nagle_algorithm = True

    @property
    def standin(self):
        return self.server.standin

    def log_message(self, format, *args):
        log(f"{self.address_string()} {format % args}")

    def _send(self, status, body, headers=None):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if urlsplit(self.path).path == "/_stats/reset":
            self.standin.reset_stats()
            self._send(200, {"status": "ok"})
            return
        self._send(404, error_body(404, f"No POST route for {urlsplit(self.path).path}", "notFound"))

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path == "/_stats":
            self._send(200, self.standin.stats())
            return
        query = parse_qs(parts.query, keep_blank_values=True)
        route, match = "unknown", None
        for pattern, name in PATTERNS:
            match = pattern.match(parts.path)
            if match:
                route = name
                break
        base = f"http://{self.headers.get('Host') or '127.0.0.1'}/compute/v1/"
        status, body, headers = self._answer(route, match, query, base, parts.path)
        self.standin.record(route, parts.path, {key: values[0] for key, values in query.items()}, status)
        self._send(status, body, headers)

    def _answer(self, route, match, query, base, path):
        if match is None:
            message = f"The requested URL {path} was not found on this server."
            return 404, error_body(404, message, "notFound"), {}
        fault = self.standin.take_fault(route)
        if fault is not None:
            status = fault["status"]
            headers = {}
            if fault.get("retry_after") is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            if "body" in fault:
                return status, str(fault["body"]).encode(), headers
            message = fault.get("message") or f"stand-in fault: {STATUS_NAMES.get(status, status)}"
            reason = fault.get("reason") or REASONS.get(status, "error")
            return status, error_body(status, message, reason), headers
        try:
            status, body = self.standin.answer(route, match, query, base)
        except ApiError as exc:
            return exc.status, error_body(exc.status, exc.message, exc.reason), {}
        return status, body, {}


def log(message):
    print(f"gce_compute_api: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", required=True, help="state JSON (see the module docstring)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 lets the kernel pick one")
    parser.add_argument("--pidfile", help="write the process id here; removed on exit")
    parser.add_argument("--machine-types", default=DEFAULT_MACHINE_TYPES,
                        help="machine types JSON used when the state has none (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        standin = ComputeStandIn(args.state, args.machine_types)
    except StateError as exc:
        log(str(exc))
        return 2

    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    server.standin = standin
    if args.pidfile:
        with open(args.pidfile, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")

    def stop(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    log(f"listening on {host}:{port} with state from {args.state}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pidfile:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.pidfile)
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
