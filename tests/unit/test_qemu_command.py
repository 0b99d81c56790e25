"""The QEMU command builder: the same argv the old four-step code produced for vng 1.42's
committed dry runs (tests/unit/data/qemu-argv-before.json), one test per rewriting rule, and
the snapshot key computed from the guest's description with no VM and no process."""
import builtins
import json
import shlex
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from kregress.kernels.entries import KernelSpec
from kregress.kernels.sources.image import LocalImage
from kregress.kernels.kernel import Kernel
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.run import boot_inputs, vm
from kregress.run import pool as pool_module
from kregress.run.boot_inputs import describe, prepare
from kregress.run.errors import BootError
from kregress.run.hostcpu import HostCPU
from kregress.run.qemu_command import GuestMachine, qemu_command
from kregress.run.snapshot import guest_snapshot_key
from kregress.run.vng import vng_arguments

DATA = Path(__file__).parent / "data"
BEFORE = json.loads((DATA / "qemu-argv-before.json").read_text())
INPUTS = BEFORE["inputs"]
TCG_X86, KVM_X86 = DATA / "vng-1.42-dry-run.txt", DATA / "vng-1.42-dry-run-kvm.txt"
ARM64 = DATA / "vng-1.42-dry-run-arm64.txt"


def dry(path: Path) -> list[str]:
    return shlex.split(path.read_text())


def options(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == name]


def machine(**changes) -> GuestMachine:
    return replace(GuestMachine(
        arch="x86_64", accel="tcg", kernel_image=Path("/k/vmlinuz"), root_disk=Path("/i/root.erofs"),
        busybox=Path("/i/busybox"), initramfs=Path("/c/k1.cpio"), kernel_args=("loglevel=5",), name="kr-r1-k1",
        qmp_socket=Path("/tmp/kr-qmp-x/qmp.sock"), keys_dir=Path("/r1/ssh"), host_port=40000), **changes)


def case_inputs(case: dict, monkeypatch) -> tuple[Kernel, GuestImage]:
    monkeypatch.setattr(boot_inputs, "ensure_initramfs", lambda *a: Initramfs(Path(INPUTS["initramfs"]), ("virtio_blk",)))
    monkeypatch.setattr(boot_inputs, "build_agent", lambda arch="x86_64": Path("/cache/agent"))
    monkeypatch.setattr(boot_inputs, "pvh_vmlinux", lambda *a: Path(INPUTS["pvh"]))
    image_file = Path(INPUTS["kernel_image"])
    kernel = Kernel(spec=KernelSpec(id="k1", origin=LocalImage(image_file), arch=case["arch"], cmdline=case["cmdline"],
                                    tcg_cpu_flags=case["tcg_cpu_flags"]),
                    image=image_file, release="6.12.107", upstream_version="6.12.107", config=dict(INPUTS["config"]))
    image = GuestImage(root=Path(INPUTS["image_root"]), busybox=Path("/cache/images/busybox"),
                       digest=INPUTS["image_digest"], suite="trixie", arch=case["arch"], packages={})
    return kernel, image


def case_machine(case: dict, monkeypatch, incoming=None) -> GuestMachine:
    kernel, image = case_inputs(case, monkeypatch)
    files = prepare(kernel, case["accel"], image, INPUTS["kernel_digest"])
    return describe(kernel, case["accel"], image, files, run_dir=Path(INPUTS["run_dir"]), keys_dir=Path(INPUTS["keys"]),
                    qmp_socket=Path(INPUTS["qmp_dir"]) / "qmp.sock", port=INPUTS["port"], cpus=INPUTS["cpus"],
                    memory=INPUTS["memory"], incoming=incoming)


# -- the same command as before, for every committed dry run

@pytest.mark.parametrize("name", sorted(BEFORE["cases"]))
def test_the_builder_writes_the_command_the_old_code_wrote(name, monkeypatch):
    case = BEFORE["cases"][name]
    vng_argv = dry(DATA / case["dry_run"])
    boot = case_machine(case, monkeypatch)
    assert vng_arguments(boot)[0].endswith("/vng") and vng_arguments(boot)[1:] == case["vng_args"][1:]
    assert qemu_command(vng_argv, boot) == case["boot"]
    restore = case_machine(case, monkeypatch, incoming=Path(INPUTS["state"]))
    assert qemu_command(vng_argv, restore) == case["restore"]
    # the old key (every snapshot saved before is still found), from the state's description
    assert guest_snapshot_key(vng_argv, restore, qemu=INPUTS["qemu_version"], kernel_digest=INPUTS["kernel_digest"],
                              image_digest=INPUTS["image_digest"],
                              host_cpu=HostCPU(*INPUTS["host_cpu"]).identity) == case["snapshot_key"]


def test_the_builder_opens_no_file_runs_nothing_makes_nothing(monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("the builder touched the system")
    vng_argv = dry(TCG_X86)
    for target, name in [(builtins, "open"), (subprocess, "Popen"), (subprocess, "run"), (tempfile, "mkdtemp")]:
        monkeypatch.setattr(target, name, refuse)
    assert qemu_command(vng_argv, machine())[0] == "/usr/bin/qemu-system-x86_64"


# -- one test per rule

def test_host_directory_exports_are_dropped():
    original = dry(TCG_X86)
    assert options(original, "-fsdev") and "virtio-9p-pci,fsdev=virtfs9,mount_tag=virtme.guesttools" in original
    cmd = qemu_command(original, machine())
    assert not options(cmd, "-fsdev") and not options(cmd, "-virtfs")
    assert not [d for d in options(cmd, "-device") if d.startswith("virtio-9p")]


def test_vngs_script_ports_are_dropped():
    original = dry(TCG_X86)
    assert "virtio-serial-pci" in original
    devices = options(qemu_command(original, machine()), "-device")
    assert not [d for d in devices if d.startswith(("virtio-serial", "virtserialport"))]
    assert "i6300esb,id=watchdog0" in devices       # vng's other devices stay


def test_only_the_console_chardev_stays_and_appends_to_its_log():
    cmd = qemu_command(dry(TCG_X86), machine())
    assert options(cmd, "-chardev") == ["file,id=console,path=/proc/self/fd/2,append=on"]
    assert options(cmd, "-serial") == ["chardev:console"]


def test_vngs_initramfs_and_name_give_way_to_ours():
    original = dry(TCG_X86)
    assert options(original, "-initrd") == ["/proc/self/fd/4"] and options(original, "-name") == ["kr-test"]
    cmd = qemu_command(original, machine())
    assert options(cmd, "-initrd") == ["/c/k1.cpio"] and options(cmd, "-name") == ["kr-r1-k1"]


def test_the_arm64_disk_moves_to_pci():
    original = dry(ARM64)
    assert "virtio-blk-device,drive=virtme-root" in options(original, "-device")
    devices = options(qemu_command(original, machine(arch="arm64")), "-device")
    assert "virtio-blk-pci,drive=virtme-root" in devices and "virtio-blk-device,drive=virtme-root" not in devices


def test_one_machine_option_with_the_machine_type_first_and_no_tcg_fallback():
    assert options(dry(KVM_X86), "-machine") == ["accel=kvm:tcg"]
    cmd = qemu_command(dry(KVM_X86), machine(accel="kvm"))
    assert options(cmd, "-machine") == ["q35,accel=kvm"] and "-M" not in cmd
    assert options(qemu_command(dry(TCG_X86), machine()), "-machine") == ["q35"]
    assert options(qemu_command(dry(ARM64), machine(arch="arm64")), "-machine") == ["virt"]
    no_machine = [arg for arg in dry(TCG_X86) if arg not in ("-machine", "q35")]
    assert options(qemu_command(no_machine, machine()), "-machine") == ["q35"]     # x86 always q35


def test_the_kernel_file_is_replaced_only_by_an_entry_kernel():
    vngs = options(dry(TCG_X86), "-kernel")
    assert options(qemu_command(dry(TCG_X86), machine()), "-kernel") == vngs
    assert options(qemu_command(dry(TCG_X86), machine(entry_kernel=Path("/c/vmlinux"))), "-kernel") == ["/c/vmlinux"]


def test_the_cpu_is_replaced_only_when_given():
    assert options(qemu_command(dry(KVM_X86), machine(accel="kvm")), "-cpu") == ["host,topoext=on"]
    assert options(qemu_command(dry(TCG_X86), machine(cpu="qemu64,+rdrand")), "-cpu") == ["qemu64,+rdrand"]


def test_vngs_init_arguments_go_and_ours_follow_its_console_ones():
    (append,) = options(qemu_command(dry(TCG_X86), machine(kernel_args=("loglevel=5", "lsm=bpf"))), "-append")
    assert append == "nr_open=1048576 console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 loglevel=5 lsm=bpf"
    assert "mount" not in append and "virtme" not in append        # cut at init=, vng's init's own


def test_ours_come_last_ssh_on_loopback_keys_by_fw_cfg_and_qmp():
    cmd = qemu_command(dry(TCG_X86), machine())
    assert cmd[cmd.index("-initrd"):] == [
        "-initrd", "/c/k1.cpio", "-append", cmd[cmd.index("-append") + 1], "-name", "kr-r1-k1",
        "-qmp", "unix:/tmp/kr-qmp-x/qmp.sock,server=on,wait=off",
        "-netdev", "user,id=kr0,restrict=on,hostfwd=tcp:127.0.0.1:40000-:22", "-device", "virtio-net-pci,netdev=kr0",
        "-fw_cfg", "name=opt/kregress/host_key,file=/r1/ssh/host_ed25519.dropbear",
        "-fw_cfg", "name=opt/kregress/authorized_keys,file=/r1/ssh/authorized_keys"]


def test_a_state_to_load_comes_last_and_only_when_given():
    assert "-incoming" not in qemu_command(dry(TCG_X86), machine())
    cmd = qemu_command(dry(TCG_X86), machine(incoming=Path("/s/k1-key/state")))
    assert cmd[-2:] == ["-incoming", "exec:cat '/s/k1-key/state'"]


def test_a_host_share_left_in_the_command_is_refused():
    with pytest.raises(BootError, match="would still share host files.*virtio-9p-ccw") as err:
        qemu_command(dry(TCG_X86) + ["-device", "virtio-9p-ccw,fsdev=x,mount_tag=y"], machine())
    assert not err.value.retryable


def test_vng_is_asked_only_what_decides_its_command():
    asked = vng_arguments(machine(cpus=2, memory="736M"))
    assert asked[1:] == ["--verbose", "--force-9p", "--cpus", "2", "--memory", "736M", "--disable-kvm",
                         "--arch", "amd64", "--run", "/k/vmlinuz", "--root-disk", "/i/root.erofs",
                         "--busybox", "/i/busybox", "--exec", "true"]
    assert vng_arguments(machine(host_port=1, name="kr-other", keys_dir=Path("/x"))) == vng_arguments(machine())
    assert "--disable-kvm" not in vng_arguments(machine(accel="kvm"))


def test_the_pvh_entry_is_prepared_only_for_x86_under_tcg(monkeypatch):
    case = {"arch": "x86_64", "cmdline": "", "tcg_cpu_flags": ""}
    kernel, image = case_inputs(case, monkeypatch)
    assert prepare(kernel, "tcg", image, "e" * 64).entry_kernel == Path(INPUTS["pvh"])
    monkeypatch.setattr(boot_inputs, "pvh_vmlinux", lambda *a: pytest.fail("no PVH under KVM"))
    assert prepare(kernel, "kvm", image, "e" * 64).entry_kernel is None
    arm, arm_image = case_inputs({**case, "arch": "arm64"}, monkeypatch)
    monkeypatch.setattr(boot_inputs, "pvh_vmlinux", lambda *a: pytest.fail("no PVH on arm64"))
    assert prepare(arm, "tcg", arm_image, "e" * 64).entry_kernel is None


# -- the snapshot key, from the description

def key(vng_argv=None, guest=None, **parts) -> str:
    given = {"qemu": "QEMU emulator version 7.2.22", "kernel_digest": "e" * 64, "image_digest": "d" * 64,
             "host_cpu": "AuthenticAMD 25 1 1 AMD EPYC|ab", **parts}
    return guest_snapshot_key(vng_argv or dry(TCG_X86), guest or machine(), **given)


def test_the_snapshot_key_changes_with_each_input_the_state_depends_on():
    base = key()
    changed = {
        "qemu": key(qemu="QEMU emulator version 8.2.0"), "kernel": key(kernel_digest="f" * 64),
        "image": key(image_digest="c" * 64), "initramfs": key(guest=machine(initramfs=Path("/c/k1-other.cpio"))),
        "memory": key(vng_argv=[a if a != "1G" else "2G" for a in dry(TCG_X86)]),
        "cpu": key(guest=machine(cpu="qemu64")), "entry": key(guest=machine(entry_kernel=Path("/c/vmlinux"))),
        "kernel args": key(guest=machine(kernel_args=("loglevel=4",))), "arch": key(vng_argv=dry(ARM64)),
        "accel": key(vng_argv=dry(KVM_X86), guest=machine(accel="kvm"))}
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed
    # what changes every run does not count: port, QMP socket, keys, name, a state to load
    assert key(guest=machine(host_port=1, qmp_socket=Path("/tmp/kr-qmp-y/qmp.sock"), keys_dir=Path("/r2/ssh"),
                             name="kr-r2-k1", incoming=Path("/s/state"))) == base
    # the host CPU counts only when the guest runs on it
    assert key(host_cpu="GenuineIntel 6 85 7|cd") == base
    kvm = dry(KVM_X86), machine(accel="kvm")
    assert key(*kvm) != key(*kvm, host_cpu="GenuineIntel 6 85 7|cd")


def test_the_pool_computes_a_key_with_no_vm_and_no_process(tmp_path, monkeypatch):
    case = BEFORE["cases"]["x86_64-tcg"]
    kernel, image = case_inputs(case, monkeypatch)

    def refuse(*a, **kw):
        raise AssertionError("a VM or a process was made for a key")
    monkeypatch.setattr(vm.VM, "__init__", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    asked = []

    def vng_dry_run(args, accel):       # vng's answer to --memory: its -m
        asked.append((args, accel))
        return [args[args.index("--memory") + 1] if arg == "1G" else arg for arg in dry(DATA / case["dry_run"])]
    monkeypatch.setattr(boot_inputs, "vng_qemu_command", vng_dry_run)
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: INPUTS["qemu_version"])
    monkeypatch.setattr(pool_module, "sha256_file", lambda path: INPUTS["kernel_digest"])
    pool = pool_module.KernelPool.__new__(pool_module.KernelPool)
    pool.kernels, pool.fetch_errors, pool.images = {"k1": kernel}, {}, {"x86_64": image}
    pool.run_dir, pool.options = Path(INPUTS["run_dir"]), pool_module.SessionOptions()
    monkeypatch.setattr(pool, "accel_for", lambda k: pool_module.AccelChoice("tcg", "test"))
    assert pool.snapshot_key("k1") == case["snapshot_key"]
    assert asked[0][0][1:] == case["vng_args"][1:] and asked[0][1] == "tcg"
    pool.options = pool_module.SessionOptions(memory="736M")
    assert pool.snapshot_key("k1") != case["snapshot_key"]
