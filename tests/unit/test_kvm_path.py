"""The KVM path, proved without KVM: vng 1.42's real dry runs (tests/unit/data/vng-dry-runs.md)
turned into our command, the console rules, the probe, the dry-run cache, refused snapshots
and arm64 hosts. What only a KVM host can show (a boot, a save, a restore) is in the README."""
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from kregress.provision import programs as build
from kregress.run import boot_inputs, hostcpu, qemu_command as command, vng
from kregress.run import kvm_probe
from kregress.run.catalog import KernelCatalog
from kregress.run.kvm_probe import AccelPicker
from kregress.run.accel import AccelChoice, ProbeResult, choose
from kregress.kernels.entries import KernelSpec
from kregress.kernels.sources.image import LocalImage
from kregress.run.guest import RunKeys
from kregress.run.hostcpu import HostCPU, config_page_size, host_cpu, kvm_granule
from kregress.provision.image import GuestImage, ImageError
from kregress.provision.initramfs import Initramfs
from kregress.kernels.kernel import Kernel
from kregress.run.session import KernelSession
from kregress.run.errors import BootError
from kregress.run.qemu_command import qemu_command
from kregress.run.boot_record import BootInfo, StartReport
from kregress.run.console import FATAL
from kregress.run.vm import VM
from test_accel import ARM64_CPUINFO
from test_qemu_command import machine as guest, slots
from test_vm_command import GOOD_CONFIG, kernel, options

DATA = Path(__file__).parent / "data"
KVM_X86 = DATA / "vng-1.42-dry-run-kvm.txt"
TCG_X86 = DATA / "vng-1.42-dry-run.txt"
KVM_ARM64_HOST = DATA / "vng-1.42-dry-run-arm64-host-kvm.txt"
AMD64_ON_ARM64 = DATA / "vng-1.42-dry-run-amd64-on-arm64-host.txt"
NO_ARCH_ON_ARM64 = DATA / "vng-1.42-dry-run-no-arch-on-arm64-host.txt"
TOPOEXT = ("qemu-system-x86_64: warning: host doesn't support requested feature: "
           "CPUID.80000001H:ECX.topoext [bit 22]")


def argv(path: Path) -> list[str]:
    return shlex.split(path.read_text())


def image(tmp_path, arch="x86_64") -> GuestImage:
    return GuestImage(root=tmp_path / "root.erofs", busybox=tmp_path / "busybox", digest="d" * 64,
                      suite="trixie", arch=arch, packages={})


def arm64_kernel(tmp_path, page_shift="14") -> Kernel:
    image_file = tmp_path / f"Image-{page_shift}"
    data = bytearray(0x300)
    data[0x38:0x3c] = b"ARM\x64"
    image_file.write_bytes(bytes(data))
    return Kernel(spec=KernelSpec(id="a16k", origin=LocalImage(image_file), arch="arm64"), image=image_file, release="6.12.117",
                  upstream_version="6.12.117", config=dict(GOOD_CONFIG, CONFIG_PAGE_SHIFT=page_shift))


@pytest.fixture
def fake_vng(tmp_path, monkeypatch):
    """VM.command() with vng's dry run replaced by a fixture file; records what was asked."""
    asked = {}

    def use(path: Path):
        def dry_run(args, accel):
            asked.update(args=args, accel=accel)
            return argv(path)
        monkeypatch.setattr(boot_inputs, "vng_qemu_command", dry_run)
        return asked
    monkeypatch.setattr(boot_inputs, "ensure_initramfs", lambda *a: Initramfs(tmp_path / "k.cpio", ("virtio_blk",)))
    monkeypatch.setattr(boot_inputs, "build_agent", lambda arch="x86_64": tmp_path / "agent")
    return use


# -- the command under KVM

def test_the_kvm_command_keeps_vngs_host_cpu_and_bzimage_on_q35(tmp_path, fake_vng, monkeypatch):
    asked = fake_vng(KVM_X86)
    monkeypatch.setattr(boot_inputs, "pvh_vmlinux", lambda *a: pytest.fail("no PVH entry under KVM"))
    original = argv(KVM_X86)
    assert options(original, "-machine") == ["accel=kvm:tcg"] and "q35" not in original   # vng's, as it is
    machine = VM(kernel(tmp_path, tcg_cpu_flags="-cx16"), "kvm", tmp_path, RunKeys.create(tmp_path / "ssh"),
                 image(tmp_path))
    cmd = machine.command(port=40000)
    assert asked["accel"] == "kvm" and "--disable-kvm" not in asked["args"]
    assert asked["args"][asked["args"].index("--arch") + 1] == "amd64"
    assert options(cmd, "-cpu") == ["host,topoext=on"]          # vng's; the entry's tcg_cpu_flags do not apply
    assert options(cmd, "-kernel") == options(original, "-kernel")      # the bzImage vng was given
    assert options(cmd, "-machine") == ["q35,accel=kvm"]        # the TCG guests' machine; no silent TCG fallback
    assert machine.pvh_kernel is None


def test_one_machine_type_for_both_accelerators():
    def machine(path, arch="x86_64"):
        cmd = qemu_command(argv(path), guest(arch=arch), slots())
        assert len(options(cmd, "-machine")) == 1 and "-M" not in cmd
        return options(cmd, "-machine")[0]
    assert machine(TCG_X86) == "q35" and machine(KVM_X86) == "q35,accel=kvm"
    assert machine(DATA / "vng-1.42-dry-run-arm64.txt", "arm64") == "virt"
    assert machine(KVM_ARM64_HOST, "arm64") == "virt,accel=kvm,gic-version=host"


# -- what ends a boot

@pytest.mark.parametrize("line", [TOPOEXT, "qemu-system-x86_64: info: Launching virtiofsd",
                                  "[    0.000000] x86/cpu: topoext not supported"])
def test_a_warning_is_not_fatal(line):
    assert not FATAL.search(line)


@pytest.mark.parametrize("line", [
    "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000e1",
    "qemu-system-x86_64: -device foo: 'foo' is not a valid device model name",
    "KVM internal error. Suberror: 1",
    "[    1.234567] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
    "[    2.1] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"])
def test_errors_and_the_kernels_fatal_lines_end_a_boot(line):
    assert FATAL.search(line)


def test_a_probe_that_could_not_run_decides_nothing(tmp_path):
    timeout = ProbeResult(False, "k1: no ready marker within 60s (kvm)")
    choice = choose("auto", probe=lambda: timeout, kvm_check=lambda: (True, ""), cache_file=tmp_path / "c.json",
                    host_key="h")
    assert choice.accel == "tcg" and choice.probe_error and not (tmp_path / "c.json").exists()


def picker(tmp_path, kernels: dict, request="auto") -> AccelPicker:
    catalog = KernelCatalog.__new__(KernelCatalog)
    catalog.specs = {k: kern.spec for k, kern in kernels.items()}
    catalog.kernels, catalog.fetch_errors, catalog.refresh, catalog.images = dict(kernels), {}, False, {}
    return AccelPicker(request, catalog, tmp_path, keys=lambda: RunKeys.create(tmp_path / "ssh"))


def test_an_image_error_in_the_probe_is_reported_not_raised(tmp_path, monkeypatch):
    """It used to abort the whole run, on KVM hosts only."""
    accels = picker(tmp_path, {"k1": kernel(tmp_path)})
    monkeypatch.setattr(kvm_probe, "HOST_ARCH", "x86_64")

    def no_image(arch="x86_64"):
        raise ImageError("guest image: package 'dropbear' is not in Debian trixie")
    monkeypatch.setattr(accels.catalog, "guest_image", no_image)
    result = accels.probe_kvm()
    assert (result.works, result.refused_by) == (False, None) and "dropbear" in result.detail


# -- the dry-run cache

def fake_vng_run(monkeypatch, path: Path, calls: list | None = None) -> list:
    calls = [] if calls is None else calls

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="virtme: ...\n" + path.read_text(), stderr="")
    monkeypatch.setattr(vng.subprocess, "run", run)
    return calls


def test_a_forced_kvm_vng_cannot_honour_is_a_clear_error_and_not_cached(tmp_path, monkeypatch):
    """vng opens /dev/kvm itself: where it cannot, it prints the TCG command for KVM's arguments."""
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    fake_vng_run(monkeypatch, TCG_X86)
    with pytest.raises(BootError, match="--accel kvm cannot be honoured: vng gave a command without KVM") as err:
        vng.vng_qemu_command(["vng", "--run", "a"], "kvm")
    assert not err.value.retryable and "/dev/kvm" in str(err.value)
    assert not list(tmp_path.glob("vng-dry-run/*.json"))


def test_a_cached_command_for_another_accelerator_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    calls = fake_vng_run(monkeypatch, TCG_X86)
    assert vng.vng_qemu_command(["vng", "--run", "a"]) == argv(TCG_X86)     # cached unchecked (the old way)
    fake_vng_run(monkeypatch, KVM_X86, calls)
    assert vng.vng_qemu_command(["vng", "--run", "a"], "kvm") == argv(KVM_X86)    # asked vng again
    assert vng.vng_qemu_command(["vng", "--run", "a"], "kvm") == argv(KVM_X86)    # and now cached under kvm
    assert len(calls) == 2
    with pytest.raises(BootError, match="KVM command although --disable-kvm"):
        vng.check_accel(argv(KVM_X86), "tcg")


def test_the_snapshot_key_covers_the_host_cpu_when_the_guest_runs_on_it(tmp_path, fake_vng, monkeypatch):
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(boot_inputs, "pvh_vmlinux", lambda *a: tmp_path / "vmlinux")
    keys = RunKeys.create(tmp_path / "ssh")

    def key(path, accel, cpu):
        fake_vng(path)
        monkeypatch.setattr(boot_inputs, "host_cpu", lambda: cpu)
        return VM(kernel(tmp_path), accel, tmp_path, keys, image(tmp_path)).snapshot_key()
    amd, intel = HostCPU("AuthenticAMD 25 1 1 AMD EPYC", "fpu sse topoext"), HostCPU("GenuineIntel 6 85 7", "fpu sse")
    amd_newer = HostCPU(amd.model, amd.flags + " avx512f")
    assert len({key(KVM_X86, "kvm", amd), key(KVM_X86, "kvm", intel), key(KVM_X86, "kvm", amd_newer)}) == 3
    assert key(KVM_X86, "kvm", amd) == key(KVM_X86, "kvm", amd)
    assert key(TCG_X86, "tcg", amd) == key(TCG_X86, "tcg", intel)      # qemu64: the host CPU does not show
    assert command.guest_runs_host_cpu(argv(KVM_ARM64_HOST)) and not command.guest_runs_host_cpu(argv(TCG_X86))


# -- arm64 hosts

def test_x86_kernels_on_an_arm64_host_need_arch(tmp_path, fake_vng):
    """vng's own code with platform.machine() answering aarch64: without --arch an x86 kernel
    goes to qemu-system-aarch64 on -cpu host; with --arch amd64 (always passed now) to x86 QEMU."""
    assert argv(NO_ARCH_ON_ARM64)[0].endswith("qemu-system-aarch64") and "host" in options(argv(NO_ARCH_ON_ARM64), "-cpu")
    asked = fake_vng(AMD64_ON_ARM64)
    cmd = VM(kernel(tmp_path), "tcg", tmp_path, RunKeys.create(tmp_path / "ssh"), image(tmp_path)).command(0)
    assert asked["args"][asked["args"].index("--arch") + 1] == "amd64"
    assert cmd[0].endswith("qemu-system-x86_64") and options(cmd, "-machine") == ["q35"]
    assert options(cmd, "-cpu") == ["qemu64,+rdrand"]


def test_arm64_kernel_under_kvm_on_an_arm64_host_keeps_host_cpu(tmp_path, fake_vng):
    asked = fake_vng(KVM_ARM64_HOST)
    cmd = VM(arm64_kernel(tmp_path), "kvm", tmp_path, RunKeys.create(tmp_path / "ssh"), image(tmp_path, "arm64")).command(0)
    assert asked["accel"] == "kvm" and "--disable-kvm" not in asked["args"]
    assert cmd[0].endswith("qemu-system-aarch64") and options(cmd, "-cpu") == ["host"]
    assert "virtio-blk-pci,drive=virtme-root" in options(cmd, "-device")


def test_16k_kernel_stays_on_tcg_unless_the_host_runs_16k_pages(tmp_path, monkeypatch):
    assert config_page_size({"CONFIG_PAGE_SHIFT": "14"}) == 16384
    assert config_page_size({"CONFIG_ARM64_16K_PAGES": "y"}) == 16384
    assert config_page_size({"CONFIG_X86_64": "y"}) == 4096
    assert kvm_granule(16384, "x86_64")[0] and kvm_granule(16384, "arm64", 16384)[0]
    assert kvm_granule(4096, "arm64", 16384)[0]
    fits, why = kvm_granule(16384, "arm64", 4096)
    assert not fits and "16K granule cannot be read from userspace" in why
    k16, k4 = arm64_kernel(tmp_path), arm64_kernel(tmp_path, "12")
    accels = picker(tmp_path, {"a16k": k16})
    monkeypatch.setattr(kvm_probe, "HOST_ARCH", "arm64")
    monkeypatch.setattr(hostcpu, "host_page_size", lambda: 4096)
    accels.choice = AccelChoice("kvm", "KVM probe boot reached userspace in 3.1s")
    choice = accels.for_kernel(k16)
    assert choice.accel == "tcg" and choice.reason.startswith("KVM not used for this kernel: 16K-page kernel")
    assert accels.for_kernel(k4).accel == "kvm"
    monkeypatch.setattr(hostcpu, "host_page_size", lambda: 16384)
    assert accels.for_kernel(k16).accel == "kvm"


def test_the_probe_skips_kernels_whose_granule_would_hang(tmp_path, monkeypatch):
    accels = picker(tmp_path, {"a16k": arm64_kernel(tmp_path)})
    monkeypatch.setattr(kvm_probe, "HOST_ARCH", "arm64")
    monkeypatch.setattr(hostcpu, "host_page_size", lambda: 4096)
    monkeypatch.setattr(kvm_probe.VM, "probe", lambda self: pytest.fail("must not boot a 16K kernel here"))
    result = accels.probe_kvm()
    assert (result.works, result.refused_by) == (False, None) and "no arm64 kernel" in result.detail


def test_drivers_are_built_by_the_build_roots_compilers_on_any_host(monkeypatch):
    """The build root is amd64 on every host (qemu-user on an arm64 one), so the compiler
    for each guest architecture is the same whatever the host is: the same bytes."""
    assert not hasattr(build, "HOST_ARCH")
    assert build.toolchain("x86_64").cc == "x86_64-linux-gnu-gcc" and build.toolchain("arm64").cc == "aarch64-linux-gnu-gcc"


def test_arm64_cpuinfo_names_the_cpu():
    cpu = host_cpu(ARM64_CPUINFO)
    assert cpu.model == "0x41 8 0x3 0xd0c 1" and cpu.flags.startswith("fp asimd") and cpu.flags.endswith("asimddp")


# -- the record

def test_the_record_carries_the_real_cpu_machine_and_host_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr("kregress.run.session.host_cpu", lambda: HostCPU("AuthenticAMD 25 1 1 AMD EPYC", "fpu topoext"))
    session = KernelSession(kernel(tmp_path), AccelChoice("kvm", "probe ok"), tmp_path, RunKeys.create(tmp_path / "ssh"),
                            image(tmp_path))
    cmd = qemu_command(argv(KVM_X86), guest(accel="kvm"), slots())
    session.started = StartReport(BootInfo(release="6.12.117", lsm="bpf", page_size=4096, seconds=3.0, attempts=1,
                                           console_log=tmp_path / "c.log", cmdline=shlex.join(cmd), phases={}))
    record = session.cpu_record()
    assert record == {"qemu_cpu": "host,topoext=on", "machine": "q35,accel=kvm", "guest_sees_host_cpu": True,
                      "host": {"model": "AuthenticAMD 25 1 1 AMD EPYC", "flags_sha256": record["host"]["flags_sha256"],
                               "flags_count": 2}}
    assert json.dumps(record)


def test_the_workflow_does_not_carry_the_probe_answer_between_runs():
    from kregress.paths import SUITE_ROOT
    workflow = (SUITE_ROOT / ".github/workflows/matrix.yml").read_text()
    assert "~/.cache/kregress\n" in workflow and "!~/.cache/kregress/accel-probe.json" in workflow
