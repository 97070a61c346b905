# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The work of the file_set module: compare a host's files with the wanted set and write only
those that differ, in one pass. Kept apart from the module so it can be tested without Ansible.

Everything the set needs is checked before anything is touched: a bad item, a failing per-file
validate command or a failing check of the checked group leaves every file as it was."""

import contextlib
import grp
import hashlib
import os
import pwd
import re
import shlex
import stat
import tempfile

OCTAL_MODE = re.compile(r"^0?[0-7]{3}$|^[0-7]{4}$")
# In check mode, a user or group not on the host yet: one an earlier task (a package) makes in a real run.
NOT_YET = -2
DIFF_LIMIT = 64 * 1024


class FileSetError(Exception):
    """Input or host state the set cannot be written with; the message names the item."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.details = details


def parse_mode(value, where):
    """An int mode from '0640', '640', 0o640 or 416; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise FileSetError(f"{where}: mode must be octal such as '0640', got {value!r}")
    if isinstance(value, int):
        if 0 <= value <= 0o7777:
            return value
        raise FileSetError(f"{where}: mode must be octal such as '0640', got {value!r}")
    text = str(value).strip()
    if not OCTAL_MODE.match(text):
        raise FileSetError(f"{where}: mode must be octal such as '0640' (symbolic modes are not taken), "
                           f"got {str(value)[:40]!r}")
    return int(text, 8)


def _resolve(name, where, what, lookup, check_mode=False):
    """The numeric id of a user or group given by name (or id); -1 (leave as it is) for None;
    NOT_YET for a name the host does not know, in check mode."""
    if name is None:
        return -1
    text = str(name)
    try:
        return lookup(text)
    except (KeyError, ValueError):
        if text.isdigit():
            return int(text)
    if check_mode:
        return NOT_YET
    raise FileSetError(f"{where}: {what} {text[:40]!r} is not a {'user' if what == 'owner' else 'group'} on this host")


def resolve_user(name, where, check_mode=False):
    return _resolve(name, where, "owner", lambda text: pwd.getpwnam(text).pw_uid, check_mode)


def resolve_group(name, where, check_mode=False):
    return _resolve(name, where, "group", lambda text: grp.getgrnam(text).gr_gid, check_mode)


def check_path(path, where, option):
    if not isinstance(path, str) or not path or "\x00" in path or not os.path.isabs(path):
        raise FileSetError(f"{where}: {option} must be an absolute path, got {str(path)[:80]!r}")
    if os.path.normpath(path) != path.rstrip("/") or path.endswith("/"):
        raise FileSetError(f"{where}: {option} must be a normalised path (no '..', '//' or trailing '/'), "
                           f"got {path[:80]!r}")
    return path


def sha1_of(path):
    digest = hashlib.sha1()  # noqa: S324 - a content comparison, as Ansible's own checksum
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def attributes_text(uid, gid, mode):
    owner = pwd.getpwuid(uid).pw_name if _known_uid(uid) else "(not on the host yet)" if uid == NOT_YET else str(uid)
    group = grp.getgrgid(gid).gr_name if _known_gid(gid) else "(not on the host yet)" if gid == NOT_YET else str(gid)
    return f"owner {owner}, group {group}, mode {mode:04o}\n"


def _known_uid(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _known_gid(gid):
    try:
        grp.getgrgid(gid)
        return True
    except KeyError:
        return False


def shape_problem(raw):
    """What is wrong with the shape of the raw arguments, or None. Ansible's own validation of a
    list of dicts or a dict with options answers a wrong shape with a message that names no option
    (or a TypeError), so the shape is checked first, naming the option and the item."""
    files = raw.get("files")
    if files is not None and not isinstance(files, list):
        return f"files must be a list of files (dest, and one of template, src or content), got {type(files).__name__}"
    for name, entries, wanted in (("files", files, "dest, and one of template, src or content"),
                                  ("directories", raw.get("directories"), "path, owner, group, mode")):
        if entries is None:
            continue
        if not isinstance(entries, list):
            return f"{name} must be a list of dicts ({wanted}), got {type(entries).__name__}"
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                return f"{name}[{index}] must be a dict ({wanted}), got {type(entry).__name__}"
    check = raw.get("check")
    if check is not None:
        if not isinstance(check, dict):
            return f"check must be a dict (command, stage_dir, name), got {type(check).__name__}"
        if check.get("command") is None or check.get("stage_dir") is None:
            return f"check needs command (an argument list) and stage_dir (a path), got {sorted(check) or 'neither'}"
        if not isinstance(check["command"], list):
            return f"check.command must be a list of arguments, got {type(check['command']).__name__}"
    return None


class WantedFile:
    def __init__(self, index, item, check_mode=False):
        self.index = index
        dest = item.get("dest")
        self.where = f"files[{index}]"
        self.dest = check_path(dest, self.where, "dest")
        self.where = f"files[{index}] ({self.dest})"
        self.label = item.get("label") or self.dest
        content = item.get("content")
        if content is None:
            given = [key for key in ("template", "src") if item.get(key) is not None]
            hint = (f"{given[0]} is rendered by the action plugin, which did not run (call the module as "
                    "itsp.cluster.file_set)") if given else "give one of template, src or content"
            raise FileSetError(f"{self.where}: no content: {hint}")
        self.data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else bytes(content)
        self.uid = resolve_user(item.get("owner"), self.where, check_mode)
        self.gid = resolve_group(item.get("group"), self.where, check_mode)
        self.mode = parse_mode(item.get("mode"), self.where)
        self.checked = bool(item.get("checked"))
        self.validate = item.get("validate")
        if self.validate is not None and "%s" not in str(self.validate):
            raise FileSetError(f"{self.where}: validate must contain %s (the path of the new file), "
                               f"got {str(self.validate)[:80]!r}")
        self.exists = False
        self.content_differs = False
        self.attributes_differ = False
        self.before = None
        self.temp = None


class WantedDirectory:
    def __init__(self, index, item, check_mode=False):
        self.where = f"directories[{index}]"
        self.path = check_path(item.get("path"), self.where, "path")
        self.where = f"directories[{index}] ({self.path})"
        self.uid = resolve_user(item.get("owner"), self.where, check_mode)
        self.gid = resolve_group(item.get("group"), self.where, check_mode)
        self.mode = parse_mode(item.get("mode"), self.where)


def _attributes_differ(st, uid, gid, mode):
    return ((uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid)
            or (mode is not None and stat.S_IMODE(st.st_mode) != mode))


def _apply_attributes(path, uid, gid, mode):
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    if mode is not None:
        os.chmod(path, mode)


class FileSet:
    """Compare, then (unless check mode) check and write. ``module`` gives run_command,
    check_mode and _diff; nothing else of Ansible is used."""

    def __init__(self, module, files, directories=None, check=None, pending=None):
        self.module = module
        self.pending = check_path(pending, "pending", "pending") if pending is not None else None
        check_mode = bool(module.check_mode)
        self.directories = [WantedDirectory(i, item or {}, check_mode) for i, item in enumerate(directories or [])]
        # Indexes stay those of the list as given, items left out (only_if false) included.
        self.files = [WantedFile(i, item or {}, check_mode) for i, item in enumerate(files or [])
                      if (item or {}).get("only_if", True) is not False]
        seen = {}
        for wanted in self.files:
            if wanted.dest in seen:
                raise FileSetError(f"{wanted.where}: dest repeats files[{seen[wanted.dest]}]; each file may be "
                                   "listed once")
            seen[wanted.dest] = wanted.index
        self.check = self._parse_check(check)

    def _parse_check(self, check):
        checked = [f for f in self.files if f.checked]
        if not check:
            if checked:
                raise FileSetError(f"{checked[0].where}: checked is true but no check is given; give check "
                                   "(command and stage_dir)")
            return None
        command = check.get("command")
        if not command or not all(isinstance(arg, str) and arg and "\x00" not in arg for arg in command):
            raise FileSetError(f"check.command must be a non-empty list of arguments, got {str(command)[:80]!r}")
        stage_dir = check_path(check.get("stage_dir"), "check", "stage_dir")
        if not checked:
            raise FileSetError("check is given but no file has checked set to true")
        names = {}
        for wanted in checked:
            name = os.path.basename(wanted.dest)
            if name in names:
                raise FileSetError(f"{wanted.where}: its name {name!r} is also the name of {names[name]}; the "
                                   "checked files are staged side by side, so their names must differ")
            names[name] = wanted.where
        return {"command": list(command), "stage_dir": stage_dir,
                "name": check.get("name") or " ".join(shlex.quote(arg) for arg in command)}

    # -- compare ----------------------------------------------------------------------------------

    def _compare_directories(self):
        changed = []
        for wanted in self.directories:
            try:
                st = os.lstat(wanted.path)
            except FileNotFoundError:
                changed.append(wanted)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise FileSetError(f"{wanted.where}: exists and is not a directory")
            if _attributes_differ(st, wanted.uid, wanted.gid, wanted.mode):
                changed.append(wanted)
        return changed

    def _compare_files(self, coming_directories):
        for wanted in self.files:
            parent = os.path.dirname(wanted.dest)
            if not os.path.isdir(parent) and parent not in coming_directories:
                if self.module.check_mode:  # an earlier task (a package) may make it in a real run
                    wanted.content_differs = True
                    continue
                raise FileSetError(f"{wanted.where}: directory {parent} does not exist; list it in directories")
            try:
                st = os.lstat(wanted.dest)
            except FileNotFoundError:
                wanted.content_differs = True
                continue
            if not stat.S_ISREG(st.st_mode):
                raise FileSetError(f"{wanted.where}: exists and is not a regular file (a link or a directory "
                                   "is not replaced)")
            wanted.exists = True
            wanted.before = st
            wanted.content_differs = (st.st_size != len(wanted.data)
                                      or sha1_of(wanted.dest) != hashlib.sha1(wanted.data).hexdigest())  # noqa: S324
            wanted.attributes_differ = _attributes_differ(st, wanted.uid, wanted.gid, wanted.mode)

    # -- write ------------------------------------------------------------------------------------

    def _write_temp(self, directory, name, data):
        handle, path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".file_set")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
        except OSError:
            os.unlink(path)
            raise
        return path

    @staticmethod
    def _put_in_place(wanted):
        """The new content replaces the file in one rename, with its owner, group and mode already
        set (a secret is never readable by more than it should be, not even for an instant); what
        the item leaves open keeps the old file's (or, for a new file, the umask's) value."""
        if wanted.exists:
            uid = wanted.before.st_uid if wanted.uid == -1 else wanted.uid
            gid = wanted.before.st_gid if wanted.gid == -1 else wanted.gid
            mode = stat.S_IMODE(wanted.before.st_mode) if wanted.mode is None else wanted.mode
        else:
            umask = os.umask(0)
            os.umask(umask)
            uid, gid, mode = wanted.uid, wanted.gid, 0o666 & ~umask if wanted.mode is None else wanted.mode
        _apply_attributes(wanted.temp, uid, gid, mode)
        os.replace(wanted.temp, wanted.dest)
        wanted.temp = None

    def _run_checked_group(self):
        stage_dir = self.check["stage_dir"]
        if not os.path.isdir(stage_dir):
            raise FileSetError(f"check: stage_dir {stage_dir} does not exist; list it in directories")
        for wanted in (f for f in self.files if f.checked):
            name = os.path.basename(wanted.dest)
            temp = self._write_temp(stage_dir, name, wanted.data)
            os.chmod(temp, 0o600)
            os.replace(temp, os.path.join(stage_dir, name))
        rc, out, err = self.module.run_command(self.check["command"], cwd=stage_dir)
        if rc != 0:
            lines = [line.strip() for line in (err + "\n" + out).splitlines() if line.strip()]
            errors = [line for line in lines if re.search(r"error", line, re.IGNORECASE)] or lines[-5:]
            raise FileSetError(f"{self.check['name']} rejected the configuration; the live one is unchanged. "
                               + " ".join(errors), rc=rc, stdout=out, stderr=err, stage_dir=stage_dir)

    def _validate(self, wanted):
        command = str(wanted.validate).replace("%s", shlex.quote(wanted.temp))
        rc, out, err = self.module.run_command(command, use_unsafe_shell=False)
        if rc != 0:
            raise FileSetError(f"{wanted.where}: validate rejected the new content; nothing was changed. "
                               f"{(err or out).strip()[-400:]}", rc=rc, stdout=out, stderr=err)

    def _create_directories(self, changed):
        """The directories this run made (deepest last), so a set refused later can take them back."""
        made = []
        for wanted in changed:
            if not os.path.isdir(wanted.path):
                missing = wanted.path
                while not os.path.isdir(os.path.dirname(missing)):
                    missing = os.path.dirname(missing)
                os.makedirs(wanted.path, mode=0o700 if wanted.mode is None else 0o700 & wanted.mode)
                made += [missing, *_parents_below(wanted.path, missing)]
            _apply_attributes(wanted.path, wanted.uid, wanted.gid, wanted.mode)
        return made

    def _diff(self, wanted):
        header = wanted.dest
        if not wanted.content_differs:
            st = wanted.before
            return {"before_header": f"{header} (attributes)", "after_header": f"{header} (attributes)",
                    "before": attributes_text(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                    "after": attributes_text(st.st_uid if wanted.uid == -1 else wanted.uid,
                                             st.st_gid if wanted.gid == -1 else wanted.gid,
                                             stat.S_IMODE(st.st_mode) if wanted.mode is None else wanted.mode)}
        before = ""
        if wanted.exists:
            if wanted.before.st_size > DIFF_LIMIT:
                before = "[larger than 64 KiB: not shown]\n"
            else:
                with open(wanted.dest, "rb") as handle:
                    raw = handle.read()
                before = raw.decode("utf-8") if b"\x00" not in raw and _is_utf8(raw) else "[binary: not shown]\n"
        after = ("[larger than 64 KiB: not shown]\n" if len(wanted.data) > DIFF_LIMIT
                 else wanted.data.decode("utf-8", "replace") if b"\x00" not in wanted.data
                 else "[binary: not shown]\n")
        return {"before_header": header if wanted.exists else f"{header} (absent)", "after_header": header,
                "before": before, "after": after}

    # -- what earlier runs changed and their handlers did not apply ------------------------------

    def _read_pending(self):
        if self.pending is None or not os.path.exists(self.pending):
            return []
        with open(self.pending, "rb") as handle:
            raw = handle.read(65536)
        return [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]

    def _write_pending(self, labels):
        """Before the files go live: a run killed from here on leaves the labels behind for the next."""
        for path in _parents_below(os.path.dirname(self.pending), "/"):
            if not os.path.isdir(path):
                os.mkdir(path, 0o755)
        temp = self._write_temp(os.path.dirname(self.pending), os.path.basename(self.pending),
                                "".join(f"{label}\n" for label in labels).encode("utf-8"))
        os.rename(temp, self.pending)

    def run(self):
        coming = self._compare_directories()
        self._compare_files({d.path for d in coming})
        differing = [f for f in self.files if f.content_differs or f.attributes_differ]
        group_differs = any(f.checked and f.content_differs for f in self.files)
        pending = self._read_pending()
        labels = list(dict.fromkeys([f.label for f in differing] + pending))
        result = {
            "changed": bool(coming or differing or pending),
            "changed_dests": [f.dest for f in differing],
            "changed_labels": labels,
            "pending_labels": pending,
            "changed_directories": [d.path for d in coming],
            "files": [{"dest": f.dest, "label": f.label, "changed": f.content_differs or f.attributes_differ,
                       "content_changed": f.content_differs, "created": not f.exists and f.content_differs}
                      for f in self.files],
            "checked": False,
        }
        if getattr(self.module, "_diff", False):
            result["diff"] = [self._diff(f) for f in differing]
        if self.module.check_mode:
            return result
        made = self._create_directories(coming)
        try:
            for wanted in (f for f in self.files if f.content_differs):
                wanted.temp = self._write_temp(os.path.dirname(wanted.dest), os.path.basename(wanted.dest),
                                               wanted.data)
                if wanted.validate is not None:
                    self._validate(wanted)
            if group_differs and self.check:
                self._run_checked_group()
                result["checked"] = True
            if self.pending is not None and set(labels) != set(pending):
                self._write_pending(labels)
            for wanted in differing:
                if wanted.temp is not None:
                    self._put_in_place(wanted)
                else:
                    _apply_attributes(wanted.dest, wanted.uid, wanted.gid, wanted.mode)
        except FileSetError:
            self._remove_temps()
            for path in reversed(made):  # refused: the directories this run made go too
                with contextlib.suppress(OSError):  # a stage directory keeps the refused set to look at
                    os.rmdir(path)
            raise
        finally:
            self._remove_temps()
        return result

    def _remove_temps(self):
        for wanted in self.files:
            if wanted.temp is not None and os.path.exists(wanted.temp):
                os.unlink(wanted.temp)
            wanted.temp = None


def _parents_below(path, top):
    """The directories from below `top` down to `path` itself, top-down."""
    below = []
    while path != top:
        below.append(path)
        path = os.path.dirname(path)
    return reversed(below)


def _is_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False

