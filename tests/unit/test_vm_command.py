"""The virtme-ng command line and the guest's SSH set-up, without booting."""
from pathlib import Path

import pytest

from kregress.config import KernelSpec
from kregress.guest import RunKeys
from kregress.kernels import Kernel
from kregress.vm import VM, BootError, lsm_cmdline, preflight

GOOD_CONFIG = {"CONFIG_9P_FS": "m", "CONFIG_NET_9P_VIRTIO": "m", "CONFIG_VIRTIO_PCI": "y",
               "CONFIG_VIRTIO_NET": "m", "CONFIG_LSM": "landlock,lockdown,yama,apparmor"}


def kernel(tmp_path, config=GOOD_CONFIG, cmdline="", image_bytes=None) -> Kernel:
    image = tmp_path / "vmlinuz"
    data = bytearray(image_bytes if image_bytes is not None else b"\0" * 0x300)
    if image_bytes is None:
        data[0x202:0x206] = b"HdrS"
    image.write_bytes(bytes(data))
    return Kernel(spec=KernelSpec(id="k1", image=image, cmdline=cmdline), image=image, release="6.1.0",
                  upstream_version="6.1.0", config=dict(config))


def test_bpf_appended_to_builtin_lsm_list_unless_the_entry_chose(tmp_path):
    assert lsm_cmdline(kernel(tmp_path)) == "lsm=landlock,lockdown,yama,apparmor,bpf"
    assert lsm_cmdline(kernel(tmp_path, {**GOOD_CONFIG, "CONFIG_LSM": "yama,bpf"})) == ""
    assert lsm_cmdline(kernel(tmp_path, cmdline="lsm=capability,yama")) == ""


def test_command_is_read_only_loopback_only_and_uses_absolute_paths(tmp_path):
    keys = RunKeys.create(tmp_path / "ssh")
    vm = VM(kernel(tmp_path), "tcg", tmp_path, keys)
    cmd = vm.command(port=40000)
    assert "--rw" not in cmd and "--disable-kvm" in cmd
    netdev = next(a for a in cmd if a.startswith("--qemu-opts="))
    assert "hostfwd=tcp:127.0.0.1:40000-:22" in netdev and "restrict=on" in netdev
    script = cmd[cmd.index("--exec") + 1].split()
    assert all(Path(p).is_absolute() for p in script[1:]), script
    assert cmd[cmd.index("--append") + 1].endswith("lsm=landlock,lockdown,yama,apparmor,bpf")


def test_sshd_config_points_into_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = RunKeys.create(Path("relative") / "ssh")     # a relative --run-dir must still work
    config = (keys.directory / "sshd_config").read_text()
    assert keys.directory.is_absolute()
    assert f"HostKey {keys.directory}/host_ed25519" in config
    assert "PasswordAuthentication no" in config
    assert (keys.directory / "authorized_keys").read_text() == (keys.directory / "client_ed25519.pub").read_text()


def test_preflight_refuses_non_images_and_kernels_without_9p(tmp_path):
    preflight(kernel(tmp_path))     # fine
    with pytest.raises(BootError, match="k1: .* is not an x86 bzImage"):
        preflight(kernel(tmp_path, image_bytes=b"garbage" * 200))
    cloud = {k: v for k, v in GOOD_CONFIG.items() if "9P" not in k}
    with pytest.raises(BootError, match="lacks CONFIG_9P_FS .* use the generic flavor"):
        preflight(kernel(tmp_path, cloud))
