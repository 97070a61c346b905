#!/usr/bin/env bash
# Installs what the collection, its lab and its tests need, on a fresh Debian 12 machine.
# Idempotent and quiet when everything is there. Prints the venv's bin directory last.
#   Debian packages: the lab (debootstrap, systemd-nspawn, nftables, apt-cacher-ng), SIPp.
#   Python: requirements-dev.txt (which includes the runtime requirements.txt) in one venv per
#   content of both files and the Python version, kept machine-wide so CI's fresh clones reuse it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/require-root.sh"
require_root bootstrap "it installs Debian packages and a venv under /var/cache/itsp-cluster/"

# kamailio and the module packages the roles use: tests check rendered configurations with kamailio -c.
debs=(debootstrap systemd-container nftables conntrack iproute2 sip-tester apt-cacher-ng openssh-client procps python3-apt kamailio
      kamailio-postgres-modules kamailio-extra-modules)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  apt-get update -qq >/dev/null || echo "bootstrap: apt-get update reported errors; trying the install anyway" >&2
  # The image's policy-rc.d keeps apt-cacher-ng from starting as a system service: the lab runs its own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${ITSP_PYTHON:-python3}
hash=$(cat "$root/requirements.txt" "$root/requirements-dev.txt" <("$python" -c 'import sys; print(sys.version)') \
  | sha256sum | cut -c1-12)
venv=/var/cache/itsp-cluster/venv-$hash
if [ ! -x "$venv/bin/molecule" ] || [ ! -f "$venv/.complete" ]; then
  echo "bootstrap: creating $venv from requirements-dev.txt and requirements.txt" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements-dev.txt"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$root/.venv"
"$root/scripts/collection-path.sh"
echo "$venv/bin"
