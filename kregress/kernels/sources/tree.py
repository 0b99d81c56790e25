"""A kernel source tree (`tree = ...`, a git checkout): built with vng --build once per
commit + local changes + config fragment (kregress/kernels/tree.py), the image kept in the cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kregress.files import locked
from kregress.kernels.entries import KernelSpec, entry_path
from kregress.kernels.kconfig import read_config
from kregress.kernels.kernel import Kernel, KernelFetchError, Provenance
from kregress.kernels.sources.image import release_from_image
from kregress.paths import cache_dir

KIND = "tree"
KEY = "tree"
WHAT = 'tree = "..." (a kernel source tree to build)'
ENTRY = "a tree entry"
KEYS = {
    "tree": (str, 'a kernel source tree (a git checkout) to build with virtme-ng, e.g. "~/src/linux"'),
    "config": (str, "a config fragment merged into the build (default: configs/bisect.config)"),
}


@dataclass(frozen=True)
class SourceTree:
    tree: Path
    config_fragment: Path | None = None
    kind: ClassVar[str] = KIND

    @property
    def text(self) -> str:
        return f"tree:{self.tree}"


def provenance(commit: str, release: str) -> Provenance:
    """A tree joins by its commit."""
    return Provenance(KIND, checkout=f"tree:{commit}", build=f"tree:{commit}:{release}")


def parse(entry: dict, where: str, base: Path | None, error: type[Exception]) -> SourceTree:
    return SourceTree(entry_path(entry["tree"], base), entry_path(entry["config"], base) if "config" in entry else None)


def resolve(spec: KernelSpec, refresh: bool = False) -> Kernel:
    from kregress.kernels.tree import DEFAULT_FRAGMENT, build_cached
    origin: SourceTree = spec.origin
    fragment = (origin.config_fragment or DEFAULT_FRAGMENT).resolve()
    if not origin.tree.is_dir():
        raise KernelFetchError(f"{spec.id}: tree {origin.tree} does not exist; fix 'tree' in kernels.toml")
    with locked(cache_dir() / "locks" / f"tree-{spec.id}.lock"):
        try:
            built = build_cached(origin.tree, fragment, cache_dir() / "trees", cache_dir() / "trees" / "logs")
        except RuntimeError as err:
            raise KernelFetchError(f"{spec.id}: cannot build {origin.tree}: {err}; fix the tree or 'tree'/'config' "
                                   f"in kernels.toml") from None
    release = release_from_image(built.image) or "unknown"
    commit = built.record["commit"]
    return Kernel(spec=spec, image=built.image, release=release, upstream_version=spec.version or built.version,
                  package_version=commit[:12] + ("+local" if built.record["local_changes"] else ""),
                  config=read_config(built.config), config_source=str(built.config), tree_build=built.record,
                  provenance=provenance(commit, release))
