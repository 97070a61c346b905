#!/usr/bin/env bash
# The main job on the lab: set everything up, build the lab from inventories/lab, run site.yml,
# then print where each node lives, its addresses, and a SIP OPTIONS through the NAT.
# The lab stays up afterwards (tear it down with: .venv/bin/python lab/labctl.py down);
# if anything fails, what this run made is torn down.
# ITSP_INVENTORY=DIR builds another lab topology; it needs the connection settings of
# inventories/lab/group_vars/all.yml (lab hosts get new SSH host keys every time they are made).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/require-root.sh"
require_root lab-site "it builds network namespaces, nftables rules and systemd-nspawn hosts on this machine"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=$(scripts/bootstrap.sh | tail -n 1)
export PATH="$bin:$PATH"
ok=0
trap '[ $ok = 1 ] || { echo "lab-site: failed, tearing the lab down" >&2; python lab/labctl.py down; }' EXIT
ansible-playbook -i "${ITSP_INVENTORY:-inventories/lab}" lab/playbooks/lab.yml "$@"
ok=1
