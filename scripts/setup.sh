#!/usr/bin/env bash
# Idempotent set-up: host packages, what root-less building needs, the project venv.
#   scripts/setup.sh            packages + venv
#   scripts/setup.sh --kernels  ... and fetch the default kernel matrix, build the guest image and build root
# As root it installs what is missing. As a user it only checks, and when something needs
# root it stops with the one command to run: `sudo scripts/setup.sh` (which also gives the
# invoking user /etc/subuid and /etc/subgid ranges for mmdebstrap's unshare mode, the kvm
# group and the binfmt registration for arm64), then `make` again as that user.
# The packages and the root-only steps are kregress/run/host_check.py's (`kregress doctor`).
# Tried on Debian 12 and Debian 13. Ubuntu and Fedora branches are written from the
# distributions' package names and are UNTRIED here.
set -euo pipefail
cd "$(dirname "$0")/.."

is_root() { [ "$(id -u)" = 0 ]; }
user=${SUDO_USER:-$(id -un)}       # who the suite runs as: under sudo, the invoking user

# The host check is kregress's own (kregress/run/host_check.py, also `kregress doctor`): it
# needs only python3, which a bare Debian may lack.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  if is_root && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv
  elif is_root && command -v dnf >/dev/null; then
    dnf install -y python3
  else
    echo "setup: needs python3 (3.11 or later, with venv); run this once, then make again as $user:" >&2
    echo "  sudo scripts/setup.sh" >&2
    exit 1
  fi
fi

# Everything the suite's own tests need (both architectures, tree builds, chromium); as root
# it installs what is missing, as a user it stops with the one command to run.
fix=(); is_root && fix=(--fix)
PYTHONPATH="$PWD" python3 -m kregress.run.host_check --suite "${fix[@]}" --sudo-line "sudo scripts/setup.sh"

# Under sudo the rest (the venv) is the user's: it belongs to them, not to root.
if is_root && [ "$user" != root ]; then
  echo "setup: root parts done for $user; the venv is made as $user"
  exec runuser -u "$user" -- "$PWD/scripts/setup.sh" "$@"
fi

# The venv, rebuilt only when pyproject.toml changes.
stamp=.venv/.kregress-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--kernels" ]; then
  .venv/bin/kregress fetch
fi
echo "setup: ok ($(.venv/bin/python -c "from importlib.metadata import version as v; print('virtme-ng', v('virtme-ng'), 'paramiko', v('paramiko'), 'kcidb-io', v('kcidb-io'))"))"
