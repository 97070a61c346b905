"""itsp.cluster.file_set end to end with ansible-playbook -c local against a temporary directory:
the action plugin renders templates on the controller exactly as ansible.builtin.template does
(a template task over the same file reports no change), plain files and content go as given, a
second run changes nothing, check mode writes nothing, a failing check of the checked group
changes nothing, and a no_log task shows no content."""

import json
import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TASKS = """
- name: Write the set
  itsp.cluster.file_set:
    directories:
      - {path: "{{ out }}/conf.d", mode: "0750"}
      - {path: "{{ out }}/stage", mode: "0700"}
    files:
      - {dest: "{{ out }}/main.cfg", src: main.cfg, mode: "0640", label: routing, checked: true}
      - {dest: "{{ out }}/conf.d/local.cfg", template: local.cfg.j2, mode: "0640", label: site values,
         checked: true}
      - {dest: "{{ out }}/conf.d/trunk", template: table.j2, template_vars: {item: trunk}, mode: "0600"}
      - {dest: "{{ out }}/note", content: "{{ note }}\\n", mode: "0644", only_if: "{{ with_note }}"}
      - {dest: "{{ out }}/never", template: missing-on-purpose.j2, only_if: false}
    check:
      command: [sh, -c, "grep -q 'port={{ sip_port }}' local.cfg && ! grep -q 'port=0' local.cfg"]
      stage_dir: "{{ out }}/stage"
      name: the port check
  register: written

- name: Keep what it said
  ansible.builtin.copy:
    content: "{{ written | to_json }}"
    dest: "{{ out }}/../result.json"
    mode: "0644"
  check_mode: false

- name: The same template through ansible.builtin.template changes nothing
  ansible.builtin.template:
    src: local.cfg.j2
    dest: "{{ out }}/conf.d/local.cfg"
    mode: "0640"
  register: same
  failed_when: same is changed
  when: not ansible_check_mode

- name: A secret, no_log
  itsp.cluster.file_set:
    files:
      - {dest: "{{ out }}/secret", content: "{{ secret }}\\n", mode: "0600"}
  no_log: true
"""

TEMPLATE = """{{ ansible_managed | comment }}
#!define PORT {{ sip_port }}
{% for peer in peers %}
peer={{ peer }}
{% endfor %}
port={{ sip_port }}
"""


@pytest.fixture
def workspace(tmp_path):
    role = tmp_path / "roles" / "r"
    (role / "tasks").mkdir(parents=True)
    (role / "templates").mkdir()
    (role / "files").mkdir()
    (role / "tasks" / "main.yml").write_text(TASKS)
    (role / "templates" / "local.cfg.j2").write_text(TEMPLATE)
    (role / "templates" / "table.j2").write_text("table {{ item }}\n")
    (role / "files" / "main.cfg").write_text("include_file \"conf.d/local.cfg\"\n")
    (tmp_path / "play.yml").write_text("- hosts: localhost\n  gather_facts: false\n  roles: [r]\n")
    (tmp_path / "out").mkdir()
    return tmp_path


def play(workspace, *extra, **variables):
    values = dict({"out": str(workspace / "out"), "sip_port": 5060, "peers": ["198.18.0.11", "198.18.0.12"],
                   "note": "hello", "with_note": True, "secret": "HA1-not-for-the-log"}, **variables)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=str(workspace / "roles"), ANSIBLE_STDOUT_CALLBACK="default")
    done = subprocess.run(["ansible-playbook", "-c", "local", "-i", "localhost,", "-e",
                           json.dumps(dict(values, ansible_python_interpreter=sys.executable)), *extra,
                           str(workspace / "play.yml")], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    result = workspace / "result.json"
    return done, json.loads(result.read_text()) if result.exists() else None


def snapshot(top):
    return {os.path.relpath(os.path.join(d, f), top): (open(os.path.join(d, f), "rb").read(),
                                                        stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode))
            for d, _dirs, files in os.walk(top) for f in files}


def test_first_run_writes_the_set_the_second_changes_nothing(workspace):
    done, result = play(workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = workspace / "out"
    assert result["changed_labels"] == ["routing", "site values", str(out / "conf.d/trunk"), str(out / "note")]
    assert result["checked"] is True
    assert (out / "conf.d/local.cfg").read_text() == (
        "#\n# Ansible managed\n#\n#!define PORT 5060\npeer=198.18.0.11\npeer=198.18.0.12\nport=5060\n")
    assert (out / "conf.d/trunk").read_text() == "table trunk\n"
    assert not (out / "never").exists()
    assert stat.S_IMODE(os.stat(out / "conf.d").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(out / "secret").st_mode) == 0o600
    assert "HA1-not-for-the-log" not in done.stdout + done.stderr
    again, result = play(workspace, "-vvv")
    assert again.returncode == 0, again.stdout[-3000:]
    # -vvv shows the invocation: sizes, not contents.
    assert '"content": "[32 bytes, not shown]"' in again.stdout and "include_file" not in again.stdout
    assert result["changed"] is False and result["checked"] is False
    # Only the task that keeps the result changes (its content has changed).
    assert "changed=1 " in again.stdout
    assert "TASK [r : A secret, no_log] ****" in again.stdout
    secret_task = again.stdout.split("TASK [r : A secret, no_log]")[1].split("PLAY RECAP")[0]
    assert "ok: [localhost]" in secret_task and "censored" in secret_task


def test_check_mode_and_diff_write_nothing(workspace):
    assert play(workspace)[0].returncode == 0
    before = snapshot(workspace / "out")
    done, result = play(workspace, "--check", "--diff", sip_port=5070, with_note=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert result["changed_labels"] == ["site values"]
    assert "-port=5060\n+port=5070" in done.stdout
    assert snapshot(workspace / "out") == before


def test_a_set_failing_its_check_changes_nothing(workspace):
    assert play(workspace)[0].returncode == 0
    before = snapshot(workspace / "out")
    # port=0 fails the check; the note (not in the checked group) would change too, and must not.
    done, _result = play(workspace, sip_port=0, note="changed")
    assert done.returncode != 0
    assert "the port check rejected the configuration; the live one is unchanged." in done.stdout
    after = snapshot(workspace / "out")
    staged = {k: v for k, v in after.items() if k.startswith("stage/")}
    assert {k: v for k, v in after.items() if not k.startswith("stage/")} == \
        {k: v for k, v in before.items() if not k.startswith("stage/")}
    assert b"port=0" in staged["stage/local.cfg"][0]  # what was rejected, kept for a look


def test_bad_items_are_named_before_anything_is_rendered(workspace):
    tasks = workspace / "roles" / "r" / "tasks" / "main.yml"
    tasks.write_text(TASKS.replace("src: main.cfg,", "src: main.cfg, content: twice,"))
    done, _result = play(workspace)
    assert done.returncode != 0
    assert f"files[0] ({workspace / 'out'}/main.cfg): give exactly one of template, src or content " \
           "(got src, content)" in done.stdout
    assert os.listdir(workspace / "out") == []
