"""lab/metadata_server.py as a real process on 127.0.0.1, and the cloud_facts detection code
talking to it over real HTTP: every dialect, both Azure public-address paths, metal, every fault.

No root needed: the caller is 127.0.0.1, so the config maps 127.0.0.1 to the host under test.
The host's own addresses come from canned `ip -j` output, the one thing not real here.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_facts import CloudFacts, CloudFactsError
from ansible_collections.itsp.cluster.plugins.module_utils.providers.metal import LocalAddresses

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, "lab", "metadata_server.py")
# Generous for the exchanges that should succeed (the lab machine is small and shared); the
# timeout fault uses SHORT_TIMEOUT so that test stays quick.
TIMEOUT = 2.0
SHORT_TIMEOUT = 0.3

AWS = {
    "cloud": "aws", "name": "proxy1", "instance_id": "i-0a11bb22cc33dd44e", "instance_type": "c6i.large",
    "region": "eu-west-1", "zone": "eu-west-1a", "mac": "02:18:00:00:00:11", "private_ipv4": "198.18.0.11",
    "public_ipv4": "203.0.113.11", "ipv6": [], "hop_limit": 2, "fault": None,
}
GCE = dict(AWS, cloud="gce", name="media1", instance_id="4711000000000000021", instance_type="e2-standard-2",
           region="europe-west1", zone="europe-west1-b", mac="42:01:c6:12:00:15", private_ipv4="198.18.0.21",
           public_ipv4="203.0.113.21", ipv6=["2001:db8:21::5"], hop_limit=None)
AZURE = dict(AWS, cloud="azure", name="proxy3", instance_id="4c2e06a4-1f4e-4b6a-9c43-6a1b2c3d4e5f",
             instance_type="Standard_D2s_v5", region="westeurope", zone="2", mac="00:0d:3a:18:00:31",
             private_ipv4="198.18.0.31", public_ipv4="198.51.100.31", hop_limit=None)
METAL = dict(AWS, cloud="metal", name="edge9", instance_id="none", mac="02:18:00:00:00:41",
             private_ipv4="198.18.0.41", public_ipv4=None, hop_limit=None)


def ip_json(record):
    """`ip -j addr show` and `ip -j -4 route show default` of a host holding only its private address."""
    addr = [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "address": "00:00:00:00:00:00",
         "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
        {"ifindex": 2, "ifname": "ens5", "flags": ["BROADCAST", "UP"], "address": record["mac"],
         "addr_info": [{"family": "inet", "local": record["private_ipv4"], "prefixlen": 24,
                        "scope": "global"}]
         + [{"family": "inet6", "local": a, "prefixlen": 64, "scope": "global"} for a in record["ipv6"]]},
    ]
    route = [{"dst": "default", "gateway": "198.18.0.1", "dev": "ens5", "flags": []}]
    return json.dumps(addr), json.dumps(route)


class Stand_in:
    def __init__(self, process, port, log_path):
        self.process = process
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log(self):
        with open(self.log_path, encoding="utf-8") as handle:
            return handle.read()

    def log_lines(self, text, count):
        """The log lines containing text, once there are count of them (the server writes each
        line just after sending its reply, so the client can be a moment ahead)."""
        deadline = time.monotonic() + 5
        while True:
            lines = [line for line in self.log().splitlines() if text in line]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


@pytest.fixture
def start(tmp_path):
    started = []

    def _start(hosts, *extra):
        config = tmp_path / f"config{len(started)}.json"
        config.write_text(json.dumps({"hosts": hosts}))
        log_path = tmp_path / f"server{len(started)}.log"
        pidfile = tmp_path / f"server{len(started)}.pid"
        log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed when the process ends
        process = subprocess.Popen(
            [sys.executable, SERVER, "--config", str(config), "--bind", "127.0.0.1", "--port", "0",
             "--pidfile", str(pidfile), *extra], stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        port = None
        while port is None and time.monotonic() < deadline:
            text = log_path.read_text()
            assert process.poll() is None, text
            for line in text.splitlines():
                if "listening on 127.0.0.1:" in line:
                    port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
            time.sleep(0.02)
        assert port, "the stand-in did not start: " + log_path.read_text()
        stand_in = Stand_in(process, port, log_path)
        stand_in.pidfile = pidfile
        started.append(stand_in)
        return stand_in

    yield _start
    for stand_in in started:
        if stand_in.process.poll() is None:
            stand_in.process.send_signal(signal.SIGTERM)
            stand_in.process.wait(timeout=5)


def detect(stand_in, record, sleeps=None, timeout=TIMEOUT, **options):
    addr, route = ip_json(record)
    if sleeps is not None:
        options["sleep"] = lambda seconds: (sleeps.append(seconds), time.sleep(seconds))
    # The stand-in plays the internet with documentation ranges, as the lab does (itsp_public_networks).
    options.setdefault("public_networks", ["203.0.113.0/24", "198.51.100.0/24"])
    return CloudFacts(
        local_addresses=lambda: LocalAddresses.from_ip_json(addr, route),
        metadata_endpoint=stand_in.endpoint, timeout=timeout, **options,
    ).gather()


def raw(stand_in, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", stand_in.port, timeout=2)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# -- the dialects -------------------------------------------------------------------------------------

def test_aws_imdsv2(start):
    stand_in = start({"127.0.0.1": AWS})
    assert detect(stand_in, AWS) == {
        "provider": "aws", "region": "eu-west-1", "zone": "eu-west-1a",
        "instance_id": "i-0a11bb22cc33dd44e", "instance_type": "c6i.large",
        "source": f"aws imdsv2 http://127.0.0.1:{stand_in.port}",
        "interfaces": [{"name": "ens5", "mac": "02:18:00:00:00:11", "private_ipv4": "198.18.0.11",
                        "public_ipv4": "203.0.113.11", "ipv6": [], "nat": "one_to_one"}],
        "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11", "nat": "one_to_one", "warnings": [],
    }


def test_aws_without_public_address(start):
    record = dict(AWS, public_ipv4=None)
    stand_in = start({"127.0.0.1": record})
    facts = detect(stand_in, record)
    assert (facts["provider"], facts["public_ipv4"], facts["nat"]) == ("aws", None, "none")
    assert facts["warnings"] == []


def test_aws_protocol_details(start):
    stand_in = start({"127.0.0.1": AWS})
    assert raw(stand_in, "GET", "/latest/meta-data/instance-id")[0] == 401  # IMDSv1 refused
    for ttl in ("0", "21601", "soon"):
        ttl_header = {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        assert raw(stand_in, "PUT", "/latest/api/token", ttl_header)[0] == 400
    assert raw(stand_in, "PUT", "/latest/api/token")[0] == 400
    status, headers, token = raw(stand_in, "PUT", "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    assert (status, headers["X-aws-ec2-metadata-token-ttl-seconds"]) == (200, "21600")
    auth = {"X-aws-ec2-metadata-token": token.decode()}
    meta = "/latest/meta-data/"
    assert raw(stand_in, "GET", meta + "instance-id", auth)[2] == b"i-0a11bb22cc33dd44e"
    assert raw(stand_in, "GET", meta + "network/interfaces/macs/", auth)[2] == b"02:18:00:00:00:11/"
    assert raw(stand_in, "GET", meta + "instance-id", {"X-aws-ec2-metadata-token": "forged"})[0] == 401
    # A short-lived token expires.
    _, _, short = raw(stand_in, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "1"})
    assert raw(stand_in, "GET", meta + "mac", {"X-aws-ec2-metadata-token": short.decode()})[0] == 200
    time.sleep(1.1)
    assert raw(stand_in, "GET", meta + "mac", {"X-aws-ec2-metadata-token": short.decode()})[0] == 401
    # Other dialects do not exist for an AWS host.
    assert raw(stand_in, "GET", "/computeMetadata/v1/instance/id", {"Metadata-Flavor": "Google"})[0] == 404
    assert raw(stand_in, "GET", "/metadata/instance?api-version=2021-02-01", {"Metadata": "true"})[0] == 404


def test_gce(start):
    stand_in = start({"127.0.0.1": GCE})
    assert detect(stand_in, GCE) == {
        "provider": "gce", "region": "europe-west1", "zone": "europe-west1-b",
        "instance_id": "4711000000000000021", "instance_type": "e2-standard-2",
        "source": f"gce metadata http://127.0.0.1:{stand_in.port}",
        "interfaces": [{"name": "ens5", "mac": "42:01:c6:12:00:15", "private_ipv4": "198.18.0.21",
                        "public_ipv4": "203.0.113.21", "ipv6": ["2001:db8:21::5"], "nat": "one_to_one"}],
        "private_ipv4": "198.18.0.21", "public_ipv4": "203.0.113.21", "nat": "one_to_one", "warnings": [],
    }
    status, headers, body = raw(stand_in, "GET", "/computeMetadata/v1/instance/id")
    assert (status, body) == (403, b"Your client does not have permission to get URL from this server. "
                                   b"Missing Metadata-Flavor:Google header.\n")
    status, headers, body = raw(stand_in, "GET", "/computeMetadata/v1/instance/zone",
                                {"Metadata-Flavor": "Google"})
    assert (status, headers["Metadata-Flavor"], body) == (
        200, "Google", b"projects/123456789012/zones/europe-west1-b")


def test_azure_public_in_instance_document(start):
    stand_in = start({"127.0.0.1": AZURE})
    assert detect(stand_in, AZURE) == {
        "provider": "azure", "region": "westeurope", "zone": "2",
        "instance_id": "4c2e06a4-1f4e-4b6a-9c43-6a1b2c3d4e5f", "instance_type": "Standard_D2s_v5",
        "source": f"azure imds http://127.0.0.1:{stand_in.port}",
        "interfaces": [{"name": "ens5", "mac": "00:0d:3a:18:00:31", "private_ipv4": "198.18.0.31",
                        "public_ipv4": "198.51.100.31", "ipv6": [], "nat": "one_to_one"}],
        "private_ipv4": "198.18.0.31", "public_ipv4": "198.51.100.31", "nat": "one_to_one", "warnings": [],
    }


def test_azure_public_via_standard_load_balancer(start):
    record = dict(AZURE, azure_public_via="loadbalancer")
    stand_in = start({"127.0.0.1": record})
    _, _, body = raw(stand_in, "GET", "/metadata/instance?api-version=2021-02-01", {"Metadata": "true"})
    assert json.loads(body)["network"]["interface"][0]["ipv4"]["ipAddress"][0]["publicIpAddress"] == ""
    facts = detect(stand_in, record)
    assert facts["source"] == (f"azure imds http://127.0.0.1:{stand_in.port} "
                               "(public address from /metadata/loadbalancer)")
    assert (facts["public_ipv4"], facts["nat"]) == ("198.51.100.31", "one_to_one")


def test_azure_protocol_errors(start):
    stand_in = start({"127.0.0.1": AZURE})
    status, _, body = raw(stand_in, "GET", "/metadata/instance?api-version=2021-02-01")
    assert (status, json.loads(body)) == (
        400, {"error": "Bad request. Required metadata header not specified"})
    status, _, body = raw(stand_in, "GET", "/metadata/instance", {"Metadata": "true"})
    assert status == 400
    assert json.loads(body)["error"].startswith("Bad request. api-version was not specified in the request.")


def test_metal_host_gets_404_everywhere(start):
    stand_in = start({"127.0.0.1": METAL})
    for method, path, headers in (
            ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}),
            ("GET", "/computeMetadata/v1/instance/id", {"Metadata-Flavor": "Google"}),
            ("GET", "/metadata/instance?api-version=2021-02-01", {"Metadata": "true"})):
        assert raw(stand_in, method, path, headers)[0] == 404
    facts = detect(stand_in, METAL)
    assert (facts["provider"], facts["source"], facts["private_ipv4"], facts["public_ipv4"],
            facts["nat"]) == ("metal", "local addresses (ip -j addr)", "198.18.0.41", None, "none")
    assert facts["warnings"] == ["no public IPv4 on this host, so public_ipv4 is null; if the internet "
                                 "reaches it through NAT, set public_ipv4 (or stun_server)"]


def test_unknown_caller_is_404(start):
    stand_in = start({"198.18.0.11": AWS})
    assert raw(stand_in, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})[0] == 404
    assert detect(stand_in, METAL, public_ipv4="203.0.113.41")["provider"] == "metal"


def test_refused_endpoint_is_metal_quickly():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stand_in = Stand_in(None, port, None)
    began = time.monotonic()
    facts = detect(stand_in, METAL, public_ipv4="203.0.113.41")
    assert time.monotonic() - began < TIMEOUT / 2  # refused at once: no timeout waited for
    assert (facts["provider"], facts["public_ipv4"], facts["nat"]) == ("metal", "203.0.113.41", "one_to_one")
    assert facts["source"] == "local addresses (ip -j addr) + static public_ipv4"


def test_refused_endpoint_without_metal_fails():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CloudFactsError) as failure:
        detect(Stand_in(None, port, None), AWS, providers=["aws", "gce"])
    assert str(failure.value) == (
        f"no metadata service answered at http://127.0.0.1:{port} (aws tried; http://127.0.0.1:{port}: "
        "connection refused); on bare metal add metal to providers, in a cloud check that the host can "
        f"reach http://127.0.0.1:{port} (a firewall, a network namespace, a container without the hop limit)")


# -- faults ---------------------------------------------------------------------------------------------

def test_fault_timeout_moves_on_with_a_warning(start):
    record = dict(AWS, fault="timeout")
    stand_in = start({"127.0.0.1": record}, "--fault-delay", "3")
    began = time.monotonic()
    facts = detect(stand_in, record, timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - began
    # The token PUT and the GET probing for a hop-limit problem each wait one timeout; gce and
    # azure are not asked at the same silent endpoint (they would get an immediate, logged 404).
    assert 2 * SHORT_TIMEOUT <= elapsed < 4 * SHORT_TIMEOUT + 1.0
    time.sleep(0.2)
    assert "computeMetadata" not in stand_in.log() and "/metadata/" not in stand_in.log()
    assert facts["provider"] == "metal"
    assert facts["warnings"] == [
        f"aws imdsv2 at http://127.0.0.1:{stand_in.port}: connected, but no reply to PUT /latest/api/token "
        "within 0.3 s; did not ask the same endpoint again",
        "no public IPv4 on this host, so public_ipv4 is null; if the internet reaches it through NAT, set "
        "public_ipv4 (or stun_server)",
    ]
    assert "(fault timeout)" not in stand_in.log()  # still sleeping: logged when it closes


def test_fault_401_names_the_hop_limit(start):
    record = dict(AWS, fault="401")
    stand_in = start({"127.0.0.1": record})
    with pytest.raises(CloudFactsError) as failure:
        detect(stand_in, record)
    assert str(failure.value) == (
        f"aws imdsv2 at http://127.0.0.1:{stand_in.port}: PUT /latest/api/token answered HTTP 401; IMDS "
        "refused to issue a token; the token reply is sent with the instance's HttpPutResponseHopLimit as "
        "IP TTL and is dropped when it has to cross more hops (a container, a proxy); raise it with `aws ec2 "
        "modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2` or run this on "
        "the instance itself")


def test_fault_401_with_static_addresses_uses_them(start):
    record = dict(AWS, fault="401")
    stand_in = start({"127.0.0.1": record})
    facts = detect(stand_in, record, public_ipv4="203.0.113.11")
    assert (facts["provider"], facts["private_ipv4"], facts["public_ipv4"], facts["nat"]) == (
        "aws", "198.18.0.11", "203.0.113.11", "one_to_one")
    assert facts["source"] == f"static (public_ipv4; aws imdsv2 http://127.0.0.1:{stand_in.port} failed)"
    assert len(facts["warnings"]) == 1
    assert facts["warnings"][0].startswith(
        f"aws imdsv2 at http://127.0.0.1:{stand_in.port}: PUT /latest/api/token answered HTTP 401; ")
    assert facts["warnings"][0].endswith(
        "run this on the instance itself. Used the static addresses given instead")


def test_fault_403_on_gce(start):
    record = dict(GCE, fault="403")
    stand_in = start({"127.0.0.1": record})
    with pytest.raises(CloudFactsError) as failure:
        detect(stand_in, record)
    assert str(failure.value) == (
        f"gce metadata at http://127.0.0.1:{stand_in.port}: GET /computeMetadata/v1/instance/id answered "
        "HTTP 403; the metadata server refuses requests without the header Metadata-Flavor: Google and "
        "requests that went through a proxy (X-Forwarded-For); check for an HTTP proxy between this host "
        f"and http://127.0.0.1:{stand_in.port}")


def test_fault_403_on_aws(start):
    record = dict(AWS, fault="403")
    stand_in = start({"127.0.0.1": record})
    with pytest.raises(CloudFactsError) as failure:
        detect(stand_in, record)
    assert str(failure.value) == (
        f"aws imdsv2 at http://127.0.0.1:{stand_in.port}: PUT /latest/api/token answered HTTP 403; the "
        "instance metadata service is turned off for this instance (HttpEndpoint=disabled) or the request "
        "went through a proxy (IMDS refuses X-Forwarded-For); enable it with `aws ec2 "
        "modify-instance-metadata-options --instance-id ID --http-endpoint enabled`")


GARBAGE_PREVIEW = "'<html><body>\\\\xff\\\\xfe captive portal {not metadata</body></html>\\n'"


@pytest.mark.parametrize("record, where, what", [
    (AWS, "aws imdsv2 at {e}: /latest/api/token", "an IMDSv2 token"),
    (GCE, "gce metadata at {e}: /computeMetadata/v1/instance/id", "an instance id"),
    (AZURE, "azure imds at {e}: /metadata/instance?api-version=2021-02-01", "JSON"),
], ids=["aws", "gce", "azure"])
def test_fault_garbage(start, record, where, what):
    record = dict(record, fault="garbage")
    stand_in = start({"127.0.0.1": record})
    with pytest.raises(CloudFactsError) as failure:
        detect(stand_in, record)
    endpoint = stand_in.endpoint
    assert str(failure.value) == (
        f"{where.format(e=endpoint)} did not return {what} (got {GARBAGE_PREVIEW}); check that {endpoint} is "
        "the cloud's metadata service and not a proxy, a captive portal or a mock")


def test_fault_429_retries_then_fails(start):
    record = dict(AZURE, fault="429")
    stand_in = start({"127.0.0.1": record})
    sleeps = []
    with pytest.raises(CloudFactsError) as failure:
        detect(stand_in, record, sleeps=sleeps)
    assert sleeps == [1.0, 1.0]  # Retry-After: 1, between three tries
    assert str(failure.value) == (
        f"azure imds at http://127.0.0.1:{stand_in.port}: throttled (HTTP 429) 3 times in a row on GET "
        "/metadata/instance?api-version=2021-02-01; something on this host is polling the metadata service "
        "hard (an agent in a loop?) - find it, or run this again later")
    assert len(stand_in.log_lines("GET /metadata/instance?api-version=2021-02-01 429", 3)) == 3


# -- the process itself -----------------------------------------------------------------------------------

def test_sigterm_stops_cleanly_and_removes_the_pidfile(start):
    stand_in = start({"127.0.0.1": AWS})
    assert int(stand_in.pidfile.read_text()) == stand_in.process.pid
    stand_in.process.send_signal(signal.SIGTERM)
    assert stand_in.process.wait(timeout=5) == 0
    assert not stand_in.pidfile.exists()
    assert stand_in.log().rstrip().endswith("metadata_server: stopped")


def test_one_log_line_per_request(start):
    stand_in = start({"127.0.0.1": AWS})
    raw(stand_in, "GET", "/latest/meta-data/")
    stand_in.log_lines("/latest/meta-data/", 1)
    time.sleep(0.1)  # room for a second line, which must not come
    lines = stand_in.log_lines("/latest/meta-data/", 1)
    assert len(lines) == 1
    assert lines[0].split(" metadata_server: ")[1].startswith(
        "127.0.0.1 proxy1 GET /latest/meta-data/ 401 ")
    assert lines[0].endswith("(imdsv1 refused)")


def test_bad_config_is_refused_with_the_reason(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hosts": {"198.18.0.11": dict(AWS, falut=None)}}))
    result = subprocess.run([sys.executable, SERVER, "--config", str(config), "--bind", "127.0.0.1",
                             "--port", "0"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert result.stderr.split(" metadata_server: ")[1] == (
        f"{config}: hosts['198.18.0.11']: unknown keys: falut (allowed: cloud, name, instance_id, "
        "instance_type, region, zone, mac, private_ipv4, public_ipv4, ipv6, hop_limit, fault, "
        "azure_public_via)\n")


def test_sighup_rereads_the_config_and_keeps_the_old_one_when_broken(start, tmp_path):
    stand_in = start({"127.0.0.1": AWS})
    config = tmp_path / "config0.json"
    config.write_text(json.dumps({"hosts": {"127.0.0.1": GCE}}))
    stand_in.process.send_signal(signal.SIGHUP)
    assert len(stand_in.log_lines("reloaded", 1)) == 1
    assert detect(stand_in, GCE)["provider"] == "gce"
    config.write_text("{not json")
    stand_in.process.send_signal(signal.SIGHUP)
    assert len(stand_in.log_lines("reload failed, keeping the old config", 1)) == 1
    assert detect(stand_in, GCE)["provider"] == "gce"
