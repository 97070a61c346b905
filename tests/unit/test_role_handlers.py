"""The roles' pending markers (file_set's `pending`) are only as good as their handlers: the task
that writes the marker must notify the handler that removes it, and that handler must come last
(handlers run in the order of the file), after every reload and restart it stands for."""

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = {"kamailio": "configure.yml", "rtpengine": "configure.yml", "firewall": "apply.yml"}


def tasks_with_pending(role, tasks_file):
    with open(os.path.join(ROOT, "roles", role, "tasks", tasks_file)) as fh:
        tasks = yaml.safe_load(fh)
    return [t for t in tasks if "pending" in (t.get("itsp.cluster.file_set") or {})]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_marker_is_removed_by_the_last_handler_the_writer_notifies(role):
    with open(os.path.join(ROOT, "roles", role, "handlers", "main.yml")) as fh:
        handlers = yaml.safe_load(fh)
    writers = tasks_with_pending(role, ROLES[role])
    assert len(writers) == 1, f"{role}: one file_set task keeps the pending marker"
    writer = writers[0]
    marker = writer["itsp.cluster.file_set"]["pending"]
    last = handlers[-1]
    assert last.get("ansible.builtin.file") == {"path": marker, "state": "absent"}, (role, last)
    notified = writer["notify"] if isinstance(writer["notify"], list) else [writer["notify"]]
    assert last["name"] in notified, (role, notified)
    # Every handler the writer notifies exists (a misspelt name would never run; the last one is above).
    names = [h["name"] for h in handlers] + [h.get("listen") for h in handlers]
    assert all(n in names for n in notified), (role, notified)
