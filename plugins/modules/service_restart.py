#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: service_restart
short_description: Restart a systemd service, try a failed start again, and fail with its journal
version_added: 0.1.0
description:
  - Restarts a systemd unit (C(systemctl restart)). When the start fails, reads the lines the unit
    wrote to the journal during that attempt, clears the failed state (C(systemctl reset-failed), so
    systemd's start limit does not refuse the next attempt) and starts it again after O(delay)
    seconds, up to O(retries) times.
  - A start that succeeded only on a later attempt is reported as a warning with the failed
    attempt's journal lines, and in RV(failed_attempts).
  - A start that failed on every attempt fails the task with the unit's own journal lines in the
    message (C(systemctl) alone says only "see journalctl").
  - Used by the restart handlers of the C(kamailio), C(rtpengine), C(keepalived), C(prometheus) and
    C(sipdb) roles, the C(sip_node) role's rolling restart and C(migrate.yml)'s join.
author:
  - itsp.cluster engineers (@itsp-cluster)
options:
  name:
    description:
      - The systemd unit, for example V(kamailio) or V(rtpengine-daemon).
    type: str
    required: true
  daemon_reload:
    description:
      - Run C(systemctl daemon-reload) first (a unit file or drop-in may have changed).
    type: bool
    default: false
  retries:
    description:
      - How many more times a failed start is tried. V(0) fails on the first failed start.
    type: int
    default: 1
  delay:
    description:
      - Seconds to wait before trying a failed start again (0 to 60).
    type: float
    default: 2.0
  journal_lines:
    description:
      - At most this many of the unit's journal lines per failed attempt (1 to 200).
    type: int
    default: 20
notes:
  - Needs C(systemctl) and C(journalctl) on the host.
  - It sees what C(systemctl restart) reports. A unit of C(Type=simple) counts as started once its
    process is forked (a daemon that dies a moment later is not retried here), and a wrapper unit
    reports its own start (Debian's C(postgresql) is one; its clusters are C(postgresql@VERSION-NAME)).
seealso:
  - module: ansible.builtin.systemd_service
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode nothing is restarted; the result says a restart would happen.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: none
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: none
    details: A restart is an action; every run restarts.
"""

EXAMPLES = r"""
- name: Restart rtpengine
  itsp.cluster.service_restart:
    name: rtpengine-daemon

- name: Restart kamailio after its unit changed, failing at once if it does not start
  itsp.cluster.service_restart:
    name: kamailio
    daemon_reload: true
    retries: 0
"""

RETURN = r"""
attempts:
  description: How many starts were tried (1 when the first restart succeeded, 0 in check mode).
  returned: when the arguments were accepted
  type: int
  sample: 1
failed_attempts:
  description: For each failed start, what systemctl said and the unit's journal lines from it.
  returned: when the arguments were accepted
  type: list
  elements: dict
  sample:
    - systemctl: Job for rtpengine-daemon.service failed because the control process exited with error code.
      journal:
        - >-
          CRIT: [core] Fatal error: Failed to open UDP NG control connection port
          (198.18.0.21:2223): Address already in use
        - "rtpengine-daemon.service: Main process exited, code=exited, status=255/EXCEPTION"
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule

MAX_DELAY = 60.0
MAX_RETRIES = 10
MAX_JOURNAL_LINES = 200
# systemd's unit name characters (systemd.unit(5)), an optional type suffix included.
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}")


def argument_spec():
    return {
        "name": {"type": "str", "required": True},
        "daemon_reload": {"type": "bool", "default": False},
        "retries": {"type": "int", "default": 1},
        "delay": {"type": "float", "default": 2.0},
        "journal_lines": {"type": "int", "default": 20},
    }


def check_params(params):
    """The first problem with the parameters, in words, or None."""
    name = params["name"].strip()
    if not UNIT_NAME.fullmatch(name) or name.startswith("-"):
        return f"name must be one systemd unit name (like rtpengine-daemon), got {params['name']!r}"
    if not 0 <= params["retries"] <= MAX_RETRIES:
        return f"retries must be 0 to {MAX_RETRIES}, got {params['retries']}"
    if not 0 <= params["delay"] <= MAX_DELAY:
        return f"delay must be 0 to {MAX_DELAY:g} seconds, got {params['delay']:g}"
    if not 1 <= params["journal_lines"] <= MAX_JOURNAL_LINES:
        return f"journal_lines must be 1 to {MAX_JOURNAL_LINES}, got {params['journal_lines']}"
    return None


def restart(run, name, retries, delay, journal_lines):
    """Restart `name`, trying a failed start `retries` more times. `run(argv)` returns (rc, out, err).
    Returns (attempts, failed_attempts, ok)."""
    failed = []
    for attempt in range(1, retries + 2):
        since = time.time()
        argv = ["systemctl", "restart" if attempt == 1 else "start", name]
        rc, out, err = run(argv)
        if rc == 0:
            return attempt, failed, True
        # The journal of this attempt only: from its start, to the microsecond, in the host's local time
        # (journalctl reads --since so); flushed first, so the service's last lines are in it.
        run(["journalctl", "--sync"])
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) + f".{int(since % 1 * 1e6):06d}"
        _, journal, _ = run(["journalctl", "-u", name, "--no-pager", "-o", "cat", "-n", str(journal_lines),
                             "--since", start])
        failed.append({"systemctl": " ".join((err or out).split()),
                       "journal": [line for line in journal.splitlines() if line.strip()]})
        if attempt <= retries:
            run(["systemctl", "reset-failed", name])
            time.sleep(delay)
    return retries + 1, failed, False


def describe(failure):
    journal = " | ".join(failure["journal"]) or "no lines"
    return f"{failure['systemctl']} -- its journal: {journal}"


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    problem = check_params(params)
    if problem:
        module.fail_json(msg=problem)
    name = params["name"].strip()
    if module.check_mode:
        module.exit_json(changed=True, attempts=0, failed_attempts=[])
    systemctl = module.get_bin_path("systemctl", required=True)
    journalctl = module.get_bin_path("journalctl", required=True)
    paths = {"systemctl": systemctl, "journalctl": journalctl}

    def run(argv):
        return module.run_command([paths[argv[0]]] + argv[1:])

    if params["daemon_reload"]:
        rc, out, err = run(["systemctl", "daemon-reload"])
        if rc != 0:
            module.fail_json(msg=f"systemctl daemon-reload failed before restarting {name}: {(err or out).strip()}",
                             attempts=0, failed_attempts=[])
    attempts, failed, ok = restart(run, name, params["retries"], params["delay"], params["journal_lines"])
    if not ok:
        module.fail_json(msg=f"{name} did not start ({attempts} attempts, {params['delay']:g} s apart). "
                             f"Last attempt: {describe(failed[-1])}",
                         attempts=attempts, failed_attempts=failed, changed=True)
    for number, failure in enumerate(failed, start=1):
        module.warn(f"{name} failed to start on attempt {number} and started on attempt {attempts}; "
                    f"attempt {number}: {describe(failure)}")
    module.exit_json(changed=True, attempts=attempts, failed_attempts=failed)


if __name__ == "__main__":
    main()
