#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rtpengine_forwarding
short_description: Decide between rtpengine's kernel and userspace forwarding, and verify the kernel path
version_added: 0.1.0
description:
  - Reads, on the relay, whether rtpengine's in-kernel forwarding module C(xt_RTPENGINE) can be
    used, and returns the kernel table to write into C(rtpengine.conf) (V(-1) for userspace) with
    the reason in words.
  - The module is used when it is loaded (C(/proc/rtpengine/control) exists) or built for the
    running kernel (an C(xt_RTPENGINE.ko*) under C(/lib/modules/RELEASE), where Debian's
    C(rtpengine-kernel-dkms) puts it; the service's C(rtpengine-iptables-setup) loads it when the
    table is V(0) or more).
  - Where it cannot be used the reason names what blocks it, for example a kernel built without
    loadable module support (no C(/proc/modules)), or what to install (C(rtpengine-kernel-dkms) and
    the headers of the running kernel).
  - With O(verify=true), checks that the running daemon really forwards in the kernel. rtpengine
    that cannot open its table logs C(KERNEL FORWARDING DISABLED) and carries on in userspace
    with the service active, so the module checks that C(/proc/rtpengine/TABLE) exists and counts
    the streams and packets the kernel forwarded (C(/proc/rtpengine/TABLE/list)); with
    O(min_kernel_packets), after a call, it fails unless the kernel forwarded that many.
author:
  - itsp.cluster engineers (@itsp-cluster)
options:
  mode:
    description:
      - V(auto) uses kernel forwarding when it can, V(never) always forwards in userspace.
    type: str
    choices: [auto, never]
    default: auto
  table:
    description:
      - The kernel table rtpengine uses when it forwards in the kernel (0 to 63).
    type: int
    default: 0
  verify:
    description:
      - Check that the running daemon forwards in the kernel. Does nothing when the decision is
        userspace.
    type: bool
    default: false
  min_kernel_packets:
    description:
      - With O(verify), the kernel must have forwarded at least this many packets in the streams it
        holds now. V(0) checks only that the table is open (for a relay without calls).
    type: int
    default: 0
notes:
  - Read-only; only the Python standard library is used on the host.
seealso:
  - name: rtpengine in-kernel packet forwarding
    description: How the xt_RTPENGINE module and the daemon's kernel table work together.
    link: https://rtpengine.readthedocs.io/en/latest/usage.html#in-kernel-packet-forwarding
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module only reads; check mode returns the same result.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: none
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: full
"""

EXAMPLES = r"""
- name: Decide between kernel and userspace forwarding
  itsp.cluster.rtpengine_forwarding:
    mode: auto
    table: 0
  register: rtpengine_forwarding

- name: After the daemon started, check that its kernel table is open
  itsp.cluster.rtpengine_forwarding:
    table: 0
    verify: true

- name: After a test call, check that the kernel forwarded its media
  itsp.cluster.rtpengine_forwarding:
    table: 0
    verify: true
    min_kernel_packets: 100
"""

RETURN = r"""
table:
  description: The value for C(table) in rtpengine.conf; V(-1) is userspace.
  returned: always
  type: int
  sample: -1
forwarding:
  description: Where media is forwarded, V(kernel) or V(userspace).
  returned: always
  type: str
  sample: userspace
module:
  description: >-
    The kernel module's state: V(loaded), V(installed) (built for this kernel, loaded when the
    service starts), V(not installed), V(unsupported) (the kernel cannot load modules) or
    V(not used) (O(mode=never)).
  returned: always
  type: str
  sample: unsupported
module_path:
  description: Where the module built for this kernel is, when it is.
  returned: always
  type: str
  sample: /lib/modules/6.1.0-47-amd64/updates/dkms/xt_RTPENGINE.ko.xz
kernel_release:
  description: The running kernel's release.
  returned: always
  type: str
  sample: 6.1.0-47-amd64
reason:
  description: Why that forwarding, in words (for userspace, what would make it kernel).
  returned: always
  type: str
  sample: >-
    not loaded and not built for kernel 6.1.0-47-amd64 (install rtpengine-kernel-dkms with
    linux-headers-6.1.0-47-amd64 to use it)
kernel_streams:
  description: Streams the kernel forwards now (O(verify) with kernel forwarding).
  returned: when verified
  type: int
  sample: 4
kernel_packets:
  description: Packets the kernel forwarded in those streams.
  returned: when verified
  type: int
  sample: 1342
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.itsp.cluster.plugins.module_utils.rtpengine_kernel import (
    ForwardingError,
    decide,
    verify,
)

MAX_TABLE = 63


def argument_spec():
    return {
        "mode": {"type": "str", "choices": ["auto", "never"], "default": "auto"},
        "table": {"type": "int", "default": 0},
        "verify": {"type": "bool", "default": False},
        "min_kernel_packets": {"type": "int", "default": 0},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["mode"] == "auto" and not 0 <= params["table"] <= MAX_TABLE:
        module.fail_json(msg=f"table must be 0 to {MAX_TABLE} (a kernel table id; in the rtpengine role "
                             f"rtpengine_kernel_table, or rtpengine_kernel_forwarding: never), got {params['table']}")
    if params["min_kernel_packets"] < 0:
        module.fail_json(msg=f"min_kernel_packets must be 0 or more, got {params['min_kernel_packets']}")
    result = decide(params["mode"], params["table"], os.uname().release)
    if params["verify"] and result["table"] >= 0:
        try:
            result.update(verify(result["table"], params["min_kernel_packets"]))
        except ForwardingError as exc:
            module.fail_json(msg=str(exc), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
