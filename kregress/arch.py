"""One record per architecture a guest kernel can have: every decision that depends on the
architecture reads it here (kernels.toml's `arch`, apt and mmdebstrap, QEMU, the build root's
compilers, the boot image's check, KCIDB). Adding an architecture is adding a record, and
whatever only that architecture needs."""
from __future__ import annotations

import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageMagic:
    """Bytes a boot image of this architecture has at an offset: a garbage image makes the
    firmware spin silently until the boot timeout; the magic tells in microseconds."""
    offset: int
    magic: bytes
    what: str                   # the image's name, for the error
    gzip_ok: bool = False       # QEMU unpacks a gzipped image itself (arm64's Image.gz)
    hint: str = ""              # where such an image is, for the error
    entry: str = "image"        # how a boot record names the way the kernel was entered


@dataclass(frozen=True)
class Architecture:
    name: str                   # the kernel's name for it, as kernels.toml's `arch` and uname -m spell it here
    uname: str                  # what uname -m (and platform.machine()) says on it
    debian: str                 # Debian's name: apt, mmdebstrap --architectures, vng --arch
    qemu_system: str            # QEMU's system emulator
    qemu_package: str           # the Debian package that has it
    machine: str | None         # -machine when vng's default does not suit (x86: q35, for PCIe)
    tcg_cpu: str                # the CPU model under TCG: pinned, a saved guest only fits the model it was saved on
    pvh: bool                   # under TCG, enter the uncompressed vmlinux (x86's PVH entry): no emulated decompression
    image: ImageMagic
    cc: str                     # the build root's C compiler for guest programs (cross where needed)
    multiarch: str              # Debian's multiarch triplet: asm/ headers and static libraries
    bpf_target: str             # __TARGET_ARCH_<this> for the BPF side (libbpf's bpf_tracing.h)
    byte_order: str             # "little" or "big": how a map's integers are written
    kcidb: str                  # KCIDB's build architecture
    qemu_user: str              # binfmt_misc's entry for its qemu-user (a foreign image's maintainer scripts)
    virtio: str = "pci"         # the transport of its virtio devices: "pci", or "ccw" (s390x's channel I/O)
    fw_cfg: bool = True         # the machine has QEMU's fw_cfg (pseries and s390-ccw do not): the keys' channel


X86_64 = Architecture(
    name="x86_64", uname="x86_64", debian="amd64", qemu_system="qemu-system-x86_64", qemu_package="qemu-system-x86",
    machine="q35",
    # QEMU's own default model plus rdrand: with random.trust_cpu=on it seeds the kernel's
    # random pool at once (dropbear waited 0.6-2.3 s of every boot for it)
    tcg_cpu="qemu64,+rdrand", pvh=True,
    image=ImageMagic(0x202, b"HdrS", "x86 bzImage (no 'HdrS' boot header at 0x202)",
                     hint="Point 'image' in kernels.toml at arch/x86/boot/bzImage or a vmlinuz, or set 'arch'",
                     entry="bzImage"),
    cc="x86_64-linux-gnu-gcc", multiarch="x86_64-linux-gnu", bpf_target="x86", byte_order="little", kcidb="x86_64",
    qemu_user="qemu-x86_64")

ARM64 = Architecture(
    name="arm64", uname="aarch64", debian="arm64", qemu_system="qemu-system-aarch64", qemu_package="qemu-system-arm",
    machine=None,
    # max: every page size (cortex-a57, vng's choice, has no 16K granule) and RNDR for
    # random.trust_cpu; pauth-impdef: QEMU's cheap pointer authentication, much faster under TCG
    tcg_cpu="max,pauth-impdef=on", pvh=False,
    image=ImageMagic(0x38, b"ARM\x64", "arm64 Image (no 'ARM\\x64' magic at 0x38, not gzip)", gzip_ok=True,
                     hint="Check 'arch' and 'image' in kernels.toml", entry="Image"),
    cc="aarch64-linux-gnu-gcc", multiarch="aarch64-linux-gnu", bpf_target="arm64", byte_order="little", kcidb="arm64",
    qemu_user="qemu-aarch64")

# ppc64el: Debian ships an uncompressed ELF vmlinux (SLOF boots no zImage); pseries has PCI
# but no fw_cfg. POWER9 pinned: pseries-7.2's own default, a saved guest only fits its model.
PPC64LE = Architecture(
    name="ppc64le", uname="ppc64le", debian="ppc64el", qemu_system="qemu-system-ppc64", qemu_package="qemu-system-ppc",
    machine="pseries", tcg_cpu="power9", pvh=False,
    image=ImageMagic(0, b"\x7fELF\x02\x01", "ppc64le vmlinux (not a 64-bit little-endian ELF)",
                     hint="Point 'image' in kernels.toml at vmlinux (SLOF boots no zImage), or check 'arch'",
                     entry="vmlinux"),
    cc="powerpc64le-linux-gnu-gcc", multiarch="powerpc64le-linux-gnu", bpf_target="powerpc", byte_order="little",
    kcidb="powerpc", qemu_user="qemu-ppc64le", fw_cfg=False)

# s390x: big endian, virtio over channel I/O (virtio-*-ccw), no fw_cfg. Its image begins with
# the IPL PSW; its entry (0x10000) has the "S390EP" marker at 0x10008.
S390X = Architecture(
    name="s390x", uname="s390x", debian="s390x", qemu_system="qemu-system-s390x", qemu_package="qemu-system-misc",
    machine="s390-ccw-virtio", tcg_cpu="qemu", pvh=False,
    image=ImageMagic(0x10008, b"S390EP", "s390x image (no 'S390EP' entry marker at 0x10008)",
                     hint="Point 'image' in kernels.toml at arch/s390/boot/bzImage or a vmlinuz, or check 'arch'",
                     entry="image"),
    cc="s390x-linux-gnu-gcc", multiarch="s390x-linux-gnu", bpf_target="s390", byte_order="big", kcidb="s390",
    qemu_user="qemu-s390x", virtio="ccw", fw_cfg=False)

ARCHES: dict[str, Architecture] = {a.name: a for a in (X86_64, ARM64, PPC64LE, S390X)}
_BY_UNAME = {a.uname: a for a in ARCHES.values()}


class UnknownArch(ValueError):
    pass


def arch(name: str) -> Architecture:
    """The record for kernels.toml's `arch` (the kernel's own name for it)."""
    try:
        return ARCHES[name]
    except KeyError:
        raise UnknownArch(f"architecture {name!r} is not one kregress knows; write one of {', '.join(ARCHES)}") from None


def of_machine(machine: str) -> str:
    """Our name for a uname -m (aarch64 -> arm64); an unknown one is given back as it is."""
    known = _BY_UNAME.get(machine) or ARCHES.get(machine)
    return known.name if known else machine


HOST_ARCH = of_machine(platform.machine())
