"""Resolve a kernels.toml entry to a bootable kernel: a Debian suite, the user's own packages,
a local image, or a source tree built here."""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from kregress.files import locked, sha256_file
from kregress.kernels.debian import fetch_debian, kernel_from_tree, unpack
from kregress.kernels.entries import KernelSpec
from kregress.kernels.kconfig import config_of, read_config
from kregress.kernels.kernel import Kernel, KernelFetchError, upstream_version_of
from kregress.paths import cache_dir


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
            unpack(list(spec.debs), tree)
    kernel = kernel_from_tree(spec, tree)
    kernel.package, kernel.package_version = fields["Package"], fields.get("Version")
    kernel.upstream_version = spec.version or upstream_version_of(fields.get("Version") or "")
    return kernel


def resolve_tree(spec: KernelSpec) -> Kernel:
    """A kernel source tree: built once per commit + local changes + config fragment (one
    build at a time per entry), the image kept in the cache."""
    from kregress.kernels.tree import DEFAULT_FRAGMENT, build_cached
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
