"""The per-kernel initramfs: module dependencies, aliases, load order, cpio, caching."""
import lzma
import os
from pathlib import Path

import pytest

from kregress.provision import initramfs
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import (CpioReader, CpioWriter, InitramfsError, ensure_initramfs, load_order,
                                missing_config, module_depends, module_files, modules_to_load)


def fake_module(directory: Path, name: str, depends: str = "", softdep: str = "", alias: str = "",
                xz: bool = False) -> Path:
    """Just enough of a .ko: the .modinfo strings busybox insmod never reads but we do."""
    info = b"\0".join(f"{key}={value}".encode() for key, value in
                      [("license", "GPL"), ("depends", depends), ("softdep", softdep), ("alias", alias),
                       ("name", name)] if value or key == "depends")
    data = b"\x7fELF" + b"\0" * 32 + b"\0" + info + b"\0"
    path = directory / f"{name.replace('_', '-') if name == 'net_failover' else name}.ko"
    directory.mkdir(parents=True, exist_ok=True)
    if xz:
        path = path.with_name(path.name + ".xz")
        data = lzma.compress(data)
    path.write_bytes(data)
    return path


@pytest.fixture
def modules(tmp_path):
    root = tmp_path / "lib/modules/6.12.0"
    fake_module(root / "kernel/drivers/block", "virtio_blk", xz=True)
    fake_module(root / "kernel/drivers/net", "virtio_net", depends="net_failover", xz=True)
    fake_module(root / "kernel/drivers/net", "net_failover", depends="failover")
    fake_module(root / "kernel/net/core", "failover")
    fake_module(root / "kernel/fs/erofs", "erofs", depends="libcrc32c")
    fake_module(root / "kernel/lib", "libcrc32c", softdep="pre: crc32c")
    fake_module(root / "kernel/arch/x86/crypto", "crc32c-intel", alias="crypto-crc32c", xz=True)
    fake_module(root / "kernel/crypto", "crc32c_generic", alias="crypto-crc32c")
    return root


def test_dependencies_come_first_softdeps_included_generic_crypto_preferred(modules):
    files = module_files(modules)
    assert "net_failover" in files and "crc32c_intel" in files        # dashes read as underscores
    order = [name for name, _ in load_order(["virtio_blk", "erofs", "virtio_net"], files)]
    assert order == ["virtio_blk", "crc32c_generic", "libcrc32c", "erofs", "failover", "net_failover",
                     "virtio_net"]


def test_a_soft_dependency_built_into_the_kernel_is_not_loaded(modules):
    """Debian's cloud kernel builds crc32c_generic in: crc32c_intel (SSE4.2 only) must not be
    picked in its place."""
    (modules / "kernel/crypto/crc32c_generic.ko").unlink()
    (modules / "modules.builtin.modinfo").write_bytes(
        b"crc32c_generic.license=GPL\0crc32c_generic.alias=crypto-crc32c\0crc32c_generic.alias=crc32c\0")
    builtin = initramfs.builtin_names(modules)
    order = [name for name, _ in load_order(["erofs"], module_files(modules), builtin)]
    assert order == ["libcrc32c", "erofs"]


def test_modinfo_fields_are_read_from_compressed_modules(modules):
    ko = initramfs.read_module(module_files(modules)["virtio_net"])
    assert module_depends(ko) == ["net_failover"]
    assert module_depends(initramfs.read_module(module_files(modules)["libcrc32c"])) == ["crc32c"]


def test_a_missing_module_names_who_needed_it(modules):
    os.unlink(next(modules.rglob("failover.ko")))
    with pytest.raises(InitramfsError, match="module failover .needed by net_failover. is not in the kernel"):
        load_order(["virtio_net"], module_files(modules))


def test_only_modular_needs_are_loaded_and_missing_config_is_named():
    config = {"CONFIG_VIRTIO_PCI": "y", "CONFIG_VIRTIO_BLK": "m", "CONFIG_EROFS_FS": "m", "CONFIG_VIRTIO_NET": "y",
              "CONFIG_FW_CFG_SYSFS": "m", "CONFIG_BLK_DEV_INITRD": "y", "CONFIG_DEVTMPFS": "y"}
    assert modules_to_load(config) == ["virtio_blk", "erofs", "qemu_fw_cfg"]
    assert missing_config(config) == []
    del config["CONFIG_EROFS_FS"]
    assert missing_config(config) == ["CONFIG_EROFS_FS (erofs filesystem (the guest image))"]


def test_cpio_round_trip():
    cpio = CpioWriter()
    cpio.directory("bin")
    cpio.file("bin/busybox", b"x" * 5, 0o755)
    cpio.file("init", b"#!/bin/busybox sh\n", 0o755)
    entries = list(CpioReader(cpio.finish()).entries())
    assert [(name, oct(mode)) for name, mode, _ in entries] == [
        ("bin", "0o40755"), ("bin/busybox", "0o100755"), ("init", "0o100755")]
    assert entries[1][2] == b"xxxxx"


def test_built_and_cached_by_content(modules, tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF busybox")
    agent = tmp_path / "agent"
    agent.write_bytes(b"\x7fELF agent")
    image = GuestImage(root=tmp_path / "root.erofs", busybox=busybox, digest="0" * 64, suite="trixie",
                       arch="x86_64", packages={})
    config = {"CONFIG_VIRTIO_BLK": "m", "CONFIG_EROFS_FS": "m", "CONFIG_VIRTIO_NET": "m", "CONFIG_VIRTIO_PCI": "y",
              "CONFIG_FW_CFG_SYSFS": "y", "CONFIG_BLK_DEV_INITRD": "y", "CONFIG_DEVTMPFS": "y"}
    first = ensure_initramfs(modules, config, image, "6.12.0", agent)
    assert first.modules[-1] == "virtio_net" and "qemu_fw_cfg" not in first.modules
    reader = CpioReader(first.path.read_bytes())
    names = {name for name, _, _ in reader.entries()}
    assert {"init", "bin/busybox", "kregress/agent", "kregress/guest_init.sh", "kregress/start_sshd.sh",
            "lib/modules/erofs.ko", "lib/modules/crc32c_generic.ko"} <= names
    assert reader.file("lib/modules/virtio_blk.ko").startswith(b"\x7fELF")      # decompressed for insmod
    mtime = first.path.stat().st_mtime_ns
    assert ensure_initramfs(modules, config, image, "6.12.0", agent).path.stat().st_mtime_ns == mtime
    agent.write_bytes(b"\x7fELF another agent")
    second = ensure_initramfs(modules, config, image, "6.12.0", agent)
    assert second.path != first.path
    busybox.write_bytes(b"\x7fELF another busybox")
    assert ensure_initramfs(modules, config, image, "6.12.0", agent).path not in (first.path, second.path)


def test_no_modules_directory_is_a_clear_error(tmp_path):
    image = GuestImage(root=tmp_path / "r", busybox=tmp_path / "b", digest="", suite="", arch="x86_64", packages={})
    with pytest.raises(InitramfsError, match="needs the modules virtio_blk.*give 'modules' in kernels.toml"):
        ensure_initramfs(None, {"CONFIG_VIRTIO_BLK": "m"}, image, "6.1.0", tmp_path / "agent")
