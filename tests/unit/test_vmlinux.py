"""Finding the kernel inside every image format (synthetic images in the kernel's layouts),
and when PVH is used at all."""
import gzip
import lzma
import struct

import pytest
from kernelimages import COMPRESS, bzimage

from kregress.kernels.vmlinux import UnknownImage, extract, payload, pvh_vmlinux

SIGNATURE = b"ignoring program buffer with optlen"
ELF = b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 57 + b"Xen\x00" + b"kernel text" * 100 + SIGNATURE
# an arm64 Image: code, the magic at 0x38, then text and data (here: the signature)
ARM64_IMAGE = b"\x4d\x5a\x00\x91" + b"\0" * 0x34 + b"ARM\x64" + b"\0" * 200 + b"arm64 text" * 500 + SIGNATURE


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_x86_bzimage_each_payload_format(kind):
    found = payload(bzimage(COMPRESS[kind](ELF)))
    assert (found.data, found.format) == (ELF, f"x86 bzImage, {kind}")
    assert extract(bzimage(COMPRESS[kind](ELF))) == ELF


def test_old_bzimage_without_payload_fields_is_searched_past_decoys():
    decoy = b"\xfd7zXZ\x00not really xz"
    assert extract(bzimage(decoy + lzma.compress(ELF, format=lzma.FORMAT_XZ), protocol=0x206)) == ELF
    assert extract(bzimage(gzip.compress(ELF), protocol=0x206)) == ELF


def test_bzimage_payload_that_is_not_elf_says_so():
    with pytest.raises(UnknownImage, match="gzip payload that did not decompress to an ELF"):
        payload(bzimage(gzip.compress(b"not an elf" * 10)))
    assert extract(bzimage(gzip.compress(b"not an elf" * 10))) is None


def test_bzimage_payload_in_an_unknown_format():
    with pytest.raises(UnknownImage, match="payload format is not recognised"):
        payload(bzimage(b"\x01\x02\x03\x04 something new" * 10))


def test_arm64_image_raw_and_gzip():
    assert payload(ARM64_IMAGE).format == "arm64 Image"
    assert payload(ARM64_IMAGE).data == ARM64_IMAGE
    inner = payload(gzip.compress(ARM64_IMAGE))
    assert (inner.format, inner.data) == ("arm64 Image, gzip", ARM64_IMAGE)
    assert extract(ARM64_IMAGE) is None         # nothing for PVH: not an ELF


def zboot(kind: str, raw: bytes) -> bytes:
    """drivers/firmware/efi/libstub/zboot-header.S: MZ, "zimg", payload offset and size,
    two reserved words, the compression's name; a PE image around it."""
    packed = COMPRESS[kind](raw)
    header = bytearray(0x200)
    header[0:4] = b"MZ\0\0"
    header[4:8] = b"zimg"
    struct.pack_into("<II", header, 8, 0x200 + 0x100, len(packed) - (0 if kind == "gzip" else 4))
    header[0x18:0x18 + len(kind)] = kind.encode()
    return bytes(header) + b"\xcc" * 0x100 + packed + b"PE stub data" * 4


@pytest.mark.parametrize("kind", ["gzip", "zstd", "lzma", "xz", "lz4", "lzo", "bzip2"])
def test_arm64_efi_zboot(kind):
    found = payload(zboot(kind, ARM64_IMAGE))
    assert (found.format, found.data) == (f"arm64 EFI zboot, {kind}", ARM64_IMAGE)


def test_s390x_image():
    """A decompressor at 0x10000 ("S390EP" at 0x10008, where QEMU looks) and a compressed raw
    vmlinux.bin inside: the largest stream that decompresses is the kernel."""
    raw = b"s390 kernel text " * 20000 + SIGNATURE
    head = bytearray(0x11000)
    head[0x10008:0x1000e] = b"S390EP"
    small = gzip.compress(b"a small table in the decompressor")
    image = bytes(head) + small + b"\0" * 64 + COMPRESS["xz"](raw) + b"\0" * 512
    found = payload(image)
    assert (found.format, found.data) == ("s390x image, xz", raw)


def test_bare_elf_is_its_own_payload():
    assert payload(ELF).format == "ELF vmlinux"
    assert extract(ELF) == ELF


def test_unknown_files_say_why():
    with pytest.raises(UnknownImage, match="payload format not recognised"):
        payload(b"#!/bin/sh\necho not a kernel\n" * 100)
    with pytest.raises(UnknownImage, match="gzip file that holds neither"):
        payload(gzip.compress(b"just text" * 100))


def test_pvh_only_for_kernels_built_with_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(COMPRESS["xz"](ELF)))
    assert pvh_vmlinux(image, {"CONFIG_PVH": "n"}) is None
    assert pvh_vmlinux(image, {}) is None            # a local build without its .config
    cached = pvh_vmlinux(image, {"CONFIG_PVH": "y"})
    assert cached.read_bytes() == ELF
    assert pvh_vmlinux(image, {"CONFIG_PVH": "y"}) == cached


def test_pvh_for_an_lz4_kernel(tmp_path, monkeypatch):
    """bookworm's cloud kernel has an lz4 payload (CONFIG_KERNEL_LZ4)."""
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(COMPRESS["lz4"](ELF)))
    assert pvh_vmlinux(image, {"CONFIG_PVH": "y"}).read_bytes() == ELF


def test_why_an_x86_kernel_is_not_entered_through_pvh(tmp_path):
    from kregress.kernels.vmlinux import why_not_pvh
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(COMPRESS["lz4"](ELF.replace(b"Xen\x00", b"abc\x00"))))
    assert why_not_pvh(image, {}) == "no config found, so CONFIG_PVH is not known"
    assert why_not_pvh(image, {"CONFIG_X": "y"}) == "its config lacks CONFIG_PVH"
    assert why_not_pvh(image, {"CONFIG_PVH": "y"}) == "its vmlinux has no PVH entry note"
    image.write_bytes(bzimage(b"\x01\x02\x03 unknown"))
    assert why_not_pvh(image, {"CONFIG_PVH": "y"}).startswith("no ELF vmlinux could be extracted: x86 bzImage whose")


def test_lz4_legacy_stream_is_cut_before_the_kernels_size_trailer():
    """Debian 13's lz4 (1.10) writes nothing for a legacy stream followed by bytes."""
    from kregress.kernels.vmlinux import lz4_legacy_blocks
    stream = COMPRESS["lz4"](ELF)[:-4]          # kernelimages appends the size, as the kernel does
    assert lz4_legacy_blocks(stream + len(ELF).to_bytes(4, "little")) == stream
    assert lz4_legacy_blocks(stream + b"\0\0") == stream
