"""Malformed arguments for every module, through the real entry point (main(), arguments set the
way Ansible sets them). Each generated set must end in exit_json, or in fail_json whose msg names
an option that was spoiled; never in a traceback. In check mode nothing may change on disk.

The generator is seeded and plain (random.Random): the same sets on every run, so a failure can be
reproduced from its test id alone. The clouds are two loopback stand-ins started here, one
answering minimal valid EC2/Compute replies and one answering garbage bytes; every connection to
anything but loopback is refused by a guard, so no set can reach a real cloud.
"""

import copy
import hashlib
import json
import os
import random
import shutil
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import catalog
from ansible_collections.itsp.cluster.plugins.modules import (
    cloud_facts,
    cloud_instances,
    file_set,
    instance_size,
    kamailio_rpc,
    rtpengine_forwarding,
    service_restart,
)
from ansible_collections.itsp.cluster.tests.unit.plugins.fake_kamailio import FakeKamailio, json_rpc_answers
from module_harness import Exit, Fail, closed_port, patch_exits, set_module_args

SEED = 20261129
SETS_PER_MODULE = 32

# -- the loopback clouds ------------------------------------------------------------------------------

EC2_NS = 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
EC2_TYPE = (
    "<item><instanceType>c6in.2xlarge</instanceType><vCpuInfo><defaultVCpus>8</defaultVCpus></vCpuInfo>"
    "<memoryInfo><sizeInMiB>16384</sizeInMiB></memoryInfo><processorInfo><supportedArchitectures>"
    "<item>x86_64</item></supportedArchitectures></processorInfo>"
    "<burstablePerformanceSupported>false</burstablePerformanceSupported><networkInfo>"
    "<networkPerformance>Up to 40 Gigabit</networkPerformance><defaultNetworkCardIndex>0</defaultNetworkCardIndex>"
    "<networkCards><item><networkCardIndex>0</networkCardIndex><networkPerformance>Up to 40 Gigabit"
    "</networkPerformance><baselineBandwidthInGbps>12.5</baselineBandwidthInGbps><peakBandwidthInGbps>40.0"
    "</peakBandwidthInGbps></item></networkCards></networkInfo></item>")
GCE_TYPE = {"kind": "compute#machineType", "name": "n2-standard-8", "guestCpus": 8, "memoryMb": 32768,
            "isSharedCpu": False}
GCE_ZONES = ("europe-west1-b", "europe-west1-c", "europe-west1-d")
PRICES = {"c6in.2xlarge": 0.45, "n2-standard-8": 0.39}
GARBAGE = bytes(random.Random(SEED).getrandbits(8) for _ in range(512)) + b"\xff\xfe\x80"


def ec2_answer(form):
    action = form.get("Action", [""])[0]
    if action == "DescribeInstances":
        return (f"<DescribeInstancesResponse {EC2_NS}><requestId>r</requestId><reservationSet/>"
                "</DescribeInstancesResponse>")
    if action == "DescribeAddresses":
        return (f"<DescribeAddressesResponse {EC2_NS}><requestId>r</requestId><addressesSet/>"
                "</DescribeAddressesResponse>")
    if action == "DescribeInstanceTypes":
        return (f"<DescribeInstanceTypesResponse {EC2_NS}><requestId>r</requestId><instanceTypeSet>{EC2_TYPE}"
                "</instanceTypeSet></DescribeInstanceTypesResponse>")
    if action == "DescribeInstanceTypeOfferings":
        kind = form.get("LocationType", ["region"])[0]
        asked = [v[0] for k, v in form.items() if k.startswith("Filter.1.Value.")]
        where = [z for z in asked if z[:-1] in ("us-east-1", "eu-west-1")] if kind != "region" else ["us-east-1"]
        items = "".join(f"<item><instanceType>c6in.2xlarge</instanceType><locationType>{kind}</locationType>"
                        f"<location>{place}</location></item>" for place in where)
        return (f"<DescribeInstanceTypeOfferingsResponse {EC2_NS}><requestId>r</requestId><instanceTypeOfferingSet>"
                f"{items}</instanceTypeOfferingSet></DescribeInstanceTypeOfferingsResponse>")
    return None


def gce_answer(path):
    parts = path.strip("/").split("/")  # compute v1 projects P ...
    if len(parts) < 5 or parts[:3] != ["compute", "v1", "projects"]:
        return None
    tail = parts[4:]
    if tail == ["aggregated", "instances"]:
        return {"items": {f"zones/{z}": {"warning": {"code": "NO_RESULTS_ON_PAGE"}} for z in GCE_ZONES}}
    if tail == ["aggregated", "machineTypes"]:
        return {"items": {f"zones/{z}": {"machineTypes": [dict(GCE_TYPE, zone=z)]} for z in GCE_ZONES}}
    if len(tail) == 3 and tail[0] == "zones" and tail[2] == "machineTypes":
        return {"items": [dict(GCE_TYPE, zone=tail[1])]} if tail[1] in GCE_ZONES else None
    return None


class CloudHandler(BaseHTTPRequestHandler):
    def log_message(self, *_args):
        pass

    def _reply(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if self.server.garbage:
            return self._reply(200, GARBAGE, "text/xml")
        answer = ec2_answer(form)
        if answer is None:
            return self._reply(400, b"<Response><Errors><Error><Code>InvalidAction</Code><Message>no</Message>"
                                    b"</Error></Errors><RequestID>r</RequestID></Response>", "text/xml")
        return self._reply(200, answer.encode(), "text/xml")

    def do_GET(self):
        if self.server.garbage:
            return self._reply(200, GARBAGE, "application/json")
        answer = gce_answer(urlsplit(self.path).path)
        if answer is None:
            return self._reply(404, json.dumps({"error": {"code": 404, "message": "not found",
                                                          "status": "NOT_FOUND"}}).encode(), "application/json")
        return self._reply(200, json.dumps(answer).encode(), "application/json")


@pytest.fixture(scope="module")
def clouds():
    servers = {}
    for name, garbage in (("valid", False), ("garbage", True)):
        server = ThreadingHTTPServer(("127.0.0.1", 0), CloudHandler)
        server.garbage = garbage
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: f"http://127.0.0.1:{server.server_address[1]}" for name, server in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _is_loopback(host):
    return host in ("localhost", "127.0.0.1", "::1") or str(host).startswith("127.")


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse every connection that would leave the host: a spoiled endpoint must not reach a cloud."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host.decode() if isinstance(host, bytes) else host):
            raise socket.gaierror(socket.EAI_NONAME, f"fuzz guard: {host} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(111, f"fuzz guard: {address[0]} is not loopback")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_EC2_METADATA_DISABLED", "true"), ("AWS_CONFIG_FILE", os.devnull),
                        ("AWS_SHARED_CREDENTIALS_FILE", os.devnull), ("NO_GCE_CHECK", "True"),
                        ("GOOGLE_APPLICATION_CREDENTIALS", os.devnull)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


# -- the generator ------------------------------------------------------------------------------------

# Values any option may be given by a careless playbook or a template that rendered wrong.
SPOILERS = (
    None, "", " ", "nan", "inf", "-inf", "1e308", 1e308, -1e308, -1, 0, 2 ** 64, True, [], {}, [""],
    ["\x00"], "x" * 3000, "\u00fc\u20ac\u202e", {"a": {"b": []}}, "../../../etc/passwd", "not-a-url",
    "http://[::1", "\x00",
)
ENDPOINT_SPOILERS = ("", "not-a-url", "http://[::1", "ftp://127.0.0.1", "http://127.0.0.1:99999",
                     "http://127.0.0.1:abc", "{garbage}", "{closed}", "{tmp}/unrelated.txt", "http://", " ", "\x00")
CACHE_SPOILERS = ("{tmp}/new/dir/catalog.json", "{tmp}/unrelated.txt", "{tmp}", "", "{tmp}/cache.json\x00x")

MODULES = {
    "instance_size": {
        "main": instance_size.main,
        "bases": (
            {"provider": "static", "zone_count": 2, "prices": {"r.xl": 0.4},
             "catalog": [{"name": "r.xl", "vcpus": 16, "memory_mb": 65536, "baseline_gbps": 10}],
             "workload": {"concurrent_calls": 2000, "calls_per_second": 20}},
            {"provider": "aws", "region": "us-east-1", "zones": ["us-east-1a", "us-east-1b"],
             "endpoint_url": "{valid}", "prices": PRICES, "unpriced": "skip", "max_attempts": 1,
             "catalog_cache": "{tmp}/catalog.json", "workload": {"concurrent_calls": 2000, "calls_per_second": 20}},
            {"provider": "gce", "region": "europe-west1", "project": "itsp-lab", "endpoint_url": "{valid}",
             "auth_kind": "anonymous", "prices": PRICES, "unpriced": "skip", "max_attempts": 1,
             "workload": {"concurrent_calls": 2000, "calls_per_second": 20}},
        ),
        "options": ("provider", "region", "zones", "zone_count", "project", "endpoint_url", "families",
                    "architectures", "max_instances", "redundancy", "headroom", "topology", "prices",
                    "unpriced", "catalog", "catalog_cache", "catalog_cache_max_age", "max_attempts",
                    "workload.concurrent_calls", "workload.calls_per_second", "workload.registered_endpoints",
                    "workload.codec", "workload.ptime", "workload.tls_share", "workload.media_relay_share",
                    "calibration.kamailio_children_min", "calibration.pps_allowance",
                    "calibration.contact_bytes", "calibration.dmq_dialog_messages_per_call",
                    "calibration.dmq_reply_bytes", "replication.budget", "replication.transfer_price_per_gb",
                    "replication.growth_nodes"),
    },
    "cloud_instances": {
        "main": cloud_instances.main,
        "bases": (
            {"provider": "aws", "regions": ["eu-west-1"], "endpoint_url": "{valid}", "max_attempts": 1},
            {"provider": "gce", "project": "itsp-lab", "auth_kind": "anonymous", "endpoint_url": "{valid}",
             "max_attempts": 1},
        ),
        "options": ("provider", "regions", "endpoint_url", "profile", "access_key", "project", "zones",
                    "auth_kind", "service_account_file", "service_account_contents", "api_endpoint", "filters",
                    "tags", "instance_ids", "page_size", "max_attempts"),
    },
    "kamailio_rpc": {
        "main": kamailio_rpc.main,
        "bases": ({"method": "core.psx", "socket": "{socket}", "timeout": 0.5},
                  {"method": "dispatcher.reload", "socket": "{socket}", "timeout": 0.5}),
        "options": ("method", "params", "socket", "timeout", "changes"),
    },
    "cloud_facts": {
        "main": cloud_facts.main,
        "bases": ({"providers": ["metal"], "public_ipv4": "203.0.113.41", "timeout": 0.2,
                   "metadata_endpoint": "{closed}"},
                  {"providers": ["aws", "metal"], "timeout": 0.2, "metadata_endpoint": "{closed}"}),
        "options": ("providers", "timeout", "metadata_endpoint", "private_ipv4", "public_ipv4", "validate",
                    "stun_server"),
    },
    "file_set": {
        "main": file_set.main,
        "bases": ({"files": [{"dest": "{tmp}/out.cfg", "content": "a = 1\n", "mode": "0640"}]},
                  {"directories": [{"path": "{tmp}/stage", "mode": "0700"}],
                   "files": [{"dest": "{tmp}/unrelated.txt", "content": "not a catalog, keep me\n"},
                             {"dest": "{tmp}/main.cfg", "content": "main\n", "checked": True}],
                   "check": {"command": ["true"], "stage_dir": "{tmp}/stage", "name": "the check"}}),
        "options": ("files", "directories", "check", "check.command", "check.stage_dir", "check.name"),
    },
    # Reads the machine's own /proc and /lib/modules (read-only).
    "rtpengine_forwarding": {
        "main": rtpengine_forwarding.main,
        "bases": ({"mode": "auto", "table": 0}, {"table": 5, "verify": True, "min_kernel_packets": 1}),
        "options": ("mode", "table", "verify", "min_kernel_packets"),
    },
    # systemctl and journalctl are the fake_iproute2 fixture's run_command (it answers 0): no unit is touched.
    "service_restart": {
        "main": service_restart.main,
        "bases": ({"name": "rtpengine-daemon", "delay": 0}, {"name": "kamailio", "daemon_reload": True, "retries": 0}),
        "options": ("name", "daemon_reload", "retries", "delay", "journal_lines"),
    },
}

# The crashers issue 10 names, each first in its module's list.
KNOWN = {
    "instance_size": (
        (0, {"workload.concurrent_calls": 1e308}), (0, {"workload.concurrent_calls": "nan"}),
        (1, {"endpoint_url": "{garbage}"}), (2, {"endpoint_url": "{garbage}"}), (2, {"endpoint_url": "{closed}"}),
        (0, {"catalog_cache": "{tmp}/unrelated.txt"}),
        (0, {"families": [""]}),
        (0, {"catalog": [{"name": "r.xl", "vcpus": 16, "memory_mb": 65536, "baseline_gbps": 10},
                         {"name": "r.xl", "vcpus": 8, "memory_mb": 32768, "baseline_gbps": 10}]}),
    ),
    "cloud_instances": (
        (0, {"endpoint_url": "{garbage}"}), (1, {"api_endpoint": "{garbage}"}),
        (1, {"project": ""}), (0, {"endpoint_url": "not-a-url"}),
    ),
    "kamailio_rpc": ((0, {"timeout": 1e308}), (0, {"timeout": "inf"})),
    "cloud_facts": ((0, {"timeout": 1e308}), (0, {"providers": ["metal", "aws"]})),
    "file_set": ((0, {"files": [{"dest": "{tmp}/x", "content": "x", "mode": "u=rw"}]}),
                 (1, {"check.stage_dir": "../../../etc/passwd"})),
    "rtpengine_forwarding": ((0, {"table": 2 ** 63}), (1, {"min_kernel_packets": -1})),
    "service_restart": ((0, {"name": "rtpengine-daemon\x00"}), (0, {"delay": "inf"})),
}


def spoilers_for(option):
    leaf = option.rsplit(".", 1)[-1]
    if leaf in ("endpoint_url", "api_endpoint", "metadata_endpoint"):
        return ENDPOINT_SPOILERS
    if leaf == "catalog_cache":
        return CACHE_SPOILERS
    if leaf == "provider":
        return tuple(v for v in SPOILERS if v is not None)  # None for a required option is plain Ansible
    return SPOILERS


def generate(name):
    """[(base index, {option: value})] for one module: the known crashers, then seeded random sets."""
    spec = MODULES[name]
    rng = random.Random(f"{SEED}-{name}")
    sets = [(base, dict(spoiled)) for base, spoiled in KNOWN[name]]
    while len(sets) < SETS_PER_MODULE:
        base = rng.randrange(len(spec["bases"]))
        chosen = rng.sample(spec["options"], rng.choice((1, 1, 1, 2)))
        sets.append((base, {option: rng.choice(spoilers_for(option)) for option in chosen}))
    return sets


CASES = [(name, index, base, spoiled) for name in MODULES for index, (base, spoiled) in enumerate(generate(name))]


def fill(value, places):
    if isinstance(value, str):
        for key, real in places.items():
            value = value.replace("{" + key + "}", real)
        return value
    if isinstance(value, list):
        return [fill(v, places) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, places) for k, v in value.items()}
    return value


def option_names(name):
    """{option or alias: every name it goes by} for one module's top-level options ({} for a module
    without an argument_spec() function, as older versions of cloud_facts had)."""
    names = {}
    spec_of = MODULES[name]["main"].__globals__.get("argument_spec")
    for option, spec in (spec_of() if spec_of else {}).items():
        every = {option, *spec.get("aliases", [])}
        for one in every:
            names[one] = every
    return names


def build_args(name, base, spoiled, places):
    known = option_names(name)
    # A base may use an option an older module lacks.
    args = {k: v for k, v in copy.deepcopy(MODULES[name]["bases"][base]).items() if k in known or not known}
    for option, value in spoiled.items():
        where = args
        *parents, leaf = option.split(".")
        for parent in parents:
            where = where.setdefault(parent, {})
        if value is None:
            where.pop(leaf, None)
        else:
            where[leaf] = copy.deepcopy(value)
    return fill(args, places)


def snapshot(top):
    state = {}
    for directory, dirs, files in os.walk(top):
        for entry in dirs + files:
            path = os.path.join(directory, entry)
            st = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            state[os.path.relpath(path, top)] = (st.st_mode, st.st_size, digest)
    return state


def names_an_option(msg, spoiled, names):
    """Whether msg names a spoiled option, by its name or by one of its aliases."""
    leaves = set()
    for option in spoiled:
        leaf = option.rsplit(".", 1)[-1]
        leaves |= names.get(leaf, {leaf}) if "." not in option else {leaf}
    return any(leaf in msg for leaf in leaves)


@pytest.fixture
def workdir(monkeypatch):
    # Short path: kamailio_rpc's reply socket must fit in 107 bytes.
    path = tempfile.mkdtemp(prefix="fuzz-", dir="/tmp")
    with open(os.path.join(path, "unrelated.txt"), "w") as handle:
        handle.write("not a catalog, keep me\n")
    monkeypatch.chdir(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(("name", "index", "base", "spoiled"), CASES,
                         ids=[f"{name}-{index:02d}" for name, index, _b, _s in CASES])
@pytest.mark.usefixtures("loopback_only", "fake_iproute2")
def test_malformed_arguments(monkeypatch, clouds, workdir, name, index, base, spoiled):
    patch_exits(monkeypatch)
    catalog.clear_memory_cache()
    kamailio = FakeKamailio(os.path.join(workdir, "k.sock"), json_rpc_answers(lambda request: {"result": "Ok."}))
    places = dict(clouds, tmp=workdir, socket=kamailio.path, closed=f"http://127.0.0.1:{closed_port()}")
    args = build_args(name, base, spoiled, places)
    check_mode = random.Random(f"{SEED}-{name}-{index}").random() < 0.5 or index < len(KNOWN[name])
    before = snapshot(workdir)
    set_module_args(monkeypatch, args, check_mode)
    try:
        MODULES[name]["main"]()
    except Exit:
        outcome = None
    except Fail as failed:
        outcome = failed.args[0]
    except BaseException as crash:  # noqa: BLE001 - any other way out is what this test hunts
        pytest.fail(f"{name} crashed on {spoiled!r}: {type(crash).__name__}: {str(crash)[:300]}")
    finally:
        kamailio.stop()
        catalog.clear_memory_cache()
    if outcome is not None:
        msg = outcome.get("msg", "")
        assert "Traceback" not in msg
        assert names_an_option(msg, spoiled, option_names(name)), \
            f"{name}: msg does not name any of {sorted(spoiled)}: {msg[:400]}"
    if check_mode:
        after = {k: v for k, v in snapshot(workdir).items() if k != "k.sock"}
        assert after == {k: v for k, v in before.items() if k != "k.sock"}, f"{name} wrote in check mode"


@pytest.mark.parametrize(("name", "base"), [(n, b) for n in MODULES for b in range(len(MODULES[n]["bases"]))])
@pytest.mark.usefixtures("loopback_only", "fake_iproute2")
def test_unspoiled_bases_succeed(monkeypatch, clouds, workdir, name, base):
    """The stand-ins answer well enough that every failure above comes from the spoiled option."""
    patch_exits(monkeypatch)
    catalog.clear_memory_cache()
    kamailio = FakeKamailio(os.path.join(workdir, "k.sock"), json_rpc_answers(lambda request: {"result": "Ok."}))
    places = dict(clouds, tmp=workdir, socket=kamailio.path, closed=f"http://127.0.0.1:{closed_port()}")
    set_module_args(monkeypatch, build_args(name, base, {}, places))
    try:
        with pytest.raises(Exit):
            MODULES[name]["main"]()
    finally:
        kamailio.stop()
        catalog.clear_memory_cache()


def run_module(monkeypatch, clouds, workdir, name, base, spoiled, check_mode=False):
    """(exit or fail kwargs, warnings) for one argument set."""
    warnings = patch_exits(monkeypatch)
    catalog.clear_memory_cache()
    places = dict(clouds, tmp=workdir, socket=os.path.join(workdir, "k.sock"),
                  closed=f"http://127.0.0.1:{closed_port()}")
    set_module_args(monkeypatch, build_args(name, base, spoiled, places), check_mode)
    try:
        MODULES[name]["main"]()
    except (Exit, Fail) as done:
        return done, warnings
    finally:
        catalog.clear_memory_cache()
    raise AssertionError("the module returned without exit_json or fail_json")


@pytest.mark.parametrize(("name", "base", "spoiled", "message"), [
    ("cloud_facts", 0, {"providers": ["metal", "aws"]},
     "providers lists aws after metal, which always answers, so it would never be asked; put metal last"),
    ("instance_size", 0, {"families": ["c6i", ""]},
     "families[1] is empty; give family patterns such as c6i or n2-highcpu-*, or leave families out to allow "
     "every family"),
    ("instance_size", 0, {"catalog": [{"name": "r.xl", "vcpus": 16, "memory_mb": 65536, "baseline_gbps": 10},
                                      {"name": "r.xl", "vcpus": 8, "memory_mb": 32768, "baseline_gbps": 10}]},
     "catalog[1] repeats the name 'r.xl' of catalog[0]; each instance type must appear once (prices are looked "
     "up by name)"),
    ("instance_size", 0, {"workload.concurrent_calls": 1e308},
     "workload.concurrent_calls must be a finite number up to 1e+12 (got 1e+308)"),
    ("kamailio_rpc", 0, {"timeout": 1e308}, "timeout must be greater than 0 and at most 3600 seconds, got 1e+308"),
])
@pytest.mark.usefixtures("loopback_only", "fake_iproute2")
def test_inputs_once_accepted_silently_are_refused(monkeypatch, clouds, workdir, name, base, spoiled, message):
    done, _warnings = run_module(monkeypatch, clouds, workdir, name, base, spoiled)
    assert isinstance(done, Fail)
    assert done.args[0]["msg"] == message


@pytest.mark.usefixtures("loopback_only", "fake_iproute2")
def test_an_unknown_gce_zone_is_named_in_a_warning(monkeypatch, clouds, workdir):
    done, warnings = run_module(monkeypatch, clouds, workdir, "cloud_instances", 1, {"zones": ["europe-west9-z"]})
    assert isinstance(done, Exit) and done.args[0]["instances"] == []
    assert warnings == ["zones europe-west9-z are not zones of project itsp-lab (it has europe-west1-b, "
                        "europe-west1-c, europe-west1-d); nothing can be found there"]


@pytest.mark.usefixtures("loopback_only", "fake_iproute2")
def test_garbage_from_the_api_names_the_endpoint(monkeypatch, clouds, workdir):
    for name, base in (("instance_size", 1), ("instance_size", 2), ("cloud_instances", 0), ("cloud_instances", 1)):
        done, _warnings = run_module(monkeypatch, clouds, workdir, name, base, {"endpoint_url": "{garbage}"})
        assert isinstance(done, Fail), name
        failure = done.args[0]
        assert f"the answer from endpoint_url {clouds['garbage']} is not" in failure["msg"], failure["msg"]
        assert failure["error_code"] in ("MalformedResponse", "MALFORMED_RESPONSE")
        assert "\\x" not in failure["msg"] and len(failure["msg"]) < 400  # no raw body dumped
