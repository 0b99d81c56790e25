"""A kernel of Debian's archive (`suite = ...`): apt with a private state per suite, verified
downloads, unpacked into the cache."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kregress.files import locked, sha256_file, write_whole
from kregress.arch import arch as arch_of
from kregress.kernels.entries import KernelSpec
from kregress.kernels.kernel import Kernel, KernelFetchError, Provenance, upstream_version_of
from kregress.kernels.sources.packages import find_kernel, unpack
from kregress.paths import cache_dir

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LISTS_MAX_AGE_S = 24 * 3600
# Versioned packages that carry the image, modules and config of one kernel ABI.
KERNEL_PART = re.compile(r"^linux-(image|binary|modules|base)-(unsigned-)?\d")



def cache_name(name: str, arch: str, separator: str) -> str:
    """A cache entry's name for a Debian arch: x86_64's (amd64) apt state, locks and trees keep
    the names they had before arm64 came, the others carry the arch."""
    return name if arch == "amd64" else f"{name}{separator}{arch}"


class DebianArchive:
    """apt with a private state per suite: the host's apt configuration is never touched."""

    def __init__(self, suite: str, root: Path | None = None, refresh: bool = False, arch: str = "amd64"):
        self.suite = suite
        self.arch = arch        # Debian's name: amd64, arm64
        self.root = (root or cache_dir() / "apt") / cache_name(suite, arch, "-")
        self.refresh = refresh
        for sub in ("lists/partial", "cache/archives/partial", "etc"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        (self.root / "etc/sources.list").write_text(
            f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {suite} main\n")

    def _options(self) -> list[str]:
        r = self.root
        return ["-o", f"Dir::Etc::SourceList={r}/etc/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={r}/lists", "-o", f"Dir::State::status={r}/status",
                "-o", f"Dir::Cache={r}/cache", "-o", f"APT::Architecture={self.arch}",
                "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]

    def _run(self, tool: str, *args: str) -> str:
        cmd = [tool, *self._options(), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            output = proc.stderr.strip() or proc.stdout.strip()
            hint = (" - is the suite name right (bullseye, bookworm, bookworm-backports, trixie, "
                    "trixie-backports, sid)?" if "does not have a Release file" in output else "")
            raise KernelFetchError(f"{' '.join([tool, *args])} failed for suite {self.suite!r}: {output}{hint}")
        return proc.stdout

    def update(self) -> None:
        stamp = self.root / "lists/.updated"
        fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S
        if fresh and not self.refresh:
            return
        self._run("apt-get", "update")
        if not any((self.root / "lists").glob("*_Packages*")):
            raise KernelFetchError(f"suite {self.suite!r}: apt found no package index; "
                                   "is the suite name right (bullseye, bookworm, trixie, trixie-backports ...)?")
        stamp.touch()

    def show(self, package: str) -> dict[str, str]:
        """The candidate's control fields (the newest version in this suite)."""
        text = self._run("apt-cache", "show", "--no-all-versions", package)
        fields: dict[str, str] = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith(" "):
                key, value = line.split(":", 1)
                fields.setdefault(key, value.strip())
        if "Package" not in fields:
            raise KernelFetchError(f"suite {self.suite!r} has no package {package!r}")
        return fields

    def kernel_parts(self, meta_package: str) -> list[dict[str, str]]:
        """The versioned image/modules packages a meta package leads to, remembered until
        the package lists are read again (each apt-cache call costs about 0.9 s, and every
        worker process resolves the kernels it runs)."""
        remembered = self.root / f"resolved-{meta_package}.json"
        stamp = self.root / "lists/.updated"
        lists = stamp.stat().st_mtime_ns if stamp.exists() else None
        try:
            saved = json.loads(remembered.read_text())
            if saved["lists"] == lists and saved["parts"]:
                return saved["parts"]
        except (OSError, ValueError, KeyError, TypeError):
            pass        # none yet, or unreadable: resolve again
        parts = self._walk_depends(meta_package)
        write_whole(remembered, json.dumps({"lists": lists, "parts": parts}))
        return parts

    def _walk_depends(self, meta_package: str) -> list[dict[str, str]]:
        """Walk Depends from a meta package down to the versioned image/modules packages."""
        parts, seen, todo = [], set(), [meta_package]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            fields = self.show(name)
            if KERNEL_PART.match(name):
                parts.append(fields)
            for alternative in fields.get("Depends", "").split(","):
                dep = alternative.split("|")[0].strip().split(" ")[0]
                if dep.startswith("linux-") and dep != "linux-base" and dep not in seen:
                    todo.append(dep)
        if not any(p["Package"].startswith(("linux-image-", "linux-binary-")) for p in parts):
            raise KernelFetchError(f"{meta_package} in {self.suite!r} leads to no kernel image package")
        return parts

    def download(self, fields: dict[str, str], into: Path) -> tuple[Path, int]:
        """Fetch one .deb, verified against the signed index's SHA256; reuse a good cached copy."""
        into.mkdir(parents=True, exist_ok=True)
        target = into / Path(fields["Filename"]).name
        if target.exists() and sha256_file(target) == fields["SHA256"]:
            return target, 0
        target.unlink(missing_ok=True)   # truncated or corrupted: fetch again
        partial = into / "partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        cmd = ["apt-get", *self._options(), "download", f"{fields['Package']}={fields['Version']}"]
        returncode, stderr = _with_progress(cmd, partial, f"{fields['Package']} {fields['Version']}",
                                            int(fields.get("Size", 0)))
        got = list(partial.glob("*.deb"))
        if returncode != 0 or len(got) != 1:
            raise KernelFetchError(f"downloading {fields['Package']} {fields['Version']} failed: {stderr.strip()}")
        if sha256_file(got[0]) != fields["SHA256"]:
            raise KernelFetchError(f"{got[0].name}: SHA256 does not match the archive index")
        got[0].rename(target)
        shutil.rmtree(partial, ignore_errors=True)
        return target, target.stat().st_size


PROGRESS_EVERY_S = 3.0


def _with_progress(cmd: list[str], directory: Path, what: str, size: int) -> tuple[int, str]:
    """Run apt-get download, saying every few seconds how far it got (it is silent)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            _, stderr = proc.communicate(timeout=PROGRESS_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            have = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
            total = f" of {size / 1e6:.1f}" if size else ""
            print(f"fetch: {what}: {have / 1e6:.1f}{total} MB after {time.monotonic() - started:.0f}s",
                  file=sys.stderr, flush=True)
            if time.monotonic() - started > 1800:
                proc.kill()
                return 1, "no complete download within 1800s"
    if size:
        print(f"fetch: {what}: {size / 1e6:.1f} MB in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return proc.returncode, stderr


KIND = "debian"
KEY = "suite"
WHAT = 'suite = "..." (a Debian package)'
ENTRY = "a Debian entry (with 'suite')"
KEYS = {
    "suite": (str, 'a Debian suite such as "bookworm"'),
    "package": (str, 'a Debian package such as "linux-image-amd64"'),
}


@dataclass(frozen=True)
class DebianPackage:
    """A kernel of Debian's archive: a suite's meta package, resolved to its current version."""
    suite: str
    package: str = "linux-image-amd64"
    kind: ClassVar[str] = KIND

    @property
    def text(self) -> str:
        return f"debian:{self.suite}/{self.package}"


def provenance(package: str, version: str) -> Provenance:
    """A Debian archive package joins across runs and users by its version."""
    return Provenance(KIND, checkout=f"debian:linux={version}", build=f"debian:{package}={version}")


def parse(entry: dict, where: str, base: Path | None, error: type[Exception]) -> DebianPackage:
    return DebianPackage(entry["suite"], entry.get("package", "linux-image-amd64"))


def resolve(spec: KernelSpec, refresh: bool = False) -> Kernel:
    origin: DebianPackage = spec.origin
    root = cache_dir()
    arch = arch_of(spec.arch).debian
    with locked(root / "locks" / (cache_name(f"apt-{origin.suite}", arch, "-") + ".lock")):
        archive = DebianArchive(origin.suite, refresh=refresh, arch=arch)
        archive.update()
        parts = archive.kernel_parts(origin.package)
        image_fields = next(p for p in parts if p["Package"].startswith(("linux-image-", "linux-binary-")))
        version = image_fields["Version"]
        tree = root / "kernels" / f"{cache_name(f'{origin.package}_{origin.suite}', arch, '_')}_{version}"
        downloaded = 0
        if not (tree / ".complete").exists():
            debs = []
            for fields in parts:
                deb, size = archive.download(fields, root / "debs")
                debs.append(deb)
                downloaded += size
            unpack(debs, tree)
    found = find_kernel(spec.id, tree)
    package = image_fields["Package"]
    return Kernel(spec=spec, image=found.image, release=found.release,
                  upstream_version=spec.version or upstream_version_of(version), package=package,
                  package_version=version, config=found.config, downloaded_bytes=downloaded,
                  modules_dir=found.modules_dir, config_source=found.config_source,
                  provenance=provenance(package, version))
