#!/usr/bin/env bash
# Sourced by the scripts that change this machine: require_root NAME WHY stops a user who is not
# root with a message that says so, before anything is changed. The project's machines are root
# and have no sudo, so the scripts never call it themselves.
require_root() {
  [ "$(id -u)" = 0 ] && return 0
  echo "$1: run this as root (no sudo needed on the project's machines): $2. Nothing was changed." >&2
  exit 2
}
