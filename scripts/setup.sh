#!/usr/bin/env bash
# Idempotent set-up: host packages, what root-less building needs, the project venv.
#   scripts/setup.sh            packages + venv
#   scripts/setup.sh --kernels  ... and fetch the default kernel matrix, build the guest image and build root
# As root it installs what is missing. As a user it only checks, and when something needs
# root it stops with the one command to run: `sudo scripts/setup.sh` (which also gives the
# invoking user /etc/subuid and /etc/subgid ranges for mmdebstrap's unshare mode, the kvm
# group and the binfmt registration for arm64), then `make` again as that user.
# Tried on Debian 12 and Debian 13. Ubuntu and Fedora branches are written from the
# distributions' package names and are UNTRIED here.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian (and Ubuntu: same names). The guest programs' compilers and libraries are not
# here: they live in the build root (guest/buildroot.toml), made by mmdebstrap.
DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils kmod file binutils         # virtme-ng: qemu (and qemu-img), depmod
  zstd lz4 lzop                                         # kernel payloads: PVH boot and the binary witness
  busybox-static                                        # vng's own initramfs, for the benchmark's plain vng boots
  mmdebstrap erofs-utils                                # the guest image (guest/image.toml) and the build root
  uidmap util-linux mount                               # ... as a user: mmdebstrap's unshare mode; unshare(1), mount(8): the build root
  openssh-client                                        # ssh-keygen: the run's keys
  gcc make libelf-dev libc6-dev                         # `tree = ...` entries and bisect-run: vng --build
  flex bison bc dwarves libssl-dev ccache
  debian-archive-keyring apt ca-certificates dpkg       # kernels, the image and the build root, verified
  python3 python3-venv
  chromium                                              # report.html checked in a headless browser
  qemu-system-arm qemu-user-static binfmt-support arch-test  # arm64 kernels (TCG) and their guest image
)
# Fedora (UNTRIED): the nearest packages; Debian's archive keyring comes with debian-keyring.
FEDORA_PACKAGES=(
  qemu-system-x86-core qemu-img kmod file binutils zstd lz4 lzop busybox mmdebstrap erofs-utils shadow-utils
  util-linux openssh-clients gcc make elfutils-libelf-devel glibc-devel flex bison bc dwarves
  openssl-devel ccache debian-keyring apt dpkg python3 chromium qemu-system-aarch64-core qemu-user-static-aarch64
)

is_root() { [ "$(id -u)" = 0 ]; }
user=${SUDO_USER:-$(id -un)}       # who the suite runs as: under sudo, the invoking user
needs_root=()                      # what is missing that only root can do

distro=unknown
[ -r /etc/os-release ] && distro=$(. /etc/os-release; echo "${ID:-unknown}")
case "$distro" in
  debian|ubuntu)
    PACKAGES=("${DEBIAN_PACKAGES[@]}")
    [ "$distro" = ubuntu ] && echo "setup: Ubuntu: untried here; using Debian's package names" >&2
    missing=()
    for pkg in "${PACKAGES[@]}"; do
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    install() { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; }
    ;;
  fedora)
    echo "setup: Fedora: untried here; the package names are Fedora's nearest" >&2
    PACKAGES=("${FEDORA_PACKAGES[@]}")
    missing=()
    for pkg in "${PACKAGES[@]}"; do rpm -q "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    install() { dnf install -y "$@"; }
    ;;
  *)
    echo "setup: this host ($distro, from /etc/os-release) is not one setup.sh knows (Debian 12/13;" >&2
    echo "  Ubuntu and Fedora untried). Install these (Debian names) by hand, then run make again:" >&2
    echo "  ${DEBIAN_PACKAGES[*]}" >&2
    [ "$user" != root ] && echo "  and give $user ranges in /etc/subuid and /etc/subgid (mmdebstrap --mode=unshare)." >&2
    exit 1
    ;;
esac

if ((${#missing[@]})); then
  if is_root; then
    echo "setup: installing ${missing[*]}"
    install "${missing[@]}"
  else
    needs_root+=("install ${missing[*]}")
  fi
fi

# mmdebstrap as a user (unshare mode) maps the root's ids to the user's subordinate ids.
if [ "$user" != root ]; then
  for file in /etc/subuid /etc/subgid; do
    if ! grep -q "^$user:" "$file" 2>/dev/null; then
      if is_root; then
        # the first 65536 ids after every range already given
        start=$(awk -F: 'BEGIN { m = 100000 } { if ($2 + $3 > m) m = $2 + $3 } END { print m }' "$file" 2>/dev/null || echo 100000)
        flag=--add-subuids; [ "$file" = /etc/subgid ] && flag=--add-subgids
        usermod "$flag" "$start-$((start + 65535))" "$user"
        echo "setup: $file: $user gets $start-$((start + 65535))"
      else
        needs_root+=("a $file range for $user")
      fi
    fi
  done
  # KVM where there is KVM (the harness probes it and falls back to TCG either way)
  if [ -e /dev/kvm ] && getent group kvm >/dev/null && ! id -nG "$user" | tr ' ' '\n' | grep -qx kvm; then
    if is_root; then usermod -aG kvm "$user" && echo "setup: $user joins the kvm group (log in again)";
    else needs_root+=("$user in the kvm group"); fi
  fi
fi

# mmdebstrap runs the arm64 image's maintainer scripts through qemu-user: binfmt_misc must
# be mounted (containers often lack it) and know qemu-aarch64.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  if is_root; then mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  else needs_root+=("binfmt_misc mounted"); fi
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  if is_root; then
    update-binfmts --enable qemu-aarch64 || echo "setup: cannot register qemu-aarch64 with binfmt_misc: arm64 images will not build" >&2
  else
    needs_root+=("qemu-aarch64 registered with binfmt_misc")
  fi
fi

if ((${#needs_root[@]})); then
  echo "setup: these need root:" >&2
  printf '  - %s\n' "${needs_root[@]}" >&2
  echo "setup: run this once, then run make again as $user:" >&2
  echo "  sudo scripts/setup.sh" >&2
  exit 1
fi

# A user enters the build root through a user namespace of its own (unshare -r).
if ! is_root && ! unshare --map-root-user --mount true 2>/dev/null; then
  echo "setup: this kernel refuses user namespaces to $user (unshare -r failed), which the build root" >&2
  echo "  needs: as root, set kernel.unprivileged_userns_clone=1 (or user.max_user_namespaces > 0)," >&2
  echo "  or run make as root" >&2
  exit 1
fi

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
