#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (as root): host packages, the project venv, the cache.
#   scripts/setup.sh            packages + venv
#   scripts/setup.sh --kernels  ... and fetch the default kernel matrix and build the guest image
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  qemu-system-x86 qemu-utils kmod file binutils         # virtme-ng: qemu (and qemu-img), depmod
  zstd                                                  # unpacking zstd kernels for PVH boot
  busybox-static                                        # vng's own initramfs, for the benchmark's plain vng boots
  mmdebstrap erofs-utils                                # the guest image (guest/image.toml)
  openssh-client                                        # ssh-keygen: the run's keys
  clang llvm libbpf-dev bpftool gcc make libelf-dev zlib1g-dev libc6-dev  # progs/ and guest/, static
  flex bison bc dwarves libssl-dev ccache             # `tree = ...` entries and bisect-run: vng --build
  debian-archive-keyring apt ca-certificates dpkg       # kernels and the image, verified
  python3 python3-venv
  chromium                                              # report.html checked in a headless browser
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
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
