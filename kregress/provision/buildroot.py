"""The build root: a Debian root of our own (guest/buildroot.toml) that compiles the guest
programs, so no host compiler or library reaches a driver.

mmdebstrap installs the list into a directory (as root directly, as a user in its
unshare mode); it is cached by content like the guest image. Commands run in it through
`unshare --mount` + chroot (plus --map-root-user for a user), with the sources bound at
/src and the output at /out: the same paths on every host, so the same bytes.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kregress.provision import rootfs
from kregress.provision.image import EXCLUDED_PATHS, explain_failure
from kregress.kernels.sources.debian import DEBIAN_KEYRING, DEBIAN_MIRROR
from kregress.paths import cache_dir, data

BUILDROOT_LIST = data("guest/buildroot.toml")
NATIVE_ARCH = "amd64"           # the root's own architecture on every host (qemu-user elsewhere)
MOUNT_POINTS = ("src", "out")   # inside the root: sources (read) and the build's output
RECIPE_VERSION = 1
# The environment every command gets inside the root: nothing from the host's.
ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "SOURCE_DATE_EPOCH": "0", "TMPDIR": "/tmp",
               "HOME": "/tmp"}
# What results record of the root: the tools a driver's bytes depend on.
RECORDED = ("clang", "gcc", "gcc-aarch64-linux-gnu", "bpftool", "libbpf-dev", "libelf-dev", "zlib1g-dev",
            "libc6-dev", "libbpf-dev:arm64", "libelf-dev:arm64", "zlib1g-dev:arm64", "libc6-dev-arm64-cross",
            "gcc-powerpc64le-linux-gnu", "libbpf-dev:ppc64el", "libelf-dev:ppc64el", "zlib1g-dev:ppc64el",
            "libc6-dev-ppc64el-cross", "gcc-s390x-linux-gnu", "libbpf-dev:s390x", "libelf-dev:s390x",
            "zlib1g-dev:s390x", "libc6-dev-s390x-cross")


class BuildRootError(RuntimeError):
    """The build root cannot be made or entered; the message names the step and the fix."""


@dataclass(frozen=True)
class BuildRootSpec:
    suite: str
    packages: tuple[str, ...]
    source: str = str(BUILDROOT_LIST)

    @property
    def architectures(self) -> list[str]:
        foreign = sorted({p.split(":", 1)[1] for p in self.packages if ":" in p} - {NATIVE_ARCH})
        return [NATIVE_ARCH, *foreign]


@dataclass(frozen=True)
class BuildRoot:
    path: Path
    suite: str
    digest: str           # of the installed package set: a rebuilt root with new versions rebuilds programs
    packages: dict        # name[:arch] -> exact version

    def describe(self) -> dict:
        recorded = [*RECORDED, *(name for name in self.packages if re.fullmatch(r"(clang|llvm)-\d+", name))]
        return {"suite": self.suite, "digest": self.digest,
                "versions": {name: self.packages[name] for name in recorded if name in self.packages}}


def load_spec(path: Path = BUILDROOT_LIST) -> BuildRootSpec:
    suite, packages, _ = rootfs.read_list(path, "build root", BuildRootError,
                                          'a Debian suite whose static libraries link, such as "bookworm"',
                                          rootfs.PACKAGE_WITH_ARCH, " (NAME or NAME:ARCH)", allow_empty=False)
    return BuildRootSpec(suite=suite, packages=packages, source=str(path))


def mmdebstrap_command(spec: BuildRootSpec, target: Path) -> list[str]:
    source = f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {spec.suite} main"
    mount_points = " ".join(f'"$1/{point}"' for point in (*MOUNT_POINTS, "tmp"))
    return ["mmdebstrap", "--variant=essential", f"--architectures={','.join(spec.architectures)}",
            f"--include={','.join(spec.packages)}", f"--keyring={DEBIAN_KEYRING}",
            *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDED_PATHS],
            f"--customize-hook=mkdir -p {mount_points}",
            spec.suite, str(target), source]


def cache_key(spec: BuildRootSpec) -> str:
    recipe = [RECIPE_VERSION, mmdebstrap_command(spec, Path("TARGET"))]
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]


def root_dir(spec: BuildRootSpec) -> Path:
    return cache_dir() / "buildroots" / f"{spec.suite}-{cache_key(spec)}"


def cached(spec: BuildRootSpec) -> BuildRoot | None:
    manifest = root_dir(spec) / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not (manifest.parent / "root/usr/bin").is_dir():
        return None
    return BuildRoot(manifest.parent / "root", data["suite"], data["digest"], data["packages"])


def ensure(spec: BuildRootSpec | None = None, progress=None) -> BuildRoot:
    """The cached build root for this list and recipe; built when missing."""
    spec = spec or load_spec()
    root = cached(spec)
    if root:
        return root
    lock_path = cache_dir() / "locks" / "buildroot.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # xdist workers build it once
        return cached(spec) or _build(spec, progress or _print_progress)


def _print_progress(line: str) -> None:
    print(f"build root: {line}", file=sys.stderr, flush=True)


def _build(spec: BuildRootSpec, progress) -> BuildRoot:
    final = root_dir(spec)
    staging = final.with_name(final.name + ".partial")
    if not rootfs.remove(staging):
        raise BuildRootError(f"build root: cannot remove the earlier build directory {staging}; remove it by hand")
    staging.mkdir(parents=True)
    started = time.monotonic()
    try:
        progress(f"building {spec.suite} ({', '.join(spec.architectures)}) with {', '.join(spec.packages)} "
                 f"(from {spec.source})")
        try:
            status, lines = rootfs.run_mmdebstrap(mmdebstrap_command(spec, staging / "root"), staging / "root",
                                                  progress, started)
        except FileNotFoundError:
            raise BuildRootError("build root: mmdebstrap is not installed (run `make setup`)") from None
        if status != 0:
            raise BuildRootError(explain_failure(spec, lines, what="build root", arch=",".join(spec.architectures)))
        packages = installed_packages(staging / "root")
        digest = hashlib.sha256(json.dumps(packages, sort_keys=True).encode()).hexdigest()[:20]
        (staging / "manifest.json").write_text(json.dumps(
            {"suite": spec.suite, "digest": digest, "packages": packages, "recipe": cache_key(spec),
             "built_seconds": round(time.monotonic() - started, 1)}, indent=1))
        staging.rename(final)
    except BaseException:
        rootfs.remove(staging)          # the error that stopped the build is the one to see
        raise
    progress(f"ready: {final} ({time.monotonic() - started:.0f}s; "
             + ", ".join(f"{k} {v}" for k, v in cached(spec).describe()["versions"].items() if k in ("clang", "gcc",
                                                                                                      "libbpf-dev",
                                                                                                      "libelf-dev"))
             + ")")
    return cached(spec)


def installed_packages(rootdir: Path) -> dict:
    """name -> version; a package of another architecture than the root's as name:arch."""
    proc = subprocess.run(["dpkg-query", f"--admindir={rootdir / 'var/lib/dpkg'}", "-W",
                           "-f=${Package}\t${Architecture}\t${Version}\n"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildRootError(f"build root: listing its packages failed: {proc.stderr.strip()}")
    packages = {}
    for line in proc.stdout.splitlines():
        name, arch, version = line.split("\t")
        packages[name if arch in (NATIVE_ARCH, "all") else f"{name}:{arch}"] = version
    return dict(sorted(packages.items()))


def enter_command(root: Path, argv: list[str], binds: dict[str, Path], cwd: str = "/src") -> list[str]:
    """argv run inside the root: binds (mount point in MOUNT_POINTS -> host directory)
    mounted in a mount namespace of its own, a fresh /tmp, the fixed ENVIRONMENT."""
    unknown = set(binds) - set(MOUNT_POINTS)
    if unknown:
        raise BuildRootError(f"build root: no mount point {sorted(unknown)} (have {', '.join(MOUNT_POINTS)})")
    steps = ["set -e", *(f"mount --bind {shlex.quote(str(host))} {shlex.quote(str(root / point))}"
                         for point, host in binds.items()),
             f"mount -t tmpfs -o mode=1777 tmpfs {shlex.quote(str(root / 'tmp'))}",
             shlex.join(["exec", "chroot", str(root), "/usr/bin/env", "-i",
                         *(f"{k}={v}" for k, v in ENVIRONMENT.items()),
                         "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv])]
    # A user gets root in a user namespace of its own; root needs none (and inside a
    # chroot, as in the Debian 13 host test, the kernel refuses one).
    user_ns = ["--map-root-user"] if os.geteuid() != 0 else []
    return ["unshare", *user_ns, "--mount", "--fork", "--", "/bin/sh", "-c", "\n".join(steps)]


def run(root: Path, argv: list[str], binds: dict[str, Path], what: str, cwd: str = "/src") -> str:
    """Run argv in the root; returns its stdout, raises with its stderr when it fails."""
    proc = subprocess.run(enter_command(root, argv, binds, cwd), capture_output=True, text=True)
    if proc.returncode != 0:
        hint = ""
        if "cannot change root filesystem propagation" in proc.stderr:
            hint = ("\n(/ is not a mount point here, as in a bare chroot: bind the chroot onto itself before "
                    "entering it, `mount --bind DIR DIR`)")
        elif "unshare failed" in proc.stderr or "Operation not permitted" in proc.stderr:
            hint = ("\n(entering the build root needs user namespaces for a non-root user: "
                    "kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0; see scripts/setup.sh)")
        raise BuildRootError(f"{what} failed:\n$ {shlex.join(argv)}\n{proc.stderr.strip()}{hint}")
    return proc.stdout
