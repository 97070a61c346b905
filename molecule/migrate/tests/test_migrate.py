"""The big box moved to cloud instances with live traffic: playbooks/migrate.yml finds the cloud
hosts through inventories/aws (amazon.aws.aws_ec2 against the lab's EC2 API); every phase
runs under bounded SIPp load (calls with RTP) with a population registered on the big box before
the migration. After each phase: 0 failed calls, the contact counts of every proxy, the sampled
users found on the nodes that serve them. Also: bad input and out-of-order phases stop before
anything changes, check mode changes nothing (also build's, on nodes never built), rollback from
shift, and the negative control (retire without drain cuts calls). The tests run in file order and
share the lab."""

import json
import os
import re
import signal
import subprocess
import time

import boto3
import pytest
from testlib import PROJECT, platforms, sip

from lab import load
from lab.load import contacts, lab_exec, service_state
from lab.standins.cloud import FAKE_CREDENTIALS, moto_env

P = platforms()
BOX = "box1"
CLOUD = ["cloud1", "cloud2", "cloud3"]
RELAY = "media5"
PROXIES = [BOX] + CLOUD
USERS = 60
SAMPLE = [f"mig{i:04d}" for i in range(0, USERS, 6)]
STATE = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "migration-state.json")
TIMINGS = {}
LAB_AWS = "http://198.18.0.1:5000"  # the lab's AWS APIs (moto): EC2, and Route 53 for the entry's name
INVENTORIES = ["-i", os.environ["MOLECULE_INVENTORY_FILE"], "-i", os.path.join(PROJECT, "inventories", "aws")]
# The scenario's fleet is 3 proxies + 1 relay; size for a workload that needs no more (no redundancy).
SIZING = {"migrate_sizing_redundancy": 0,
          "migrate_workload": {"concurrent_calls": 50, "calls_per_second": 2, "registered_endpoints": 500}}


def pub(name):
    return P[name]["public_ipv4"]


def ansible_env(result_format="yaml"):
    """For ansible-playbook/-inventory with INVENTORIES: Molecule's (box1; how to reach every lab
    host) and the target's, inventories/aws (amazon.aws.aws_ec2) against the lab's EC2 API."""
    return moto_env(LAB_AWS, dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT, "ansible.cfg"),
                                  ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                                  ANSIBLE_CALLBACK_RESULT_FORMAT=result_format,
                                  ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".collections")))


def playbook(phase, extra=None, check=False):
    return ["ansible-playbook", *INVENTORIES, os.path.join(PROJECT, "playbooks", "migrate.yml"),
            "-e", json.dumps(dict(SIZING, migrate_phase=phase, migrate_state_file=STATE, **(extra or {}))),
            *(["--check"] if check else [])]


def migrate(phase, extra=None, check=False, timeout=600):
    """playbooks/migrate.yml on both inventories; (rc, stdout)."""
    cmd, env = playbook(phase, extra, check), ansible_env(result_format="json")
    started = time.monotonic()
    res = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    took = time.monotonic() - started
    report = re.findall(r'"(MIGRATION [^"]*|new calls: [^"]*|next: [^"]*|node  [^"]*|(?:box|cloud|media)\d  [^"]*)"',
                        res.stdout)
    print(f"--- migrate {phase}{' --check' if check else ''}: rc {res.returncode} in {took:.1f} s")
    print("\n".join(report[-12:]))
    if not check and res.returncode == 0:
        TIMINGS[phase] = round(took, 1)
    return res.returncode, res.stdout + res.stderr


def migrate_killed_after(phase, seconds):
    """Start the phase and kill ansible-playbook (SIGKILL) after `seconds`; the last task it named."""
    cmd, env = playbook(phase), ansible_env()
    with subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the playbook and its workers, as a crash would
            out, _ = proc.communicate(timeout=30)
    tasks = re.findall(r"^TASK \[([^\]]*)\]", out, re.M)
    assert proc.returncode != 0, "the phase ended before it was killed: kill it earlier"
    return tasks[-1] if tasks else ""


def failure(out):
    msgs = re.findall(r'"msg": "([^"]*)"', out)
    return [m for m in msgs if m != "All assertions passed"][-3:] or [out[-2000:]]


def completed():
    with open(STATE) as fh:
        return json.load(fh)["completed"]


def found(name, users):
    return sum("Contact" in lab_exec(name, *load.KAMCTL, "ul.lookup", "location", u)
               or "Address" in lab_exec(name, *load.KAMCTL, "ul.lookup", "location", u) for u in users)


def Load(proxies, registrar=BOX, seconds=300, rate=1, hold=4, tag=0):  # noqa: N802 (stands for the class)
    return load.Load({n: pub(n) for n in proxies}, pub(registrar), seconds, rate=rate, hold=hold, tag=tag)


def under_load(phase, proxies, registrar=BOX, extra=None, tag=0, before=None):
    """The phase while calls go through `proxies` (after `before()`, whose result is printed, when
    given); asserts it passed; returns the load results and the contacts of every proxy."""
    traffic = Load(proxies, registrar=registrar, tag=tag)
    time.sleep(3)
    prelude = before() if before else None
    rc, out = migrate(phase, extra)
    time.sleep(2)
    traffic.stop()
    results = traffic.finish()
    counts = {n: contacts(n) for n in PROXIES}
    print(f"{phase}{f' after {prelude}' if before else ''}: calls "
          f"{({n: (r['ok'], r['failed']) for n, r in results.items()})} (ok, failed); contacts {counts}")
    assert rc == 0, failure(out)
    assert all(r["failed"] == 0 and r["ok"] > 0 for r in results.values()), results
    return results, counts


@pytest.fixture(scope="module")
def population():
    if os.path.exists(STATE):
        os.unlink(STATE)
    res = sip.register_many(pub(BOX), [f"mig{i:04d}" for i in range(USERS)])
    assert res.ok, res.stdout[-800:]
    seen = load.wait_contacts([BOX], USERS)
    assert seen[BOX] >= USERS, seen
    return seen


def test_the_cloud_hosts_come_from_amazon_aws_ec2():
    # What migrate.yml sees: the cloud hosts as the plugin found them in the lab's EC2 API (moto's
    # instance ids, groups from the itsp:role tag), reached with the lab's login, not the fleet's.
    res = subprocess.run(["ansible-inventory", *INVENTORIES, "--list"], cwd=PROJECT, env=ansible_env(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0 and "Failed to parse" not in res.stderr, res.stderr[-2000:]
    listing = json.loads(res.stdout)
    hostvars = listing["_meta"]["hostvars"]
    ec2 = boto3.client("ec2", endpoint_url=LAB_AWS, region_name="eu-west-1", **FAKE_CREDENTIALS)
    moto_ids = {t["Value"]: i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                for i in r["Instances"] for t in i.get("Tags", []) if t["Key"] == "Name"}
    found_ids = {n: hostvars[n].get("instance_id") for n in hostvars}
    print(f"aws_ec2 found {sorted(listing['aws_ec2']['hosts'])}; instance ids {found_ids}; moto {moto_ids}")
    assert sorted(listing["aws_ec2"]["hosts"]) == sorted(CLOUD + [RELAY])
    assert {n: found_ids[n] for n in CLOUD + [RELAY]} == {n: moto_ids[n] for n in CLOUD + [RELAY]}
    assert found_ids[BOX] is None
    assert sorted(listing["kamailio"]["hosts"]) == sorted(PROXIES)
    assert sorted(listing["rtpengine"]["hosts"]) == [BOX, RELAY]
    logins = {(hostvars[n]["ansible_user"], hostvars[n]["ansible_become"], hostvars[n]["ansible_ssh_private_key_file"])
              for n in CLOUD + [RELAY]}
    assert logins == {("root", False, "/var/cache/itsp-cluster/lab/ssh/id_ed25519")}, logins


def test_bad_input_and_order_stop_before_anything_changes(population):
    rc, out = migrate("shift")
    assert rc != 0 and "migrate_phase=shift is out of order" in out, failure(out)
    rc, out = migrate("preflight", {"migrate_target_group": "nowhere"})
    assert rc != 0 and "migrate_target_group: nowhere resolves no hosts" in out, failure(out)
    rc, out = migrate("preflight", {"migrate_workload": {"concurrent_calls": 20000, "calls_per_second": 200,
                                                         "registered_endpoints": 200000}})
    assert rc != 0 and "Launch more instances first" in out, failure(out)
    assert not os.path.exists(STATE)
    assert service_state("cloud1", "kamailio")[1] != "active"  # nothing was built


def test_preflight_build_join_under_load(population):
    under_load("preflight", [BOX])
    assert completed() == "preflight"
    # Check mode of build on cloud nodes never built: it names them and what build does there,
    # and installs nothing (out-of-order phases are tested before and after).
    rc, out = migrate("build", check=True)
    assert rc == 0, failure(out)
    plan = re.search(r"CHECK MODE: not built yet[^\"]*", out)
    print(f"build --check on fresh nodes: {plan and plan.group(0)}")
    assert plan and all(n in plan.group(0) for n in CLOUD + [RELAY]), out[-3000:]
    assert lab_exec("cloud1", "sh", "-c", "test -e /usr/sbin/kamailio && echo installed || echo none") == "none"
    assert completed() == "preflight"
    under_load("build", [BOX])
    assert all(service_state(n, "kamailio")[1] == "active" for n in CLOUD)
    # join killed half-way (SIGKILL of ansible-playbook while the cloud proxies are configured),
    # then run again: it finishes, records one join, and nothing is lost.
    _, counts = under_load("join", [BOX], before=lambda: "a join killed after 20 s (it had printed: "
                                                    f"{migrate_killed_after('join', 20)!r})")
    with open(STATE) as fh:
        assert [h["phase"] for h in json.load(fh)["history"]] == ["preflight", "build", "join"]
    # Every registration of the big box is on every cloud proxy (the callee of the load too).
    assert all(counts[n] >= counts[BOX] >= USERS for n in CLOUD), counts
    seen = {n: found(n, SAMPLE) for n in CLOUD}
    print(f"sampled pre-migration users found after join: {seen} of {len(SAMPLE)}")
    assert all(v == len(SAMPLE) for v in seen.values()), seen


def test_shift_check_mode_changes_nothing(population):
    rc, out = migrate("shift", check=True)
    assert rc == 0, failure(out)
    assert "CHECK MODE" in out
    assert sip.options(pub(BOX)).ok  # still takes calls (200, not 503 Draining)
    assert completed() == "join"


@pytest.fixture
def route53():
    """The SIP entry's name in the lab's Route 53 (moto, on the lab's bridge): sip.example.net, on
    the big box; and the settings that let shift and rollback switch it."""
    client = boto3.client("route53", endpoint_url=LAB_AWS, region_name="us-east-1", **FAKE_CREDENTIALS)
    zone = client.create_hosted_zone(Name="example.net.", CallerReference=f"migrate-{time.time()}")["HostedZone"]["Id"]
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {"Name": "sip.example.net.", "Type": "A", "TTL": 60,
                              "ResourceRecords": [{"Value": pub(BOX)}]}}]})

    def entry():
        for rrset in client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]:
            if rrset["Name"] == "sip.example.net." and rrset["Type"] == "A":
                return sorted(r["Value"] for r in rrset["ResourceRecords"])
        return []

    settings = {"migrate_dns_records": [{"zone": "example.net", "record": "sip.example.net"}],
                "dns_records_endpoint_url": LAB_AWS, "dns_records_access_key": FAKE_CREDENTIALS["aws_access_key_id"],
                "dns_records_secret_key": FAKE_CREDENTIALS["aws_secret_access_key"], "dns_records_wait": False}
    return settings, entry  # the zone goes with the lab's moto


def test_shift_then_rollback_under_load(population, route53):
    settings, entry = route53
    under_load("shift", [BOX], extra=settings)
    health = sip.request(pub(BOX), pub(BOX), method="OPTIONS")
    assert health["final"] == 503, health
    print(f"after shift sip.example.net A {entry()}")
    assert entry() == sorted(pub(n) for n in CLOUD)
    under_load("rollback", [BOX], extra=settings, tag=1)
    assert sip.options(pub(BOX)).ok
    print(f"after rollback sip.example.net A {entry()}")
    assert entry() == [pub(BOX)]
    assert completed() == "join"


def test_negative_control_retire_without_drain_cuts_calls(population):
    traffic = Load([BOX], hold=6, tag=2)
    time.sleep(5)
    rc, out = migrate("retire", {"migrate_skip_order_check": True})
    time.sleep(3)
    traffic.stop()
    results = traffic.finish()
    print(f"negative control (retire without drain, order check off): rc {rc}, calls {results[BOX]['ok']} ok, "
          f"{results[BOX]['failed']} failed")
    assert rc == 0, failure(out)
    assert results[BOX]["failed"] > 0, results
    # Put the big box back: join starts its services; it pulls the registrations back from the cloud.
    rc, out = migrate("join")
    assert rc == 0, failure(out)
    seen = load.wait_contacts([BOX], USERS, timeout=30)
    print(f"after re-join the big box holds {seen} contacts again")
    assert seen[BOX] >= USERS and found(BOX, SAMPLE) == len(SAMPLE), seen


def test_shift_drain_retire_under_load(population):
    # Calls of the big box's own, held past the shift: drain waits for them.
    own = Load([BOX], seconds=3, hold=20, tag=3)
    time.sleep(1)
    under_load("shift", [BOX])
    started = time.monotonic()
    under_load("drain", [BOX, "cloud1"], tag=1)
    drain_took = time.monotonic() - started
    own_results = own.finish()
    print(f"drain {drain_took:.1f} s; the big box's own calls held 20 s: {own_results[BOX]['ok']} ok, "
          f"{own_results[BOX]['failed']} failed")
    assert own_results[BOX]["failed"] == 0 and own_results[BOX]["ok"] > 0, own_results
    # Rollback from drain: the big box takes new calls again; then shift and drain once more.
    under_load("rollback", [BOX], tag=1)
    assert sip.options(pub(BOX)).ok and completed() == "join"
    under_load("shift", [BOX])
    under_load("drain", [BOX], tag=1)
    # The entry points now lead to the cloud proxies (DNS / carriers switched): retire the big box.
    _, counts = under_load("retire", CLOUD, registrar="cloud1", tag=4)
    assert service_state(BOX, "kamailio")[1] != "active"
    assert ":5060" not in lab_exec(BOX, "ss", "-lnu")
    seen = {n: found(n, SAMPLE) for n in CLOUD}
    print(f"after retire: sampled pre-migration users found {seen} of {len(SAMPLE)}; contacts {counts}")
    assert all(v == len(SAMPLE) for v in seen.values()), seen
    assert completed() == "retire"
    rc, out = migrate("rollback")
    assert rc != 0 and "out of order" in out, failure(out)
    print(f"phase timings (s, the last run of each): {TIMINGS}")
