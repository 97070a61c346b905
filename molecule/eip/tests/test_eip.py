"""The Elastic IP moves with itsp-eip-move, and SIP to it follows through the lab's NAT.

Each host runs a tiny SIP responder that names itself (lab/sip_responder.py); OPTIONS sent from the
public side to the Elastic IP say which host the address leads to. moto's DescribeAddresses says
which instance holds it. The tests run in order: they move the one address back and forth.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from testlib import PROJECT, ansible_host, converge

from lab.standins.cloud import MotoServer

EIP = "203.0.113.31"
PORT = 5062
HOSTS = {"eipa": "198.18.0.31", "eipb": "198.18.0.32"}
RESPONDER = os.path.join(PROJECT, "lab", "sip_responder.py")
MOTO = MotoServer("/run/itsp-lab", host="198.18.0.1", port=5000)  # the lab's, already running


def lab_ec2():
    with open("/run/itsp-lab/state.json") as fh:
        return json.load(fh)["ec2"]


def holder():
    """The lab host the Elastic IP is associated with, per the EC2 API."""
    address = MOTO.client("ec2", "eu-west-1").describe_addresses(PublicIps=[EIP])["Addresses"][0]
    by_id = {v["instance_id"]: name for name, v in lab_ec2()["instances"].items()}
    return by_id.get(address.get("InstanceId"))


def answering():
    """Which host answers SIP OPTIONS sent to the Elastic IP from the public side ('' for none)."""
    res = subprocess.run(["ip", "netns", "exec", "itsp-pub", sys.executable, RESPONDER, "ask", EIP, str(PORT)],
                         capture_output=True, text=True, timeout=10, check=True)
    return res.stdout.strip()


def wait_for_answer_from(name, seconds):
    """Seconds until the Elastic IP answers as `name`, or None if it did not within `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if answering() == name:
            return time.monotonic() - started
    return None


@pytest.fixture(scope="module", autouse=True)
def responders():
    procs = [subprocess.Popen(["ip", "netns", "exec", f"itsph-{name}", sys.executable, RESPONDER, "serve", name,
                               address, str(PORT), "300"]) for name, address in HOSTS.items()]
    time.sleep(0.3)
    yield
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_address_starts_on_eipa():
    assert holder() == "eipa"
    assert wait_for_answer_from("eipa", 3) is not None


def test_the_mover_on_eipb_moves_the_address_and_its_traffic():
    started = time.monotonic()
    moved = ansible_host("eipb").run("/usr/local/sbin/itsp-eip-move")
    assert moved.rc == 0, moved.stderr
    assert holder() == "eipb"
    assert wait_for_answer_from("eipb", 5) is not None, "SIP to the Elastic IP did not reach eipb within 5 s"
    print(f"itsp-eip-move started -> SIP to {EIP} answered by eipb: {time.monotonic() - started:.2f} s")
    journal = ansible_host("eipb").run("journalctl -t itsp-eip-move --no-pager -n 5").stdout
    assert f"moved Elastic IP {lab_ec2()['elastic_ips'][EIP]['allocation_id']}" in journal


def test_negative_control_refused_credentials_move_nothing():
    eipa = ansible_host("eipa")
    eipa.run_expect([0], "sed 's/^access_key_id = .*/access_key_id = AKIANOTKNOWNANYWHERE/' "
                         "/etc/itsp/eip-move.conf > /run/eip-move-denied.conf")
    MOTO.require_auth_after(0)  # from now on moto checks keys against its (empty) IAM
    try:
        refused = eipa.run("/usr/local/sbin/itsp-eip-move --config /run/eip-move-denied.conf")
    finally:
        MOTO.require_auth_after("inf")
    assert refused.rc == 4, refused.stderr
    assert "not allowed to move Elastic IP" in refused.stderr and "AuthFailure" in refused.stderr
    assert holder() == "eipb"
    # The check the mover tests rely on fails here: the address did not come to eipa.
    assert wait_for_answer_from("eipa", 2) is None
    assert "not allowed" in eipa.run("journalctl -t itsp-eip-move --no-pager -n 5").stdout


def test_the_mover_on_eipa_takes_it_back():
    moved = ansible_host("eipa").run("/usr/local/sbin/itsp-eip-move")
    assert moved.rc == 0, moved.stderr
    assert holder() == "eipa"
    assert wait_for_answer_from("eipa", 5) is not None


def test_a_bad_allocation_id_is_refused_before_anything_changes():
    before = ansible_host("eipa").file("/etc/itsp/eip-move.conf").content_string
    rc, failures = converge("eipa", {"elastic_ip_allocation_id": "203.0.113.31"},
                            playbook=os.path.join("molecule", "eip", "converge.yml"))
    assert rc != 0
    assert any("elastic_ip_allocation_id '203.0.113.31' must be an allocation id" in f for f in failures), failures
    assert ansible_host("eipa").file("/etc/itsp/eip-move.conf").content_string == before
