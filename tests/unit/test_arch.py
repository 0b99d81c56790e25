"""The architecture records (kregress/arch.py) and the places that read them: what each
architecture's guest is made and run with, pinned, so a change to one is a visible change."""
import pytest

from kregress import arch
from kregress.provision.programs import toolchain
from kregress.provision.image import ImageSpec, mmdebstrap_command
from kregress.run.host_check import package_table


def test_each_record_is_pinned():
    x86, arm = arch.ARCHES["x86_64"], arch.ARCHES["arm64"]
    assert (x86.uname, x86.debian, x86.qemu_system, x86.machine, x86.tcg_cpu, x86.pvh, x86.kcidb) == \
        ("x86_64", "amd64", "qemu-system-x86_64", "q35", "qemu64,+rdrand", True, "x86_64")
    assert (arm.uname, arm.debian, arm.qemu_system, arm.machine, arm.tcg_cpu, arm.pvh, arm.kcidb) == \
        ("aarch64", "arm64", "qemu-system-aarch64", None, "max,pauth-impdef=on", False, "arm64")
    assert (x86.image.offset, x86.image.magic, arm.image.offset, arm.image.magic) == (0x202, b"HdrS", 0x38, b"ARM\x64")
    ppc, s390 = arch.ARCHES["ppc64le"], arch.ARCHES["s390x"]
    assert (ppc.uname, ppc.debian, ppc.qemu_system, ppc.qemu_package, ppc.machine, ppc.tcg_cpu, ppc.kcidb) == \
        ("ppc64le", "ppc64el", "qemu-system-ppc64", "qemu-system-ppc", "pseries", "power9", "powerpc")
    assert (s390.uname, s390.debian, s390.qemu_system, s390.qemu_package, s390.machine, s390.tcg_cpu, s390.kcidb) == \
        ("s390x", "s390x", "qemu-system-s390x", "qemu-system-misc", "s390-ccw-virtio", "qemu", "s390")
    assert {n: a.byte_order for n, a in arch.ARCHES.items()} == \
        {"x86_64": "little", "arm64": "little", "ppc64le": "little", "s390x": "big"}
    # the machines without fw_cfg, and the one whose virtio is on channel I/O
    assert [n for n, a in arch.ARCHES.items() if not a.fw_cfg] == ["ppc64le", "s390x"]
    assert [n for n, a in arch.ARCHES.items() if a.virtio == "ccw"] == ["s390x"]
    assert (ppc.image.offset, ppc.image.magic, s390.image.offset, s390.image.magic) == \
        (0, b"\x7fELF\x02\x01", 0x10008, b"S390EP")


def test_names_and_lookups():
    assert arch.of_machine("aarch64") == "arm64" and arch.of_machine("x86_64") == "x86_64"
    assert arch.of_machine("ppc64le") == "ppc64le" and arch.of_machine("s390x") == "s390x"
    assert arch.of_machine("riscv64") == "riscv64"          # unknown: given back, never guessed
    with pytest.raises(arch.UnknownArch,
                       match="'riscv64' is not one kregress knows; write one of x86_64, arm64, ppc64le, s390x"):
        arch.arch("riscv64")


@pytest.mark.parametrize("name", sorted(arch.ARCHES))
def test_every_reader_takes_the_record(name, tmp_path):
    record = arch.ARCHES[name]
    tools = toolchain(name)
    assert (tools.cc, tools.bpf_arch, tools.multiarch) == (record.cc, record.bpf_target, record.multiarch)
    assert f"-D__TARGET_ARCH_{record.bpf_target}" in tools.bpf_flags
    command = mmdebstrap_command(ImageSpec(suite="trixie", packages=["busybox"], arch=name, source="x"), tmp_path)
    assert f"--architectures={record.debian}" in command
    assert package_table("debian")[name] == [record.qemu_package]
