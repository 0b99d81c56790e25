"""The QEMU command builder: the same argv the old four-step code produced for vng 1.42's
committed dry runs (tests/unit/data/qemu-argv-before.json), one test per rewriting rule, and
the snapshot key computed from the guest's stable description alone, with no VM and no process."""
import builtins
import json
import re
import shlex
import subprocess
import tempfile
from dataclasses import fields, replace
from pathlib import Path

import pytest

from kregress.kernels.entries import KernelSpec
from kregress.kernels.sources.image import LocalImage
from kregress.kernels.kernel import Kernel
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.run import boot_inputs, vm
from kregress.run.boot_inputs import describe, prepare, run_slots
from kregress.run.errors import BootError
from kregress.run.guest import RunKeys
from kregress.run.hostcpu import HostCPU
from kregress.run.qemu_command import GuestMachine, RunSlots, guest_command, qemu_command
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
        busybox=Path("/i/busybox"), initramfs=Path("/c/k1.cpio"), kernel_args=("loglevel=5",)), **changes)


def slots(**changes) -> RunSlots:
    return replace(RunSlots(name="kr-r1-k1", qmp_socket=Path("/tmp/kr-qmp-x/qmp.sock"), keys_dir=Path("/r1/ssh"),
                            host_port=40000), **changes)


def command(vng_argv: list[str], guest: GuestMachine | None = None, **slot_changes) -> list[str]:
    return qemu_command(vng_argv, guest or machine(), slots(**slot_changes))


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


def case_machine(case: dict, monkeypatch) -> tuple[GuestMachine, RunSlots, RunSlots]:
    """The case's guest, and the slots of a boot and of a restore."""
    kernel, image = case_inputs(case, monkeypatch)
    files = prepare(kernel, case["accel"], image, INPUTS["kernel_digest"])
    guest = describe(kernel, case["accel"], image, files, cpus=INPUTS["cpus"], memory=INPUTS["memory"])
    boot = run_slots(kernel, Path(INPUTS["run_dir"]), keys_dir=Path(INPUTS["keys"]),
                     qmp_socket=Path(INPUTS["qmp_dir"]) / "qmp.sock", port=INPUTS["port"])
    return guest, boot, replace(boot, incoming=Path(INPUTS["state"]))


# -- the same command as before, for every committed dry run

@pytest.mark.parametrize("name", sorted(BEFORE["cases"]))
def test_the_builder_writes_the_command_the_old_code_wrote(name, monkeypatch):
    case = BEFORE["cases"][name]
    vng_argv = dry(DATA / case["dry_run"])
    guest, boot, restore = case_machine(case, monkeypatch)
    assert vng_arguments(guest)[0].endswith("/vng") and vng_arguments(guest)[1:] == case["vng_args"][1:]
    assert qemu_command(vng_argv, guest, boot) == case["boot"]
    assert qemu_command(vng_argv, guest, restore) == case["restore"]
    # the key from the stable description alone: it changed once, in issue 37 (one re-save),
    # when the per-run values left the description instead of being masked out of the command
    assert guest_snapshot_key(vng_argv, guest, qemu=INPUTS["qemu_version"], kernel_digest=INPUTS["kernel_digest"],
                              image_digest=INPUTS["image_digest"],
                              host_cpu=HostCPU(*INPUTS["host_cpu"]).identity) == case["snapshot_key"]


def test_the_builder_opens_no_file_runs_nothing_makes_nothing(monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("the builder touched the system")
    vng_argv = dry(TCG_X86)
    for target, name in [(builtins, "open"), (subprocess, "Popen"), (subprocess, "run"), (tempfile, "mkdtemp")]:
        monkeypatch.setattr(target, name, refuse)
    assert command(vng_argv)[0] == "/usr/bin/qemu-system-x86_64"


# -- one test per rule

def test_host_directory_exports_are_dropped():
    original = dry(TCG_X86)
    assert options(original, "-fsdev") and "virtio-9p-pci,fsdev=virtfs9,mount_tag=virtme.guesttools" in original
    cmd = command(original)
    assert not options(cmd, "-fsdev") and not options(cmd, "-virtfs")
    assert not [d for d in options(cmd, "-device") if d.startswith("virtio-9p")]


def test_vngs_script_ports_are_dropped():
    original = dry(TCG_X86)
    assert "virtio-serial-pci" in original
    devices = options(command(original), "-device")
    assert not [d for d in devices if d.startswith(("virtio-serial", "virtserialport"))]
    assert "i6300esb,id=watchdog0" in devices       # vng's other devices stay


def test_only_the_console_chardev_stays_and_appends_to_its_log():
    cmd = command(dry(TCG_X86))
    assert options(cmd, "-chardev") == ["file,id=console,path=/proc/self/fd/2,append=on"]
    assert options(cmd, "-serial") == ["chardev:console"]


def test_vngs_initramfs_and_name_give_way_to_ours():
    original = dry(TCG_X86)
    assert options(original, "-initrd") == ["/proc/self/fd/4"] and options(original, "-name") == ["kr-test"]
    cmd = command(original)
    assert options(cmd, "-initrd") == ["/c/k1.cpio"] and options(cmd, "-name") == ["kr-r1-k1"]


def test_the_arm64_disk_moves_to_pci():
    original = dry(ARM64)
    assert "virtio-blk-device,drive=virtme-root" in options(original, "-device")
    devices = options(command(original, machine(arch="arm64")), "-device")
    assert "virtio-blk-pci,drive=virtme-root" in devices and "virtio-blk-device,drive=virtme-root" not in devices


def test_one_machine_option_with_the_machine_type_first_and_no_tcg_fallback():
    assert options(dry(KVM_X86), "-machine") == ["accel=kvm:tcg"]
    cmd = command(dry(KVM_X86), machine(accel="kvm"))
    assert options(cmd, "-machine") == ["q35,accel=kvm"] and "-M" not in cmd
    assert options(command(dry(TCG_X86)), "-machine") == ["q35"]
    assert options(command(dry(ARM64), machine(arch="arm64")), "-machine") == ["virt"]
    no_machine = [arg for arg in dry(TCG_X86) if arg not in ("-machine", "q35")]
    assert options(command(no_machine, machine()), "-machine") == ["q35"]     # x86 always q35


def test_the_kernel_file_is_replaced_only_by_an_entry_kernel():
    vngs = options(dry(TCG_X86), "-kernel")
    assert options(command(dry(TCG_X86)), "-kernel") == vngs
    assert options(command(dry(TCG_X86), machine(entry_kernel=Path("/c/vmlinux"))), "-kernel") == ["/c/vmlinux"]


def test_the_cpu_is_replaced_only_when_given():
    assert options(command(dry(KVM_X86), machine(accel="kvm")), "-cpu") == ["host,topoext=on"]
    assert options(command(dry(TCG_X86), machine(cpu="qemu64,+rdrand")), "-cpu") == ["qemu64,+rdrand"]


def test_vngs_init_arguments_go_and_ours_follow_its_console_ones():
    (append,) = options(command(dry(TCG_X86), machine(kernel_args=("loglevel=5", "lsm=bpf"))), "-append")
    assert append == "nr_open=1048576 console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 loglevel=5 lsm=bpf"
    assert "mount" not in append and "virtme" not in append        # cut at init=, vng's init's own


def test_ours_come_last_ssh_on_loopback_keys_by_fw_cfg_and_qmp():
    cmd = command(dry(TCG_X86))
    assert cmd[cmd.index("-initrd"):] == [
        "-initrd", "/c/k1.cpio", "-append", cmd[cmd.index("-append") + 1], "-name", "kr-r1-k1",
        "-qmp", "unix:/tmp/kr-qmp-x/qmp.sock,server=on,wait=off",
        "-netdev", "user,id=kr0,restrict=on,hostfwd=tcp:127.0.0.1:40000-:22", "-device", "virtio-net-pci,netdev=kr0",
        "-fw_cfg", "name=opt/kregress/host_key,file=/r1/ssh/host_ed25519.dropbear",
        "-fw_cfg", "name=opt/kregress/authorized_keys,file=/r1/ssh/authorized_keys"]


def test_a_state_to_load_comes_last_and_only_when_given():
    assert "-incoming" not in command(dry(TCG_X86))
    cmd = command(dry(TCG_X86), incoming=Path("/s/k1-key/state"))
    assert cmd[-2:] == ["-incoming", "exec:cat '/s/k1-key/state'"]


def test_a_host_share_left_in_the_command_is_refused():
    with pytest.raises(BootError, match="would still share host files.*virtio-9p-future") as err:
        command(dry(TCG_X86) + ["-device", "virtio-9p-future,fsdev=x,mount_tag=y"])
    assert not err.value.retryable


def test_vng_is_asked_only_what_decides_its_command():
    asked = vng_arguments(machine(cpus=2, memory="736M"))
    assert asked[1:] == ["--verbose", "--force-9p", "--cpus", "2", "--memory", "736M", "--disable-kvm",
                         "--arch", "amd64", "--run", "/k/vmlinuz", "--root-disk", "/i/root.erofs",
                         "--busybox", "/i/busybox", "--exec", "true"]
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


# -- the snapshot key, from the stable description alone

def key(vng_argv=None, guest=None, **parts) -> str:
    given = {"qemu": "QEMU emulator version 7.2.22", "kernel_digest": "e" * 64, "image_digest": "d" * 64,
             "host_cpu": "AuthenticAMD 25 1 1 AMD EPYC|ab", **parts}
    return guest_snapshot_key(vng_argv or dry(TCG_X86), guest or machine(), **given)


# another value of each field of the guest's stable description
CHANGED = {"arch": "arm64", "accel": "kvm", "kernel_image": Path("/k/vmlinuz-2"), "root_disk": Path("/i/root2.erofs"),
           "busybox": Path("/i/busybox2"), "initramfs": Path("/c/k1-other.cpio"), "kernel_args": ("loglevel=4",),
           "cpus": 2, "memory": "2G", "entry_kernel": Path("/c/vmlinux"), "cpu": "qemu64"}


def vng_answer(args: list[str], accel: str) -> list[str]:
    """vng's dry run as it answers what it is asked (its 1.42 commands, with the values asked for)."""
    def asked(option):
        return args[args.index(option) + 1]
    path = ARM64 if asked("--arch") == "arm64" else KVM_X86 if accel == "kvm" else TCG_X86
    answer = dry(path)
    answer[answer.index("-m") + 1] = asked("--memory")
    answer[answer.index("-smp") + 1] = asked("--cpus")
    answer[answer.index("-kernel") + 1] = asked("--run")
    drive = answer.index("-drive") + 1
    answer[drive] = re.sub(r"file=[^,]*", f"file={asked('--root-disk')}", answer[drive])
    return answer


def test_the_snapshot_key_changes_with_each_stable_input(monkeypatch):
    monkeypatch.setattr(boot_inputs, "vng_qemu_command", vng_answer)
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: "QEMU emulator version 7.2.22")
    cpu = HostCPU("AuthenticAMD 25 1 1 AMD EPYC", "fpu")
    monkeypatch.setattr(boot_inputs, "host_cpu", lambda: cpu)

    def key_of(guest=None, kernel="e" * 64, image="d" * 64):
        return boot_inputs.snapshot_key_of(guest or machine(), kernel, image)
    assert set(CHANGED) == {field.name for field in fields(GuestMachine)}, "a new field needs a value here"
    base = key_of()
    changed = {name: key_of(machine(**{name: value})) for name, value in CHANGED.items()}
    # busybox reaches vng's command only in a host share that is dropped: no state depends on it
    assert changed.pop("busybox") == base
    changed.update({"kernel digest": key_of(kernel="f" * 64), "image digest": key_of(image="c" * 64)})
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: "QEMU emulator version 8.2.0")
    changed["qemu"] = key_of()
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed
    # the host CPU counts only when the guest runs on it (-cpu host under KVM)
    kvm = key_of(machine(accel="kvm"))
    monkeypatch.setattr(boot_inputs, "host_cpu", lambda: HostCPU("GenuineIntel 6 85 7", "fpu"))
    assert key_of(machine(accel="kvm")) != kvm
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: "QEMU emulator version 7.2.22")
    assert key_of() == base


def test_no_per_run_value_reaches_the_key():
    """The key reads the stable command only; every slot of a start goes after it."""
    vng_argv = dry(TCG_X86)
    stable = guest_command(vng_argv, machine())
    for changed in [slots(), slots(host_port=41234), slots(qmp_socket=Path("/tmp/kr-qmp-y/qmp.sock")),
                    slots(keys_dir=Path("/r2/ssh")), slots(name="kr-r2-k1"), slots(incoming=Path("/s/state"))]:
        full = qemu_command(vng_argv, machine(), changed)
        assert full[:len(stable)] == stable and len(full) > len(stable)
        values = [changed.name, f":{changed.host_port}-", str(changed.qmp_socket), str(changed.keys_dir),
                  str(changed.incoming)]
        assert not [value for value in values if value in " ".join(stable)]
    assert {f.name for f in fields(RunSlots)} == {"name", "qmp_socket", "keys_dir", "host_port", "incoming"}
    assert not {f.name for f in fields(RunSlots)} & {f.name for f in fields(GuestMachine)}


def test_the_cli_and_the_vm_compute_one_key_with_no_vm_and_no_process(tmp_path, monkeypatch):
    case = BEFORE["cases"]["x86_64-tcg"]
    kernel, image = case_inputs(case, monkeypatch)
    asked = []

    def vng_dry_run(args, accel):       # vng's answer to --memory: its -m
        asked.append((args, accel))
        return [args[args.index("--memory") + 1] if arg == "1G" else arg for arg in dry(DATA / case["dry_run"])]
    monkeypatch.setattr(boot_inputs, "vng_qemu_command", vng_dry_run)
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: INPUTS["qemu_version"])
    monkeypatch.setattr(boot_inputs, "sha256_file", lambda path: INPUTS["kernel_digest"])
    monkeypatch.setattr(vm, "sha256_file", lambda path: INPUTS["kernel_digest"])
    monkeypatch.setattr(boot_inputs, "host_cpu", lambda: HostCPU(*INPUTS["host_cpu"]))
    keys = [vm.VM(kernel, "tcg", Path(run), RunKeys(Path(run) / "ssh"), image).snapshot_key() for run in ("/r1", "/r2")]

    def refuse(*a, **kw):
        raise AssertionError("a VM or a process was made for a key")
    monkeypatch.setattr(vm.VM, "__init__", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    # kregress snapshots key's computation: the same key as any run's VM
    assert boot_inputs.snapshot_key_for(kernel, "tcg", image) == case["snapshot_key"] == keys[0] == keys[1]
    assert asked[-1][0][1:] == case["vng_args"][1:] and asked[-1][1] == "tcg"
    assert boot_inputs.snapshot_key_for(kernel, "tcg", image, memory="736M") != case["snapshot_key"]
