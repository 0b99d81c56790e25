"""A kernel's config: read from a .config file or from IKCONFIG in its image or configs.ko."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from kregress.kernels.modules import read_module
from kregress.kernels.vmlinux import UnknownImage, payload

if TYPE_CHECKING:
    from kregress.kernels.kernel import Kernel


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
    try:
        text = ikconfig(payload(image.read_bytes()).data)
    except (OSError, UnknownImage):
        text = None
    if text is None and modules_dir is not None:
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


