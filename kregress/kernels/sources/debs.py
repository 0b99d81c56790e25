"""A kernel from the user's own package files (`deb = [...]`): a vendor's, Ubuntu's, one built
with make bindeb-pkg. Checked whole (dpkg-deb reads every member), unpacked once into the cache
by their content, then found like Debian's."""
from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kregress.files import locked, sha256_file
from kregress.kernels.entries import KernelSpec, entry_path
from kregress.kernels.kernel import Kernel, KernelFetchError, Provenance, upstream_version_of
from kregress.kernels.sources.packages import find_kernel, unpack
from kregress.paths import cache_dir

KIND = "deb"
KEY = "deb"
WHAT = 'deb = ["..."] (package files)'
ENTRY = "a deb entry"
KEYS = {"deb": ((str, list), 'a kernel package file, or a list of them (image and modules where split): '
                             'deb = ["linux-image-....deb", "linux-modules-....deb"]')}


@dataclass(frozen=True)
class PackageFiles:
    debs: tuple[Path, ...]
    kind: ClassVar[str] = KIND

    @property
    def text(self) -> str:
        return "deb:" + ",".join(path.name for path in self.debs)


def provenance(package: str, version: str | None) -> Provenance:
    """A user's package joins across runs by its package and version."""
    return Provenance(KIND, checkout=f"deb:{package}={version}", build=f"deb:{package}={version}")


def parse(entry: dict, where: str, base: Path | None, error: type[Exception]) -> PackageFiles:
    debs = [entry["deb"]] if isinstance(entry["deb"], str) else entry["deb"]
    if not debs or not all(isinstance(d, str) and d.endswith(".deb") for d in debs):
        raise error(f"{where}: deb = {entry['deb']!r}; write the path of a .deb file or a list of them")
    return PackageFiles(tuple(entry_path(d, base) for d in debs))


def resolve(spec: KernelSpec, refresh: bool = False) -> Kernel:
    debs = spec.origin.debs
    for deb in debs:
        if not deb.is_file():
            raise KernelFetchError(f"{spec.id}: {deb} does not exist; fix 'deb' in kernels.toml")
    digest = hashlib.sha256()
    for deb in debs:
        digest.update(sha256_file(deb).encode())
    fields = {}
    for deb in debs:
        info = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Version"], capture_output=True, text=True)
        check = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True)
        if info.returncode != 0 or check.returncode != 0:
            raise KernelFetchError(f"{spec.id}: {deb} is not a readable Debian package "
                                   f"({(info.stderr or check.stderr).strip()}); fetch it again or fix 'deb'")
        package = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
        if package.get("Package", "").startswith(("linux-image-", "linux-binary-")):
            fields = package
    if not fields:
        raise KernelFetchError(f"{spec.id}: none of {[d.name for d in debs]} is a kernel image package "
                               "(linux-image-* or linux-binary-*)")
    tree = cache_dir() / "kernels" / f"deb-{spec.id}-{digest.hexdigest()[:16]}"
    with locked(cache_dir() / "locks" / f"deb-{spec.id}.lock"):
        if not (tree / ".complete").exists():
            unpack(list(debs), tree)
    found = find_kernel(spec.id, tree)
    package, version = fields["Package"], fields.get("Version")
    return Kernel(spec=spec, image=found.image, release=found.release,
                  upstream_version=spec.version or upstream_version_of(version or ""), package=package,
                  package_version=version, config=found.config, modules_dir=found.modules_dir,
                  config_source=found.config_source, provenance=provenance(package, version))
