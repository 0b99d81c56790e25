"""The QEMU command line (vng's, minus every host share), run keys and preflight, without booting."""
import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kregress.run import boot_inputs, vm, vng
from kregress.kernels.entries import KernelSpec
from kregress.kernels.sources.image import LocalImage
from kregress.run.guest import RunKeys
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.kernels.kernel import Kernel
from kregress.run.boot_inputs import lsm_cmdline, preflight
from kregress.run.errors import BootError
from kregress.run.qemu_command import qemu_command
from kregress.run.vm import VM
from test_qemu_command import machine as guest, slots

DRY_RUN = Path(__file__).parent / "data" / "vng-1.42-dry-run.txt"
GOOD_CONFIG = {"CONFIG_VIRTIO_PCI": "y", "CONFIG_VIRTIO_BLK": "m", "CONFIG_EROFS_FS": "m",
               "CONFIG_VIRTIO_NET": "m", "CONFIG_FW_CFG_SYSFS": "m", "CONFIG_BLK_DEV_INITRD": "y",
               "CONFIG_DEVTMPFS": "y", "CONFIG_LSM": "landlock,lockdown,yama,apparmor"}


def kernel(tmp_path, config=GOOD_CONFIG, cmdline="", image_bytes=None, tcg_cpu_flags="") -> Kernel:
    image = tmp_path / "vmlinuz"
    data = bytearray(image_bytes if image_bytes is not None else b"\0" * 0x300)
    if image_bytes is None:
        data[0x202:0x206] = b"HdrS"
    image.write_bytes(bytes(data))
    return Kernel(spec=KernelSpec(id="k1", origin=LocalImage(image), cmdline=cmdline, tcg_cpu_flags=tcg_cpu_flags), image=image,
                  release="6.1.0",
                  upstream_version="6.1.0", config=dict(config))


DRY_RUN_ARM64 = DRY_RUN.with_name("vng-1.42-dry-run-arm64.txt")


def vng_argv() -> list[str]:
    return shlex.split(DRY_RUN.read_text())


def options(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == name]


def test_bpf_appended_to_builtin_lsm_list_unless_the_entry_chose(tmp_path):
    assert lsm_cmdline(kernel(tmp_path)) == "lsm=landlock,lockdown,yama,apparmor,bpf"
    assert lsm_cmdline(kernel(tmp_path, {**GOOD_CONFIG, "CONFIG_LSM": "yama,bpf"})) == ""
    assert lsm_cmdline(kernel(tmp_path, cmdline="lsm=capability,yama")) == ""


def test_vngs_command_loses_every_host_share_and_keeps_its_machine():
    original = vng_argv()
    assert any("virtio-9p-pci" in arg for arg in original)       # the fixture is what vng really prints
    cmd = qemu_command(original, guest(initramfs=Path("/cache/k.cpio"), kernel_args=("loglevel=5",)), slots())
    text = " ".join(cmd)
    for shared in ("9p", "fsdev", "virtme.guesttools", "virtme.modules", "virtme.busybox", "virtserialport",
                   "virtme_ret"):
        assert shared not in text, shared
    assert options(cmd, "-initrd") == ["/cache/k.cpio"]
    assert options(cmd, "-machine") == options(original, "-machine") == ["q35"]
    assert options(cmd, "-cpu") == options(original, "-cpu")
    assert options(cmd, "-kernel") == options(original, "-kernel")
    root = options(cmd, "-drive")[0]
    assert "readonly=on" in root and root.endswith("format=raw,readonly=on")
    assert options(cmd, "-chardev") == ["file,id=console,path=/proc/self/fd/2,append=on"]   # the console only
    append = options(cmd, "-append")[0].split()
    assert "console=ttyS0" in append and "panic=-1" in append and append[-1] == "loglevel=5"
    assert not [arg for arg in append if arg.startswith(("virtme", "init=", "root=", "loglevel=7"))]
    assert cmd[-6:-4] == ["-device", "virtio-net-pci,netdev=kr0"]       # ours, after vng's


def test_a_random_path_is_not_mistaken_for_a_share():
    cmd = qemu_command(vng_argv(), guest(), slots(qmp_socket=Path("/tmp/kr-qmp-yxn9p6fv/qmp.sock")))
    assert options(cmd, "-qmp") == ["unix:/tmp/kr-qmp-yxn9p6fv/qmp.sock,server=on,wait=off"]


def test_a_host_share_we_do_not_know_is_refused():
    argv = vng_argv() + ["-device", "virtio-9p-future,fsdev=x,mount_tag=y"]
    with pytest.raises(BootError, match="would still share host files.*virtio-9p-future") as err:
        qemu_command(argv, guest(), slots())
    assert not err.value.retryable


def test_vm_command_forwards_loopback_only_and_passes_keys_by_fw_cfg(tmp_path, monkeypatch):
    keys = RunKeys.create(tmp_path / "ssh")
    image = GuestImage(root=tmp_path / "root.erofs", busybox=tmp_path / "busybox", digest="d" * 64,
                       suite="trixie", arch="x86_64", packages={})
    seen = {}
    monkeypatch.setattr(boot_inputs, "vng_qemu_command", lambda args, accel: seen.setdefault("vng", args) and vng_argv())
    monkeypatch.setattr(boot_inputs, "ensure_initramfs", lambda *a: Initramfs(tmp_path / "k.cpio", ("virtio_blk",)))
    monkeypatch.setattr(boot_inputs, "build_agent", lambda arch="x86_64": tmp_path / "agent")
    cmd = VM(kernel(tmp_path, tcg_cpu_flags="-cx16"), "tcg", tmp_path, keys, image).command(port=40000)
    assert options(cmd, "-cpu") == ["qemu64,+rdrand,-cx16"]     # pinned, plus the entry's flags
    assert "random.trust_cpu=on" in options(cmd, "-append")[0]
    assert "--disable-kvm" in seen["vng"] and "--rw" not in seen["vng"]
    assert seen["vng"][seen["vng"].index("--arch") + 1] == "amd64"      # always named: vng's default is the host's
    assert options(cmd, "-machine") == ["q35"]
    assert seen["vng"][seen["vng"].index("--root-disk") + 1] == str(image.root)
    assert options(cmd, "-name") == [f"kr-{tmp_path.name}-k1"]      # ours, not vng's: the dry run stays cached
    netdev = options(cmd, "-netdev")[0]
    assert "hostfwd=tcp:127.0.0.1:40000-:22" in netdev and "restrict=on" in netdev
    assert options(cmd, "-fw_cfg") == [f"name=opt/kregress/host_key,file={keys.directory}/host_ed25519.dropbear",
                                       f"name=opt/kregress/authorized_keys,file={keys.directory}/authorized_keys"]
    assert options(cmd, "-append")[0].endswith("lsm=landlock,lockdown,yama,apparmor,bpf")


MAKE_KEYS = """
import sys
from pathlib import Path
from kregress.run.guest import RunKeys
keys = RunKeys.create(Path(sys.argv[1]))
print(keys.host_public, (keys.directory / "client_ed25519.pub").read_text().split()[1])
"""


def test_run_keys_made_once_when_many_workers_start_together(tmp_path):
    """xdist workers used to race here: the second ssh-keygen found the first one's file.
    Eight processes (not forks of this one, which may have threads) start at once."""
    directory = tmp_path / "ssh"
    procs = [subprocess.Popen([sys.executable, "-c", MAKE_KEYS, str(directory)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    answers = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in answers]
    assert len({out for out, _ in answers}) == 1, answers
    keys = RunKeys(directory.resolve())
    assert (keys.directory / "authorized_keys").read_text().split()[1] == answers[0][0].split()[1]
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(keys.directory / "host_ed25519")],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    assert derived == keys.host_public     # private and public halves belong together
    assert not [p.name for p in keys.directory.iterdir() if p.name.startswith(".host") or p.name.startswith(".client")]


def test_dropbear_host_key_is_the_openssh_keys_secret_in_dropbears_format(tmp_path):
    import struct
    keys = RunKeys.create(tmp_path / "ssh")
    blob = (keys.directory / "host_ed25519.dropbear").read_bytes()
    assert blob[:15] == struct.pack(">I", 11) + b"ssh-ed25519" and blob[15:19] == struct.pack(">I", 64)
    public = base64.b64decode(keys.host_public)[-32:]      # the public key ends the .pub blob
    assert len(blob) == 83 and blob[-32:] == public
    assert oct((keys.directory / "host_ed25519.dropbear").stat().st_mode & 0o777) == "0o600"


def test_preflight_refuses_non_images_and_kernels_lacking_what_the_guest_needs(tmp_path):
    preflight(kernel(tmp_path))     # fine: no 9p needed any more
    with pytest.raises(BootError, match="k1: .* is not an x86 bzImage"):
        preflight(kernel(tmp_path, image_bytes=b"garbage" * 200))
    no_blk = {k: v for k, v in GOOD_CONFIG.items() if k != "CONFIG_VIRTIO_BLK"}
    with pytest.raises(BootError, match=r"lacks CONFIG_VIRTIO_BLK \(virtio block device \(the guest image\)\)"):
        preflight(kernel(tmp_path, no_blk))
    modular_initrd = {**GOOD_CONFIG, "CONFIG_BLK_DEV_INITRD": "m"}
    with pytest.raises(BootError, match="CONFIG_BLK_DEV_INITRD built in"):
        preflight(kernel(tmp_path, modular_initrd))


def test_dry_run_is_cached_by_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="noise\n" + DRY_RUN.read_text(), stderr="")
    monkeypatch.setattr(vng.subprocess, "run", fake_run)
    first = vng.vng_qemu_command(["vng", "--run", "a"])
    assert vng.vng_qemu_command(["vng", "--run", "a"]) == first == vng_argv()
    vng.vng_qemu_command(["vng", "--run", "b"])
    assert [c[1] for c in calls] == ["--dry-run", "--dry-run"] and len(calls) == 2
    (cache,) = [p for p in (tmp_path / "vng-dry-run").iterdir() if json.loads(p.read_text()) == first][:1]
    assert cache.exists()


def test_arm64_kernel_boots_on_max_cpu_with_pci_disk(tmp_path, monkeypatch):
    """vng --arch arm64 gives cortex-a57 (no 16K granule) and a virtio-mmio disk: the guest
    gets QEMU's max CPU and the disk on PCI, like the network; no PVH entry."""
    image_file = tmp_path / "Image"
    data = bytearray(0x300)
    data[0x38:0x3c] = b"ARM\x64"
    image_file.write_bytes(bytes(data))
    arm = Kernel(spec=KernelSpec(id="a1", origin=LocalImage(image_file), arch="arm64"), image=image_file, release="6.12.107",
                 upstream_version="6.12.107", config=dict(GOOD_CONFIG, CONFIG_PAGE_SHIFT="14"))
    preflight(arm)
    keys = RunKeys.create(tmp_path / "ssh")
    image = GuestImage(root=tmp_path / "root.erofs", busybox=tmp_path / "busybox", digest="d" * 64,
                       suite="trixie", arch="arm64", packages={})
    seen = {}
    monkeypatch.setattr(boot_inputs, "vng_qemu_command",
                        lambda args, accel: seen.setdefault("vng", args) and shlex.split(DRY_RUN_ARM64.read_text()))
    monkeypatch.setattr(boot_inputs, "ensure_initramfs", lambda *a: Initramfs(tmp_path / "k.cpio", ("virtio_blk",)))
    monkeypatch.setattr(boot_inputs, "build_agent", lambda arch="x86_64": seen.setdefault("agent", arch) and tmp_path / "a")
    cmd = VM(arm, "tcg", tmp_path, keys, image).command(port=40000)
    assert cmd[0].endswith("qemu-system-aarch64") and seen["agent"] == "arm64"
    assert seen["vng"][seen["vng"].index("--arch") + 1] == "arm64"
    assert options(cmd, "-cpu") == ["max,pauth-impdef=on"]
    assert "virtio-blk-pci,drive=virtme-root" in options(cmd, "-device")
    assert not [d for d in options(cmd, "-device") if d.startswith(("virtio-blk-device", "virtio-9p", "virtio-serial"))]
    assert options(cmd, "-kernel")[0].split("/")[-1].startswith("vmlinuz-")      # vng's, no PVH vmlinux
    x86_image = tmp_path / "bz"
    x86 = bytearray(0x300)
    x86[0x202:0x206] = b"HdrS"
    x86_image.write_bytes(bytes(x86))
    with pytest.raises(BootError, match="not an arm64 Image"):
        preflight(Kernel(spec=KernelSpec(id="a2", origin=LocalImage(x86_image), arch="arm64"), image=x86_image,
                            release="x", upstream_version="6.12.0", config=dict(GOOD_CONFIG)))
