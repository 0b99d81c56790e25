"""Finding the ELF kernel inside a bzImage-like file, and when PVH is used at all."""
import gzip
import lzma

from kregress.vmlinux import extract, pvh_vmlinux

ELF = b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 57 + b"Xen\x00" + b"kernel text" * 100


def bzimage(payload: bytes) -> bytes:
    """Setup code, a payload, trailing data: the layout extract() has to cope with."""
    return b"MZ" + b"\0" * 0x200 + b"HdrS" + b"\x90" * 300 + payload + b"\x12\x34\x56\x78" * 8


def test_xz_and_gzip_payloads_are_found_past_decoys():
    decoy = b"\xfd7zXZ\x00not really xz"
    assert extract(bzimage(decoy + lzma.compress(ELF, format=lzma.FORMAT_XZ))) == ELF
    assert extract(bzimage(gzip.compress(ELF))) == ELF


def test_zstd_payload_through_the_zstd_tool():
    import subprocess
    packed = subprocess.run(["zstd", "-c", "-q"], input=ELF, capture_output=True, check=True).stdout
    assert extract(bzimage(packed)) == ELF


def test_nothing_that_decompresses_to_elf():
    assert extract(bzimage(gzip.compress(b"not an elf" * 10))) is None


def test_pvh_only_for_kernels_built_with_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(lzma.compress(ELF, format=lzma.FORMAT_XZ)))
    assert pvh_vmlinux(image, {"CONFIG_PVH": "n"}) is None
    assert pvh_vmlinux(image, {}) is None            # a local build without its .config
    cached = pvh_vmlinux(image, {"CONFIG_PVH": "y"})
    assert cached.read_bytes() == ELF
    assert pvh_vmlinux(image, {"CONFIG_PVH": "y"}) == cached
