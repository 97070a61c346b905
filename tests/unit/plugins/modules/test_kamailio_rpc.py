"""The kamailio_rpc module as Ansible runs it: arguments in, exit_json/fail_json out (both raise
here), against a fake jsonrpcs datagram socket in a short temporary directory."""

import os

import pytest
import yaml
from ansible_collections.itsp.cluster.plugins.module_utils.kamailio_rpc import MUTATING_METHODS
from ansible_collections.itsp.cluster.plugins.modules import kamailio_rpc
from ansible_collections.itsp.cluster.tests.unit.plugins.fake_kamailio import FakeKamailio, json_rpc_answers
from module_harness import failure_of


@pytest.fixture
def kamailio(short_dir):
    ok = json_rpc_answers(lambda request: {"result": "Ok."})
    server = FakeKamailio(os.path.join(short_dir, "kamailio_rpc.sock"), ok)
    yield server
    server.stop()


@pytest.fixture
def run(run_module):
    """run(args, check_mode) -> the kwargs of exit_json; raises Fail(kwargs) from fail_json."""
    return run_module.bind(kamailio_rpc.main)


# -- calls -------------------------------------------------------------------------------------------

def test_read_only_call_returns_the_result_unchanged(run, kamailio):
    kamailio.answer = json_rpc_answers(lambda request: {"result": {"NRSETS": 1, "RECORDS": []}})
    result = run({"method": "dispatcher.list", "socket": kamailio.path})
    assert result == {"changed": False, "method": "dispatcher.list", "result": {"NRSETS": 1, "RECORDS": []}}
    assert [r["method"] for r in kamailio.requests] == ["dispatcher.list"]


def test_reload_reports_a_change(run, kamailio):
    kamailio.answer = json_rpc_answers(lambda request: {"result": "Ok. Dispatcher successfully reloaded."})
    result = run({"method": "dispatcher.reload", "socket": kamailio.path})
    assert result == {"changed": True, "method": "dispatcher.reload",
                      "result": "Ok. Dispatcher successfully reloaded."}


def test_params_are_sent_in_order_with_their_types(run, kamailio):
    run({"method": "dispatcher.set_state", "params": ["ip", 2, "sip:127.0.0.1:5071"], "socket": kamailio.path})
    assert kamailio.requests[0]["params"] == ["ip", 2, "sip:127.0.0.1:5071"]


def test_changes_overrides_the_default(run, kamailio):
    assert run({"method": "dispatcher.reload", "changes": False, "socket": kamailio.path})["changed"] is False
    assert run({"method": "dispatcher.ping_active", "params": [1], "changes": True,
                "socket": kamailio.path})["changed"] is True


def test_calls_make_every_read_in_one_run(run, kamailio):
    answers = {"htable.get": {"result": {"item": {"name": "draining", "value": 0}}},
               "dispatcher.list": {"result": {"NRSETS": 1, "RECORDS": []}}}
    kamailio.answer = json_rpc_answers(lambda request: answers[request["method"]])
    result = run({"calls": [{"method": "dispatcher.list"}, {"method": "htable.get", "params": ["node", "draining"]}],
                  "socket": kamailio.path})
    assert result == {"changed": False, "results": [
        {"method": "dispatcher.list", "result": {"NRSETS": 1, "RECORDS": []}},
        {"method": "htable.get", "result": {"item": {"name": "draining", "value": 0}}}]}
    assert [(r["method"], r["params"]) for r in kamailio.requests] == [
        ("dispatcher.list", []), ("htable.get", ["node", "draining"])]


def test_calls_keep_an_error_and_make_the_other_reads(run, kamailio):
    def answer(request):
        if request["method"] == "dispatcher.list":
            return {"error": {"code": 500, "message": "No Destination Sets"}}
        return {"result": "Ok."}
    kamailio.answer = json_rpc_answers(answer)
    failed = failure_of(run, {"calls": [{"method": "dispatcher.list"}, {"method": "core.uptime"}],
                              "socket": kamailio.path})
    assert failed == {
        "msg": f"Kamailio RPC dispatcher.list failed on {kamailio.path}: error 500 No Destination Sets",
        "changed": False,
        "results": [{"method": "dispatcher.list", "error": {"code": 500, "message": "No Destination Sets"}},
                    {"method": "core.uptime", "result": "Ok."}],
    }


def test_calls_run_in_check_mode(run, kamailio):
    result = run({"calls": [{"method": "core.uptime"}], "socket": kamailio.path}, check_mode=True)
    assert result == {"changed": False, "results": [{"method": "core.uptime", "result": "Ok."}]}


def test_calls_to_a_stopped_kamailio_fail_clearly(run, short_dir):
    path = os.path.join(short_dir, "kamailio_rpc.sock")
    failed = failure_of(run, {"calls": [{"method": "core.uptime"}], "socket": path})
    assert failed["msg"].startswith(f"Kamailio is not running or jsonrpcs has no dgram_socket: {path} does not exist.")
    assert "results" not in failed


# -- check mode ------------------------------------------------------------------------------------

def test_check_mode_does_not_send_a_mutating_call(run, kamailio):
    result = run({"method": "ul.rm", "params": ["location", "alice"], "socket": kamailio.path}, check_mode=True)
    assert result == {"changed": True, "method": "ul.rm", "result": None}
    assert kamailio.requests == []


def test_check_mode_runs_a_read_only_call(run, kamailio):
    psx = [{"IDX": 0, "PID": 4242, "DSC": "main process - attendant"}]
    kamailio.answer = json_rpc_answers(lambda request: {"result": psx})
    result = run({"method": "core.psx", "socket": kamailio.path}, check_mode=True)
    assert result["result"] == [{"IDX": 0, "PID": 4242, "DSC": "main process - attendant"}]
    assert result["changed"] is False
    assert [r["method"] for r in kamailio.requests] == ["core.psx"]


def test_check_mode_mutating_call_needs_no_running_kamailio(run, short_dir):
    result = run({"method": "rtpengine.reload", "socket": os.path.join(short_dir, "absent.sock")}, check_mode=True)
    assert result == {"changed": True, "method": "rtpengine.reload", "result": None}


# -- failures ----------------------------------------------------------------------------------------

def test_jsonrpc_error_keeps_code_and_message(run, kamailio):
    kamailio.answer = json_rpc_answers(lambda request: {"error": {"code": 500, "message": "Method Not Found"}})
    failed = failure_of(run, {"method": "dmq.list_nodes", "socket": kamailio.path})
    assert failed == {
        "msg": f"Kamailio RPC dmq.list_nodes failed on {kamailio.path}: error 500 Method Not Found "
               "(is the module that provides it loaded in kamailio.cfg?)",
        "method": "dmq.list_nodes",
        "error": {"code": 500, "message": "Method Not Found"},
    }


def test_stopped_kamailio_fails_clearly_and_changes_nothing(run, short_dir):
    path = os.path.join(short_dir, "kamailio_rpc.sock")
    failed = failure_of(run, {"method": "dispatcher.reload", "socket": path})
    assert failed == {
        "msg": f"Kamailio is not running or jsonrpcs has no dgram_socket: {path} does not exist. Check that "
               f"kamailio is running and that kamailio.cfg loads jsonrpcs.so with "
               f"modparam(\"jsonrpcs\", \"transport\", 4) and modparam(\"jsonrpcs\", \"dgram_socket\", \"{path}\").",
        "method": "dispatcher.reload",
    }
    assert os.listdir(short_dir) == []


@pytest.mark.parametrize("args, message", [
    ({}, "one of the following is required: method, calls"),
    ({"method": "core.psx", "calls": [{"method": "core.uptime"}]},
     "parameters are mutually exclusive: method|calls"),
    ({"calls": [{"method": "core.psx"}], "changes": False}, "parameters are mutually exclusive: calls|changes"),
    ({"calls": []}, "calls must list at least one read, each {method, params}"),
    ({"calls": [{"params": [1]}]}, "missing required arguments: method found in calls"),
    ({"calls": [{"method": "core.psx"}, {"method": "reload"}]},
     "calls[1]: method must be a Kamailio RPC name such as dispatcher.reload or core.psx, got 'reload'"),
    ({"calls": [{"method": "dispatcher.list"}, {"method": "htable.seti", "params": ["node", "draining", 1]}]},
     "calls[1]: htable.seti changes Kamailio; calls takes read-only methods only (give a call that changes "
     "Kamailio as method, in a task of its own)"),
    ({"method": "reload"},
     "method must be a Kamailio RPC name such as dispatcher.reload or core.psx, got 'reload'"),
    ({"method": "core.psx", "socket": "run/kamailio_rpc.sock"},
     "socket must be an absolute path (Kamailio answers to a path next to it), got 'run/kamailio_rpc.sock'"),
    ({"method": "core.psx", "timeout": 0}, "timeout must be greater than 0 and at most 3600 seconds, got 0.0"),
    ({"method": "core.psx", "timeout": "soon"},
     "argument 'timeout' is of type <class 'str'> and we were unable to convert to float: "
     "<class 'str'> cannot be converted to a float"),
])
def test_bad_input_fails_with_a_message(run, args, message):
    assert failure_of(run, args)["msg"] == message


def test_changes_must_be_a_boolean(run):
    # Ansible lists the valid booleans from a set, in no fixed order, after this.
    assert failure_of(run, {"method": "core.psx", "changes": "perhaps"})["msg"].startswith(
        "argument 'changes' is of type <class 'str'> and we were unable to convert to bool: "
        "The value 'perhaps' is not a valid boolean.  Valid booleans include: ")


# -- DOCUMENTATION and argument_spec agree -------------------------------------------------------

def documented_options():
    return yaml.safe_load(kamailio_rpc.DOCUMENTATION)["options"]


def test_documentation_matches_argument_spec():
    spec, docs = kamailio_rpc.argument_spec(), documented_options()
    assert set(spec) == set(docs)
    for name, option in spec.items():
        doc = docs[name]
        assert option.get("type", "str") == doc.get("type", "str"), name
        assert option.get("required", False) == doc.get("required", False), name
        assert option.get("default") == doc.get("default"), name
        assert option.get("choices") == doc.get("choices"), name
        assert option.get("elements") == doc.get("elements"), name


def test_documented_mutating_methods_are_the_ones_used():
    text = " ".join(documented_options()["changes"]["description"])
    for method in MUTATING_METHODS:
        family = method.split("_", 1)[0] + "_*"
        assert f"C({method})" in text or f"C({family})" in text, method


def test_documentation_sections_parse():
    for section in (kamailio_rpc.DOCUMENTATION, kamailio_rpc.EXAMPLES, kamailio_rpc.RETURN):
        assert yaml.safe_load(section)
    attributes = yaml.safe_load(kamailio_rpc.DOCUMENTATION)["attributes"]
    assert set(attributes) == {"check_mode", "diff_mode", "idempotent"}
