#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (as root): host packages, the project venv, the cache.
#   scripts/setup.sh            packages + venv
#   scripts/setup.sh --kernels  ... and fetch the default kernel matrix and build the guest image
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  qemu-system-x86 qemu-utils kmod file binutils         # virtme-ng: qemu (and qemu-img), depmod
  zstd lz4 lzop                                         # kernel payloads: PVH boot and the binary witness
  busybox-static                                        # vng's own initramfs, for the benchmark's plain vng boots
  mmdebstrap erofs-utils                                # the guest image (guest/image.toml)
  openssh-client                                        # ssh-keygen: the run's keys
  clang llvm libbpf-dev bpftool gcc make libelf-dev zlib1g-dev libc6-dev  # progs/ and guest/, static
  flex bison bc dwarves libssl-dev ccache             # `tree = ...` entries and bisect-run: vng --build
  debian-archive-keyring apt ca-certificates dpkg       # kernels and the image, verified
  python3 python3-venv
  chromium                                              # report.html checked in a headless browser
  qemu-system-arm qemu-user-static binfmt-support arch-test  # arm64 kernels (TCG) and their guest image
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross           # arm64 drivers and agent, cross-built
  libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64    # ... linked statically against these
)

# The arm64 -dev packages install beside the host's (multiarch).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to add the arm64 architecture" >&2; exit 1; fi
  dpkg --add-architecture arm64
fi

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

# mmdebstrap runs the arm64 image's maintainer scripts through qemu-user: binfmt_misc must
# be mounted (containers often lack it) and know qemu-aarch64.
if [ ! -e /proc/sys/fs/binfmt_misc/register ] && [ "$(id -u)" = 0 ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && [ "$(id -u)" = 0 ]; then
  update-binfmts --enable qemu-aarch64 || echo "setup: cannot register qemu-aarch64 with binfmt_misc: arm64 images will not build" >&2
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
