"""A kernel image already on disk (`image = ...`): a bzImage or vmlinuz, with its .config
and modules directory where given (or found beside it)."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kregress.kernels.entries import KernelSpec, entry_path
from kregress.kernels.kconfig import config_of
from kregress.kernels.kernel import Kernel, KernelFetchError, Provenance, upstream_version_of

KIND = "local"
KEY = "image"
WHAT = 'image = "..." (a local kernel image)'
ENTRY = "a local image entry"
KEYS = {
    "image": (str, "a path to a kernel image (bzImage/vmlinuz)"),
    "config": (str, "the image's own .config"),
    "modules": (str, "a path to the matching lib/modules/<release> directory"),
}


@dataclass(frozen=True)
class LocalImage:
    image: Path
    config_file: Path | None = None
    modules: Path | None = None
    kind: ClassVar[str] = KIND

    @property
    def text(self) -> str:
        return f"local:{self.image}"


def provenance(kernel_id: str, version: str | None, release: str) -> Provenance:
    """A local image is this run's: nothing else names it."""
    return Provenance(KIND, checkout=f"local:{kernel_id}:{version or 'unknown'}", build=f"local:{kernel_id}:{release}")


def parse(entry: dict, where: str, base: Path | None, error: type[Exception]) -> LocalImage:
    return LocalImage(entry_path(entry["image"], base),
                      entry_path(entry["config"], base) if "config" in entry else None,
                      entry_path(entry["modules"], base) if "modules" in entry else None)


def release_from_image(image: Path) -> str | None:
    out = subprocess.run(["file", "-b", str(image)], capture_output=True, text=True).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else None


def resolve(spec: KernelSpec, refresh: bool = False) -> Kernel:
    origin: LocalImage = spec.origin
    image = origin.image
    if not image.is_file():
        raise KernelFetchError(f"{spec.id}: image {image} does not exist; fix 'image' in kernels.toml")
    release = origin.modules.name if origin.modules else release_from_image(image)
    if origin.config_file and not origin.config_file.is_file():
        raise KernelFetchError(f"{spec.id}: config {origin.config_file} does not exist; fix 'config' in kernels.toml")
    beside = [image.parent / ".config", image.parent.parent.parent.parent / ".config", image.parent / f"config-{release}"]
    config, source = config_of(image, [origin.config_file] if origin.config_file else beside, origin.modules)
    version = spec.version or upstream_version_of(release or "")
    release = release or "unknown"
    return Kernel(spec=spec, image=image, release=release, upstream_version=version, config=config,
                  modules_dir=origin.modules, config_source=source,
                  provenance=provenance(spec.id, version, release))
