#!/usr/bin/env bash
# Makes this checkout importable as ansible_collections.itsp.cluster without copying it:
# .collections/ansible_collections/itsp/cluster -> the repository root. ansible.cfg and the
# tests put .collections on their search paths, so edits are live.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
link="$root/.collections/ansible_collections/itsp/cluster"
mkdir -p "$(dirname "$link")"
if [ "$(readlink "$link" 2>/dev/null)" != "$root" ]; then
  rm -f "$link"
  ln -s "$root" "$link"
fi
