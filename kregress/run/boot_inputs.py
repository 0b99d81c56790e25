"""What a guest is made from, prepared without starting it: the kernel checked (preflight),
its initramfs and agent built, its PVH entry found, the `GuestMachine` describing it and the
`RunSlots` of one start (kregress/run/qemu_command.py writes the command from those), and the
snapshot key of the description alone."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kregress.files import sha256_file
from kregress.kernels.kconfig import config_problem
from kregress.kernels.kernel import Kernel
from kregress.kernels.modules import ModuleError
from kregress.kernels.vmlinux import pvh_vmlinux
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs, InitramfsError, ensure_initramfs, missing_config
from kregress.provision.programs import BuildError, build_agent
from kregress.run.errors import BootError
from kregress.arch import arch as arch_of
from kregress.run.hostcpu import host_cpu
from kregress.run.qemu_command import GuestMachine, RunSlots
from kregress.run.snapshot import guest_snapshot_key, qemu_version
from kregress.run.vng import vng_arguments, vng_qemu_command


@dataclass(frozen=True)
class BootFiles:
    """The files a kernel's guest boots from besides vng's: built once per VM."""
    initramfs: Initramfs
    entry_kernel: Path | None       # the same kernel's vmlinux, entered through PVH


def lsm_cmdline(kernel: Kernel) -> str:
    """Append bpf to the kernel's built-in LSM list when it lacks it, unless the entry chose lsm=."""
    if "lsm=" in kernel.spec.cmdline:
        return ""
    builtin = kernel.config.get("CONFIG_LSM", "")
    if not builtin or "bpf" in builtin.split(","):
        return ""
    return f"lsm={builtin},bpf"


def kernel_arguments(kernel: Kernel) -> tuple[str, ...]:
    # loglevel=5: the console (which the host keeps) shows warnings, oopses and panics,
    # not every driver's hello: printing to a serial port is slow under TCG. The
    # guest agent still reads the whole kernel log from /dev/kmsg.
    return tuple(arg for arg in ["loglevel=5", "random.trust_cpu=on", kernel.spec.cmdline, lsm_cmdline(kernel)]
                 if arg)


def tcg_cpu(kernel: Kernel) -> str:
    """Under TCG the CPU model is pinned (a saved guest only fits the model it was saved on, and
    -cpu max, vng's choice, moves with QEMU versions): the architecture's, plus the entry's
    tcg_cpu_flags. Under KVM vng's choice stands (-cpu host: the snapshot key covers the host CPU)."""
    return ",".join(part for part in [arch_of(kernel.spec.arch).tcg_cpu, kernel.spec.tcg_cpu_flags] if part)


def preflight(kernel: Kernel) -> None:
    """Refuse, before booting, what cannot work: not a kernel image of its architecture (the
    record's magic), or a config without what we need."""
    machine = arch_of(kernel.spec.arch)
    magic = machine.image
    try:
        with open(kernel.image, "rb") as image:
            head = image.read(max(0x210, magic.offset + len(magic.magic)))
    except OSError as err:
        raise BootError(f"{kernel.id}: cannot read image {kernel.image}: {err}", retryable=False) from None
    if head[magic.offset:magic.offset + len(magic.magic)] != magic.magic and not (magic.gzip_ok and
                                                                                 head[:2] == b"\x1f\x8b"):
        raise BootError(f"{kernel.id}: {kernel.image} is not an {magic.what}: corrupt, truncated, or not "
                        f"{machine.name}? {magic.hint}", retryable=False)
    no_config = config_problem(kernel)     # without one, built-in and missing options look alike
    if no_config:
        raise BootError(no_config, retryable=False)
    missing = missing_config(kernel.config, kernel.spec.arch)
    if missing:
        raise BootError(f"{kernel.id}: {kernel.package or kernel.image} cannot boot the kregress guest: "
                        f"its config lacks {', '.join(missing)}. Enable these options (=y, or =m with the "
                        f"modules in its modules directory)", retryable=False)


def prepare(kernel: Kernel, accel: str, image: GuestImage, kernel_digest: str) -> BootFiles:
    """Build (or find cached) the initramfs with the agent and, under TCG on x86, the PVH
    vmlinux: QEMU then enters the uncompressed kernel, with no emulated decompression
    (1-4 s). Under KVM decompressing is cheap, and the bzImage is what vng boots."""
    try:
        initramfs = ensure_initramfs(kernel.modules_dir, kernel.config, image, kernel.release,
                                     build_agent(arch=kernel.spec.arch))
    except (InitramfsError, ModuleError, BuildError) as err:
        raise BootError(f"{kernel.id}: {err}", retryable=False) from None
    pvh = accel == "tcg" and arch_of(kernel.spec.arch).pvh
    return BootFiles(initramfs, pvh_vmlinux(kernel.image, kernel.config, kernel_digest) if pvh else None)


def describe(kernel: Kernel, accel: str, image: GuestImage, files: BootFiles, *, cpus: int = 1,
             memory: str = "1G") -> GuestMachine:
    """The guest of this kernel as we want it, whatever run starts it (no file is read or made here)."""
    return GuestMachine(
        arch=kernel.spec.arch, accel=accel, kernel_image=kernel.image,
        root_disk=image.root, busybox=image.busybox, initramfs=files.initramfs.path,
        kernel_args=kernel_arguments(kernel), cpus=cpus, memory=memory,
        entry_kernel=files.entry_kernel, cpu=tcg_cpu(kernel) if accel == "tcg" else None)


def run_slots(kernel: Kernel, run_dir: Path, *, qmp_socket: Path, keys_dir: Path, port: int,
              incoming: Path | None = None) -> RunSlots:
    """What one start of this kernel's guest is given."""
    # the run directory's name in qemu's -name tells our VMs apart from anyone else's
    return RunSlots(name=f"kr-{run_dir.name}-{kernel.id}"[:63], qmp_socket=qmp_socket, keys_dir=keys_dir,
                    host_port=port, incoming=incoming)


def dry_run(machine: GuestMachine) -> list[str]:
    """vng's QEMU command for this guest (cached; checked to be for its accelerator)."""
    return vng_qemu_command(vng_arguments(machine), machine.accel)


def snapshot_key_of(machine: GuestMachine, kernel_digest: str, image_digest: str) -> str:
    """The key this guest's snapshot is looked up by: vng's dry run, QEMU's version and the
    host CPU gathered here, the key itself computed from them (snapshot.guest_snapshot_key)."""
    vng_argv = dry_run(machine)
    return guest_snapshot_key(vng_argv, machine, qemu=qemu_version(vng_argv[0]), kernel_digest=kernel_digest,
                              image_digest=image_digest, host_cpu=host_cpu().identity)


def snapshot_key_for(kernel: Kernel, accel: str, image: GuestImage, *, cpus: int = 1, memory: str = "1G") -> str:
    """The key a start of this kernel would look its snapshot up by, with no VM (kregress
    snapshots key): the same description and computation as the VM's own."""
    digest = sha256_file(kernel.image)
    machine = describe(kernel, accel, image, prepare(kernel, accel, image, digest), cpus=cpus, memory=memory)
    return snapshot_key_of(machine, digest, image.digest)
