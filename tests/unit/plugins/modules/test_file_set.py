"""itsp.cluster.file_set's module half, through main(): what it writes, what it leaves, the check of
the checked group, check mode, and bad input failing with a message that names the item."""

import os
import stat

import pytest
from ansible_collections.itsp.cluster.plugins.modules import file_set
from module_harness import failure_of

ME = os.getuid()


@pytest.fixture
def run(run_module):
    return run_module.bind(file_set.main)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_only_what_differs_and_reports_it(run, tmp_path):
    (tmp_path / "same").write_text("same\n")
    os.chmod(tmp_path / "same", 0o640)
    (tmp_path / "old").write_text("old\n")
    before = os.stat(tmp_path / "same").st_ino
    done = run({"files": [
        {"dest": str(tmp_path / "same"), "content": "same\n", "mode": "0640", "label": "same one"},
        {"dest": str(tmp_path / "old"), "content": "new\n", "mode": "0600"},
        {"dest": str(tmp_path / "fresh"), "content": "fresh\n", "mode": "0644", "label": "fresh one"},
    ]})
    assert done["changed"] is True
    assert done["changed_dests"] == [str(tmp_path / "old"), str(tmp_path / "fresh")]
    assert done["changed_labels"] == [str(tmp_path / "old"), "fresh one"]
    assert [f["created"] for f in done["files"]] == [False, False, True]
    assert (tmp_path / "old").read_text() == "new\n" and mode_of(tmp_path / "old") == 0o600
    assert (tmp_path / "fresh").read_text() == "fresh\n" and mode_of(tmp_path / "fresh") == 0o644
    assert os.stat(tmp_path / "same").st_ino == before  # not rewritten
    assert sorted(os.listdir(tmp_path)) == ["fresh", "old", "same"]  # no temporary file left


def test_second_run_changes_nothing(run, tmp_path):
    args = {"directories": [{"path": str(tmp_path / "d"), "mode": "0750"}],
            "files": [{"dest": str(tmp_path / "d" / "f"), "content": "x\n", "mode": "0640", "owner": str(ME)}]}
    assert run(args)["changed"] is True
    assert mode_of(tmp_path / "d") == 0o750
    again = run(args)
    assert again["changed"] is False and again["changed_dests"] == [] and again["changed_directories"] == []


def test_attributes_alone_are_corrected(run, tmp_path):
    (tmp_path / "f").write_text("x\n")
    os.chmod(tmp_path / "f", 0o666)
    done = run({"files": [{"dest": str(tmp_path / "f"), "content": "x\n", "mode": "0640"}]}, check_mode=False)
    assert done["files"][0] == {"dest": str(tmp_path / "f"), "label": str(tmp_path / "f"), "changed": True,
                                "content_changed": False, "created": False}
    assert mode_of(tmp_path / "f") == 0o640


def test_check_mode_writes_nothing_and_says_what_would_change(run, tmp_path):
    (tmp_path / "f").write_text("old\n")
    done = run({"directories": [{"path": str(tmp_path / "d")}],
                "files": [{"dest": str(tmp_path / "f"), "content": "new\n"},
                          {"dest": str(tmp_path / "d" / "g"), "content": "g\n", "checked": True}],
                "check": {"command": ["false"], "stage_dir": str(tmp_path / "d")}}, check_mode=True)
    assert done["changed"] is True and done["checked"] is False
    assert done["changed_dests"] == [str(tmp_path / "f"), str(tmp_path / "d" / "g")]
    assert sorted(os.listdir(tmp_path)) == ["f"] and (tmp_path / "f").read_text() == "old\n"


def test_check_mode_takes_a_missing_directory_for_one_an_earlier_task_makes(run, tmp_path):
    args = {"files": [{"dest": str(tmp_path / "pkg" / "f"), "content": "x\n"}]}
    assert run(args, check_mode=True)["changed_dests"] == [str(tmp_path / "pkg" / "f")]
    assert failure_of(run, args)["msg"] == (f"files[0] ({tmp_path / 'pkg' / 'f'}): directory {tmp_path / 'pkg'} "
                                            "does not exist; list it in directories")
    assert os.listdir(tmp_path) == []


def test_check_mode_takes_an_unknown_owner_or_group_for_one_an_earlier_task_makes(run, tmp_path):
    # A fresh proxy: the group comes with the kamailio package, which a real run installs first.
    (tmp_path / "f").write_text("x\n")
    args = {"directories": [{"path": str(tmp_path / "d"), "group": "no-such-group-here"}],
            "files": [{"dest": str(tmp_path / "f"), "content": "x\n", "group": "no-such-group-here"},
                      {"dest": str(tmp_path / "g"), "content": "g\n", "owner": "no-such-user-here"}]}
    done = run(args, check_mode=True)
    assert done["changed_dests"] == [str(tmp_path / "f"), str(tmp_path / "g")]
    assert done["changed_directories"] == [str(tmp_path / "d")]
    assert failure_of(run, args)["msg"] == (f"directories[0] ({tmp_path / 'd'}): group 'no-such-group-here' is not "
                                            "a group on this host")
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_a_refused_set_takes_back_the_directories_it_made(run, tmp_path):
    args = {"directories": [{"path": str(tmp_path / "new" / "deeper")}],
            "files": [{"dest": str(tmp_path / "new" / "deeper" / "f"), "content": "x\n", "validate": "false %s"}]}
    assert "validate rejected the new content; nothing was changed" in failure_of(run, args)["msg"]
    assert os.listdir(tmp_path) == []


def test_a_file_appears_with_its_mode_already_set(run, tmp_path, monkeypatch):
    # Written to a temporary file, then renamed: the rename must carry the wanted mode, so a secret
    # is never world-readable under its own name, not even between a rename and a chmod.
    (tmp_path / "old").write_text("old\n")
    os.chmod(tmp_path / "old", 0o644)
    seen = {}
    real_replace = os.replace

    def replace(src, dst):
        seen[os.path.basename(dst)] = mode_of(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    run({"files": [{"dest": str(tmp_path / "new"), "content": "secret\n", "mode": "0600"},
                   {"dest": str(tmp_path / "old"), "content": "secret\n", "mode": "0640"},
                   {"dest": str(tmp_path / "open"), "content": "x\n"}]})
    umask = os.umask(0)
    os.umask(umask)
    assert seen == {"new": 0o600, "old": 0o640, "open": 0o666 & ~umask}
    assert (mode_of(tmp_path / "new"), mode_of(tmp_path / "old")) == (0o600, 0o640)


def test_diff_shows_content_and_attributes(run_module, tmp_path, monkeypatch):
    (tmp_path / "f").write_text("old\n")
    (tmp_path / "g").write_text("g\n")
    os.chmod(tmp_path / "g", 0o600)
    run = run_module.bind(file_set.main)
    from module_harness import set_module_args
    real = set_module_args

    def with_diff(monkeypatch_, args, check_mode=False):
        real(monkeypatch_, dict(args, _ansible_diff=True), check_mode)

    monkeypatch.setattr("module_harness.set_module_args", with_diff)
    done = run({"files": [{"dest": str(tmp_path / "f"), "content": "new\n"},
                          {"dest": str(tmp_path / "g"), "content": "g\n", "mode": "0644"}]}, check_mode=True)
    assert done["diff"][0]["before"] == "old\n" and done["diff"][0]["after"] == "new\n"
    assert "mode 0600" in done["diff"][1]["before"] and "mode 0644" in done["diff"][1]["after"]


def checked_args(tmp_path, command, local="local=1\n"):
    live, stage = tmp_path / "live", tmp_path / "stage"
    live.mkdir(exist_ok=True)
    return {"directories": [{"path": str(stage), "mode": "0700"}],
            "files": [{"dest": str(tmp_path / "table"), "content": "table\n"},
                      {"dest": str(live / "main.cfg"), "content": "main\n", "checked": True},
                      {"dest": str(live / "local.cfg"), "content": local, "checked": True}],
            "check": {"command": command, "stage_dir": str(stage), "name": "the checker"}}


def test_the_checked_group_goes_live_only_after_its_check_passed(run, tmp_path):
    # The check sees the whole group side by side in the stage directory, its working directory.
    same_as_given = "test \"$(cat main.cfg local.cfg)\" = \"$(printf 'main\\nlocal=1')\""
    done = run(checked_args(tmp_path, ["sh", "-c", same_as_given]))
    assert done["checked"] is True
    assert (tmp_path / "live" / "local.cfg").read_text() == "local=1\n"
    # Nothing in the group differs: no check at all (a check that would fail is not run).
    again = run(checked_args(tmp_path, ["false"]))
    assert again["changed"] is False and again["checked"] is False


def test_a_failing_check_changes_nothing_anywhere(run, tmp_path):
    run(checked_args(tmp_path, ["true"]))
    failure = failure_of(run, checked_args(
        tmp_path, ["sh", "-c", "echo 'ERROR: bad facility in local.cfg' >&2; echo noise >&2; exit 255"],
        local="local=2\n"))
    assert failure["msg"] == ("the checker rejected the configuration; the live one is unchanged. "
                              "ERROR: bad facility in local.cfg")
    assert failure["rc"] == 255 and failure["stage_dir"] == str(tmp_path / "stage")
    assert (tmp_path / "live" / "local.cfg").read_text() == "local=1\n"
    assert (tmp_path / "stage" / "local.cfg").read_text() == "local=2\n"  # kept for a look


def test_a_failing_check_leaves_the_other_files_too(run, tmp_path):
    run(checked_args(tmp_path, ["true"]))
    args = checked_args(tmp_path, ["false"], local="local=2\n")
    args["files"][0]["content"] = "table 2\n"
    failure = failure_of(run, args)
    assert failure["msg"].startswith("the checker rejected the configuration; the live one is unchanged.")
    assert (tmp_path / "table").read_text() == "table\n"
    assert sorted(os.listdir(tmp_path)) == ["live", "stage", "table"]
    assert sorted(os.listdir(tmp_path / "live")) == ["local.cfg", "main.cfg"]


def test_validate_runs_on_the_new_content_before_it_replaces_the_file(run, tmp_path):
    (tmp_path / "rules").write_text("good\n")
    args = {"files": [{"dest": str(tmp_path / "rules"), "content": "bad\n", "validate": "grep -q good %s"},
                      {"dest": str(tmp_path / "other"), "content": "other\n"}]}
    failure = failure_of(run, args)
    assert failure["msg"].startswith(f"files[0] ({tmp_path / 'rules'}): validate rejected the new content; "
                                     "nothing was changed.")
    assert sorted(os.listdir(tmp_path)) == ["rules"] and (tmp_path / "rules").read_text() == "good\n"
    args["files"][0]["content"] = "good too\n"
    assert run(args)["changed_dests"] == [str(tmp_path / "rules"), str(tmp_path / "other")]


def test_items_left_out_keep_their_index_in_messages(run, tmp_path):
    failure = failure_of(run, {"files": [{"dest": str(tmp_path / "a"), "only_if": False},
                                         {"dest": str(tmp_path / "b"), "content": "b", "mode": "rw"}]})
    assert failure["msg"] == (f"files[1] ({tmp_path / 'b'}): mode must be octal such as '0640' "
                              "(symbolic modes are not taken), got 'rw'")
    assert run({"files": [{"dest": str(tmp_path / "a"), "only_if": False}]})["changed"] is False
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("files", "extra", "message"), [
    ([{"dest": "relative/path", "content": "x"}], {}, "files[0]: dest must be an absolute path, got 'relative/path'"),
    ([{"dest": "{tmp}/../x", "content": "x"}], {},
     "files[0]: dest must be a normalised path (no '..', '//' or trailing '/'), got '{tmp}/../x'"),
    ([{"dest": "{tmp}/a"}], {}, "files[0] ({tmp}/a): no content: give one of template, src or content"),
    ([{"dest": "{tmp}/a", "template": "a.j2"}], {},
     "files[0] ({tmp}/a): no content: template is rendered by the action plugin, which did not run (call the "
     "module as itsp.cluster.file_set)"),
    ([{"dest": "{tmp}/a", "content": "x"}, {"dest": "{tmp}/a", "content": "y"}], {},
     "files[1] ({tmp}/a): dest repeats files[0]; each file may be listed once"),
    ([{"dest": "{tmp}/a", "content": "x", "owner": "no-such-user-here"}], {},
     "files[0] ({tmp}/a): owner 'no-such-user-here' is not a user on this host"),
    ([{"dest": "{tmp}/a", "content": "x", "group": "no-such-group-here"}], {},
     "files[0] ({tmp}/a): group 'no-such-group-here' is not a group on this host"),
    ([{"dest": "{tmp}/a", "content": "x", "mode": "99999"}], {},
     "files[0] ({tmp}/a): mode must be octal such as '0640' (symbolic modes are not taken), got '99999'"),
    ([{"dest": "{tmp}/no/dir/a", "content": "x"}], {},
     "files[0] ({tmp}/no/dir/a): directory {tmp}/no/dir does not exist; list it in directories"),
    ([{"dest": "{tmp}", "content": "x"}], {},
     "files[0] ({tmp}): exists and is not a regular file (a link or a directory is not replaced)"),
    ([{"dest": "{tmp}/a", "content": "x", "checked": True}], {},
     "files[0] ({tmp}/a): checked is true but no check is given; give check (command and stage_dir)"),
    ([{"dest": "{tmp}/a", "content": "x"}], {"check": {"command": ["true"], "stage_dir": "{tmp}"}},
     "check is given but no file has checked set to true"),
    ([{"dest": "{tmp}/a", "content": "x", "checked": True}, {"dest": "{tmp}/b/a", "content": "x", "checked": True}],
     {"check": {"command": ["true"], "stage_dir": "{tmp}"}, "directories": [{"path": "{tmp}/b"}]},
     "files[1] ({tmp}/b/a): its name 'a' is also the name of files[0] ({tmp}/a); the checked files are staged "
     "side by side, so their names must differ"),
    ([{"dest": "{tmp}/a", "content": "x", "validate": "true"}], {},
     "files[0] ({tmp}/a): validate must contain %s (the path of the new file), got 'true'"),
    ([{"dest": "{tmp}/a", "content": "x"}], {"directories": [{"path": "{tmp}/a.txt"}]},
     "directories[0] ({tmp}/a.txt): exists and is not a directory"),
])
def test_bad_input_names_the_item_and_changes_nothing(run, tmp_path, files, extra, message):
    (tmp_path / "a.txt").write_text("keep\n")
    tmp = str(tmp_path)

    def filled(value):
        if isinstance(value, str):
            return value.replace("{tmp}", tmp)
        if isinstance(value, list):
            return [filled(v) for v in value]
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        return value

    failure = failure_of(run, filled(dict(extra, files=files)))
    assert failure["msg"] == filled(message)
    assert os.listdir(tmp_path) == ["a.txt"]



def test_pending_remembers_what_changed_until_the_handlers_remove_it(run, tmp_path):
    """A run killed after its files went live and before its handlers: the next run, with nothing
    left to write, still reports the change (so the handlers are notified) until they remove it."""
    marker = tmp_path / "state" / "node.pending"  # its directory is made
    args = {"pending": str(marker),
            "files": [{"dest": str(tmp_path / "list"), "content": "a\n", "label": "dispatcher list"},
                      {"dest": str(tmp_path / "table"), "content": "t\n", "label": "address table"}]}
    first = run(args)
    assert first["changed_labels"] == ["dispatcher list", "address table"] and first["pending_labels"] == []
    assert marker.read_text() == "dispatcher list\naddress table\n"
    # Killed before the handlers: the marker stays, and the re-run still names both.
    again = run(args)
    assert again["changed"] is True and again["changed_dests"] == []
    assert again["changed_labels"] == ["dispatcher list", "address table"]
    # A new change adds to what is owed, without repeating a label.
    args["files"][0]["content"] = "b\n"
    third = run(args)
    assert third["changed_labels"] == ["dispatcher list", "address table"]
    assert marker.read_text() == "dispatcher list\naddress table\n"
    marker.unlink()  # what the last handler does
    assert run(args)["changed"] is False


def test_pending_is_neither_written_by_check_mode_nor_by_a_refused_set(run, tmp_path):
    marker = tmp_path / "node.pending"
    args = checked_args(tmp_path, ["false"])
    args["pending"] = str(marker)
    failure_of(run, args)
    assert not marker.exists()
    args["check"]["command"] = ["true"]
    checked = run(args, check_mode=True)
    assert checked["changed"] is True and not marker.exists()
    assert run(args)["changed"] is True and marker.exists()
