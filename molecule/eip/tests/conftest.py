import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import lab_platforms  # noqa: E402,F401  (fixture re-export)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        # What the lab's NAT applied, and when: the other half of every check here.
        with open("/run/itsp-lab/eip-nat.log") as fh:
            report.sections.append(("lab/eip_nat.py log", fh.read()[-3000:]))
