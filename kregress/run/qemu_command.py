"""The QEMU command line of one guest: one pure function from vng's dry run and what we add.

vng decides how to run QEMU for a kernel (binary, machine, CPU, accelerator, serial
console, memory, the root disk); `qemu_command` takes that argv (kregress/run/vng.py) and a
`GuestMachine`, the typed description of everything of ours that a guest (and its saved
state) is made of, and `RunSlots`, what one start of it is given (its name, QMP socket, SSH
keys, host port, a state to load), and writes the command the guest boots (or restores)
with: `guest_command` is the stable part, what a snapshot key covers; `qemu_command` adds
the slots. It removes everything through which vng would share host
files (9p/virtiofs exports of its guest tools, modules and busybox, its script I/O ports)
and adds our initramfs, the run's SSH keys through fw_cfg, a port forward on 127.0.0.1 and
a QMP socket. It reads no file, runs nothing and creates nothing: what it needs (initramfs,
PVH kernel, temporary directory, the dry run) is prepared beforehand
(kregress/run/boot_inputs.py). Nothing of the host is mounted in the guest: the command is
checked for that every time it is written.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from kregress.arch import arch as arch_of
from kregress.run.errors import BootError

# vng's arm64 command puts the image on virtio-mmio; PCI is the transport the initramfs loads
RENAMED_DEVICES = {"virtio-blk-device": "virtio-blk-pci"}
# Anything by which QEMU would share a host directory with the guest.
HOST_SHARE = re.compile(r"^-(fsdev|virtfs)$|(^|,)(virtio-9p|vhost-user-fs)[-\w]*(,|$)|fsdev=|mount_tag=|"
                        r"(^|,)(local|proxy),.*path=")
# vng's devices we drop: host directory exports and its script I/O ports (one of which
# writes a file on the host); -device values are matched on the driver name.
DROPPED_DEVICES = {"virtio-9p-pci", "virtio-9p-device", "virtio-9p-ccw", "vhost-user-fs-pci", "vhost-user-fs-device",
                   "vhost-user-fs-ccw", "virtio-serial-ccw",
                   "virtio-serial-pci", "virtio-serial-device", "virtserialport"}
# vng's options we drop whole: host shares, its initramfs (ours replaces it), its -name (ours
# tells our VMs apart and keeps the dry run cacheable)
DROPPED_OPTIONS = ("-fsdev", "-virtfs", "-initrd", "-name")
# vng's kernel arguments for its own init; the rest (console, panic, loglevel) we keep.
DROPPED_APPEND = ("virtme", "root=", "rootwait", "rootfstype=", "rootflags=", "init=", "loglevel=")


@dataclass(frozen=True)
class GuestMachine:
    """One guest as we want it, whatever run starts it: what vng is asked for and what we
    add to its command. A saved state depends on these and on nothing of RunSlots."""
    arch: str                   # kregress's name: x86_64, arm64
    accel: str                  # "kvm" or "tcg"
    kernel_image: Path          # what vng is given (--run)
    root_disk: Path             # the read-only guest image on virtio-blk
    busybox: Path
    initramfs: Path             # ours, in place of vng's
    kernel_args: tuple[str, ...]    # after vng's kept ones
    cpus: int = 1
    memory: str = "1G"
    entry_kernel: Path | None = None    # another file of the same kernel for -kernel (PVH vmlinux)
    cpu: str | None = None      # in place of vng's -cpu


@dataclass(frozen=True)
class RunSlots:
    """What one start of a guest is given: it changes every start, and no saved state
    depends on it."""
    name: str                   # QEMU's -name
    qmp_socket: Path
    keys_dir: Path              # the guest's SSH keys, passed by fw_cfg or on the keys disk
    host_port: int              # 127.0.0.1:host_port -> the guest's port 22
    incoming: Path | None = None    # a saved state to load instead of booting


# The guest's side of our per-run options: the network device and the fw_cfg entries the
# guest reads its keys from. RunSlots fill in their host side; the snapshot key covers these.
NETDEV = "user,id=kr0,restrict=on"
NET_DEVICE = "virtio-net-pci,netdev=kr0"
KEY_FILES = (("opt/kregress/host_key", "host_ed25519.dropbear"), ("opt/kregress/authorized_keys", "authorized_keys"))
# Where the machine has no fw_cfg (pseries, s390-ccw), the same two files come on a small
# read-only virtio disk of their own (a tar archive, RunKeys' KEYS_DISK), which the
# initramfs finds by its serial. Its size never changes, so a saved guest restores with
# another run's disk in its place.
KEYS_DISK = "keys.tar"
KEYS_SERIAL = "krkeys"


def net_device(arch: str = "x86_64") -> str:
    """The guest's network device on this architecture's virtio transport."""
    return NET_DEVICE.replace("-pci,", f"-{arch_of(arch).virtio},", 1)


def keys_device(arch: str = "x86_64") -> str | None:
    """The keys disk's -device, None where the keys come through fw_cfg."""
    record = arch_of(arch)
    return None if record.fw_cfg else f"virtio-blk-{record.virtio},drive=krkeys,serial={KEYS_SERIAL}"


def qemu_options(argv: list[str]):
    """(option, value or None) pairs of a QEMU argv after the binary."""
    index = 1
    while index < len(argv):
        option = argv[index]
        value = argv[index + 1] if index + 1 < len(argv) and not argv[index + 1].startswith("-") else None
        yield option, value
        index += 2 if value is not None else 1


def qemu_option(argv: list[str], name: str) -> str | None:
    """The value of a QEMU command's last `name` option (e.g. "-cpu"), None when absent."""
    values = [value for option, value in qemu_options(argv) if option == name]
    return values[-1] if values else None


def machine_accel(argv: list[str]) -> str:
    """The accelerator a QEMU command asks for: "kvm" when -machine names accel=kvm..., else "tcg"."""
    for option, value in qemu_options(argv):
        if option in ("-machine", "-M") and value and \
                any(part.startswith("accel=kvm") for part in value.split(",")):
            return "kvm"
    return "tcg"


def guest_runs_host_cpu(argv: list[str]) -> bool:
    """-cpu host (and max under KVM, which is the host's): the guest sees this machine's CPU."""
    cpu = (qemu_option(argv, "-cpu") or "").split(",")[0]
    return cpu == "host" or (cpu == "max" and machine_accel(argv) == "kvm")


def one_machine(vng_argv: list[str], arch: str) -> str:
    """vng's -machine/-M options as one: the machine type first (the architecture's when vng
    names none: vng asks for q35 under TCG but leaves it out under KVM, so x86 always gets
    it named), and accel=kvm without vng's ":tcg", which would quietly run a guest KVM
    refused under TCG while everything says kvm."""
    kind, properties = arch_of(arch).machine, []
    for option, value in qemu_options(vng_argv):
        if option not in ("-machine", "-M") or not value:
            continue
        for part in value.split(","):
            if "=" not in part:
                kind = part
            elif part.startswith("type="):
                kind = part.removeprefix("type=")
            else:
                properties.append("accel=kvm" if part == "accel=kvm:tcg" else part)
    return ",".join([kind, *properties] if kind else properties)


def vng_kernel_args(append: str) -> list[str]:
    """vng's -append without its own init's arguments: everything after init= is that
    init's command line, and DROPPED_APPEND's are for it too."""
    kept = []
    for arg in shlex.split(append):
        if arg.startswith("init="):
            break
        if not arg.startswith(DROPPED_APPEND):
            kept.append(arg)
    return kept


def kept_option(option: str, value: str | None, machine: GuestMachine) -> str | None | bool:
    """One of vng's options as it goes into our command: its value (possibly rewritten), or
    False when the option is dropped."""
    driver = value.split(",")[0] if value else ""
    if option in DROPPED_OPTIONS or (option == "-device" and driver in DROPPED_DEVICES):
        return False
    if option == "-device" and driver in RENAMED_DEVICES:
        return f"{RENAMED_DEVICES[driver]},{value.partition(',')[2]}"
    if option == "-chardev":
        if "id=console" not in value.split(","):
            return False        # vng's script I/O: only the serial console stays
        if value.startswith("file,") and "append=" not in value:
            return value + ",append=on"       # QEMU would truncate the log and its first line, our command
    if option == "-kernel" and machine.entry_kernel is not None:
        return str(machine.entry_kernel)
    if option == "-cpu" and machine.cpu is not None:
        return machine.cpu
    return value


def run_options(slots: RunSlots, arch: str = "x86_64") -> list[str]:
    """What every start of a guest of ours gets besides its stable command."""
    out = ["-name", slots.name,
           "-qmp", f"unix:{slots.qmp_socket},server=on,wait=off",
           "-netdev", f"{NETDEV},hostfwd=tcp:127.0.0.1:{slots.host_port}-:22",
           "-device", net_device(arch)]
    disk = keys_device(arch)
    if disk:
        out += ["-drive", f"file={slots.keys_dir / KEYS_DISK},if=none,format=raw,readonly=on,id=krkeys",
                "-device", disk]
    else:
        for name, file in KEY_FILES:
            out += ["-fw_cfg", f"name={name},file={slots.keys_dir / file}"]
    if slots.incoming is not None:
        out += ["-incoming", f"exec:cat '{slots.incoming}'"]
    return out


def guest_command(vng_argv: list[str], machine: GuestMachine) -> list[str]:
    """The stable part of the guest's QEMU argv: vng's, rewritten by the rules above, with our
    initramfs and kernel arguments. Raises BootError (not retryable) when it would still
    share host files."""
    out = [vng_argv[0]]
    kernel_args: list[str] = []
    machine_done = False
    for option, value in qemu_options(vng_argv):
        if option in ("-machine", "-M"):
            if not machine_done:
                out += ["-machine", one_machine(vng_argv, machine.arch)]
                machine_done = True
            continue
        if option == "-append":
            kernel_args += vng_kernel_args(value)
            continue
        value = kept_option(option, value, machine)
        if value is not False:
            out += [option] if value is None else [option, value]
    if not machine_done and arch_of(machine.arch).machine:
        out += ["-machine", arch_of(machine.arch).machine]
    if machine.cpu is not None and qemu_option(vng_argv, "-cpu") is None:
        out += ["-cpu", machine.cpu]     # vng names no CPU for pseries and s390-ccw under TCG: ours is pinned
    out += ["-initrd", str(machine.initramfs), "-append", " ".join(kernel_args + list(machine.kernel_args))]
    shared = [arg for arg in out if HOST_SHARE.search(arg)]
    if shared:
        raise BootError("refusing to boot: the QEMU command would still share host files with the guest: "
                        + " ".join(shared), retryable=False)
    return out


def qemu_command(vng_argv: list[str], machine: GuestMachine, slots: RunSlots) -> list[str]:
    """The guest's QEMU argv for one start: its stable command, then this start's slots."""
    return guest_command(vng_argv, machine) + run_options(slots, machine.arch)
