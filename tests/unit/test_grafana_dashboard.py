"""The Grafana dashboard the prometheus role ships: every query is built on metrics this
collection's configuration exports (the real check is the cluster scenario's, which asks
Prometheus for every query of the dashboard)."""

import json
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DASHBOARD = os.path.join(ROOT, "roles", "prometheus", "files", "grafana", "itsp-cluster.json")
KAMAILIO_CFG = os.path.join(ROOT, "roles", "kamailio", "files", "kamailio.cfg")
PROMQL_WORDS = {"rate", "irate", "sum", "by", "without", "avg", "max", "min", "increase", "job", "node", "type",
                "own", "kamailio", "rtpengine", "m", "s", "h"}
# Statistics groups xhttp_prom exports (kamailio_<group>_<name>) and the module that provides each.
GROUP_MODULE = {"usrloc": "usrloc", "registrar": "registrar", "dialog": "dialog", "tmx": "tmx", "sl": "sl",
                "core": None, "shmem": None, "tcp": None}


def queries():
    with open(DASHBOARD) as fh:
        dashboard = json.load(fh)
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr):
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings)) - PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"\d+[smh]?", n)}


def unconditional_modules():
    """Modules kamailio.cfg loads outside any #!ifdef (always there)."""
    depth, modules = 0, set()
    with open(KAMAILIO_CFG) as fh:
        for line in fh:
            if line.startswith(("#!ifdef", "#!ifndef")):
                depth += 1
            elif line.startswith("#!endif"):
                depth -= 1
            elif depth == 0 and (m := re.match(r'loadmodule "(\w+)\.so"', line)):
                modules.add(m.group(1))
    return modules


def test_dashboard_has_the_operators_panels():
    exprs = queries()
    assert len(exprs) >= 10
    for needed in ("kamailio_usrloc_registered_users", "kamailio_dialog_active_dialogs",
                   'rtpengine_sessions{type="own"}', "kamailio_tmx_4xx_transactions"):
        assert any(needed in e for e in exprs), needed


def test_every_query_uses_exported_metrics():
    loaded = unconditional_modules()
    for expr in queries():
        for name in metric_names(expr):
            if name == "up" or name.startswith("rtpengine_"):
                continue
            m = re.match(r"kamailio_([a-z]+)_\w+$", name)
            assert m and m.group(1) in GROUP_MODULE, f"{expr}: {name} is not a metric xhttp_prom exports"
            module = GROUP_MODULE[m.group(1)]
            assert module is None or module in loaded, \
                f"{expr}: {name} needs {module}.so, which kamailio.cfg may not load"


def test_metric_name_parser_sees_every_name():
    assert metric_names('rate(kamailio_tmx_2xx_transactions[5m])') == {"kamailio_tmx_2xx_transactions"}
    assert metric_names('up{job=~"kamailio|rtpengine"}') == {"up"}
