"""What Debian's archive and a user's .deb files share: kernel packages unpacked into the cache,
and the image, release, config and modules found in them (old and split layouts)."""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kregress.kernels.kconfig import config_of
from kregress.kernels.kernel import KernelFetchError


@dataclass(frozen=True)
class Unpacked:
    image: Path
    release: str
    config: dict[str, str]
    config_source: str | None
    modules_dir: Path | None


def unpack(debs: list[Path], tree: Path) -> None:
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


def find_kernel(kernel_id: str, tree: Path) -> Unpacked:
    """Image, release and config in an unpacked package tree: /boot/vmlinuz-V (bullseye to
    trixie's 6.12) or /usr/lib/modules/V/vmlinuz (the split linux-binary-V packages)."""
    candidates = sorted(tree.glob("boot/vmlinuz-*")) + sorted(tree.glob("usr/lib/modules/*/vmlinuz")) \
        + sorted(tree.glob("lib/modules/*/vmlinuz")) + sorted(tree.glob("boot/vmlinux-*"))   # ppc64el: ELF vmlinux
    if not candidates:
        raise KernelFetchError(f"{kernel_id}: no vmlinuz in {tree}")
    image = candidates[0]
    release = image.name[len("vmlinuz-"):] if image.name.startswith(("vmlinuz-", "vmlinux-")) else image.parent.name
    config_paths = [tree / "boot" / f"config-{release}", tree / "usr/lib/modules" / release / "config",
                    tree / "lib/modules" / release / "config"]
    modules_dir = next((d for d in (tree / "lib/modules" / release, tree / "usr/lib/modules" / release)
                        if d.is_dir()), None)
    config, source = config_of(image, config_paths, modules_dir)
    return Unpacked(image, release, config, source, modules_dir)
