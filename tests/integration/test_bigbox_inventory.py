"""inventories/bigbox: one variable shapes the pair. What the roles receive in each shape."""

import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARS = ["keepalived_enabled", "keepalived_vip", "kamailio_floating_address", "kamailio_floating_advertise_address",
        "rtpengine_interfaces", "rtpengine_floating_addresses", "rtpengine_redis_server", "itsp_lab_floating",
        "keepalived_priority"]


def _vars(host, mode):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="oneline", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    res = subprocess.run(["ansible", "-i", "inventories/bigbox", host, "-m", "debug",
                          "-a", "msg={{ {" + ", ".join(f"'{v}': {v}" for v in VARS) + "} }}",
                          "-e", f"itsp_bigbox_mode={mode}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    # oneline: "box1 | SUCCESS => {json}"
    return json.loads(res.stdout.split(" => ", 1)[1])["msg"]


def test_active_passive_puts_both_services_on_the_vip():
    box1 = _vars("box1", "active_passive")
    assert box1["keepalived_enabled"] in (True, "True")
    assert box1["keepalived_vip"] == box1["kamailio_floating_address"] == "198.18.0.30"
    assert box1["kamailio_floating_advertise_address"] == "203.0.113.30"
    assert box1["rtpengine_interfaces"] == [{"name": "external", "address": "198.18.0.30", "advertise": "203.0.113.30"}]
    assert box1["rtpengine_floating_addresses"] == ["198.18.0.30"]
    assert box1["rtpengine_redis_server"] == "198.18.0.31"
    assert box1["itsp_lab_floating"] == [{"private_ipv4": "198.18.0.30", "public_ipv4": "203.0.113.30"}]
    assert (box1["keepalived_priority"], _vars("box2", "active_passive")["keepalived_priority"]) == (150, 100)


@pytest.mark.parametrize("host", ["box1", "box2"])
def test_active_active_has_no_vip_and_each_box_its_own_address(host):
    box = _vars(host, "active_active")
    assert box["keepalived_enabled"] in (False, "False")
    assert box["kamailio_floating_address"] == box["kamailio_floating_advertise_address"] == ""
    assert box["rtpengine_interfaces"] == [] and box["rtpengine_floating_addresses"] == []
    assert box["rtpengine_redis_server"] == "" and box["itsp_lab_floating"] == []
