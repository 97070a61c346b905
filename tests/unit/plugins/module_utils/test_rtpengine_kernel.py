"""rtpengine's kernel forwarding, decided and verified from files (module_utils/rtpengine_kernel.py),
against a fake /proc and /lib/modules in a temporary directory.

Honest about what this is: the lab's kernel has no loadable module support (CONFIG_MODULES unset,
no /proc/modules), so xt_RTPENGINE cannot be loaded there and the kernel path never runs in the
lab. These tests check the decision and the verification logic on the files the module and the
daemon produce (/proc/rtpengine/control, /proc/rtpengine/N/list in the format of the module's
proc_list_show), not a real kernel forwarding packets."""

import os

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils import rtpengine_kernel as rk

RELEASE = "6.1.0-47-amd64"

# Two streams as xt_RTPENGINE lists them: one that has forwarded, one not yet.
KERNEL_LIST = """local inet4 198.18.0.21:30000
    expect inet4 203.0.113.200:42000
    stats:                 6720 bytes,                   28 packets,                    0 errors
        RTP payload type   8:                 6720 bytes,                   28 packets
local inet4 198.18.0.21:30002
    expect inet4 203.0.113.200:40000
    stats:                    0 bytes,                    0 packets,                    0 errors
"""


def tree(tmp_path, control=False, modules=True, ko=None, table=None, listing=""):
    """A fake host: proc/ (with modules, rtpengine/control, rtpengine/TABLE/list as asked) and
    lib/modules/RELEASE/ (with the module file `ko` where given)."""
    proc, mods = tmp_path / "proc", tmp_path / "lib" / "modules"
    (proc / "rtpengine").mkdir(parents=True)
    (mods / RELEASE / "kernel").mkdir(parents=True)
    if modules:
        (proc / "modules").write_text("nf_tables 1 0 - Live 0x0\n")
    if control:
        (proc / "rtpengine" / "control").write_text("")
    if ko:
        path = mods / RELEASE / ko
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
    if table is not None:
        (proc / "rtpengine" / str(table)).mkdir()
        (proc / "rtpengine" / str(table) / "list").write_text(listing)
    return str(proc), str(mods)


# -- the decision ----------------------------------------------------------------------------------

def test_loaded_module_means_kernel(tmp_path):
    proc, mods = tree(tmp_path, control=True)
    got = rk.decide("auto", 0, RELEASE, proc, mods)
    assert (got["table"], got["forwarding"], got["module"]) == (0, "kernel", "loaded")


@pytest.mark.parametrize("ko", ["updates/dkms/xt_RTPENGINE.ko", "updates/dkms/xt_RTPENGINE.ko.xz",
                                "extra/xt_RTPENGINE.ko.zst"])
def test_module_built_for_this_kernel_means_kernel(tmp_path, ko):
    proc, mods = tree(tmp_path, ko=ko)
    got = rk.decide("auto", 3, RELEASE, proc, mods)
    assert (got["table"], got["forwarding"], got["module"]) == (3, "kernel", "installed")
    assert got["module_path"].endswith(ko)


def test_module_built_for_another_kernel_is_not_enough(tmp_path):
    proc, mods = tree(tmp_path)
    other = os.path.join(mods, "6.1.0-50-amd64", "updates", "dkms")
    os.makedirs(other)
    open(os.path.join(other, "xt_RTPENGINE.ko"), "wb").close()
    got = rk.decide("auto", 0, RELEASE, proc, mods)
    assert (got["table"], got["forwarding"], got["module"]) == (-1, "userspace", "not installed")
    assert got["reason"] == (f"not loaded and not built for kernel {RELEASE} (install rtpengine-kernel-dkms "
                             f"with linux-headers-{RELEASE} to use it)")


def test_a_kernel_without_module_support_is_named(tmp_path):
    # The lab's case: no /proc/modules at all. Even a module file on disk cannot be loaded.
    proc, mods = tree(tmp_path, modules=False, ko="updates/dkms/xt_RTPENGINE.ko")
    got = rk.decide("auto", 0, "6.18.44-fc-v857", proc, mods)
    assert (got["table"], got["forwarding"], got["module"]) == (-1, "userspace", "unsupported")
    assert "kernel 6.18.44-fc-v857 has no loadable module support" in got["reason"]
    assert "CONFIG_MODULES unset" in got["reason"] and "rtpengine-kernel-dkms" in got["reason"]


def test_never_is_userspace_even_with_the_module_loaded(tmp_path):
    proc, mods = tree(tmp_path, control=True)
    got = rk.decide("never", 0, RELEASE, proc, mods)
    assert (got["table"], got["module"]) == (-1, "not used")
    assert got["reason"] == "switched off (rtpengine_kernel_forwarding=never)"


# -- the verification -----------------------------------------------------------------------------

def test_list_counts_streams_and_forwarded_packets():
    assert rk.parse_list(KERNEL_LIST) == (2, 28)
    assert rk.parse_list("") == (0, 0)


def test_open_table_without_calls_verifies_with_no_minimum(tmp_path):
    proc, _ = tree(tmp_path, control=True, table=0)
    assert rk.verify(0, 0, proc) == {"table_open": True, "kernel_streams": 0, "kernel_packets": 0}


def test_forwarded_packets_verify_the_kernel_path(tmp_path):
    proc, _ = tree(tmp_path, control=True, table=0, listing=KERNEL_LIST)
    assert rk.verify(0, 20, proc) == {"table_open": True, "kernel_streams": 2, "kernel_packets": 28}


def test_daemon_that_fell_back_to_userspace_fails(tmp_path):
    # Module loaded, table 0 configured, but the daemon never opened it (KERNEL FORWARDING DISABLED).
    proc, _ = tree(tmp_path, control=True)
    with pytest.raises(rk.ForwardingError) as failed:
        rk.verify(0, 0, proc)
    assert str(failed.value) == (
        f"rtpengine runs with table = 0 but {proc}/rtpengine/0 does not exist: the daemon did not open it. "
        "rtpengine then logs 'KERNEL FORWARDING DISABLED' and relays media in userspace; see its journal")


def test_module_that_did_not_load_fails(tmp_path):
    proc, _ = tree(tmp_path)
    with pytest.raises(rk.ForwardingError, match=r"the kernel module is not loaded \(no .*/rtpengine/control\)"):
        rk.verify(0, 0, proc)


def test_calls_relayed_in_userspace_fail_a_minimum(tmp_path):
    # The table is open but the kernel holds no forwarded packets after a call: userspace did the work.
    listing = KERNEL_LIST.replace("28 packets", "0 packets")
    proc, _ = tree(tmp_path, control=True, table=0, listing=listing)
    with pytest.raises(rk.ForwardingError) as failed:
        rk.verify(0, 1, proc)
    assert str(failed.value).startswith(
        "the kernel forwarded 0 packets in 2 streams of table 0, fewer than the 1 expected")
