"""A kernel ready to boot, as kernels.toml's entry resolved it: image, release, version, config."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kregress.kernels.entries import KernelSpec


class KernelFetchError(RuntimeError):
    """A kernel could not be fetched or unpacked; the message names the kernel."""


@dataclass(frozen=True)
class Provenance:
    """Where the kernel came from, as reports name it: its source's kind, and the checkout and
    build (KCIDB's) it is one of: the same ids across runs and users where the source allows."""
    kind: str           # debian, deb, local, tree (kregress.kernels.sources)
    checkout: str
    build: str


@dataclass(frozen=True)
class Kernel:
    """A kernel ready to boot, with what is known about its version: made whole by its source
    (kregress.kernels.sources), never patched afterwards."""
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
    provenance: Provenance | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def describe(self) -> dict:
        return {"id": self.id, "source": self.spec.source, "arch": self.spec.arch, "package": self.package,
                "package_version": self.package_version, "upstream_version": self.upstream_version,
                "expected_release": self.release, "image": str(self.image), "config_source": self.config_source,
                **({"tree_build": self.tree_build} if self.tree_build else {}),
                **({"provenance": asdict(self.provenance)} if self.provenance else {})}


def upstream_version_of(debian_version: str) -> str | None:
    """'6.1.158-1' -> '6.1.158', '7.3.4-1~bpo13+1' -> '7.3.4', '6.13~rc6-1~exp1' -> '6.13.0'."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", debian_version)
    if not match:
        return None
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    return f"{major}.{minor}.{patch}"
