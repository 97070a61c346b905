"""kamailio_rpc's client against a real Kamailio (Debian's package): kamailio -DD in the foreground,
SIP on 127.0.0.1 and a free UDP port only, jsonrpcs on a Unix datagram socket in a temporary run
directory, dispatcher reading a temporary list file. Nothing listens beyond loopback."""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.kamailio_rpc import (
    KamailioRpc,
    KamailioRpcClient,
    KamailioRpcError,
    KamailioRpcReads,
)

KAMAILIO = "/usr/sbin/kamailio"

pytestmark = pytest.mark.skipif(not os.path.exists(KAMAILIO),
                                reason=f"{KAMAILIO} is absent (apt-get install kamailio; scripts/bootstrap.sh does)")

# The jsonrpcs lines are the ones the kamailio role uses, with the paths made temporary.
CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
disable_tcp=yes
listen=udp:127.0.0.1:{port}

loadmodule "jsonrpcs.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "dispatcher.so"

modparam("jsonrpcs", "transport", 4)
modparam("jsonrpcs", "dgram_socket", "{socket}")
modparam("jsonrpcs", "dgram_mode", 0660)
modparam("jsonrpcs", "dgram_group", "{group}")
modparam("jsonrpcs", "pretty_format", 0)

modparam("dispatcher", "list_file", "{dispatcher_list}")

request_route {{
    sl_send_reply("404", "Not here");
}}
"""


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningKamailio:
    def __init__(self, user=None):
        # Short: the reply socket goes next to the server socket and sun_path holds 107 bytes.
        self.root = tempfile.mkdtemp(prefix="krpc-", dir="/tmp")
        os.chmod(self.root, 0o755)
        self.run_dir = os.path.join(self.root, "run")
        os.mkdir(self.run_dir, 0o770)
        self.socket = os.path.join(self.run_dir, "kamailio_rpc.sock")
        self.dispatcher_list = os.path.join(self.root, "dispatcher.list")
        self.log_path = os.path.join(self.root, "kamailio.log")
        self.write_dispatcher_list(["sip:127.0.0.1:5071"])
        account = pwd.getpwnam(user) if user else pwd.getpwuid(os.geteuid())
        os.chown(self.run_dir, account.pw_uid, account.pw_gid)
        self.config = os.path.join(self.root, "kamailio.cfg")
        with open(self.config, "w") as cfg:
            cfg.write(CONFIG.format(port=free_udp_port(), socket=self.socket, dispatcher_list=self.dispatcher_list,
                                    group=grp.getgrgid(account.pw_gid).gr_name))
        # As Debian's unit does (User=kamailio), not with -u: the socket then belongs to the user too.
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [KAMAILIO, "-DD", "-E", "-f", self.config, "-Y", self.run_dir, "-m", "32", "-M", "4"],
                stdout=log, stderr=subprocess.STDOUT,
                user=account.pw_uid if user else None, group=account.pw_gid if user else None)
        # The socket appears in jsonrpcs' mod_init, before dispatcher has read its list; the RPC
        # worker answers only once every module is initialised.
        deadline = time.monotonic() + 15
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"kamailio did not come up:\n{self.log_text()}")
            time.sleep(0.05)

    def _answers(self):
        if not os.path.exists(self.socket):
            return False
        try:
            KamailioRpcClient(self.socket, 0.5).call("core.version")
        except KamailioRpcError:
            return False
        return True

    def write_dispatcher_list(self, uris):
        with open(self.dispatcher_list, "w") as out:
            out.writelines(f"1 {uri}\n" for uri in uris)
        os.chmod(self.dispatcher_list, 0o644)

    def log_text(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()[-4000:]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def cleanup(self):
        self.stop()
        # pytest shows this only when the test failed.
        print(f"--- {self.log_path}\n{self.log_text()}")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def kamailio():
    running = RunningKamailio()
    yield running
    running.cleanup()


def destinations(listing):
    return sorted(target["DEST"]["URI"] for record in listing["RECORDS"]
                  for target in record["SET"]["TARGETS"])


def main_pid(client):
    [main] = [p for p in client.call("core.psx") if p["DSC"].startswith("main process")]
    return main["PID"]


def test_version_list_reload_list_without_restart(kamailio):
    client = KamailioRpcClient(kamailio.socket, 5)
    assert client.call("core.version").startswith("kamailio 5.")
    assert main_pid(client) == kamailio.process.pid
    assert destinations(client.call("dispatcher.list")) == ["sip:127.0.0.1:5071"]

    kamailio.write_dispatcher_list(["sip:127.0.0.1:5071", "sip:127.0.0.1:5072"])
    reload = KamailioRpc("dispatcher.reload", socket_path=kamailio.socket, timeout=5).run()
    assert reload == {"changed": True, "method": "dispatcher.reload",
                      "result": "Ok. Dispatcher successfully reloaded."}

    assert destinations(client.call("dispatcher.list")) == ["sip:127.0.0.1:5071", "sip:127.0.0.1:5072"]
    assert main_pid(client) == kamailio.process.pid
    assert kamailio.process.poll() is None
    assert os.listdir(kamailio.run_dir) == ["kamailio_rpc.sock"], "reply sockets left behind"


def test_check_mode_leaves_the_dispatcher_list_loaded(kamailio):
    kamailio.write_dispatcher_list(["sip:127.0.0.1:5073"])
    skipped = KamailioRpc("dispatcher.reload", socket_path=kamailio.socket).run(check_mode=True)
    assert skipped == {"changed": True, "method": "dispatcher.reload", "result": None}
    listing = KamailioRpc("dispatcher.list", socket_path=kamailio.socket).run(check_mode=True)
    assert listing["changed"] is False
    assert destinations(listing["result"]) == ["sip:127.0.0.1:5071"]


def test_unknown_method_gives_kamailios_error(kamailio):
    with pytest.raises(KamailioRpcError) as failed:
        KamailioRpcClient(kamailio.socket, 5).call("dmq.list_nodes")
    assert str(failed.value) == (f"Kamailio RPC dmq.list_nodes failed on {kamailio.socket}: error 500 "
                                 "Method Not Found (is the module that provides it loaded in kamailio.cfg?)")
    assert failed.value.error == {"code": 500, "message": "Method Not Found"}


def test_reads_in_one_run_keep_an_error_and_make_the_rest(kamailio):
    """The undrain safety net's shape: one run, one answer per call; a module this Kamailio does not
    load (rtpengine) is an error in its entry, the reads after it are still made."""
    result, errors = KamailioRpcReads(
        [{"method": "dispatcher.list"}, {"method": "rtpengine.show", "params": ["all"]}, {"method": "core.version"}],
        socket_path=kamailio.socket, timeout=5).run()
    listing, relays, version = result["results"]
    assert destinations(listing["result"]) == ["sip:127.0.0.1:5071"]
    assert relays == {"method": "rtpengine.show", "error": {"code": 500, "message": "Method Not Found"}}
    assert version["result"].startswith("kamailio 5.")
    assert errors == [f"Kamailio RPC rtpengine.show failed on {kamailio.socket}: error 500 Method Not Found "
                      "(is the module that provides it loaded in kamailio.cfg?)"]
    assert os.listdir(kamailio.run_dir) == ["kamailio_rpc.sock"], "reply sockets left behind"


def test_second_dispatcher_reload_within_reload_delta_is_refused(kamailio):
    """dispatcher's reload_delta (5 s by default) refuses a reload that follows another too soon."""
    client = KamailioRpcClient(kamailio.socket, 5)
    assert client.call("dispatcher.reload") == "Ok. Dispatcher successfully reloaded."
    with pytest.raises(KamailioRpcError) as failed:
        client.call("dispatcher.reload")
    assert str(failed.value) == f"Kamailio RPC dispatcher.reload failed on {kamailio.socket}: error 500 Ongoing reload"
    assert failed.value.error == {"code": 500, "message": "Ongoing reload"}


def test_bad_params_give_kamailios_error(kamailio):
    with pytest.raises(KamailioRpcError) as failed:
        KamailioRpcClient(kamailio.socket, 5).call("dispatcher.set_state", [])
    assert str(failed.value) == (f"Kamailio RPC dispatcher.set_state failed on {kamailio.socket}: error 500 "
                                 "Invalid Parameters")


def test_answer_too_large_for_a_datagram_is_silence(kamailio):
    """jsonrpcs cannot send more than its 128 KiB send buffer; it logs and sends nothing."""
    kamailio.write_dispatcher_list([f"sip:127.0.0.1:{port}" for port in range(20000, 23000)])
    client = KamailioRpcClient(kamailio.socket, 3)
    assert client.call("dispatcher.reload") == "Ok. Dispatcher successfully reloaded."
    with pytest.raises(KamailioRpcError) as failed:
        client.call("dispatcher.list")
    assert str(failed.value).startswith(
        f"No answer from Kamailio on {kamailio.socket} to dispatcher.list within 3 s. Kamailio may be busy, the "
        f"answer may be larger than jsonrpcs can send (about 128 KiB;")
    assert "failed to send the response" in kamailio.log_text()
    assert "Message too long" in kamailio.log_text()
    assert os.listdir(kamailio.run_dir) == ["kamailio_rpc.sock"]


def test_stopped_kamailio_is_not_running(kamailio):
    client = KamailioRpcClient(kamailio.socket, 2)
    assert client.call("core.version").startswith("kamailio 5.")
    kamailio.stop()
    assert kamailio.process.returncode is not None
    with pytest.raises(KamailioRpcError) as failed:
        client.call("dispatcher.reload")
    assert str(failed.value) == (
        f"Kamailio is not running or jsonrpcs has no dgram_socket: {kamailio.socket} does not exist. Check that "
        f"kamailio is running and that kamailio.cfg loads jsonrpcs.so with modparam(\"jsonrpcs\", \"transport\", 4) "
        f"and modparam(\"jsonrpcs\", \"dgram_socket\", \"{kamailio.socket}\").")
    assert os.listdir(kamailio.run_dir) == []


def test_answers_reach_root_from_kamailio_running_as_its_own_user():
    """The deployment shape: Kamailio runs as an unprivileged user, Ansible calls as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start kamailio as another user and call it as root")
    user = "kamailio" if _user_exists("kamailio") else "nobody"
    running = RunningKamailio(user=user)
    try:
        owner = os.stat(running.socket).st_uid
        assert owner == pwd.getpwnam(user).pw_uid
        assert KamailioRpcClient(running.socket, 5).call("core.version").startswith("kamailio 5.")
        running.write_dispatcher_list(["sip:127.0.0.1:5074"])
        assert KamailioRpcClient(running.socket, 5).call("dispatcher.reload") == \
            "Ok. Dispatcher successfully reloaded."
        assert os.listdir(running.run_dir) == ["kamailio_rpc.sock"]
    finally:
        running.cleanup()


def _user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
