"""A stand-in for Kamailio's jsonrpcs UNIX datagram socket, shared by the RPC client and module tests."""

import json
import os
import socket
import stat
import threading


class FakeKamailio:
    """Binds path; for each datagram records (request, sender, sender mode, sender dir mode) and
    sends back what answer(request, raw) returns (nothing when it returns None)."""

    def __init__(self, path, answer):
        self.path = path
        self.answer = answer
        self.seen = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                raw, sender = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            try:
                request = json.loads(raw)
            except ValueError:
                request = None
            self.seen.append({
                "request": request, "sender": sender,
                "mode": stat.S_IMODE(os.stat(sender).st_mode),
                "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(sender)).st_mode),
            })
            reply = self.answer(request, raw)
            if reply is not None:
                self.sock.sendto(reply, sender)

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.sock.close()

    @property
    def requests(self):
        return [s["request"] for s in self.seen]


def json_rpc_answers(answer):
    """Adapts answer(request) -> {"result": ...} or {"error": ...} to the raw-bytes form."""
    def reply(request, _raw):
        return json.dumps(dict(answer(request), jsonrpc="2.0", id=request["id"])).encode()
    return reply
