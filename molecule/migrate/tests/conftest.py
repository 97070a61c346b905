import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import dump_logs_on_failure, lab_platforms  # noqa: E402,F401  (fixture re-export)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    dump_logs_on_failure(item, outcome.get_result(), units=["kamailio", "rtpengine-daemon"])
