#!/usr/bin/env bash
# ansible-test sanity, offline, on what the collection ships. ansible-test wants the collection at
# .../ansible_collections/itsp/cluster as a real directory (it resolves the .collections link back to
# the checkout) and outside any git work tree (inside one it lists files with git, and .cache/ is
# ignored), so this copies the shipped files to a temporary directory and runs there.
# Left out of the copy: lab/, bench/, molecule/, tests/unit, tests/integration, scripts/, .ci/ - the
# development tooling galaxy.yml does not ship; ruff, yamllint and pytest cover it.
# Left out of the tests: the ones ansible-test can only run in a venv it fills with pip from the
# internet (ansible-doc, changelog, import, pep8, pylint, runtime-metadata, validate-modules,
# yamllint). Their ground is covered offline elsewhere: tests/unit/plugins/test_plugin_docs.py runs
# ansible-doc on every plugin, ruff does pep8/pylint's job, yamllint and ansible-lint run as steps.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d /tmp/itsp-sanity.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
copy=$scratch/ansible_collections/itsp/cluster
mkdir -p "$copy"
cd "$root"
git ls-files -z --cached --others --exclude-standard -- . \
  ':!lab' ':!bench' ':!molecule' ':!tests/unit' ':!tests/integration' ':!scripts' ':!.ci' \
  | while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done \
  | xargs -0 cp --parents -p -t "$copy"
python=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
needs_network=(ansible-doc changelog import pep8 pylint runtime-metadata validate-modules yamllint)
skips=()
for test in "${needs_network[@]}"; do skips+=(--skip-test "$test"); done
cd "$copy"
ansible-test sanity --python "$python" --color no "${skips[@]}"
