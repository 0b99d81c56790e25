"""Synthetic kernel images in the kernel's own layouts, for the unit tests."""
import bz2
import gzip
import lzma
import struct
import subprocess


def tool(*cmd: str, data: bytes) -> bytes:
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


# how the kernel's build compresses a payload (scripts/Makefile.lib: the size is appended to all but gzip)
def with_size(packed: bytes, raw: bytes) -> bytes:
    return packed + struct.pack("<I", len(raw))


COMPRESS = {
    "gzip": lambda raw: gzip.compress(raw),
    "bzip2": lambda raw: with_size(bz2.compress(raw), raw),
    "lzma": lambda raw: with_size(lzma.compress(raw, format=lzma.FORMAT_ALONE), raw),
    "xz": lambda raw: with_size(lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32), raw),
    "lzo": lambda raw: with_size(tool("lzop", "-9", "-c", data=raw), raw),
    "lz4": lambda raw: with_size(tool("lz4", "-l", "-9", "-c", data=raw), raw),
    "zstd": lambda raw: with_size(tool("zstd", "-19", "-c", "-q", data=raw), raw),
}


def bzimage(packed: bytes, setup_sects: int = 3, protocol: int = 0x20f) -> bytes:
    """Real mode setup (setup_sects + 1 sectors), then the decompressor and the payload, as the
    setup header's payload_offset/payload_length (boot protocol 2.08+) describe it."""
    decompressor = b"\x90" * 700 + b"\xfd7zXZ\x00 a decoy in the decompressor's code"
    image = bytearray(b"MZ" + b"\0" * ((setup_sects + 1) * 512 - 2))
    image[0x1f1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, protocol)
    struct.pack_into("<II", image, 0x248, len(decompressor), len(packed))
    return bytes(image) + decompressor + packed + b"\x12\x34\x56\x78" * 8
