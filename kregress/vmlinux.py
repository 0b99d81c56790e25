"""The uncompressed kernel inside an x86 bzImage, for QEMU's PVH entry under TCG.

A bzImage starts in real mode and decompresses itself; under TCG that emulated
decompression costs 1-4 s per boot (xz on Debian's 5.10 and 6.1, zstd on newer ones).
QEMU can instead load the ELF vmlinux directly and enter it through its PVH note
(CONFIG_PVH), so the kernel starts at once. The kernel is the same build; only the way
in differs. Extracted once per image, cached by the image's content.
"""
from __future__ import annotations

import gzip
import lzma
import os
import subprocess
import zlib
from pathlib import Path

from .kernels import sha256_file
from .paths import cache_dir

# compressed payload magic -> how to decompress it (trailing bytes after the stream are ignored)
MAGICS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x5d\x00\x00", "lzma"),
]
PVH_NOTE = b"Xen\x00"       # the owner of XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point


def _decompress(kind: str, data: bytes) -> bytes:
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    proc = subprocess.run(["zstd", "-dc"], input=data, capture_output=True)   # trailing bytes: an error we expect
    return proc.stdout


def extract(bzimage: bytes) -> bytes | None:
    """The ELF vmlinux inside, or None when no payload decompresses to one."""
    for magic, kind in MAGICS:
        at = bzimage.find(magic)
        while at != -1:
            try:
                out = _decompress(kind, bzimage[at:])
            except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile, OSError):
                out = b""
            if out.startswith(b"\x7fELF"):
                return out
            at = bzimage.find(magic, at + 1)
    return None


def pvh_vmlinux(image: Path, config: dict[str, str], digest: str | None = None) -> Path | None:
    """A cached vmlinux QEMU can enter through PVH, or None (then boot the bzImage).
    digest: the image's SHA-256, when the caller has it already."""
    if config.get("CONFIG_PVH") != "y":
        return None
    out = cache_dir() / "vmlinux" / f"{(digest or sha256_file(image))[:20]}.elf"
    if out.exists():
        return out
    vmlinux = extract(image.read_bytes())
    if vmlinux is None or PVH_NOTE not in vmlinux:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}")
    partial.write_bytes(vmlinux)
    os.replace(partial, out)
    return out
