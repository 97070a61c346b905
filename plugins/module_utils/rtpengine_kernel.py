# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rtpengine's in-kernel forwarding (the xt_RTPENGINE module): whether a relay can use it, and
whether media is really forwarded in the kernel once the daemon runs.

Everything is read from files (/proc, /lib/modules), so the logic is tested against a fake /proc.

- decide(): kernel forwarding when the module is loaded (/proc/rtpengine/control exists) or built
  for the running kernel (Debian's rtpengine-iptables-setup, the service's ExecStartPre, loads it
  when the table is >= 0); userspace otherwise, with the reason and what would fix it.
- verify(): after the daemon started with table N, /proc/rtpengine/N must exist (rtpengine opened
  its kernel table; when it cannot, it logs "KERNEL FORWARDING DISABLED" and carries on in
  userspace, which no service state shows), and the streams in /proc/rtpengine/N/list are counted
  with the packets the kernel forwarded for them.
"""

import os
import re

MODULE_NAME = "xt_RTPENGINE"
MODULE_FILE = re.compile(r"^xt_RTPENGINE\.ko(\.(xz|gz|zst))?$")
STATS_LINE = re.compile(r"^\s*stats:\s*(\d+)\s+bytes,\s*(\d+)\s+packets,\s*(\d+)\s+errors")
# Where the host's files are read from (tests point these at a fake tree).
PROC_ROOT = "/proc"
MODULES_ROOT = "/lib/modules"


class ForwardingError(Exception):
    """Kernel forwarding was expected and is not happening; the message says what to look at."""


# Where modules built outside the kernel's tree go (DKMS: updates/dkms; others: updates, extra).
# xt_RTPENGINE is never in the kernel's own tree (kernel/, thousands of files, not walked on
# every run).
OUT_OF_TREE = ("updates", "extra")


def _module_file(modules_root, release):
    """Path of an xt_RTPENGINE module built for this kernel release, or None."""
    for top in OUT_OF_TREE:
        for directory, _dirs, files in os.walk(os.path.join(modules_root, release, top)):
            for name in files:
                if MODULE_FILE.match(name):
                    return os.path.join(directory, name)
    return None


def decide(mode, table, release, proc_root=None, modules_root=None):
    """mode: 'auto' or 'never'; table: the kernel table to use (>= 0). Returns a dict: table (the
    value for rtpengine.conf, -1 = userspace), forwarding ('kernel' or 'userspace'), module
    ('loaded', 'installed', 'not installed', 'unsupported', 'not used'), module_path and reason
    (for userspace: why, and what would make it kernel)."""
    proc_root, modules_root = proc_root or PROC_ROOT, modules_root or MODULES_ROOT
    result = {"table": -1, "forwarding": "userspace", "kernel_release": release, "module_path": None}
    if mode == "never":
        return dict(result, module="not used",
                    reason="switched off (rtpengine_kernel_forwarding=never)")
    if os.path.exists(os.path.join(proc_root, "rtpengine", "control")):
        return dict(result, table=table, forwarding="kernel", module="loaded",
                    reason=f"the {MODULE_NAME} module is loaded")
    if not os.path.exists(os.path.join(proc_root, "modules")):
        # No /proc/modules: the kernel was built without loadable module support (CONFIG_MODULES
        # unset), so neither DKMS nor modprobe can ever add the module to it.
        return dict(result, module="unsupported",
                    reason=f"not loadable: kernel {release} has no loadable module support (no "
                           f"{os.path.join(proc_root, 'modules')}, CONFIG_MODULES unset); boot a "
                           f"distribution kernel (linux-image-amd64) and install rtpengine-kernel-dkms "
                           f"to use it")
    path = _module_file(modules_root, release)
    if path:
        return dict(result, table=table, forwarding="kernel", module="installed", module_path=path,
                    reason=f"the {MODULE_NAME} module is built for kernel {release} ({path}); the "
                           f"service loads it when it starts")
    return dict(result, module="not installed",
                reason=f"not loaded and not built for kernel {release} (install rtpengine-kernel-dkms "
                       f"with linux-headers-{release} to use it)")


def parse_list(text):
    """/proc/rtpengine/N/list -> (streams, packets): one 'local ADDRESS' block per stream the kernel
    forwards, the first 'stats:' line of each block giving its packets."""
    streams = packets = 0
    counted = True
    for line in text.splitlines():
        if line.startswith("local "):
            streams += 1
            counted = False
            continue
        m = STATS_LINE.match(line)
        if m and not counted:
            packets += int(m.group(2))
            counted = True
    return streams, packets


def verify(table, min_packets=0, proc_root=None):
    """Media of a daemon started with this table is forwarded in the kernel. Returns {table_open,
    kernel_streams, kernel_packets}; raises ForwardingError when the table is not open or the kernel
    forwarded fewer than min_packets packets."""
    proc_root = proc_root or PROC_ROOT
    table_dir = os.path.join(proc_root, "rtpengine", str(table))
    if not os.path.isdir(table_dir):
        control = os.path.join(proc_root, "rtpengine", "control")
        why = (f"the kernel module is not loaded (no {control})" if not os.path.exists(control)
               else "the daemon did not open it")
        raise ForwardingError(
            f"rtpengine runs with table = {table} but {table_dir} does not exist: {why}. rtpengine then "
            f"logs 'KERNEL FORWARDING DISABLED' and relays media in userspace; see its journal")
    try:
        with open(os.path.join(table_dir, "list")) as fh:
            streams, packets = parse_list(fh.read())
    except OSError as exc:
        raise ForwardingError(f"cannot read {os.path.join(table_dir, 'list')}: {exc.strerror}") from exc
    if packets < min_packets:
        raise ForwardingError(
            f"the kernel forwarded {packets} packets in {streams} streams of table {table}, fewer than the "
            f"{min_packets} expected: media is relayed in userspace (streams the kernel refuses stay there: "
            f"see rtpengine's journal for 'NO_KERNEL_SUPPORT' or 'Failed to push relay stream to kernel')")
    return {"table_open": True, "kernel_streams": streams, "kernel_packets": packets}
