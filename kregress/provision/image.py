"""The guest's own userspace: a read-only erofs image built from guest/image.toml.

mmdebstrap installs Debian's Essential set plus the listed packages from the signed
archive into a directory; a few fix-ups make the accounts ours (root logs in by key,
with /bin/sh); mkfs.erofs packs it. The image is cached by content (the list, the
recipe below and the architecture): a second run builds nothing, a changed list builds
a new image, and a failed build leaves every cached image as it was.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kregress.provision import rootfs
from kregress.arch import ARCHES, arch as arch_of
from kregress.files import sha256_file
from kregress.kernels.sources.debian import DEBIAN_KEYRING, DEBIAN_MIRROR
from kregress.paths import cache_dir, data

IMAGE_LIST = data("guest/image.toml")
# Nothing the suite reads: documentation, manuals, translations.
EXCLUDED_PATHS = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"]
# Bump when the recipe changes in a way the command line below does not show.
RECIPE_VERSION = 1


class ImageError(RuntimeError):
    """The guest image cannot be built or read; the message names the step and the fix."""


@dataclass(frozen=True)
class ImageSpec:
    suite: str
    packages: tuple[str, ...]
    arch: str = "x86_64"
    source: str = str(IMAGE_LIST)


@dataclass(frozen=True)
class GuestImage:
    root: Path            # the erofs image the guest boots from, read-only
    busybox: Path         # the image's own static busybox, for the initramfs
    digest: str           # sha256 of the erofs image
    suite: str
    arch: str
    packages: dict        # name -> exact version, as installed

    def describe(self) -> dict:
        return {"digest": self.digest, "suite": self.suite, "arch": self.arch, "path": str(self.root),
                "packages": self.packages}


def load_spec(path: Path = IMAGE_LIST, arch: str = "x86_64") -> ImageSpec:
    suite, packages, extras = rootfs.read_list(path, "guest image", ImageError, 'a Debian suite such as "trixie"',
                                               extra_keys=("suite_by_arch",))
    if arch not in ARCHES:
        raise ImageError(f"guest image: architecture {arch!r} is not supported; use one of {', '.join(ARCHES)}")
    by_arch = extras.get("suite_by_arch", {})
    if not isinstance(by_arch, dict) or not all(a in ARCHES and isinstance(v, str) and rootfs.SUITE.fullmatch(v)
                                                for a, v in by_arch.items()):
        raise ImageError(f"{path}: suite_by_arch = {by_arch!r}; write {{ARCH = \"SUITE\"}} with ARCH one of "
                         f"{', '.join(ARCHES)}")
    return ImageSpec(suite=by_arch.get(arch, suite), packages=packages, arch=arch, source=str(path))


def mmdebstrap_command(spec: ImageSpec, target: Path) -> list[str]:
    source = f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {spec.suite} main"
    return ["mmdebstrap", "--variant=essential", f"--architectures={arch_of(spec.arch).debian}",
            f"--include={','.join(spec.packages)}", f"--keyring={DEBIAN_KEYRING}",
            *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDED_PATHS],
            spec.suite, str(target), source]


def cache_key(spec: ImageSpec) -> str:
    digest = hashlib.sha256()
    recipe = [RECIPE_VERSION, mmdebstrap_command(spec, Path("TARGET")), FIXUPS, sorted(OPTIONAL_FIXUPS),
              EROFS_OPTIONS]
    digest.update(json.dumps(recipe).encode())
    return digest.hexdigest()[:16]


# The accounts are ours: root logs in with the run's key only (the password field can
# never match a password but is not a "locked" marker, which an SSH server may refuse),
# and its shell is dash. /etc/shadow exists only if a package brought the shadow tools
# (passwd); without it the password field of /etc/passwd is the one read. Any host keys
# a package made are removed: every boot gets the run's own key, and the image carries
# no private key.
FIXUPS = [
    ("etc/passwd", r"^root:[^:]*:(0:0:[^:]*:[^:]*):.*$", r"root:x:\1:/bin/sh"),
    ("etc/shadow", r"^root:[^:]*:", "root:x:"),
]
OPTIONAL_FIXUPS = {"etc/shadow"}
EROFS_OPTIONS = ["-T0", "--all-root"]      # same timestamp and owner for every file


def apply_fixups(rootdir: Path) -> None:
    for relative, pattern, replacement in FIXUPS:
        path = rootdir / relative
        if not path.exists():
            if relative in OPTIONAL_FIXUPS:
                continue
            raise ImageError(f"guest image fix-up: the image has no {relative}")
        text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.M)
        if count != 1:
            raise ImageError(f"guest image fix-up: no root entry in {relative}")
        path.write_text(text)
    for key in [*(rootdir / "etc/ssh").glob("ssh_host_*"), *(rootdir / "etc/dropbear").glob("*host_key*")]:
        key.unlink()


def image_dir(spec: ImageSpec) -> Path:
    return cache_dir() / "images" / f"{spec.arch}-{spec.suite}-{cache_key(spec)}"


def cached(spec: ImageSpec) -> GuestImage | None:
    manifest = image_dir(spec) / "manifest.json"
    if not manifest.exists():
        return None
    try:
        data = json.loads(manifest.read_text())
    except ValueError:
        return None
    directory = manifest.parent
    return GuestImage(root=directory / "root.erofs", busybox=directory / "busybox", digest=data["digest"],
                      suite=data["suite"], arch=data["arch"], packages=data["packages"])


def ensure_image(spec: ImageSpec | None = None, progress=None) -> GuestImage:
    """The cached image for this list, recipe and architecture; built when missing."""
    spec = spec or load_spec()
    image = cached(spec)
    if image:
        return image
    lock_path = cache_dir() / "locks" / f"image-{spec.arch}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # xdist workers and parallel runs build it once
        return cached(spec) or build(spec, progress or _print_progress)


def _print_progress(line: str) -> None:
    print(f"guest image: {line}", file=sys.stderr, flush=True)


def remove_staging(staging: Path) -> None:
    if not rootfs.remove(staging):
        raise ImageError(f"guest image: cannot remove the earlier build directory {staging}; remove it by hand")


def build(spec: ImageSpec, progress) -> GuestImage:
    final = image_dir(spec)
    staging = final.with_name(final.name + ".partial")
    remove_staging(staging)
    staging.mkdir(parents=True)
    started = time.monotonic()
    try:
        rootdir = staging / "rootdir"
        progress(f"building {spec.arch} {spec.suite} with {', '.join(spec.packages)} (from {spec.source})")
        _mmdebstrap(spec, rootdir, progress, started)
        apply_fixups(rootdir)
        packages = _installed_packages(rootdir)
        shutil.copy2(rootdir / "bin/busybox", staging / "busybox")
        progress(f"{len(packages)} packages installed; packing erofs ({time.monotonic() - started:.0f}s)")
        _run(["mkfs.erofs", "--quiet", *EROFS_OPTIONS, str(staging / "root.erofs"), str(rootdir)], "mkfs.erofs")
        shutil.rmtree(rootdir)
        digest = sha256_file(staging / "root.erofs")
        (staging / "manifest.json").write_text(json.dumps(
            {"digest": digest, "suite": spec.suite, "arch": spec.arch, "packages": packages,
             "recipe": cache_key(spec), "built_seconds": round(time.monotonic() - started, 1)}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    except BaseException:
        rootfs.remove(staging)          # the error that stopped the build is the one to see
        raise
    progress(f"ready: {final / 'root.erofs'} sha256 {digest[:16]} "
             f"({(final / 'root.erofs').stat().st_size >> 20} MiB, {time.monotonic() - started:.0f}s)")
    return cached(spec)


def _mmdebstrap(spec: ImageSpec, rootdir: Path, progress, started: float) -> None:
    try:
        cmd = rootfs.checking_includes(mmdebstrap_command(spec, rootdir), spec.packages)
        status, lines = rootfs.run_mmdebstrap(cmd, rootdir, progress, started)
    except FileNotFoundError:
        raise ImageError("guest image: mmdebstrap is not installed (run `make setup`)") from None
    if status != 0:
        raise ImageError(explain_failure(spec, lines))


# mmdebstrap/apt messages -> what went wrong, in the user's terms
FAILURES = [
    (re.compile(r"Unable to locate package (\S+)|Package '?(\S+?)'? has no installation candidate"),
     "package {0!r} is not in Debian {suite} ({arch}): fix the packages list in {source}"),
    (re.compile(r"NO_PUBKEY|BADSIG|is not signed|signatures were invalid|not signed"),
     "the archive's signature did not verify against {keyring}: is debian-archive-keyring current?"),
    (re.compile(r"No space left on device"),
     "the disk is full while building in {cache}: free some space (or move KREGRESS_CACHE)"),
    (re.compile(r"does not have a Release file|Release file .* not found|404\s+Not Found"),
     "suite {suite!r} was not found in the archive: fix suite in {source}"),
    (re.compile(r"Temporary failure resolving|Could not connect|Failed to fetch|Connection failed|"
                r"Could not resolve"),
     "the Debian archive could not be reached ({mirror}): check the network or a proxy"),
]


def explain_failure(spec, lines: list[str], what: str = "guest image", arch: str | None = None) -> str:
    """spec: an ImageSpec, or the build root's (what and arch say which)."""
    text = "\n".join(lines)
    untouched = "the cached images are untouched" if what == "guest image" else f"the cached {what} is untouched"
    tail = "\n".join("  | " + line for line in lines[-15:])
    for pattern, message in FAILURES:
        match = pattern.search(text)
        if match:
            name = next((g for g in match.groups() if g), "") if match.groups() else ""
            why = message.format(name, suite=spec.suite, arch=arch or arch_of(spec.arch).debian, source=spec.source,
                                 keyring=DEBIAN_KEYRING, cache=cache_dir(), mirror=DEBIAN_MIRROR)
            return f"{what} build failed: {why}; {untouched}.\nmmdebstrap said:\n{tail}"
    return f"{what} build failed (mmdebstrap); {untouched}.\nmmdebstrap said:\n{tail}"


def _installed_packages(rootdir: Path) -> dict:
    out = _run(["dpkg-query", f"--admindir={rootdir / 'var/lib/dpkg'}", "-W", "-f=${Package}\t${Version}\n"],
               "listing the image's packages")
    return dict(sorted(line.split("\t", 1) for line in out.splitlines() if "\t" in line))


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise ImageError(f"guest image: {cmd[0]} is not installed (run `make setup`)") from None
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        hint = " (the disk is full)" if "No space left" in output else ""
        raise ImageError(f"guest image: {what} failed{hint}; the cached images are untouched:\n{output[-2000:]}")
    return proc.stdout

