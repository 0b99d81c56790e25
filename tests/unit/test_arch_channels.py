"""What only ppc64le and s390x need: their keys on a disk (no fw_cfg on pseries and s390-ccw),
s390x's virtio over channel I/O, and an initramfs that loads what each transport needs."""
import io
import tarfile
from pathlib import Path

import pytest

from kregress.provision.initramfs import BOOT_NEEDS, boot_needs, missing_config, modules_to_load
from kregress.run.guest import KEYS_DISK_BYTES, RunKeys, keys_disk
from kregress.run.qemu_command import (DROPPED_DEVICES, KEYS_DISK, RunSlots, keys_device, net_device,
                                       run_options)


def slots():
    return RunSlots(name="kr-x", qmp_socket=Path("/q/qmp.sock"), keys_dir=Path("/r1/ssh"), host_port=2222)


def test_fw_cfg_machines_keep_their_command():
    assert run_options(slots(), "x86_64") == run_options(slots())
    assert "-fw_cfg" in run_options(slots(), "arm64") and "-drive" not in run_options(slots(), "arm64")


@pytest.mark.parametrize("arch,transport", [("ppc64le", "pci"), ("s390x", "ccw")])
def test_machines_without_fw_cfg_get_a_read_only_keys_disk(arch, transport):
    out = run_options(slots(), arch)
    assert "-fw_cfg" not in out
    assert out[out.index("-drive") + 1] == f"file=/r1/ssh/{KEYS_DISK},if=none,format=raw,readonly=on,id=krkeys"
    assert out[out.index("-drive") + 3] == keys_device(arch) == f"virtio-blk-{transport},drive=krkeys,serial=krkeys"
    assert net_device(arch) == f"virtio-net-{transport},netdev=kr0" and f"virtio-net-{transport},netdev=kr0" in out


def test_vngs_ccw_shares_are_dropped():
    assert {"virtio-9p-ccw", "vhost-user-fs-ccw", "virtio-serial-ccw"} <= DROPPED_DEVICES


def test_the_keys_disk_is_a_fixed_size_tar_of_the_two_keys(tmp_path):
    keys = RunKeys.create(tmp_path / "ssh")
    data = (keys.directory / KEYS_DISK).read_bytes()
    assert len(data) == KEYS_DISK_BYTES
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["host_key", "authorized_keys"]
        assert tar.extractfile("host_key").read() == (keys.directory / "host_ed25519.dropbear").read_bytes()
        assert tar.extractfile("authorized_keys").read() == (keys.directory / "authorized_keys").read_bytes()
    assert keys_disk({"a": b"1"}) == keys_disk({"a": b"1"})       # the same bytes for the same keys


def test_each_transport_needs_its_own_modules():
    config = {symbol: "m" for symbol in BOOT_NEEDS} | {"CONFIG_BLK_DEV_INITRD": "y", "CONFIG_DEVTMPFS": "y"}
    assert modules_to_load(config) == ["virtio_pci", "virtio_blk", "erofs", "virtio_net", "qemu_fw_cfg"]
    assert modules_to_load(config, "ppc64le") == ["virtio_pci", "virtio_blk", "erofs", "virtio_net"]
    s390 = {**config, "CONFIG_S390_GUEST": "y"}
    del s390["CONFIG_FW_CFG_SYSFS"], s390["CONFIG_VIRTIO_PCI"]
    assert modules_to_load(s390, "s390x") == ["virtio_blk", "erofs", "virtio_net"]
    assert missing_config(s390, "s390x") == []
    assert "CONFIG_S390_GUEST" in boot_needs("s390x") and "CONFIG_VIRTIO_PCI" not in boot_needs("s390x")


def test_the_pinned_cpu_is_added_where_vng_names_none():
    from kregress.run.qemu_command import GuestMachine, guest_command, qemu_option
    vng = ["qemu-system-s390x", "-m", "1G", "-machine", "s390-ccw-virtio", "-kernel", "/k", "-append", "console=x"]
    machine = GuestMachine(arch="s390x", accel="tcg", kernel_image=Path("/k"), root_disk=Path("/r"),
                           busybox=Path("/b"), initramfs=Path("/i"), kernel_args=(), cpu="qemu")
    assert qemu_option(guest_command(vng, machine), "-cpu") == "qemu"
    with_cpu = vng + ["-cpu", "max"]
    assert guest_command(with_cpu, machine).count("-cpu") == 1
