"""Local stand-ins for the cloud APIs, on loopback only, counting requests on the server side.

    MotoServer       moto's EC2 in its own process; moto's request recorder counts the calls
    Ec2FaultProxy    a tiny HTTP proxy in front of moto that answers chosen actions with an EC2
                     error (RequestLimitExceeded...) a set number of times, and counts what it saw
    GceStandIn       lab/standins/gce_compute_api.py in its own process; /_stats counts the calls
    build_ec2_fleet  VPC + subnet in 198.18.0.0/16 per region, tagged instances, optional EIPs
    register_lab_instances  the lab's hosts as instances with their own private and public addresses
    MetadataStandIn  lab/metadata_server.py in its own process, answering 127.0.0.1 as one host

Shared by the integration tests (tests/integration/standins_fixtures.py wraps them in pytest
fixtures), the benches (bench/bench_discovery.py, bench/bench_sizing.py), so bench/ never imports
from tests/, and the lab (lab/labctl.py runs MotoServer on the controller's bridge address, the one
place it listens elsewhere than on 127.0.0.1).
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GCE_STANDIN = os.path.join(ROOT, "lab", "standins", "gce_compute_api.py")
LOOPBACK = "127.0.0.1"
# moto accepts any AMI id; this one is in its bundled list, which keeps it from warning.
AMI_ID = "ami-12c6146b"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def moto_env(url, base=None):
    """An environment for Ansible (AWS_URL) and boto3 that reaches moto at `url` with its fake
    credentials, and none of the machine's own (profiles, credential files, a session token)."""
    env = dict(os.environ if base is None else base, AWS_URL=url,
               AWS_ACCESS_KEY_ID=FAKE_CREDENTIALS["aws_access_key_id"],
               AWS_SECRET_ACCESS_KEY=FAKE_CREDENTIALS["aws_secret_access_key"])
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                 "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


def ansible_env(tmp_path):
    """Environment for running ansible/ansible-playbook against this checkout, with its own temp dirs."""
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
                ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
                ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_DEPRECATION_WARNINGS="false")


def free_port():
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _wait_http(url, process, deadline=20.0):
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - http://127.0.0.1 URLs built here
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {deadline}s")


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _post(url, data=b""):
    # text/plain: moto's Flask app would otherwise parse the body as a form and see no data.
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "text/plain"})  # noqa: S310 - http://127.0.0.1 URLs built here
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1 URLs built here
        return answer.read()


class MotoServer:
    """`python -m moto.server` on a free loopback port, with its request recorder on."""

    def __init__(self, workdir, host=LOOPBACK, port=None, record=True):
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.record = record
        self.recording = os.path.join(workdir, "moto_recording.jsonl")
        self.log_path = os.path.join(workdir, "moto_server.log")
        self.process = None

    def __enter__(self):
        return self.start()

    def start(self, detach=False):
        """Start and wait until it answers. detach: in its own session, to outlive the caller (the lab)."""
        env = dict(os.environ)
        if self.record:
            env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=self.recording)
        for name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
        ):
            env.pop(name, None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=detach,
            )
        _wait_http(self.url + "/moto-api/data.json", self.process)
        return self

    def __exit__(self, *_exc):
        _stop(self.process)

    def reset(self):
        """Forget every resource (all regions) and the recording."""
        _post(self.url + "/moto-api/reset")
        self.reset_recording()

    def reset_recording(self):
        _post(self.url + "/moto-api/recorder/reset-recording")

    def recorded_actions(self):
        """Counter of EC2/IAM Action names moto received since the last reset_recording()."""
        with urllib.request.urlopen(self.url + "/moto-api/recorder/download-recording", timeout=10) as answer:  # noqa: S310 - http://127.0.0.1 URLs built here
            lines = answer.read().decode().splitlines()
        actions = collections.Counter()
        for line in lines:
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            for action in parse_qs(body).get("Action", []):
                actions[action] += 1
        return actions

    def require_auth_after(self, count):
        """From `count` requests on, moto checks credentials against its IAM ("inf" turns it off)."""
        _post(self.url + "/moto-api/reset-auth", str(count).encode())

    def client(self, service, region, **credentials):
        import boto3

        return boto3.client(
            service, region_name=region, endpoint_url=self.url, **(credentials or FAKE_CREDENTIALS)
        )


HOP_HEADERS = ("content-length", "transfer-encoding", "connection", "date", "server")
EC2_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
)


class Ec2FaultProxy:
    """Forwards to moto, except that actions listed in `faults` get an error answer first.

    faults: {"DescribeInstances": {"status": 503, "code": "RequestLimitExceeded",
                                   "message": "Request limit exceeded.", "times": 2}}
    ("times": None = every request; "body" sends raw bytes instead of the EC2 error XML.)
    """

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.faults = {}
        self.seen = collections.Counter()
        self.faulted = collections.Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else keep-alive clients stall ~40 ms per call

            def log_message(self, *_args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = (parse_qs(body.decode("utf-8", "replace")).get("Action") or ["?"])[0]
                fault = proxy._take(action)
                if fault is None:
                    status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
                else:
                    status, headers = fault["status"], {"Content-Type": "text/xml;charset=UTF-8"}
                    payload = fault.get("body")
                    if payload is None:
                        payload = EC2_ERROR_XML.format(
                            code=fault["code"],
                            message=fault["message"],
                            request_id="00000000-0000-0000-0000-000000000000",
                        )
                    payload = payload.encode() if isinstance(payload, str) else payload
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.server.server_close()

    def _take(self, action):
        with self._lock:
            self.seen[action] += 1
            fault = self.faults.get(action)
            if fault is None:
                return None
            times = fault.get("times")
            if times is not None and self.faulted[action] >= times:
                return None
            self.faulted[action] += 1
            return fault

    def _forward(self, method, path, headers, body):
        connection = http.client.HTTPConnection(LOOPBACK, self.upstream_port, timeout=30)
        try:
            forwarded = {name: value for name, value in headers.items() if name.lower() != "connection"}
            connection.request(method, path, body=body, headers=forwarded)
            answer = connection.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            connection.close()


class GceStandIn:
    """lab/standins/gce_compute_api.py on a kernel-chosen loopback port."""

    def __init__(self, workdir, state, extra_args=()):
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.state_path = os.path.join(workdir, "gce_state.json")
        self.pidfile = os.path.join(workdir, "gce_standin.pid")
        self.log_path = os.path.join(workdir, "gce_standin.log")
        self.write_state(state)
        self.process = None
        self.url = None

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    GCE_STANDIN,
                    "--state",
                    self.state_path,
                    "--bind",
                    LOOPBACK,
                    "--port",
                    "0",
                    "--pidfile",
                    self.pidfile,
                    *self.extra_args,
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on "):
            _stop(self.process)
            raise RuntimeError(f"GCE stand-in did not start: {line!r}; see {self.log_path}")
        self.url = line.split(" ", 2)[2]
        return self

    def __exit__(self, *_exc):
        _stop(self.process)
        self.process.stdout.close()

    def write_state(self, state):
        """Atomically, so the stand-in never reads half a file; it re-reads on change."""
        handle, temporary = tempfile.mkstemp(dir=self.workdir, suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(state, out)
        os.replace(temporary, self.state_path)
        # mtime granularity: make sure the next request sees a new stamp even within the same tick.
        time.sleep(0.01)

    def stats(self):
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as answer:  # noqa: S310 - http://127.0.0.1 URLs built here
            return json.loads(answer.read())

    def reset_stats(self):
        _post(self.url + "/_stats/reset")


def gce_instance(
    name,
    zone,
    private_ip,
    public_ip=None,
    labels=None,
    machine_type="e2-standard-2",
    status="RUNNING",
    instance_id=None,
):
    nic = {"name": "nic0", "networkIP": private_ip}
    if public_ip:
        nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": public_ip}]
    instance = {
        "name": name,
        "zone": zone,
        "machineType": machine_type,
        "status": status,
        "labels": labels or {},
        "networkInterfaces": [nic],
    }
    if instance_id is not None:
        instance["id"] = str(instance_id)
    return instance


def create_vpc_subnet(ec2, subnet_cidr, zone, vpc_cidr="198.18.0.0/16"):
    """A VPC and one subnet in it; returns the subnet id."""
    vpc = ec2.create_vpc(CidrBlock=vpc_cidr)["Vpc"]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock=subnet_cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]


def allocate_elastic_ip(ec2, address, instance_id=None):
    """An Elastic IP with the address chosen (moto takes Address= as given), associated if instance_id."""
    allocation = ec2.allocate_address(Domain="vpc", Address=address)["AllocationId"]
    if instance_id:
        ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)
    return allocation


def build_ec2_fleet(
    moto, regions, per_region, tags=None, eips_per_region=0, batch=100, instance_type="c5.large"
):
    """Instances in a 198.18.0.0/16 VPC per region; returns {region: [instance ids]}.

    Region i gets subnet 198.18.i.0/24 (so up to ~250 instances per region); EIPs come from
    203.0.113.0/24 and then 198.51.100.0/24, numbered across regions.
    """
    public_pool = [f"203.0.113.{host}" for host in range(1, 255)]
    public_pool += [f"198.51.100.{host}" for host in range(1, 255)]
    fleet = {}
    for index, region in enumerate(regions, start=1):
        ec2 = moto.client("ec2", region)
        subnet = create_vpc_subnet(ec2, f"198.18.{index}.0/24", f"{region}a")
        ids = []
        remaining = per_region
        while remaining > 0:
            count = min(batch, remaining)
            tag_list = [{"Key": key, "Value": value} for key, value in (tags or {}).items()]
            kwargs = {}
            if tag_list:
                kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tag_list}]
            answer = ec2.run_instances(
                ImageId=AMI_ID,
                MinCount=count,
                MaxCount=count,
                SubnetId=subnet,
                InstanceType=instance_type,
                **kwargs,
            )
            ids.extend(instance["InstanceId"] for instance in answer["Instances"])
            remaining -= count
        for instance_id in ids[:eips_per_region]:
            allocate_elastic_ip(ec2, public_pool.pop(0), instance_id)
        fleet[region] = ids
    return fleet


def register_lab_instances(moto, hosts, subnet_cidr, elastic_ips=()):
    """The lab's hosts as EC2 instances, with the lab's own addresses.

    hosts: [{"name", "private_ipv4", "public_ipv4", "region", "zone", "instance_type", "tags": {}}]
    Per region one VPC (198.18.0.0/16) with one subnet `subnet_cidr` (the lab's bridge); each host
    runs with PrivateIpAddress = its private address, its tags, and its public address as an
    Elastic IP associated with it. elastic_ips: more EIPs ({"public_ipv4", "region", "host": name
    or None}), floating addresses a pair moves between its members.
    Returns {"instances": {name: {"instance_id", "network_interface_id", "region"}},
             "elastic_ips": {public address: {"allocation_id", "region", "host"}}}.
    """
    instances, addresses, subnets, clients = {}, {}, {}, {}
    for host in hosts:
        region = host["region"]
        ec2 = clients.setdefault(region, moto.client("ec2", region))
        if region not in subnets:
            subnets[region] = create_vpc_subnet(ec2, subnet_cidr, host["zone"])
        tag_list = [{"Key": key, "Value": value} for key, value in sorted(host["tags"].items())]
        instance = ec2.run_instances(
            ImageId=AMI_ID, MinCount=1, MaxCount=1, SubnetId=subnets[region],
            InstanceType=host["instance_type"], PrivateIpAddress=host["private_ipv4"],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
        )["Instances"][0]
        instances[host["name"]] = {
            "instance_id": instance["InstanceId"],
            "network_interface_id": instance["NetworkInterfaces"][0]["NetworkInterfaceId"],
            "region": region,
        }
        if host["public_ipv4"]:
            addresses[host["public_ipv4"]] = {
                "allocation_id": allocate_elastic_ip(ec2, host["public_ipv4"], instance["InstanceId"]),
                "region": region, "host": host["name"]}
    for extra in elastic_ips:
        ec2 = clients.setdefault(extra["region"], moto.client("ec2", extra["region"]))
        owner = instances.get(extra.get("host") or "", {}).get("instance_id")
        addresses[extra["public_ipv4"]] = {
            "allocation_id": allocate_elastic_ip(ec2, extra["public_ipv4"], owner),
            "region": extra["region"], "host": extra.get("host")}
    return {"instances": instances, "elastic_ips": addresses}


class MetadataStandIn:
    """lab/metadata_server.py on a kernel-chosen loopback port, answering 127.0.0.1 as `record`
    (a host record of its config: cloud, instance_id, addresses...)."""

    def __init__(self, workdir, record):
        self.config_path = os.path.join(workdir, "metadata.json")
        self.log_path = os.path.join(workdir, "metadata.log")
        with open(self.config_path, "w", encoding="utf-8") as out:
            json.dump({"hosts": {LOOPBACK: record}}, out)
        self.process = None
        self.url = None

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "lab", "metadata_server.py"), "--config", self.config_path,
                 "--bind", LOOPBACK, "--port", "0"], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while self.url is None and time.monotonic() < deadline:
            with open(self.log_path, encoding="utf-8") as log:
                for line in log:
                    if f"listening on {LOOPBACK}:" in line:
                        self.url = f"http://{LOOPBACK}:{int(line.split(LOOPBACK + ':')[1].split()[0])}"
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        if self.url is None:
            _stop(self.process)
            raise RuntimeError(f"metadata stand-in did not start; see {self.log_path}")
        return self

    def __exit__(self, *_exc):
        _stop(self.process)
