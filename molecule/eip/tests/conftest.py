import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import dump_logs_on_failure, lab_platforms, platforms  # noqa: E402,F401  (fixture re-export)

from lab.load import lab_exec  # noqa: E402  (testlib put the project on sys.path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    dump_logs_on_failure(item, report, units=["keepalived", "kamailio"])
    if report.when == "call" and report.failed:
        # What the lab's NAT applied, and when, and what keepalived's notify actions (the mover) said.
        with open("/run/itsp-lab/eip-nat.log") as fh:
            report.sections.append(("lab/eip_nat.py log", fh.read()[-3000:]))
        for name in platforms():
            report.sections.append((f"itsp-keepalived notify on {name}",
                                    lab_exec(name, "journalctl", "-t", "itsp-keepalived", "-n", "20", "--no-pager")))
