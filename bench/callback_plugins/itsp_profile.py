# Bench only (bench/bench_converge.py enables it): where a playbook run's time goes.
# Writes JSON to $ITSP_PROFILE_OUT: every task with its wall time (start of the task to the start
# of the next), the hosts it ran on and their own durations, and the play it belongs to.
import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: itsp_profile
type: aggregate
short_description: Wall time per task and per host, as JSON (bench only)
description: Records task and per-host timings of a playbook run into the file named by ITSP_PROFILE_OUT.
requirements: [enable in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "itsp_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.t0 = time.monotonic()
        self.tasks, self.current, self.play = [], None, None
        self.host_start = {}

    def _close(self):
        if self.current is not None:
            self.current["wall"] = time.monotonic() - self.current.pop("_t0")
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_play_start(self, play):
        self._close()
        self.play = play.get_name()

    def _task_start(self, task):
        self._close()
        self.current = {"name": task.get_name(), "action": task.action, "play": self.play,
                        "path": task.get_path() or "", "_t0": time.monotonic(), "hosts": {}}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task)

    def v2_runner_on_start(self, host, task):
        self.host_start[(host.get_name(), task._uuid)] = time.monotonic()

    def _host_done(self, result, status):
        key = (result._host.get_name(), result._task._uuid)
        start = self.host_start.pop(key, None)
        if self.current is not None and start is not None:
            self.current["hosts"][key[0]] = [round(time.monotonic() - start, 3), status]

    def v2_runner_on_ok(self, result):
        self._host_done(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_skipped(self, result):
        self._host_done(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host_done(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._host_done(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self._close()
        out = os.environ.get("ITSP_PROFILE_OUT")
        if out:
            with open(out, "w") as fh:
                json.dump({"total": time.monotonic() - self.t0, "tasks": self.tasks}, fh)
