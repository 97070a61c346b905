"""The jsonrpcs datagram client against a fake Kamailio: a thread with a Unix datagram socket in a
short temporary directory, answering the way jsonrpcs does (sendto the request's sender).
Permission cases run the client as nobody with the system Python, as it runs on a managed host."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import textwrap

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils import kamailio_rpc
from ansible_collections.itsp.cluster.plugins.module_utils.kamailio_rpc import (
    KamailioRpc,
    KamailioRpcClient,
    KamailioRpcError,
    check_request,
    is_mutating,
)
from ansible_collections.itsp.cluster.tests.unit.plugins.fake_kamailio import FakeKamailio


def answer_result(result):
    def answer(request, _raw):
        return json.dumps({"jsonrpc": "2.0", "result": result, "id": request["id"]}).encode()
    return answer


@pytest.fixture
def kamailio(short_dir):
    servers = []

    def start(answer):
        server = FakeKamailio(os.path.join(short_dir, "kamailio_rpc.sock"), answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name != "kamailio_rpc.sock")


def failure(client, method, params=()):
    with pytest.raises(KamailioRpcError) as failed:
        client.call(method, params)
    return failed.value


# -- what goes over the socket -------------------------------------------------------------------

def test_one_jsonrpc_request_and_the_parsed_result(kamailio, short_dir):
    records = {"NRSETS": 1, "RECORDS": [{"SET": {"ID": 1, "TARGETS": [{"DEST": {"URI": "sip:127.0.0.1:5071"}}]}}]}
    server = kamailio(answer_result(records))
    result = KamailioRpcClient(server.path, 2).call("dispatcher.list")
    assert result == records
    [seen] = server.seen
    request = seen["request"]
    assert set(request) == {"jsonrpc", "method", "params", "id"}
    assert (request["jsonrpc"], request["method"], request["params"]) == ("2.0", "dispatcher.list", [])
    assert isinstance(request["id"], int) and request["id"] > 0


def test_params_keep_their_json_types(kamailio):
    server = kamailio(answer_result("ok"))
    KamailioRpcClient(server.path, 2).call("dispatcher.set_state", ["ip", 2, "sip:127.0.0.1:5071"])
    assert server.seen[0]["request"]["params"] == ["ip", 2, "sip:127.0.0.1:5071"]
    assert isinstance(server.seen[0]["request"]["params"][1], int)


def test_reply_socket_is_absolute_writable_for_kamailio_and_removed(kamailio, short_dir):
    server = kamailio(answer_result("kamailio 5.6.3 (x86_64/linux) "))
    KamailioRpcClient(server.path, 2).call("core.version")
    seen = server.seen[0]
    assert os.path.isabs(seen["sender"])
    assert os.path.dirname(os.path.dirname(seen["sender"])) == short_dir
    assert os.path.basename(os.path.dirname(seen["sender"])).startswith("ansible-rpc-")
    assert (seen["mode"], seen["dir_mode"]) == (0o666, 0o711)
    assert leftovers(short_dir) == []


def test_each_call_gets_a_new_reply_socket(kamailio):
    server = kamailio(answer_result(1))
    client = KamailioRpcClient(server.path, 2)
    client.call("core.uptime")
    client.call("core.uptime")
    assert server.seen[0]["sender"] != server.seen[1]["sender"]


# -- what comes back -----------------------------------------------------------------------------

def test_jsonrpc_error_keeps_code_and_message(kamailio, short_dir):
    server = kamailio(lambda req, _raw: json.dumps(
        {"jsonrpc": "2.0", "error": {"code": 500, "message": "Method Not Found"}, "id": req["id"]}).encode())
    error = failure(KamailioRpcClient(server.path, 2), "dmq.list_nodes")
    assert str(error) == (f"Kamailio RPC dmq.list_nodes failed on {server.path}: error 500 Method Not Found "
                          "(is the module that provides it loaded in kamailio.cfg?)")
    assert error.error == {"code": 500, "message": "Method Not Found"}
    assert leftovers(short_dir) == []


def test_other_jsonrpc_errors_have_no_module_hint(kamailio):
    server = kamailio(lambda req, _raw: json.dumps(
        {"jsonrpc": "2.0", "error": {"code": 500, "message": "Invalid Parameters"}, "id": req["id"]}).encode())
    error = failure(KamailioRpcClient(server.path, 2), "dispatcher.set_state", [])
    assert str(error) == f"Kamailio RPC dispatcher.set_state failed on {server.path}: error 500 Invalid Parameters"
    assert error.error == {"code": 500, "message": "Invalid Parameters"}


def test_no_answer_within_timeout(kamailio, short_dir):
    server = kamailio(lambda _req, _raw: None)
    error = failure(KamailioRpcClient(server.path, 0.3), "ul.dump")
    reply_path = server.seen[0]["sender"]
    assert str(error) == (
        f"No answer from Kamailio on {server.path} to ul.dump within 0.3 s. Kamailio may be busy, the answer may "
        f"be larger than jsonrpcs can send (about 128 KiB; look for \"failed to send the response\" in Kamailio's "
        f"log), or Kamailio could not write to the reply socket {reply_path}.")
    assert error.error is None
    assert leftovers(short_dir) == []


def test_answer_that_is_not_json(kamailio, short_dir):
    server = kamailio(lambda _req, _raw: b"<html>500</html>")
    error = failure(KamailioRpcClient(server.path, 2), "core.psx")
    assert str(error) == (f"Kamailio answered core.psx on {server.path} with something that is not JSON "
                          f"(Expecting value: line 1 column 1 (char 0)): b'<html>500</html>'")
    assert leftovers(short_dir) == []


def test_json_that_is_not_a_jsonrpc_response(kamailio):
    server = kamailio(lambda req, _raw: json.dumps({"jsonrpc": "2.0", "id": req["id"]}).encode())
    error = failure(KamailioRpcClient(server.path, 2), "core.psx")
    assert str(error) == (f"Kamailio answered core.psx on {server.path} with JSON that is not a JSON-RPC 2.0 "
                          f"response: {{\"jsonrpc\": \"2.0\", \"id\": {server.seen[0]['request']['id']}}}")


def test_answer_for_another_request(kamailio):
    server = kamailio(lambda req, _raw: json.dumps({"jsonrpc": "2.0", "result": [], "id": req["id"] + 1}).encode())
    error = failure(KamailioRpcClient(server.path, 2), "core.psx")
    sent = server.seen[0]["request"]["id"]
    assert str(error) == f"Kamailio answered core.psx on {server.path} with id {sent + 1}, expected {sent}."


def test_large_answer_arrives_whole(kamailio):
    big = ["x" * 100] * 1200  # about 125 KiB, near what jsonrpcs can send
    server = kamailio(answer_result(big))
    assert KamailioRpcClient(server.path, 2).call("ul.dump") == big


# -- nobody there ----------------------------------------------------------------------------------

def test_socket_missing_means_not_running(short_dir):
    path = os.path.join(short_dir, "kamailio_rpc.sock")
    error = failure(KamailioRpcClient(path, 1), "dispatcher.reload")
    assert str(error) == (
        f"Kamailio is not running or jsonrpcs has no dgram_socket: {path} does not exist. Check that kamailio is "
        f"running and that kamailio.cfg loads jsonrpcs.so with modparam(\"jsonrpcs\", \"transport\", 4) and "
        f"modparam(\"jsonrpcs\", \"dgram_socket\", \"{path}\").")
    assert os.listdir(short_dir) == []


def test_stale_socket_file(short_dir):
    path = os.path.join(short_dir, "kamailio_rpc.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(path)
    error = failure(KamailioRpcClient(path, 1), "core.version")
    assert str(error) == (
        f"Kamailio is not running: {path} exists but nothing is listening on it (a socket left behind by a "
        f"Kamailio that did not stop cleanly). Start kamailio, it replaces the file.")
    assert leftovers(short_dir) == []


def test_path_that_is_not_a_socket(short_dir):
    path = os.path.join(short_dir, "kamailio_rpc.sock")
    with open(path, "w") as regular:
        regular.write("")
    error = failure(KamailioRpcClient(path, 1), "core.version")
    assert str(error) == (f"{path} is not a socket; point socket at the file set with "
                          f"modparam(\"jsonrpcs\", \"dgram_socket\", ...) in kamailio.cfg.")


def test_full_queue_means_kamailio_is_stuck(short_dir):
    path = os.path.join(short_dir, "kamailio_rpc.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stuck, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        stuck.bind(path)
        filler.setblocking(False)
        try:
            for _ in range(100000):
                filler.sendto(b"{}", path)
        except BlockingIOError:
            pass  # the queue is full, as when Kamailio's datagram worker hangs
        else:
            pytest.fail("the kernel never refused a datagram")
        error = failure(KamailioRpcClient(path, 0.2), "dispatcher.reload")
    assert str(error) == (f"Kamailio did not take the dispatcher.reload request on {path} within 0.2 s: its "
                          f"JSONRPCS DATAGRAM queue is full, Kamailio is stuck or overloaded.")
    assert leftovers(short_dir) == []


# -- input that can never work -------------------------------------------------------------------

@pytest.mark.parametrize("method, message", [
    ("", "method must be a Kamailio RPC name such as dispatcher.reload or core.psx, got ''"),
    ("reload", "method must be a Kamailio RPC name such as dispatcher.reload or core.psx, got 'reload'"),
    ("dispatcher reload", "method must be a Kamailio RPC name such as dispatcher.reload or core.psx, "
                          "got 'dispatcher reload'"),
    ("dispatcher.", "method must be a Kamailio RPC name such as dispatcher.reload or core.psx, got 'dispatcher.'"),
])
def test_bad_method(method, message):
    with pytest.raises(KamailioRpcError) as failed:
        check_request(method, [], "/run/kamailio/kamailio_rpc.sock", 5)
    assert str(failed.value) == message


def test_relative_socket():
    with pytest.raises(KamailioRpcError) as failed:
        check_request("core.psx", [], "kamailio_rpc.sock", 5)
    assert str(failed.value) == ("socket must be an absolute path (Kamailio answers to a path next to it), "
                                 "got 'kamailio_rpc.sock'")


def test_socket_path_too_long():
    path = "/run/" + "k" * 103
    with pytest.raises(KamailioRpcError) as failed:
        check_request("core.psx", [], path, 5)
    assert str(failed.value) == f"socket path is 108 bytes, Unix sockets allow at most 107: {path}"


def test_reply_path_too_long(short_dir):
    directory = os.path.join(short_dir, "d" * (90 - len(short_dir)))
    os.mkdir(directory)
    path = os.path.join(directory, "k.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        error = failure(KamailioRpcClient(path, 1), "core.psx")
    assert re.fullmatch(
        rf"The reply socket next to {re.escape(path)} would need a path of 1[0-9][0-9] bytes, Unix sockets allow "
        r"at most 107; use a shorter dgram_socket path\.", str(error)), str(error)
    assert os.listdir(directory) == ["k.sock"]


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_must_be_positive(timeout):
    with pytest.raises(KamailioRpcError) as failed:
        check_request("core.psx", [], "/run/kamailio/kamailio_rpc.sock", timeout)
    assert str(failed.value) == f"timeout must be greater than 0 and at most 3600 seconds, got {timeout}"


def test_request_larger_than_jsonrpcs_reads(kamailio):
    server = kamailio(answer_result("never"))
    error = failure(KamailioRpcClient(server.path, 1), "htable.sets", ["t", "k", "v" * 70000])
    assert re.fullmatch(r"The request for htable\.sets is 700[0-9][0-9] bytes; jsonrpcs reads at most 65456 bytes "
                        r"per datagram and silently drops longer ones\. Send fewer or shorter params\.", str(error))
    assert server.seen == []


def test_params_that_are_not_json(kamailio):
    server = kamailio(answer_result("never"))
    error = failure(KamailioRpcClient(server.path, 1), "core.echo", [{1, 2}])
    assert str(error) == "params for core.echo cannot be sent as JSON: Object of type set is not JSON serializable"
    assert server.seen == []


# -- changes and check mode ----------------------------------------------------------------------

@pytest.mark.parametrize("method, mutating", [
    ("dispatcher.reload", True), ("rtpengine.reload", True), ("htable.reload", True),
    ("permissions.addressReload", True), ("uac.reg_reload", True), ("tls.reload", True),
    ("dispatcher.set_state", True), ("ul.rm", True), ("ul.rm_contact", True), ("cfg.set_now_int", True),
    ("pv.shvSet", True), ("stats.reset_statistics", True),
    ("dispatcher.list", False), ("core.psx", False), ("ul.dump", False), ("dmq.list_nodes", False),
    ("stats.get_statistics", False), ("core.version", False), ("rtpengine.show", False),
    ("reload.status", False), ("dispatcher.ping_active", False),
])
def test_is_mutating(method, mutating):
    assert is_mutating(method) is mutating


class RecordingClient:
    def __init__(self):
        self.calls = []

    def call(self, method, params):
        self.calls.append((method, params))
        return "answer"


@pytest.mark.parametrize("method, changes, check_mode, expected, sent", [
    ("dispatcher.reload", None, False, {"changed": True, "result": "answer"}, True),
    ("dispatcher.reload", None, True, {"changed": True, "result": None}, False),
    ("dispatcher.reload", False, True, {"changed": False, "result": "answer"}, True),
    ("dispatcher.list", None, True, {"changed": False, "result": "answer"}, True),
    ("dispatcher.ping_active", True, True, {"changed": True, "result": None}, False),
    ("dispatcher.ping_active", True, False, {"changed": True, "result": "answer"}, True),
])
def test_check_mode_sends_only_what_changes_nothing(method, changes, check_mode, expected, sent):
    client = RecordingClient()
    result = KamailioRpc(method, [1], "/run/kamailio/kamailio_rpc.sock", 5, changes, client=client).run(check_mode)
    assert result == dict(expected, method=method)
    assert client.calls == ([(method, [1])] if sent else [])


# -- permissions, as a user other than root --------------------------------------------------------

CLIENT_AS_NOBODY = textwrap.dedent("""
    import importlib.util, sys
    sys.path.insert(0, sys.argv[3])
    spec = importlib.util.spec_from_file_location("kamailio_rpc", sys.argv[1])
    rpc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rpc)
    try:
        rpc.KamailioRpcClient(sys.argv[2], 1).call("core.version")
    except rpc.KamailioRpcError as exc:
        print(exc)
""")


def run_as_nobody(socket_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the client as nobody")
    python = shutil.which("python3", path="/usr/bin:/bin")
    collections = kamailio_rpc.__file__.split("/ansible_collections/")[0]
    done = subprocess.run([python, "-c", CLIENT_AS_NOBODY, kamailio_rpc.__file__, socket_path, collections],
                          user=65534, group=65534, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def open_dir():
    path = tempfile.mkdtemp(prefix="krpc-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_permission_denied_on_the_socket(open_dir):
    os.chmod(open_dir, 0o777)
    path = os.path.join(open_dir, "kamailio_rpc.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        os.chmod(path, 0o660)
        message = run_as_nobody(path)
    assert message == (
        f"Permission denied talking to {path} as uid 65534 (owner root, group root, mode 0660). Run the task with "
        f"become: true, or set modparam(\"jsonrpcs\", \"dgram_group\", ...) to a group this user is in with "
        f"dgram_mode 0660.")
    assert leftovers(open_dir) == []


def test_no_write_access_for_the_reply_socket(open_dir):
    path = os.path.join(open_dir, "kamailio_rpc.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        os.chmod(path, 0o666)
        message = run_as_nobody(path)
    assert message == (
        f"Cannot create the reply socket in {open_dir}: Permission denied. The module binds a temporary socket "
        f"next to {path} for Kamailio's answer, so it needs write access to {open_dir} (become: true).")


def test_socket_out_of_reach(open_dir):
    os.chmod(open_dir, 0o700)
    path = os.path.join(open_dir, "kamailio_rpc.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        message = run_as_nobody(path)
    assert message == (
        f"Permission denied talking to {path} as uid 65534 (cannot reach it: Permission denied). Run the task with "
        f"become: true, or set modparam(\"jsonrpcs\", \"dgram_group\", ...) to a group this user is in with "
        f"dgram_mode 0660.")
