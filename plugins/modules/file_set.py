#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: file_set
short_description: Write a node's files as one set, in one module run on the host
version_added: 0.1.0
description:
  - Takes a list of files (a template rendered on the controller, a plain file from the role, or
    content), compares each with the host's copy (checksum, owner, group, mode) and writes only
    those that differ, each atomically (a temporary file in the same directory, then a rename).
  - All of it is one module run on the host, where a C(template) or C(copy) task per file is a
    checksum plus a file module run per file (and per loop item). On a run that changes nothing,
    that is the difference between one round trip and two per file.
  - Files marked O(files[].checked) are checked together before any of them goes live. When one of
    them differs, the whole group is written side by side into O(check.stage_dir) and
    O(check.command) runs there. If it fails, nothing is written anywhere (the other files of the
    set included) and the task fails with the checker's errors. When none of them differs, the
    check does not run.
  - A file with O(files[].validate) is written to its temporary file and checked there first.
  - RV(changed_labels) and RV(files) tell which files changed, so handlers can act per file
    (a restart for one, a reload for another) from one task.
  - Templates are rendered on the controller by the action plugin with the task's variables, as
    M(ansible.builtin.template) renders them (C(ansible_managed), C(template_path) and the other
    template variables included; C(trim_blocks) on, C(lstrip_blocks) off, trailing newlines kept).
author:
  - itsp.cluster engineers (@itsp-cluster)
options:
  files:
    description:
      - The files, each with exactly one of O(files[].template), O(files[].src) or O(files[].content).
      - Each O(files[].dest) may appear once.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - Absolute, normalised path of the file on the host. Its directory must exist or be listed in
            O(directories).
        type: path
        required: true
      template:
        description:
          - A Jinja2 template, found as M(ansible.builtin.template) finds its C(src) (the role's
            C(templates/) first), rendered on the controller with the task's variables.
        type: str
      src:
        description:
          - A plain UTF-8 file, found as M(ansible.builtin.copy) finds its C(src) (the role's C(files/)
            first), sent as it is.
        type: str
      content:
        description:
          - The file's content, as given.
        type: str
      template_vars:
        description:
          - Variables that only this file's template sees (one template rendered for several files).
        type: dict
      owner:
        description: User that owns the file (a name, or a numeric id). Left as it is when not given.
        type: str
      group:
        description: Group of the file (a name, or a numeric id). Left as it is when not given.
        type: str
      mode:
        description:
          - Octal permissions, as a quoted string such as V('0640'). Symbolic modes are not taken.
          - When not given, a new file gets the default of Ansible's atomic move (0666 less the umask)
            and an existing file keeps its mode.
        type: raw
      label:
        description:
          - A name for the file in RV(changed_labels) and RV(files), for handlers to test; defaults to
            O(files[].dest).
        type: str
      checked:
        description:
          - Whether the file belongs to the group that O(check) checks before it goes live.
        type: bool
        default: false
      validate:
        description:
          - A command run on the new content before it replaces this file, with C(%s) standing for the
            temporary file's path (for example V(nft -c -f %s)). Run without a shell.
        type: str
      only_if:
        description:
          - When V(false), the item is left out of the set (neither written nor removed, its template not
            rendered); the per-file C(when) of a set.
        type: bool
        default: true
  directories:
    description:
      - Directories made (with their parents) before the files are written, and whose owner, group and
        mode are kept as given.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute, normalised path of the directory.
        type: path
        required: true
      owner:
        description: User that owns the directory.
        type: str
      group:
        description: Group of the directory.
        type: str
      mode:
        description: Octal permissions as a quoted string, such as V('0750').
        type: raw
  check:
    description:
      - How the O(files[].checked) group is checked before it goes live.
    type: dict
    suboptions:
      command:
        description:
          - The check, as an argument list, run without a shell with O(check.stage_dir) as its working
            directory. A non-zero exit status rejects the set.
        type: list
        elements: str
        required: true
      stage_dir:
        description:
          - Where the checked files are written, under their own names, side by side, for the check. The
            set that was checked last stays there (useful when a check fails).
        type: path
        required: true
      name:
        description:
          - What to call the check in the failure message (V(kamailio -c) gives
            C(kamailio -c rejected the configuration; the live one is unchanged. ...)). Defaults to the
            command.
        type: str
  pending:
    description:
      - A file on the host that remembers what changed until the handlers acting on it have run. A
        run killed after the files went live but before its handlers (a reload, a restart) would
        otherwise leave the host with new files that nothing applies, and the next run, finding
        nothing to change, would not apply them either.
      - Once the set has passed its checks and before any file goes live, the labels of the files
        that differ are added to it (its directory is made when missing). Every run returns its
        labels in RV(changed_labels) and reports a change while it exists, so the handlers are
        notified again. The last handler removes it.
    type: path
notes:
  - The invocation returned (shown with C(-vvv)) gives each file's size in place of its content.
  - Content travels in the module's arguments; the set is meant for configuration files (up to a few
    MiB in all), not for large or binary files.
  - A file that holds secrets belongs in a task of its own with C(no_log=true) (the whole result,
    diff included, is then hidden).
  - Differing files are written in the order given, once everything has been checked; each write is
    atomic, the set as a whole is not (a host that dies half-way has some files new, some old, and
    the next run finishes the rest).
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts can be executed on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Nothing is written and the check does not run; RV(changed_labels) lists what would change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: full
    details: One diff per differing file (contents up to 64 KiB; the owner, group and mode when only
      those differ).
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: full
"""

EXAMPLES = r"""
- name: Write the node's files; kamailio.cfg and what it includes only once kamailio -c passed them
  itsp.cluster.file_set:
    directories:
      - {path: /etc/kamailio/dbtext, owner: root, group: kamailio, mode: "0750"}
      - {path: /var/lib/itsp-cluster/kamailio-staged, owner: root, group: kamailio, mode: "0750"}
    files:
      - {dest: /etc/default/kamailio, template: default.j2, owner: root, group: root, mode: "0644",
         label: service environment}
      - {dest: /etc/kamailio/dbtext/address, template: dbtext_address.j2, group: kamailio, mode: "0640",
         label: address table}
      - {dest: /etc/kamailio/dbtext/trunk, template: dbtext_htable.j2, template_vars: {item: trunk},
         group: kamailio, mode: "0640"}
      - {dest: /etc/kamailio/dispatcher.list, template: dispatcher.list.j2, group: kamailio, mode: "0640",
         only_if: "{{ kamailio_dispatcher_sets | length > 0 }}"}
      - {dest: /etc/kamailio/kamailio.cfg, src: kamailio.cfg, group: kamailio, mode: "0640", checked: true}
      - {dest: /etc/kamailio/kamailio-local.cfg, template: kamailio-local.cfg.j2, group: kamailio,
         mode: "0640", checked: true}
    check:
      command: [kamailio, -c, -f, /var/lib/itsp-cluster/kamailio-staged/kamailio.cfg]
      stage_dir: /var/lib/itsp-cluster/kamailio-staged
      name: kamailio -c
  register: node_files
  notify: Restart kamailio

- name: A ruleset checked by nft before it replaces the live one
  itsp.cluster.file_set:
    files:
      - {dest: /etc/nftables.d/itsp-cluster.nft, template: itsp-cluster.nft.j2, owner: root, group: root,
         mode: "0644", validate: nft -c -f %s}

- name: A secret file, in a task of its own
  itsp.cluster.file_set:
    files:
      - {dest: /etc/kamailio/dbtext/subscriber, template: dbtext_subscriber.j2, group: kamailio, mode: "0640"}
  no_log: true
"""

RETURN = r"""
changed_dests:
  description: The dests that changed (or, in check mode, would), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/kamailio/dispatcher.list]
changed_labels:
  description: The labels of the files that changed (a file's dest when it has no label).
  returned: always
  type: list
  elements: str
  sample: [dispatcher list]
changed_directories:
  description: The directories made, or whose owner, group or mode were set.
  returned: always
  type: list
  elements: str
  sample: []
files:
  description: One entry per file, in the order given (items left out with only_if are not listed).
  returned: always
  type: list
  elements: dict
  contains:
    dest:
      description: The file's path.
      type: str
    label:
      description: Its label (its dest when it has none).
      type: str
    changed:
      description: Whether its content, owner, group or mode changed.
      type: bool
    content_changed:
      description: Whether its content changed (a new file included).
      type: bool
    created:
      description: Whether it did not exist before.
      type: bool
  sample:
    - {dest: /etc/kamailio/dispatcher.list, label: dispatcher list, changed: true, content_changed: true,
       created: false}
pending_labels:
  description: The labels O(pending) held when the run started (also in RV(changed_labels)).
  returned: always
  type: list
  elements: str
  sample: [dispatcher list]
checked:
  description: Whether O(check.command) ran (and passed) in this run.
  returned: always
  type: bool
  sample: false
stage_dir:
  description: Where the rejected set was staged, when the check failed.
  returned: failure
  type: str
  sample: /var/lib/itsp-cluster/kamailio-staged
"""

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.itsp.cluster.plugins.module_utils.file_set import FileSet, FileSetError, shape_problem


def argument_spec():
    return {
        "files": {"type": "list", "elements": "dict", "required": True, "options": {
            "dest": {"type": "path", "required": True},
            "template": {"type": "str"},
            "src": {"type": "str"},
            "content": {"type": "str"},
            "template_vars": {"type": "dict"},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
            "label": {"type": "str"},
            "checked": {"type": "bool", "default": False},
            "validate": {"type": "str"},
            "only_if": {"type": "bool", "default": True},
        }},
        "directories": {"type": "list", "elements": "dict", "default": [], "options": {
            "path": {"type": "path", "required": True},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
        }},
        "check": {"type": "dict", "options": {
            "command": {"type": "list", "elements": "str", "required": True},
            "stage_dir": {"type": "path", "required": True},
            "name": {"type": "str"},
        }},
        "pending": {"type": "path"},
    }


def main():
    problem = shape_problem(basic._load_params())
    if problem:
        # A module that takes the arguments as they are, only to fail with the message.
        as_given = {name: {"type": "raw"} for name in argument_spec()}
        AnsibleModule(argument_spec=as_given, supports_check_mode=True).fail_json(msg=problem)
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        result = FileSet(module, params["files"], params["directories"], params["check"], params["pending"]).run()
    except FileSetError as exc:
        result = dict(exc.details, failed=True, msg=str(exc))
    except OSError as exc:
        result = {"failed": True, "msg": f"files: {exc.filename or ''}: {exc.strerror or exc}"}
    # The invocation shown with -vvv would repeat every file's content: its size stands for it.
    for item in params["files"]:
        if isinstance(item.get("content"), str):
            item["content"] = f"[{len(item['content'].encode('utf-8', 'surrogateescape'))} bytes, not shown]"
    if result.get("failed"):
        result.pop("failed")
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
