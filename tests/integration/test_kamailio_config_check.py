"""The kamailio role's own templates, rendered by Ansible for feature combinations (metrics, CDRs
to the database or the journal, none, UDP only), pass `kamailio -c` together with kamailio.cfg -
the gate the role puts before a configuration goes live, run here without a lab. A combination
whose modules this machine lacks (kamailio-postgres-modules, kamailio-extra-modules) is skipped."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAMAILIO = "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

pytestmark = pytest.mark.skipif(not os.path.exists(KAMAILIO),
                                reason=f"{KAMAILIO} is absent (apt-get install kamailio; scripts/bootstrap.sh does)")

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "render_kamailio.yml")

DBTEXT_TABLES = {
    "version": "id(int,auto) table_name(string) table_version(int) \n1:rtpengine:1\n2:address:6\n3:subscriber:7\n"
               "4:blocked_prefix:2\n5:call_limit:2\n6:trunk:2\n",
    "address": "id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string,null) \n",
    "rtpengine": "id(int,auto) setid(int) url(string) weight(int) disabled(int) \n",
    "subscriber": "id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) \n",
}
for table in ("blocked_prefix", "call_limit", "trunk"):
    DBTEXT_TABLES[table] = ("id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) "
                            "expires(int) \n")

DB_URL = "postgres://kamailio:a-lab-password@198.18.0.30:5432/kamailio"
CASES = {
    "metrics and CDRs in the journal": ({}, ["METRICS", "ACC", "ACC_JSON", "DMQ_REPAIR"], ["acc_json"]),
    "CDRs in the database": ({"kamailio_subscribers_source": "database", "kamailio_auth_db_url": DB_URL},
                             ["METRICS", "ACC", "ACC_DB", "AUTH_POSTGRES", "DMQ_REPAIR"], ["db_postgres"]),
    "CDRs in a database of their own": ({"kamailio_cdr_db_url": DB_URL, "kamailio_metrics_enabled": False},
                                        ["ACC", "ACC_DB", "DMQ_REPAIR"], ["db_postgres"]),
    "no metrics, no CDRs, UDP only, no repair after a stall": (
        {"kamailio_metrics_enabled": False, "kamailio_cdr_target": "none", "kamailio_transports": ["udp"],
         "kamailio_dmq_repair_stall": 0}, [], []),
    "replication backlog guard, one DMQ worker, no log context, qm": (
        {"kamailio_dmq_max_pending": 2000, "kamailio_dmq_workers": 1, "kamailio_log_message_context": False,
         "kamailio_memory_manager": "qm"},
        ["METRICS", "ACC", "ACC_JSON", "DMQ_GUARD", "DMQ_REPAIR"], ["acc_json"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_configuration_passes_kamailio_check(case, tmp_path):
    extra, features, modules = CASES[case]
    missing = [m for m in modules if not os.path.exists(os.path.join(MODULES, f"{m}.so"))]
    if missing:
        pytest.skip(f"{', '.join(missing)}.so not installed here")
    dbtext = tmp_path / "dbtext"
    dbtext.mkdir()
    for name, content in DBTEXT_TABLES.items():
        (dbtext / name).write_text(content)
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"children": {"kamailio": {"hosts": {
        "proxy1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                   "itsp_cloud": {"provider": "aws", "private_ipv4": "198.18.0.11", "public_ipv4": "203.0.113.11",
                                  "nat": "one_to_one"}},
        "proxy2": {"ansible_host": "198.18.0.12"}}}}}}))
    variables = dict({"root": ROOT, "out": str(tmp_path), "__kamailio_dbtext_dir": str(dbtext),
                      "kamailio_auth_enabled": False, "kamailio_ctl_socket": str(tmp_path / "ctl"),
                      "kamailio_rpc_socket": str(tmp_path / "rpc"),
                      "kamailio_rtpengine_nodes": ["udp:198.18.0.21:2223"],
                      "kamailio_dispatcher_sets": [{"id": 1, "destinations": [{"uri": "sip:203.0.113.200:5085"}]}],
                      "kamailio_dispatcher_route_set": 1}, **extra)
    if "kamailio_subscribers_source" in extra:
        variables["kamailio_auth_enabled"] = True
        variables["kamailio_auth_secret"] = "a-lab-secret-of-enough-length"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), PLAYBOOK, "--limit", "proxy1",
                          "-e", json.dumps(variables)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    node = tmp_path / "proxy1"
    on = json.loads((node / "run.json").read_text())["features"]
    observed = {"METRICS", "ACC", "ACC_DB", "ACC_JSON", "AUTH_POSTGRES", "DMQ_GUARD", "DMQ_REPAIR"}
    assert set(on) & observed == set(features), on
    with open(os.path.join(ROOT, "roles", "kamailio", "files", "kamailio.cfg")) as fh:
        (node / "kamailio.cfg").write_text(fh.read())
    check = subprocess.run([KAMAILIO, "-c", "-f", str(node / "kamailio.cfg")], cwd=node,
                           capture_output=True, text=True, timeout=60, check=False)
    errors = [line for line in check.stderr.splitlines() if "ERROR" in line or "CRIT" in line]
    assert check.returncode == 0, (on, errors)
