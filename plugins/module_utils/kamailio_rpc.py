# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kamailio RPC over the jsonrpcs module's Unix datagram socket, standard library only.

How Kamailio 5.6's jsonrpcs datagram transport behaves, and what this client does about it:

- Each request is one datagram. The JSONRPCS DATAGRAM worker reads it into a 65456-byte buffer;
  a longer request is cut short, fails to parse and is never answered, so longer requests are
  refused here before they are sent.
- The answer goes back with sendto() to the address the request came from. The client must
  therefore send from a socket bound to a path (an unbound socket has no address to answer) and
  must not connect() it to the server (Linux would then drop datagrams from any other sender).
- Kamailio resolves that path itself, from its own working directory and as its own user: the
  path must be absolute, every directory on it searchable by Kamailio's user and the socket file
  writable by it. With User=kamailio (Debian's unit) or -u, Kamailio answers as that user, while
  the module runs as root. The reply socket lives in a fresh directory next to the server socket
  (a directory Kamailio reaches by construction): the directory is 0711 and the socket has a
  random name, so only someone who already knows the name can write to it.
- Answers are sent non-blocking from a socket with a 64 KiB send buffer (128 KiB as the kernel
  counts it). A larger answer is dropped by Kamailio with "failed to send the response" in its
  log, and the client only sees silence.
"""

import errno
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time

from ansible_collections.itsp.cluster.plugins.module_utils.errors import ItspError

DEFAULT_SOCKET = "/run/kamailio/kamailio_rpc.sock"
DEFAULT_TIMEOUT = 5.0
# An hour is longer than any RPC Kamailio answers; beyond it the socket timeout overflows time_t.
MAX_TIMEOUT = 3600.0

# jsonrpcs_sock.c: JSONRPC_DGRAM_BUF_SIZE, the most a request datagram may carry.
MAX_REQUEST_BYTES = 65456
# Larger than anything jsonrpcs can send (its send buffer is 128 KiB as the kernel counts it).
REPLY_BUFFER_BYTES = 256 * 1024
# struct sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107

REPLY_DIR_PREFIX = "ansible-rpc-"

METHOD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")

# Kamailio 5.6 RPC methods that change the running server (names checked with system.listMethods
# on Debian bookworm's 5.6.3). Together with every method whose last part contains "reload",
# these default to changes=true; everything else defaults to read-only.
MUTATING_METHODS = frozenset((
    "cfg.add_group_inst", "cfg.commit", "cfg.del", "cfg.del_delayed", "cfg.del_group_inst",
    "cfg.reset", "cfg.rollback", "cfg.set", "cfg.set_delayed", "cfg.set_delayed_int",
    "cfg.set_delayed_string", "cfg.set_now_int", "cfg.set_now_string", "cfg.seti", "cfg.sets",
    "core.kill",
    "dbg.reset_msgid", "dbg.set_mod_facility", "dbg.set_mod_level",
    "dispatcher.add", "dispatcher.remove", "dispatcher.set_duid_state", "dispatcher.set_state",
    "dlg.bridge_dlg", "dlg.end_dlg", "dlg.set_state", "dlg.terminate_dlg",
    "dmq.remove",
    "dns.add_a", "dns.add_aaaa", "dns.add_srv", "dns.delete_a", "dns.delete_aaaa", "dns.delete_all",
    "dns.delete_all_force", "dns.delete_cname", "dns.delete_ebl", "dns.delete_naptr", "dns.delete_ptr",
    "dns.delete_srv", "dns.delete_txt",
    "dst_blocklist.add", "dst_blocklist.delete_all",
    "htable.delete", "htable.flush", "htable.setex", "htable.seti", "htable.sets", "htable.setxi",
    "htable.setxs", "htable.store",
    "pv.shvSet",
    "rtpengine.enable",
    "stats.clear_statistics", "stats.reset_statistics",
    "tm.cancel", "tm.clean", "tm.reply", "tm.reply_callid", "tm.t_uac_start", "tm.t_uac_wait",
    "tm.t_uac_wait_block",
    "ul.add", "ul.flush", "ul.rm", "ul.rm_contact",
))


class KamailioRpcError(ItspError):
    """One failure, with a message a person can act on. error holds a JSON-RPC error object
    (code and message as Kamailio sent them) when Kamailio answered with one."""

    def __init__(self, message, error=None):
        super().__init__(message)
        self.error = error


def is_mutating(method):
    """The default for the module's changes option (see MUTATING_METHODS)."""
    return "reload" in method.rsplit(".", 1)[-1].lower() or method in MUTATING_METHODS


def check_request(method, params, socket_path, timeout):
    """Raises KamailioRpcError for input that can never work."""
    if not METHOD_PATTERN.match(method or ""):
        raise KamailioRpcError(
            f"method must be a Kamailio RPC name such as dispatcher.reload or core.psx, got {method!r}")
    if not os.path.isabs(socket_path):
        raise KamailioRpcError(
            f"socket must be an absolute path (Kamailio answers to a path next to it), got {socket_path!r}")
    if len(socket_path.encode()) > MAX_SOCKET_PATH:
        raise KamailioRpcError(
            f"socket path is {len(socket_path.encode())} bytes, Unix sockets allow at most {MAX_SOCKET_PATH}: "
            f"{socket_path}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise KamailioRpcError(f"timeout must be greater than 0 and at most {MAX_TIMEOUT:g} seconds, got {timeout}")
    if not isinstance(params, (list, tuple)):
        raise KamailioRpcError(f"params must be a list, got {type(params).__name__}")


def _owner_text(st):
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"owner {owner}, group {group}, mode {stat.S_IMODE(st.st_mode):04o}"


def _not_running(socket_path):
    return KamailioRpcError(
        f"Kamailio is not running or jsonrpcs has no dgram_socket: {socket_path} does not exist. "
        f"Check that kamailio is running and that kamailio.cfg loads jsonrpcs.so with "
        f"modparam(\"jsonrpcs\", \"transport\", 4) and modparam(\"jsonrpcs\", \"dgram_socket\", \"{socket_path}\").")


def _stale(socket_path):
    return KamailioRpcError(
        f"Kamailio is not running: {socket_path} exists but nothing is listening on it (a socket left "
        f"behind by a Kamailio that did not stop cleanly). Start kamailio, it replaces the file.")


def _denied(socket_path, detail):
    return KamailioRpcError(
        f"Permission denied talking to {socket_path} as uid {os.geteuid()} ({detail}). Run the task with "
        f"become: true, or set modparam(\"jsonrpcs\", \"dgram_group\", ...) to a group this user is in "
        f"with dgram_mode 0660.")


class KamailioRpcClient:
    """Sends one JSON-RPC 2.0 request per call and waits for its answer."""

    def __init__(self, socket_path=DEFAULT_SOCKET, timeout=DEFAULT_TIMEOUT):
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, method, params=()):
        """Returns the JSON-RPC result, parsed; raises KamailioRpcError."""
        params = list(params)
        check_request(method, params, self.socket_path, self.timeout)
        request_id = secrets.randbelow(2 ** 31 - 1) + 1
        try:
            request = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id},
                                 separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise KamailioRpcError(f"params for {method} cannot be sent as JSON: {exc}") from None
        if len(request) > MAX_REQUEST_BYTES:
            raise KamailioRpcError(
                f"The request for {method} is {len(request)} bytes; jsonrpcs reads at most {MAX_REQUEST_BYTES} "
                f"bytes per datagram and silently drops longer ones. Send fewer or shorter params.")
        self._check_server_socket()
        deadline = time.monotonic() + self.timeout
        reply_dir, reply_path, sock = self._reply_socket()
        try:
            self._send(sock, request, method, deadline)
            data = self._receive(sock, method, reply_path, deadline)
        finally:
            sock.close()
            shutil.rmtree(reply_dir, ignore_errors=True)
        return self._parse(data, method, request_id)

    def _check_server_socket(self):
        try:
            st = os.stat(self.socket_path)
        except FileNotFoundError:
            raise _not_running(self.socket_path) from None
        except PermissionError as exc:
            raise _denied(self.socket_path, f"cannot reach it: {exc.strerror}") from None
        except OSError as exc:
            raise KamailioRpcError(f"Cannot look at {self.socket_path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise KamailioRpcError(
                f"{self.socket_path} is not a socket; point socket at the file set with "
                f"modparam(\"jsonrpcs\", \"dgram_socket\", ...) in kamailio.cfg.")

    def _reply_socket(self):
        base = os.path.dirname(self.socket_path)
        reply_dir = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            reply_dir = tempfile.mkdtemp(prefix=REPLY_DIR_PREFIX, dir=base)
            # Kamailio (often another user) must be able to pass through to the socket, not list it.
            os.chmod(reply_dir, 0o711)  # noqa: S103 - searchable for Kamailio, not listable
            reply_path = os.path.join(reply_dir, secrets.token_hex(4) + ".sock")
            if len(reply_path.encode()) > MAX_SOCKET_PATH:
                raise KamailioRpcError(
                    f"The reply socket next to {self.socket_path} would need a path of {len(reply_path.encode())} "
                    f"bytes, Unix sockets allow at most {MAX_SOCKET_PATH}; use a shorter dgram_socket path.")
            sock.bind(reply_path)
            # Only the write bit matters on a socket: Kamailio answers as its own user.
            os.chmod(reply_path, 0o666)  # noqa: S103 - Kamailio must write its answer
        except KamailioRpcError:
            sock.close()
            shutil.rmtree(reply_dir, ignore_errors=True)
            raise
        except OSError as exc:
            sock.close()
            if reply_dir:
                shutil.rmtree(reply_dir, ignore_errors=True)
            raise KamailioRpcError(
                f"Cannot create the reply socket in {base}: {exc.strerror}. The module binds a temporary "
                f"socket next to {self.socket_path} for Kamailio's answer, so it needs write access to {base} "
                f"(become: true).") from None
        return reply_dir, reply_path, sock

    def _send(self, sock, request, method, deadline):
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.sendto(request, self.socket_path)
        except FileNotFoundError:
            raise _not_running(self.socket_path) from None
        except ConnectionRefusedError:
            raise _stale(self.socket_path) from None
        except PermissionError:
            try:
                detail = _owner_text(os.stat(self.socket_path))
            except OSError:
                detail = "socket vanished"
            raise _denied(self.socket_path, detail) from None
        except socket.timeout:
            raise KamailioRpcError(
                f"Kamailio did not take the {method} request on {self.socket_path} within {self.timeout:g} s: "
                f"its JSONRPCS DATAGRAM queue is full, Kamailio is stuck or overloaded.") from None
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise KamailioRpcError(
                    f"The request for {method} is too large for a datagram on this host: {exc.strerror}") from None
            raise KamailioRpcError(f"Cannot send {method} to {self.socket_path}: {exc.strerror}") from None

    def _receive(self, sock, method, reply_path, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._silence(method, reply_path)
        sock.settimeout(remaining)
        try:
            data, _ancillary, flags, _sender = sock.recvmsg(REPLY_BUFFER_BYTES)
        except socket.timeout:
            raise self._silence(method, reply_path) from None
        except OSError as exc:
            raise KamailioRpcError(f"Cannot read Kamailio's answer to {method}: {exc.strerror}") from None
        if flags & socket.MSG_TRUNC:
            raise KamailioRpcError(
                f"Kamailio's answer to {method} is larger than {REPLY_BUFFER_BYTES} bytes and was cut short.")
        return data

    def _silence(self, method, reply_path):
        return KamailioRpcError(
            f"No answer from Kamailio on {self.socket_path} to {method} within {self.timeout:g} s. Kamailio may be "
            f"busy, the answer may be larger than jsonrpcs can send (about 128 KiB; look for \"failed to send the "
            f"response\" in Kamailio's log), or Kamailio could not write to the reply socket {reply_path}.")

    def _parse(self, data, method, request_id):
        try:
            reply = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise KamailioRpcError(
                f"Kamailio answered {method} on {self.socket_path} with something that is not JSON ({exc}): "
                f"{data[:200]!r}") from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise KamailioRpcError(
                f"Kamailio answered {method} on {self.socket_path} with JSON that is not a JSON-RPC 2.0 response: "
                f"{json.dumps(reply)[:200]}")
        if reply.get("id") != request_id:
            raise KamailioRpcError(
                f"Kamailio answered {method} on {self.socket_path} with id {reply.get('id')!r}, "
                f"expected {request_id}.")
        if "error" in reply:
            error = reply["error"]
            if isinstance(error, dict):
                text = f"error {error.get('code')} {error.get('message')}"
            else:
                text = f"error {error!r}"
                error = {"code": None, "message": str(error)}
            hint = ""
            if str(error.get("message", "")).lower() == "method not found":
                hint = " (is the module that provides it loaded in kamailio.cfg?)"
            raise KamailioRpcError(f"Kamailio RPC {method} failed on {self.socket_path}: {text}{hint}", error=error)
        return reply["result"]


class KamailioRpc:
    """What the module does: decide whether the call changes anything, then call unless it is a
    check-mode run of a call that would."""

    def __init__(self, method, params=(), socket_path=DEFAULT_SOCKET, timeout=DEFAULT_TIMEOUT, changes=None,
                 client=None):
        self.method = method
        self.params = list(params)
        self.changes = is_mutating(method or "") if changes is None else changes
        self.client = client or KamailioRpcClient(socket_path, timeout)
        check_request(method, self.params, socket_path, timeout)

    def run(self, check_mode=False):
        if check_mode and self.changes:
            return {"changed": True, "method": self.method, "result": None}
        return {"changed": self.changes, "method": self.method,
                "result": self.client.call(self.method, self.params)}


class KamailioRpcReads:
    """Several read-only calls in one module run: a node's reads for one decision cost one module
    start on the host, where each call in a task of its own cost one each. Every call is made; a
    JSON-RPC error in one is kept in its answer and does not stop the others. Kamailio unreachable
    or silent stops the run (no other call would be answered)."""

    def __init__(self, calls, socket_path=DEFAULT_SOCKET, timeout=DEFAULT_TIMEOUT, client=None):
        if not calls:
            raise KamailioRpcError("calls must list at least one read, each {method, params}")
        self.calls = []
        for index, call in enumerate(calls):
            method, params = call.get("method"), call.get("params") or []
            try:
                check_request(method, params, socket_path, timeout)
            except KamailioRpcError as exc:
                raise KamailioRpcError(f"calls[{index}]: {exc}") from None
            if is_mutating(method):
                raise KamailioRpcError(
                    f"calls[{index}]: {method} changes Kamailio; calls takes read-only methods only "
                    f"(give a call that changes Kamailio as method, in a task of its own)")
            self.calls.append((method, list(params)))
        self.client = client or KamailioRpcClient(socket_path, timeout)

    def run(self):
        """Returns ({changed, results}, [error texts]); results holds {method, result} or
        {method, error} per call, in order."""
        results, errors = [], []
        for method, params in self.calls:
            try:
                results.append({"method": method, "result": self.client.call(method, params)})
            except KamailioRpcError as exc:
                if exc.error is None:
                    raise
                results.append({"method": method, "error": exc.error})
                errors.append(str(exc))
        return {"changed": False, "results": results}, errors
