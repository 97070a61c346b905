#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: kamailio_rpc
short_description: Run a Kamailio RPC command over the local jsonrpcs datagram socket
version_added: 0.1.0
description:
  - Sends one JSON-RPC 2.0 request to Kamailio's C(jsonrpcs) module on the managed host, over its
    Unix datagram socket O(socket), and returns the parsed answer. Nothing goes over the network.
  - Use it for hot reloads in handlers (C(dispatcher.reload), C(rtpengine.reload)) and to read
    state (C(dispatcher.list), C(core.psx), C(ul.dump), C(dmq.list_nodes),
    C(stats.get_statistics)).
  - Kamailio answers to a temporary socket that the module binds in a new directory next to
    O(socket) (mode 0711, the socket itself has a random name and mode 0666, because Kamailio
    usually answers as its own user). Both are removed when the call ends, whatever the outcome.
  - Kamailio must load C(jsonrpcs.so) with a datagram socket, in kamailio.cfg for example
    modparam("jsonrpcs", "transport", 4) and
    modparam("jsonrpcs", "dgram_socket", "/run/kamailio/kamailio_rpc.sock").
  - A JSON-RPC error from Kamailio (for example C(500 Method Not Found) when the module providing
    the method is not loaded) fails the task, keeping the error's code and message in RV(error).
author:
  - itsp.cluster engineers (@itsp-cluster)
options:
  method:
    description:
      - The RPC method, as C(kamcmd) spells it, for example V(dispatcher.reload) or V(core.psx).
      - One of O(method) and O(calls) is required.
    type: str
  calls:
    description:
      - Several read-only calls sent one after the other in one module run, instead of O(method).
        A node's reads cost one module start on the host, where a task per call started one each.
      - Every call is made. A JSON-RPC error in one of them is kept in its entry of RV(results) and
        does not stop the others; the task then fails with every error in its message (and
        RV(results) still holds every answer, for a C(failed_when) that accepts some errors).
        Kamailio unreachable or silent fails the task at once.
      - A method that changes Kamailio (see O(changes)) is refused; give it as O(method).
    type: list
    elements: dict
    suboptions:
      method:
        description: The RPC method, as in O(method).
        type: str
        required: true
      params:
        description: Positional parameters, as in O(params).
        type: list
        elements: raw
        default: []
  params:
    description:
      - Positional parameters, in the order the method expects them. Kamailio ignores parameter
        names, so a list is all it takes.
      - Values keep their YAML types; Kamailio converts a string that holds a number when the
        method wants a number.
    type: list
    elements: raw
    default: []
  socket:
    description:
      - Absolute path of the jsonrpcs datagram socket, the C(dgram_socket) parameter of C(jsonrpcs).
      - The module needs write access to its directory for the reply socket (V(become=true) for
        C(/run/kamailio)).
    type: path
    default: /run/kamailio/kamailio_rpc.sock
  timeout:
    description:
      - Seconds to wait for Kamailio to take the request and answer it.
    type: float
    default: 5
  changes:
    description:
      - Whether the call changes the running Kamailio, which is what RV(changed) reports and what
        check mode skips.
      - When not set, V(true) for methods whose last part contains C(reload) (C(dispatcher.reload),
        C(htable.reload), C(permissions.addressReload), C(uac.reg_reload), ...) and for these
        known mutating methods of Kamailio 5.6 C(cfg.add_group_inst), C(cfg.commit), C(cfg.del),
        C(cfg.del_delayed), C(cfg.del_group_inst), C(cfg.reset), C(cfg.rollback), C(cfg.set),
        C(cfg.set_delayed), C(cfg.set_delayed_int), C(cfg.set_delayed_string), C(cfg.set_now_int),
        C(cfg.set_now_string), C(cfg.seti), C(cfg.sets), C(core.kill), C(dbg.reset_msgid),
        C(dbg.set_mod_facility), C(dbg.set_mod_level), C(dispatcher.add), C(dispatcher.remove),
        C(dispatcher.set_duid_state), C(dispatcher.set_state), C(dlg.bridge_dlg), C(dlg.end_dlg),
        C(dlg.set_state), C(dlg.terminate_dlg), C(dmq.remove), C(dns.add_*), C(dns.delete_*),
        C(dst_blocklist.add), C(dst_blocklist.delete_all), C(htable.delete), C(htable.flush),
        C(htable.setex), C(htable.seti), C(htable.sets), C(htable.setxi), C(htable.setxs),
        C(htable.store), C(pv.shvSet), C(rtpengine.enable), C(stats.clear_statistics),
        C(stats.reset_statistics), C(tm.cancel), C(tm.clean), C(tm.reply), C(tm.reply_callid),
        C(tm.t_uac_start), C(tm.t_uac_wait), C(tm.t_uac_wait_block), C(ul.add), C(ul.flush),
        C(ul.rm), C(ul.rm_contact).
      - V(false) for every other method. Set it for a method that changes state but is not listed
        (one that only changes when given a parameter, such as C(dispatcher.ping_active)).
    type: bool
notes:
  - Only the Python standard library is used on the host.
  - One request is one datagram; jsonrpcs drops requests over 65456 bytes without answering, so the
    module refuses them. Kamailio cannot send answers over about 128 KiB (it logs
    C(failed to send the response)), which shows up here as no answer within O(timeout); set
    modparam("jsonrpcs", "pretty_format", 0) to keep answers small.
  - The dispatcher module refuses a C(dispatcher.reload) that comes within its C(reload_delta)
    (5 seconds by default) of the previous one, with C(500 Ongoing reload); notify the reload
    handler once per play rather than calling it from several tasks.
  - A calling task that is killed (SIGKILL) can leave its reply directory C(ansible-rpc-*) next to
    O(socket); C(/run) is emptied at boot.
seealso:
  - name: Kamailio jsonrpcs module
    description: The datagram transport and its parameters (dgram_socket, dgram_mode, dgram_group).
    link: https://www.kamailio.org/docs/modules/5.6.x/modules/jsonrpcs.html
  - name: Kamailio RPC commands
    description: What each module's RPC methods take and return.
    link: https://www.kamailio.org/docs/modules/5.6.x/
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: A call that changes Kamailio (see O(changes)) is not sent, RV(result) is null and
      RV(changed) is true. Read-only calls run, so their results can be used in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: none
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: partial
    details: Read-only calls never report a change. Kamailio does not say whether a reload or a
      set changed anything, so a mutating call reports a change every time; run it from a handler.
"""

EXAMPLES = r"""
- name: Reload the dispatcher list without restarting Kamailio
  itsp.cluster.kamailio_rpc:
    method: dispatcher.reload
  become: true

- name: Read the dispatcher sets
  itsp.cluster.kamailio_rpc:
    method: dispatcher.list
  become: true
  register: kamailio_dispatcher

- name: Take a destination out of rotation (state inactive + probing)
  itsp.cluster.kamailio_rpc:
    method: dispatcher.set_state
    params: [ip, 1, "sip:198.18.0.21:5060"]
  become: true

- name: Registered contacts, with a longer wait on a busy registrar
  itsp.cluster.kamailio_rpc:
    method: ul.dump
    params: [brief]
    timeout: 15
  become: true

- name: Several reads in one module run (each answer in results, an error kept in its entry)
  itsp.cluster.kamailio_rpc:
    calls:
      - method: dispatcher.list
      - method: htable.get
        params: [node, draining]
  become: true
  register: kamailio_reads
  failed_when: >-
    kamailio_reads.results is not defined
    or kamailio_reads.results | selectattr('error', 'defined') | list | length > 0
- name: A method that only changes state with a parameter
  itsp.cluster.kamailio_rpc:
    method: dispatcher.ping_active
    params: [1]
    changes: true
  become: true
"""

RETURN = r"""
method:
  description: The RPC method that was called (or, in check mode, would have been).
  returned: when O(method) was given
  type: str
  sample: dispatcher.list
results:
  description: One entry per O(calls) item, in order, with C(method) and either C(result) or C(error).
  returned: when O(calls) was given, also when the task failed on a JSON-RPC error
  type: list
  elements: dict
  sample:
    - method: htable.get
      result:
        item:
          name: draining
          value: 0
    - method: dispatcher.list
      error:
        code: 500
        message: No Destination Sets
result:
  description:
    - The C(result) member of Kamailio's JSON-RPC answer, parsed. Its shape depends on the method.
    - Null when check mode skipped a call that changes Kamailio.
  returned: success, when O(method) was given
  type: raw
  sample:
    NRSETS: 1
    RECORDS:
      - SET:
          ID: 1
          TARGETS:
            - DEST:
                URI: sip:198.18.0.21:5060
                FLAGS: AP
                PRIORITY: 0
error:
  description: The JSON-RPC error object Kamailio answered with.
  returned: when Kamailio answered with a JSON-RPC error
  type: dict
  contains:
    code:
      description: Error code as Kamailio sent it.
      type: int
      sample: 500
    message:
      description: Error message as Kamailio sent it.
      type: str
      sample: Method Not Found
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.itsp.cluster.plugins.module_utils.kamailio_rpc import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    KamailioRpc,
    KamailioRpcError,
    KamailioRpcReads,
)


def argument_spec():
    return {
        "method": {"type": "str"},
        "calls": {"type": "list", "elements": "dict", "options": {
            "method": {"type": "str", "required": True},
            "params": {"type": "list", "elements": "raw", "default": []},
        }},
        "params": {"type": "list", "elements": "raw", "default": []},
        "socket": {"type": "path", "default": DEFAULT_SOCKET},
        "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
        "changes": {"type": "bool"},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[["method", "calls"]],
                           mutually_exclusive=[["method", "calls"], ["calls", "params"], ["calls", "changes"]])
    params = module.params
    if params["calls"] is not None:
        # Read-only, so check mode runs them as well.
        try:
            result, errors = KamailioRpcReads(params["calls"], socket_path=params["socket"],
                                              timeout=params["timeout"]).run()
        except KamailioRpcError as exc:
            module.fail_json(msg=str(exc))
        if errors:
            module.fail_json(msg="; ".join(errors), **result)
        module.exit_json(**result)
    try:
        result = KamailioRpc(
            method=params["method"],
            params=params["params"],
            socket_path=params["socket"],
            timeout=params["timeout"],
            changes=params["changes"],
        ).run(check_mode=module.check_mode)
    except KamailioRpcError as exc:
        failure = {"msg": str(exc), "method": params["method"]}
        if exc.error is not None:
            failure["error"] = exc.error
        module.fail_json(**failure)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
