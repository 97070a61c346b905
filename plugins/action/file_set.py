# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller half of itsp.cluster.file_set: renders each item's template (as
ansible.builtin.template does) or reads its plain file, then runs the module once with every
file's content. Items left out with only_if are not rendered."""

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.template import AnsibleEnvironment, generate_ansible_template_vars

SOURCES = ("template", "src", "content")


class FileSetActionError(Exception):
    pass


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files", "directories", "check", "pending"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        files = args.get("files")
        if not isinstance(files, list):
            return dict(result, failed=True, msg=f"files must be a list of files, got {type(files).__name__}")
        try:
            args["files"] = [self._prepared(index, item, task_vars) for index, item in enumerate(files)]
        except FileSetActionError as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(self._execute_module(module_name="itsp.cluster.file_set", module_args=args,
                                           task_vars=task_vars))
        return result

    def _prepared(self, index, item, task_vars):
        if not isinstance(item, dict):
            raise FileSetActionError(f"files[{index}] must be a dict (dest, and one of template, src or content), "
                                     f"got {type(item).__name__}")
        where = f"files[{index}] ({item.get('dest')})"
        try:
            wanted = boolean(item.get("only_if", True), strict=True)
        except TypeError:
            raise FileSetActionError(f"{where}: only_if must be true or false, got {item.get('only_if')!r}") from None
        if not wanted:
            return {"dest": item.get("dest"), "only_if": False}
        given = [key for key in SOURCES if item.get(key) is not None]
        if len(given) != 1:
            raise FileSetActionError(f"{where}: give exactly one of template, src or content"
                                     + (f" (got {', '.join(given)})" if given else ""))
        prepared = {key: value for key, value in item.items() if key not in ("template", "src", "template_vars")}
        if given[0] == "template":
            prepared["content"] = self._render(where, item["template"], item.get("dest"),
                                               item.get("template_vars"), task_vars)
        elif given[0] == "src":
            prepared["content"] = self._read(where, item["src"])
        return prepared

    def _find(self, where, kind, name):
        if not isinstance(name, str) or not name:
            raise FileSetActionError(f"{where}: {'template' if kind == 'templates' else 'src'} must be a file name, "
                                     f"got {name!r}")
        try:
            return self._find_needle(kind, name)
        except AnsibleError as exc:
            raise FileSetActionError(f"{where}: {to_text(exc)}") from None

    def _read(self, where, name):
        path = self._find(where, "files", name)
        real = self._loader.get_real_file(path)
        try:
            with open(real, "rb") as handle:
                return handle.read().decode("utf-8")
        except UnicodeDecodeError:
            raise FileSetActionError(f"{where}: src {name} is not UTF-8 text; file_set sends text only") from None
        finally:
            self._loader.cleanup_tmp_file(real)

    def _render(self, where, name, dest, template_vars, task_vars):
        """ansible.builtin.template's rendering, with its defaults (trim_blocks, trailing newlines)."""
        if template_vars is not None and not isinstance(template_vars, dict):
            raise FileSetActionError(f"{where}: template_vars must be a dict, got {type(template_vars).__name__}")
        path = self._find(where, "templates", name)
        real = self._loader.get_real_file(path)
        try:
            with open(real, "rb") as handle:
                data = handle.read().decode("utf-8")
            searchpath = list(task_vars.get("ansible_search_path", []))
            searchpath.extend([self._loader._basedir, os.path.dirname(path)])
            searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
            variables = task_vars.copy()
            variables.update(generate_ansible_template_vars(name, path, dest))
            variables.update(template_vars or {})
            templar = self._templar.copy_with_new_env(environment_class=AnsibleEnvironment, searchpath=searchpath,
                                                      newline_sequence="\n", available_variables=variables)
            return templar.do_template(data, preserve_trailing_newlines=True, escape_backslashes=False,
                                       overrides={"trim_blocks": True, "lstrip_blocks": False})
        except UnicodeDecodeError:
            raise FileSetActionError(f"{where}: template {name} is not UTF-8") from None
        except Exception as exc:  # as ansible.builtin.template: any failure to render fails the task, named
            raise FileSetActionError(f"{where}: template {name}: {type(exc).__name__}: {to_text(exc)}") from None
        finally:
            self._loader.cleanup_tmp_file(real)
