"""The uncompressed kernel inside a boot image: for the binary witness and for PVH.

Every image format in the matrix and in the field comes down to a payload that is either
an ELF vmlinux or a raw image (kregress.kernels.evidence searches either for signatures):
- x86 bzImage: the setup header says where the compressed ELF is (gzip, bzip2, lzma,
  xz, lzo, lz4 or zstd, the decompressed size appended);
- arm64 Image: raw, or the whole file gzipped (Image.gz), or wrapped in an EFI zboot
  PE ("zimg": the header names the compression and where the payload is);
- s390x: a decompressor with a compressed raw vmlinux.bin inside ("S390EP" at 0x10008);
- a bare ELF vmlinux.

A bzImage starts in real mode and decompresses itself; under TCG that emulated
decompression costs 1-4 s per boot. QEMU can instead load the ELF vmlinux directly and
enter it through its PVH note (CONFIG_PVH): same build, another way in. Extracted once
per image, cached by the image's content.
"""
from __future__ import annotations

import bz2
import lzma
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from kregress.files import sha256_file, write_whole
from kregress.paths import cache_dir

# compressed stream magic -> format; lzo is lzop's file format, lz4 the legacy frame the kernel uses
MAGICS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x89LZO\x00\r\n\x1a\n", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x04\x22\x4d\x18", "lz4"),        # lz4 frame format (tools other than the kernel's)
    (b"\x5d\x00\x00", "lzma"),
]
HOST_TOOL = {"zstd": ["zstd", "-dcq"], "lz4": ["lz4", "-dcq"], "lzo": ["lzop", "-dcq"]}
PVH_NOTE = b"Xen\x00"       # the owner of XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point
ELF = b"\x7fELF"
ARM64_MAGIC = b"ARM\x64"    # at 0x38 of an arm64 Image
S390_MAGIC = b"S390EP"      # at 0x10008 of an s390 image (what QEMU's s390 loader looks for)


class UnknownImage(ValueError):
    """No payload could be found or decompressed; the message says why (for the evidence record)."""


@dataclass(frozen=True)
class Payload:
    data: bytes
    format: str                 # e.g. "x86 bzImage, lz4", "arm64 Image", "ELF vmlinux"

    @property
    def is_elf(self) -> bool:
        return self.data.startswith(ELF)


def decompress(kind: str, data: bytes) -> bytes:
    """One stream of `kind` from the start of `data`; bytes after the stream are ignored."""
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(data)
    tool = HOST_TOOL[kind]
    if shutil.which(tool[0]) is None:
        raise UnknownImage(f"{kind} payload, but the {tool[0]} tool is not installed (make setup installs it)")
    if kind == "lz4" and data.startswith(LZ4_LEGACY):
        data = lz4_legacy_blocks(data)
    # trailing bytes after the stream make the tools complain after writing everything: keep stdout
    return subprocess.run(tool, input=data, capture_output=True).stdout


LZ4_LEGACY = b"\x02\x21\x4c\x18"
LZ4_LEGACY_BLOCK = 8 << 20          # a legacy block decompresses to at most 8 MiB


def lz4_legacy_blocks(data: bytes) -> bytes:
    """The legacy lz4 stream's magic and whole blocks, without what follows (the kernel
    appends the decompressed size): lz4 1.10 (Debian 13) writes nothing when bytes follow,
    1.9 (Debian 12) writes everything and then complains."""
    pos = len(LZ4_LEGACY)
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "little")
        if not 0 < size <= LZ4_LEGACY_BLOCK + (LZ4_LEGACY_BLOCK // 255) + 16 or pos + 4 + size > len(data):
            break
        pos += 4 + size
    return data[:pos]


def _try(kind: str, data: bytes) -> bytes:
    try:
        return decompress(kind, data)
    except UnknownImage:
        raise
    except (lzma.LZMAError, zlib.error, EOFError, OSError, ValueError):
        return b""      # not a stream of that kind after all


def payload(image: bytes) -> Payload:
    """The kernel inside `image`, decompressed: an ELF or a raw image. Raises UnknownImage."""
    if image.startswith(ELF):
        return Payload(image, "ELF vmlinux")
    if image[:2] == b"MZ" and image[4:8] == b"zimg":
        return _zboot(image)
    if image[0x38:0x3c] == ARM64_MAGIC:
        return Payload(image, "arm64 Image")
    if image[0x202:0x206] == b"HdrS":
        return _bzimage(image)
    if image[0x10008:0x1000e] == S390_MAGIC:
        return _largest_stream(image, "s390x image")
    if image[:3] == b"\x1f\x8b\x08":
        inner = _try("gzip", image)
        if inner.startswith(ELF) or inner[0x38:0x3c] == ARM64_MAGIC:
            return Payload(inner, "arm64 Image, gzip" if inner[0x38:0x3c] == ARM64_MAGIC else "ELF vmlinux, gzip")
        raise UnknownImage("a gzip file that holds neither an ELF vmlinux nor an arm64 Image")
    raise UnknownImage("payload format not recognised (not ELF, x86 bzImage, arm64 Image, Image.gz, EFI zboot or "
                       "s390x image)")


def _kind_at(data: bytes) -> str | None:
    return next((kind for magic, kind in MAGICS if data.startswith(magic)), None)


def bzimage_stream(image: bytes) -> tuple[bytes, str | None] | None:
    """The compressed kernel of a bzImage and its format, by the setup header (boot protocol
    2.08+: payload_offset/length); None for older images."""
    setup_sects = image[0x1f1] or 4
    version, = struct.unpack_from("<H", image, 0x206)
    if version < 0x208:
        return None
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    stream = image[start:start + length]
    return stream, _kind_at(stream)


def _bzimage(image: bytes) -> Payload:
    found = bzimage_stream(image)
    if found:
        stream, kind = found
        if kind is None:
            raise UnknownImage(f"x86 bzImage whose payload format is not recognised (starts {stream[:6].hex()})")
        out = _try(kind, stream)
        if out.startswith(ELF):
            return Payload(out, f"x86 bzImage, {kind}")
        raise UnknownImage(f"x86 bzImage with a {kind} payload that did not decompress to an ELF vmlinux")
    return _largest_stream(image, "x86 bzImage", want_elf=True)


def _zboot(image: bytes) -> Payload:
    offset, size = struct.unpack_from("<II", image, 8)
    kind = image[0x18:0x38].split(b"\0")[0].decode(errors="replace")
    kind = {"lzma": "lzma", "xzkern": "xz"}.get(kind, kind)
    if kind not in HOST_TOOL and kind not in ("xz", "lzma", "gzip", "bzip2"):
        raise UnknownImage(f"arm64 EFI zboot image with compression {kind!r}, which is not known here")
    inner = _try(kind, image[offset:offset + size])
    if inner[0x38:0x3c] != ARM64_MAGIC:
        raise UnknownImage(f"arm64 EFI zboot image whose {kind} payload is not an arm64 Image")
    return Payload(inner, f"arm64 EFI zboot, {kind}")


def _largest_stream(image: bytes, what: str, want_elf: bool = False) -> Payload:
    """No header says where the payload is: try every stream magic, keep the largest output."""
    best, best_kind = b"", ""
    for magic, kind in MAGICS:
        at = image.find(magic)
        while at != -1:
            out = _try(kind, image[at:])
            if len(out) > len(best) and (out.startswith(ELF) if want_elf else len(out) > len(image)):
                best, best_kind = out, kind     # raw: a kernel is larger than its whole compressed image
            at = image.find(magic, at + 1)
    if not best:
        raise UnknownImage(f"{what}: payload format not recognised (no compressed stream in it decompresses to "
                           f"a kernel)")
    return Payload(best, f"{what}, {best_kind}")


def extract(image: bytes) -> bytes | None:
    """The ELF vmlinux inside, or None when the image holds none (raw arm64/s390x payloads)."""
    try:
        found = payload(image)
    except UnknownImage:
        return None
    return found.data if found.is_elf else None


def why_not_pvh(image: Path, config: dict[str, str]) -> str:
    """For the record of an x86 kernel booted through its bzImage under TCG: why not PVH."""
    if config.get("CONFIG_PVH") != "y":
        return "its config lacks CONFIG_PVH" if config else "no config found, so CONFIG_PVH is not known"
    try:
        found = payload(image.read_bytes())
    except (OSError, UnknownImage) as err:
        return f"no ELF vmlinux could be extracted: {err}"
    if not found.is_elf:
        return f"its payload ({found.format}) is not an ELF vmlinux"
    return "its vmlinux has no PVH entry note" if PVH_NOTE not in found.data else "PVH was available but not used"


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
    write_whole(out, vmlinux)
    return out
