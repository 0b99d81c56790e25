"""Resolve kernels.toml entries to bootable kernels: fetch Debian packages, verify, cache."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .config import DEBIAN_ARCH, KernelSpec
from .paths import cache_dir

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LISTS_MAX_AGE_S = 24 * 3600
# Versioned packages that carry the image, modules and config of one kernel ABI.
KERNEL_PART = re.compile(r"^linux-(image|binary|modules|base)-(unsigned-)?\d")


class KernelFetchError(RuntimeError):
    """A kernel could not be fetched or unpacked; the message names the kernel."""


@dataclass
class Kernel:
    """A kernel ready to boot, with what is known about its version."""
    spec: KernelSpec
    image: Path
    release: str                      # uname -r as the kernel will report it
    upstream_version: str | None      # e.g. "6.1.158": what the facts are matched against
    package: str | None = None
    package_version: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    downloaded_bytes: int = 0
    modules_dir: Path | None = None   # lib/modules/<release>: the initramfs takes its boot modules from here
    config_source: str | None = None  # where `config` came from: a file, or "IKCONFIG" (None: no config found)
    tree_build: dict | None = None    # a tree entry: commit, local changes, fragment, build seconds

    @property
    def id(self) -> str:
        return self.spec.id

    def describe(self) -> dict:
        return {"id": self.id, "source": self.spec.source, "package": self.package,
                "package_version": self.package_version, "upstream_version": self.upstream_version,
                "expected_release": self.release, "image": str(self.image), "config_source": self.config_source,
                **({"tree_build": self.tree_build} if self.tree_build else {})}


def upstream_version_of(debian_version: str) -> str | None:
    """'6.1.158-1' -> '6.1.158', '7.3.4-1~bpo13+1' -> '7.3.4', '6.13~rc6-1~exp1' -> '6.13.0'."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", debian_version)
    if not match:
        return None
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    return f"{major}.{minor}.{patch}"


def parse_config(text: str) -> dict[str, str]:
    """A kernel .config's set options ("# CONFIG_X is not set" lines are simply absent)."""
    config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value.strip('"')
    return config


def read_config(path: Path) -> dict[str, str]:
    return parse_config(path.read_text(errors="replace"))


IKCONFIG_START, IKCONFIG_END = b"IKCFG_ST", b"IKCFG_ED"     # around the gzipped .config (kernel/configs.c)


def ikconfig(data: bytes) -> str | None:
    """The .config a kernel built with CONFIG_IKCONFIG carries (scripts/extract-ikconfig's
    format: the marker, then a gzip stream), in its decompressed image or in configs.ko."""
    at = data.find(IKCONFIG_START + b"\x1f\x8b\x08")
    if at < 0:
        return None
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[at + len(IKCONFIG_START):]).decode(
            errors="replace")
    except zlib.error:
        return None


def config_of(image: Path, files: list[Path], modules_dir: Path | None = None) -> tuple[dict[str, str], str | None]:
    """The kernel's config and where it came from: the first of `files` that exists, else
    IKCONFIG in the image (CONFIG_IKCONFIG=y) or in its configs.ko (=m); ({}, None) when none."""
    for path in files:
        if path.is_file():
            return read_config(path), str(path)
    from .vmlinux import UnknownImage, payload     # vmlinux imports this module
    try:
        text = ikconfig(payload(image.read_bytes()).data)
    except (OSError, UnknownImage):
        text = None
    if text is None and modules_dir is not None:
        from .initramfs import read_module
        for module in sorted(modules_dir.glob("kernel/kernel/configs.ko*")):
            text = ikconfig(read_module(module))
            break
    return (parse_config(text), "IKCONFIG") if text else ({}, None)


def config_problem(kernel: Kernel) -> str | None:
    """Why preflight cannot judge the kernel's config (None: it has one). Without one, built-in
    and missing options look alike, so the guest's needs cannot be checked."""
    if kernel.config:
        return None
    return (f"{kernel.id}: no config found for {kernel.image} (no config file beside it, no IKCONFIG in it): give "
            f"`config` in kernels.toml (the kernel's .config) or build with CONFIG_IKCONFIG")


@contextmanager
def locked(path: Path):
    """Serialise fetches of one suite between xdist workers and concurrent runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class DebianArchive:
    """apt with a private state per suite: the host's apt configuration is never touched."""

    def __init__(self, suite: str, root: Path | None = None, refresh: bool = False, arch: str = "amd64"):
        self.suite = suite
        self.arch = arch        # Debian's name: amd64, arm64
        self.root = (root or cache_dir() / "apt") / (suite if arch == "amd64" else f"{suite}-{arch}")
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
        partial = remembered.with_name(f"{remembered.name}.{os.getpid()}")
        partial.write_text(json.dumps({"lists": lists, "parts": parts}))
        os.replace(partial, remembered)
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_debian(spec: KernelSpec, refresh: bool = False) -> Kernel:
    root = cache_dir()
    arch = DEBIAN_ARCH[spec.arch]
    with locked(root / "locks" / (f"apt-{spec.suite}.lock" if arch == "amd64" else f"apt-{spec.suite}-{arch}.lock")):
        archive = DebianArchive(spec.suite, refresh=refresh, arch=arch)
        archive.update()
        parts = archive.kernel_parts(spec.package)
        image_fields = next(p for p in parts if p["Package"].startswith(("linux-image-", "linux-binary-")))
        version = image_fields["Version"]
        tree = root / "kernels" / (f"{spec.package}_{spec.suite}_{version}" if arch == "amd64"
                                   else f"{spec.package}_{spec.suite}_{arch}_{version}")
        downloaded = 0
        if not (tree / ".complete").exists():
            debs = []
            for fields in parts:
                deb, size = archive.download(fields, root / "debs")
                debs.append(deb)
                downloaded += size
            _extract(debs, tree)
    kernel = kernel_from_tree(spec, tree)
    kernel.package = image_fields["Package"]
    kernel.package_version = version
    kernel.upstream_version = spec.version or upstream_version_of(version)
    kernel.downloaded_bytes = downloaded
    return kernel


def _extract(debs: list[Path], tree: Path) -> None:
    staging = tree.with_name(tree.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for deb in debs:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise KernelFetchError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()}")
    (staging / ".complete").write_text(json.dumps([d.name for d in debs]))
    shutil.rmtree(tree, ignore_errors=True)
    staging.rename(tree)


def kernel_from_tree(spec: KernelSpec, tree: Path) -> Kernel:
    """Find image, release and config in an unpacked package tree (old and split layouts)."""
    candidates = sorted(tree.glob("boot/vmlinuz-*")) + sorted(tree.glob("usr/lib/modules/*/vmlinuz")) \
        + sorted(tree.glob("lib/modules/*/vmlinuz"))
    if not candidates:
        raise KernelFetchError(f"{spec.id}: no vmlinuz in {tree}")
    image = candidates[0]
    release = image.name[len("vmlinuz-"):] if image.name.startswith("vmlinuz-") else image.parent.name
    config_paths = [tree / "boot" / f"config-{release}", tree / "usr/lib/modules" / release / "config",
                    tree / "lib/modules" / release / "config"]
    modules_dir = next((d for d in (tree / "lib/modules" / release, tree / "usr/lib/modules" / release)
                        if d.is_dir()), None)
    config, source = config_of(image, config_paths, modules_dir)
    return Kernel(spec=spec, image=image, release=release, upstream_version=spec.version, config=config,
                  modules_dir=modules_dir, config_source=source)


def resolve_local(spec: KernelSpec) -> Kernel:
    image = spec.image
    if not image or not image.is_file():
        raise KernelFetchError(f"{spec.id}: image {image} does not exist; fix 'image' in kernels.toml")
    release = spec.modules.name if spec.modules else _release_from_image(image)
    if spec.config_file and not spec.config_file.is_file():
        raise KernelFetchError(f"{spec.id}: config {spec.config_file} does not exist; fix 'config' in kernels.toml")
    beside = [image.parent / ".config", image.parent.parent.parent.parent / ".config", image.parent / f"config-{release}"]
    config, source = config_of(image, [spec.config_file] if spec.config_file else beside, spec.modules)
    version = spec.version or upstream_version_of(release or "")
    return Kernel(spec=spec, image=image, release=release or "unknown", upstream_version=version, config=config,
                  modules_dir=spec.modules, config_source=source)


def _release_from_image(image: Path) -> str | None:
    out = subprocess.run(["file", "-b", str(image)], capture_output=True, text=True).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else None


def resolve_debs(spec: KernelSpec) -> Kernel:
    """The user's own kernel packages: checked whole (dpkg-deb reads every member), unpacked
    once into the cache by their content, then found like Debian's."""
    for deb in spec.debs:
        if not deb.is_file():
            raise KernelFetchError(f"{spec.id}: {deb} does not exist; fix 'deb' in kernels.toml")
    digest = hashlib.sha256()
    for deb in spec.debs:
        digest.update(sha256_file(deb).encode())
    fields = {}
    for deb in spec.debs:
        info = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Version"], capture_output=True, text=True)
        check = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True)
        if info.returncode != 0 or check.returncode != 0:
            raise KernelFetchError(f"{spec.id}: {deb} is not a readable Debian package "
                                   f"({(info.stderr or check.stderr).strip()}); fetch it again or fix 'deb'")
        package = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
        if package.get("Package", "").startswith(("linux-image-", "linux-binary-")):
            fields = package
    if not fields:
        raise KernelFetchError(f"{spec.id}: none of {[d.name for d in spec.debs]} is a kernel image package "
                               "(linux-image-* or linux-binary-*)")
    tree = cache_dir() / "kernels" / f"deb-{spec.id}-{digest.hexdigest()[:16]}"
    with locked(cache_dir() / "locks" / f"deb-{spec.id}.lock"):
        if not (tree / ".complete").exists():
            _extract(list(spec.debs), tree)
    kernel = kernel_from_tree(spec, tree)
    kernel.package, kernel.package_version = fields["Package"], fields.get("Version")
    kernel.upstream_version = spec.version or upstream_version_of(fields.get("Version") or "")
    return kernel


def resolve_tree(spec: KernelSpec) -> Kernel:
    """A kernel source tree: built once per commit + local changes + config fragment (one
    build at a time per entry), the image kept in the cache."""
    from .tree import DEFAULT_FRAGMENT, build_cached
    fragment = (spec.config_fragment or DEFAULT_FRAGMENT).resolve()
    if not spec.tree.is_dir():
        raise KernelFetchError(f"{spec.id}: tree {spec.tree} does not exist; fix 'tree' in kernels.toml")
    with locked(cache_dir() / "locks" / f"tree-{spec.id}.lock"):
        try:
            built = build_cached(spec.tree, fragment, cache_dir() / "trees", cache_dir() / "trees" / "logs")
        except RuntimeError as err:
            raise KernelFetchError(f"{spec.id}: cannot build {spec.tree}: {err}; fix the tree or 'tree'/'config' "
                                   f"in kernels.toml") from None
    kernel = Kernel(spec=spec, image=built.image, release=_release_from_image(built.image) or "unknown",
                    upstream_version=spec.version or built.version, config=read_config(built.config),
                    config_source=str(built.config))
    kernel.package_version = f"{built.record['commit'][:12]}" + ("+local" if built.record["local_changes"] else "")
    kernel.tree_build = built.record
    return kernel


def resolve(spec: KernelSpec, refresh: bool = False) -> Kernel:
    if spec.suite:
        return fetch_debian(spec, refresh)
    if spec.tree:
        return resolve_tree(spec)
    return resolve_debs(spec) if spec.debs else resolve_local(spec)
