"""The benchmarks' verdicts (bench/benchlib.py): a side that does not answer, or had no clean step,
fails the run with a message naming it, instead of a printed figure. No lab needed: probes are
fakes, or a real UDP socket on loopback standing in for rtpengine's ng control port."""

import os
import socket
import sys
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import benchlib  # noqa: E402

from lab import ng, sip  # noqa: E402


def fixed(answered, detail="detail"):
    calls = []

    def probe():
        calls.append(1)
        return answered, detail
    probe.calls = calls
    return probe


def test_every_side_answers_and_is_named():
    benchlib.require_answers({"cluster proxy": fixed(True, "OPTIONS: 200"), "minimal": fixed(True, "OPTIONS: 200")},
                             pause=0)


def test_a_silent_side_fails_before_measuring_and_is_named(capsys):
    silent = fixed(False, "OPTIONS to 203.0.113.31:5060: no answer")
    with pytest.raises(SystemExit) as failure:
        benchlib.require_answers({"cluster proxy": fixed(True), "minimal plain1": silent}, attempts=3, pause=0)
    message = str(failure.value.code)
    assert "minimal plain1 does not answer (OPTIONS to 203.0.113.31:5060: no answer)" in message
    assert "cluster proxy" not in message
    assert "Nothing was measured" in message
    assert len(silent.calls) == 3  # retried, then given up
    assert "answering:" not in capsys.readouterr().out


def test_a_side_that_answers_on_a_retry_passes():
    answers = iter([(False, "no answer"), (True, "OPTIONS: 200")])
    benchlib.require_answers({"proxy2": lambda: next(answers)}, attempts=2, pause=0)


def test_failure_is_a_nonzero_exit():
    # SystemExit with a message: the interpreter prints it and exits with status 1.
    failure = benchlib.BenchFailure("x")
    assert isinstance(failure, SystemExit) and isinstance(failure.code, str) and failure.code != 0


@pytest.mark.parametrize(("offered", "ok", "failed", "clean"), [
    (20000, 20000, 0, True),
    (20000, 19999, 0, False),   # a transaction neither succeeded nor failed (lost)
    (20000, 20000, 3, False),
    (20000, 0, 0, False),       # nothing answered
    (20000, 20000, -1, False),  # SIPp printed no statistics: nothing is known
])
def test_clean_step(offered, ok, failed, clean):
    assert benchlib.clean_step(offered, ok, failed) is clean


def test_the_fresh_machine_case_has_no_clean_step_and_no_ratio():
    # The minimal Kamailio answered 0 of every step; the cluster proxy was clean at 2,000/s.
    minimal = benchlib.best_clean([(rate, rate * 5, 0, rate * 5) for rate in (2000, 4000, 6000, 8000)])
    cluster = benchlib.best_clean([(2000, 10000, 10000, 0), (4000, 20000, 19000, 1000)])
    assert (minimal, cluster) == (0, 2000)
    with pytest.raises(SystemExit) as failure:
        benchlib.ratio(("cluster proxy (REGISTER)", cluster), ("minimal (REGISTER)", minimal))
    assert "minimal (REGISTER) had no clean step" in str(failure.value.code)
    assert "cluster proxy (REGISTER) and" not in str(failure.value.code)


def test_ratio_when_both_sides_had_a_clean_step():
    assert benchlib.ratio(("cluster", 2000), ("minimal", 8000)) == 0.25
    assert benchlib.best_clean([(2000, 10000, 10000, 0), (4000, 20000, 20000, 0), (6000, 30000, 1, 2)]) == 4000


def test_nothing_succeeded_is_a_failure():
    assert benchlib.require_some("calls", 3) == 3
    with pytest.raises(SystemExit, match="calls at 5/s: nothing succeeded"):
        benchlib.require_some("calls at 5/s", 0)


def test_noop_runs_that_changed_something_are_left_out():
    assert benchlib.noop_walls([(20.0, 0), (31.0, 2), (19.0, 0)]) == [20.0, 19.0]
    with pytest.raises(SystemExit, match="none of 2 no-op converges"):
        benchlib.noop_walls([(20.0, 1), (21.0, 4)])


def test_sip_probe_reads_the_answer(monkeypatch):
    def options(address, port, local_port):
        messages = [("sent", "OPTIONS sip:x SIP/2.0"), ("received", "SIP/2.0 200 OK")] if address == "203.0.113.11" \
            else [("sent", "OPTIONS sip:x SIP/2.0")]
        return sip.SipResult(0 if len(messages) == 2 else 1, "", messages)
    monkeypatch.setattr(sip, "options", options)
    assert benchlib.sip_probe("203.0.113.11")() == (True, "OPTIONS to 203.0.113.11:5060: 200")
    assert benchlib.sip_probe("203.0.113.31")() == (False, "OPTIONS to 203.0.113.31:5060: no answer")


@pytest.fixture
def ng_standin():
    """A UDP socket on loopback answering ng pings with pong, as rtpengine does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def serve():
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return
        cookie, _, body = data.partition(b" ")
        assert ng.bdecode(body)[0] == {"command": b"ping"}
        sock.sendto(cookie + b" " + ng.bencode({"result": "pong"}), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    thread.join(timeout=5)
    sock.close()


def test_ng_probe_pong(ng_standin):
    assert benchlib.ng_probe("127.0.0.1", ng_standin)() == (True, f"ng ping to 127.0.0.1:{ng_standin}: pong")


def test_ng_probe_silence():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nobody:
        nobody.bind(("127.0.0.1", 0))  # bound, never answers
        answered, detail = benchlib.ng_probe("127.0.0.1", nobody.getsockname()[1], timeout=0.3)()
    assert not answered and "no answer" in detail


def test_replication_gap_reads_when_the_peer_has_caught_up_or_stalled(monkeypatch):
    import bench_cluster

    counts = {11: iter([100, 100, 100]), 12: iter([90, 100])}
    monkeypatch.setattr(bench_cluster, "contacts", lambda n: next(counts[n]))
    monkeypatch.setattr(bench_cluster.time, "sleep", lambda s: None)
    held, replicated, _ = bench_cluster.replication_gap(11, 12)
    assert (held, replicated) == (100, 100)

    # The peer stays 3 short: read once its count has not grown for 2 s, the gap is what is missing.
    clock = iter(range(0, 100))
    monkeypatch.setattr(bench_cluster.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(bench_cluster, "contacts", lambda n: 100 if n == 11 else 97)
    held, replicated, waited = bench_cluster.replication_gap(11, 12, settle=10)
    assert (held, replicated) == (100, 97) and waited <= 10
