"""Boot one kernel in QEMU with virtme-ng's machine set-up and a guest of our own.

vng decides how to run QEMU for this kernel (binary, machine, CPU, accelerator, serial
console, memory, the root disk); we take its command line from `vng --dry-run` and
remove everything through which it would share host files (9p/virtiofs exports of its
guest tools, modules and busybox, and its script I/O ports). In their place the guest
gets our initramfs (kregress/provision/initramfs.py), the read-only guest image on virtio-blk,
the run's SSH keys through fw_cfg, and a port forward on 127.0.0.1. Nothing of the
host is mounted in the guest: the command is checked for that before every boot.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version as package_version
from pathlib import Path

from kregress.report import recovery
from kregress.kernel_log.boot import BootLog, BootLogMissing
from kregress.provision.programs import BuildError, build_agent
from kregress.kernels.entries import DEBIAN_ARCH
from kregress.run.guest import GuestLost, GuestSession, RunKeys
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import InitramfsError, ensure_initramfs, missing_config
from kregress.kernels.modules import ModuleError
from kregress.files import sha256_file
from kregress.kernels.kconfig import config_problem
from kregress.kernels.kernel import Kernel
from kregress.paths import cache_dir
from kregress.procs import kill_group, spawn
from kregress.run.qmp import QMP, QMPError
from kregress.run.accel import ProbeResult, kvm_openable
from kregress.run.hostcpu import host_cpu
from kregress.run.snapshot import Snapshot, SnapshotCache, SnapshotError, SnapshotRefused, qemu_version, snapshot_key
from kregress.kernels.vmlinux import pvh_vmlinux

READY = re.compile(r"KREGRESS: READY release=(\S+) lsm=(\S*) page_kb=(\d*) iface=\S* t=([\d.]+)")
PHASE = re.compile(r"KREGRESS: PHASE (\w+) ([\d.]+)")
GUEST_FAIL = re.compile(r"KREGRESS: FAIL (.*)")
# What QEMU itself reports as an error: its program-name prefix without "warning:" or
# "info:" (vng always asks for topoext=on, which QEMU warns about on Intel hosts), and
# KVM's own failure (QEMU then pauses the guest instead of exiting).
QEMU_ERROR = re.compile(r"qemu-system-\w+: (?!warning: |info: ).*|KVM internal error.*")
# Console lines that mean the boot is over, whatever the timeout says: the kernel's own
# fatal lines and QEMU's errors.
FATAL = re.compile(r"Kernel panic - not syncing.*|VFS: Unable to mount root fs.*|"
                   r"Oops: .*|BUG: .*|" + QEMU_ERROR.pattern)
BOOT_TIMEOUT_S = {"kvm": 90, "tcg": 300}
# Under TCG the CPU model is pinned (a saved guest only fits the CPU model it was saved
# on, and -cpu max, vng's choice, moves with QEMU versions) to QEMU's own default, plus
# rdrand: with random.trust_cpu=on it seeds the kernel's random pool at once (dropbear
# waited 0.6-2.3 s of every boot for it). A kernel entry may add flags (tcg_cpu_flags in
# kernels.toml). Under KVM, vng's choice stands (-cpu host: the snapshot key then covers
# the host CPU) and tcg_cpu_flags do not apply.
TCG_CPU = {"x86_64": "qemu64,+rdrand",
           # max: every page size (cortex-a57, vng's choice, has no 16K granule) and RNDR for
           # random.trust_cpu; pauth-impdef: QEMU's cheap pointer authentication, much faster under TCG
           "arm64": "max,pauth-impdef=on"}
# vng's arm64 command puts the image on virtio-mmio; PCI is the transport the initramfs loads
RENAMED_DEVICES = {"virtio-blk-device": "virtio-blk-pci"}
# One machine type under both accelerators: vng asks for q35 under TCG but leaves it out
# under KVM (QEMU's default, i440fx); x86 guests always get q35.
MACHINE_TYPE = {"x86_64": "q35"}
BOOT_ATTEMPTS = 2
AGENT_PORT = 7001
# Anything by which QEMU would share a host directory with the guest.
HOST_SHARE = re.compile(r"^-(fsdev|virtfs)$|(^|,)(virtio-9p|vhost-user-fs)[-\w]*(,|$)|fsdev=|mount_tag=|"
                        r"(^|,)(local|proxy),.*path=")
# vng's devices we drop: host directory exports and its script I/O ports (one of which
# writes a file on the host); -device values are matched on the driver name.
DROPPED_DEVICES = {"virtio-9p-pci", "virtio-9p-device", "vhost-user-fs-pci", "vhost-user-fs-device",
                   "virtio-serial-pci", "virtio-serial-device", "virtserialport"}
# vng's kernel arguments for its own init; the rest (console, panic, loglevel) we keep.
DROPPED_APPEND = ("virtme", "root=", "rootwait", "rootfstype=", "rootflags=", "init=", "loglevel=")


class BootError(RuntimeError):
    """The kernel did not come up; the message names it and quotes the console.
    retryable is False when a second attempt cannot help (bad image, missing config)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class SnapshotSaveFailed(SnapshotError):
    """The guest booted but its state could not be saved; the message says why."""


def venv_bin() -> Path:
    return Path(sys.executable).parent


def vng_base(accel: str, cpus: int, memory: str) -> list[str]:
    # --force-9p: vng would otherwise try to start virtiofsd for exports we drop anyway
    cmd = [str(venv_bin() / "vng"), "--verbose", "--force-9p", "--cpus", str(cpus), "--memory", memory]
    if accel == "tcg":
        cmd.append("--disable-kvm")
    return cmd


def vng_env() -> dict:
    """virtme-ng needs virtme-run (our venv), depmod (/usr/sbin), qemu on PATH."""
    path = os.pathsep.join([str(venv_bin()), "/usr/sbin", "/sbin", os.environ.get("PATH", "/usr/bin:/bin")])
    return dict(os.environ, PATH=path)


def machine_accel(argv: list[str]) -> str:
    """The accelerator a QEMU command asks for: "kvm" when -machine names accel=kvm..., else "tcg"."""
    for option, value in _options(argv):
        if option in ("-machine", "-M") and value and \
                any(part.startswith("accel=kvm") for part in value.split(",")):
            return "kvm"
    return "tcg"


def check_accel(argv: list[str], accel: str) -> None:
    """vng decides on KVM itself (it opens /dev/kvm): its command must be the one asked for."""
    got = machine_accel(argv)
    if got == accel:
        return
    if accel == "kvm":
        raise BootError(f"--accel kvm cannot be honoured: vng gave a command without KVM (it uses KVM only when "
                        f"it can open /dev/kvm: {kvm_openable()[1]}). Give this user read-write access to /dev/kvm "
                        f"(the kvm group), or run with --accel auto or --accel tcg", retryable=False)
    raise BootError(f"vng gave a KVM command although --disable-kvm was passed: {shlex.join(argv)[:300]}",
                    retryable=False)


def vng_qemu_command(vng_args: list[str], accel: str | None = None) -> list[str]:
    """QEMU's argv as vng would run it (`vng --dry-run`), cached by vng's version and arguments.
    Given accel, the command is checked to be for it, in the cache and from vng, before it is used or kept."""
    key = hashlib.sha256(json.dumps([package_version("virtme-ng"), vng_args]).encode()).hexdigest()[:20]
    cached = cache_dir() / "vng-dry-run" / f"{key}.json"
    if cached.exists():
        try:
            argv = json.loads(cached.read_text())
            if accel is None or machine_accel(argv) == accel:
                return argv
        except ValueError:
            pass        # a torn write: ask vng again
    proc = subprocess.run([vng_args[0], "--dry-run", *vng_args[1:]], capture_output=True, text=True,
                          env=vng_env(), cwd="/tmp", timeout=120)
    found = re.findall(r"^.*?(\S*qemu-system-\S+ .*)$", proc.stdout + "\n" + proc.stderr, re.M)
    if proc.returncode != 0 or not found:
        raise BootError(f"vng --dry-run did not give a QEMU command (exit {proc.returncode}):\n"
                        f"$ {shlex.join(vng_args)} --dry-run\n{(proc.stderr or proc.stdout)[-2000:]}", retryable=False)
    line = found[-1]
    argv = shlex.split(line)
    if accel is not None:
        check_accel(argv, accel)        # never cached under the wrong accelerator
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}")
    partial.write_text(json.dumps(argv))
    os.replace(partial, cached)
    return argv


def _options(argv: list[str]):
    """(option, value or None) pairs of a QEMU argv after the binary."""
    index = 1
    while index < len(argv):
        option = argv[index]
        value = argv[index + 1] if index + 1 < len(argv) and not argv[index + 1].startswith("-") else None
        yield option, value
        index += 2 if value is not None else 1


def one_machine(qemu: list[str], arch: str) -> str:
    """vng's -machine/-M options as one: the machine type first (MACHINE_TYPE's when vng
    names none), and accel=kvm without vng's ":tcg", which would quietly run a guest KVM
    refused under TCG while everything says kvm."""
    kind, properties = MACHINE_TYPE.get(arch), []
    for option, value in _options(qemu):
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


def own_guest_command(qemu: list[str], *, initramfs: Path, append: list[str], extra: list[str],
                      kernel: Path | None = None, cpu: str | None = None, arch: str = "x86_64") -> list[str]:
    """vng's QEMU command with its host shares removed and our initramfs and kernel
    arguments (and, given kernel, another file of the same kernel to load; given cpu,
    another CPU model), on one machine type for both accelerators."""
    out = [qemu[0]]
    kernel_args: list[str] = []
    machine_done = False
    for option, value in _options(qemu):
        if option in ("-fsdev", "-virtfs", "-initrd", "-name"):
            continue
        if option in ("-machine", "-M"):
            if not machine_done:
                out += ["-machine", one_machine(qemu, arch)]
                machine_done = True
            continue
        if option == "-device" and value.split(",")[0] in DROPPED_DEVICES:
            continue
        if option == "-device" and value.split(",")[0] in RENAMED_DEVICES:
            name, _, rest = value.partition(",")
            value = f"{RENAMED_DEVICES[name]},{rest}"
        if option == "-chardev" and "id=console" not in value.split(","):
            continue
        if option == "-chardev" and value.startswith("file,") and "append=" not in value:
            value += ",append=on"       # QEMU would truncate the log and its first line, our command
        if option == "-kernel" and kernel is not None:
            value = str(kernel)
        if option == "-cpu" and cpu is not None:
            value = cpu
        if option == "-append":
            for arg in shlex.split(value):
                if arg.startswith("init="):
                    break       # everything after init= is vng's init's own command line
                if not arg.startswith(DROPPED_APPEND):
                    kernel_args.append(arg)
            continue
        out += [option] if value is None else [option, value]
    if not machine_done and MACHINE_TYPE.get(arch):
        out += ["-machine", MACHINE_TYPE[arch]]
    out += ["-initrd", str(initramfs), "-append", " ".join(kernel_args + append), *extra]
    shared = [arg for arg in out if HOST_SHARE.search(arg)]
    if shared:
        raise BootError("refusing to boot: the QEMU command would still share host files with the guest: "
                        + " ".join(shared), retryable=False)
    return out


def qemu_option(argv: list[str], name: str) -> str | None:
    """The value of a QEMU command's last `name` option (e.g. "-cpu"), None when absent."""
    values = [value for option, value in _options(argv) if option == name]
    return values[-1] if values else None


def guest_runs_host_cpu(argv: list[str]) -> bool:
    """-cpu host (and max under KVM, which is the host's): the guest sees this machine's CPU."""
    cpu = (qemu_option(argv, "-cpu") or "").split(",")[0]
    return cpu == "host" or (cpu == "max" and machine_accel(argv) == "kvm")


def lsm_cmdline(kernel: Kernel) -> str:
    """Append bpf to the kernel's built-in LSM list when it lacks it, unless the entry chose lsm=."""
    if "lsm=" in kernel.spec.cmdline:
        return ""
    builtin = kernel.config.get("CONFIG_LSM", "")
    if not builtin or "bpf" in builtin.split(","):
        return ""
    return f"lsm={builtin},bpf"


def preflight(kernel: Kernel) -> None:
    """Refuse, before booting, what cannot work: not a kernel image, or a config without what we need.

    A garbage image makes qemu's firmware spin silently until the boot timeout; the boot
    header's magic tells in microseconds: x86's "HdrS" at 0x202, arm64's "ARM\\x64" at 0x38
    (or a gzip stream, which QEMU unpacks).
    """
    try:
        with open(kernel.image, "rb") as image:
            head = image.read(0x210)
    except OSError as err:
        raise BootError(f"{kernel.id}: cannot read image {kernel.image}: {err}", retryable=False) from None
    if kernel.spec.arch == "arm64":
        if head[0x38:0x3c] != b"ARM\x64" and head[:2] != b"\x1f\x8b":
            raise BootError(f"{kernel.id}: {kernel.image} is not an arm64 Image (no 'ARM\\x64' magic at 0x38, not "
                            f"gzip): corrupt, truncated, or not arm64? Check 'arch' and 'image' in kernels.toml",
                            retryable=False)
    elif head[0x202:0x206] != b"HdrS":
        raise BootError(f"{kernel.id}: {kernel.image} is not an x86 bzImage (no 'HdrS' boot header at 0x202): "
                        f"corrupt, truncated, or not x86_64? Point 'image' in kernels.toml at arch/x86/boot/bzImage "
                        f"or a vmlinuz, or set 'arch'", retryable=False)
    no_config = config_problem(kernel)     # without one, built-in and missing options look alike
    if no_config:
        raise BootError(no_config, retryable=False)
    missing = missing_config(kernel.config)
    if missing:
        raise BootError(f"{kernel.id}: {kernel.package or kernel.image} cannot boot the kregress guest: "
                        f"its config lacks {', '.join(missing)}. Enable these options (=y, or =m with the "
                        f"modules in its modules directory)", retryable=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BootInfo:
    release: str
    lsm: str
    page_size: int | None       # bytes, as the running kernel reports it
    seconds: float
    attempts: int
    console_log: Path
    cmdline: str
    # seconds from spawning QEMU: kernel_start (guest clock at 0), kernel_done ("Run /init"),
    # init_done (image mounted, handing over), sshd_ready, ssh_connected, agent_ready
    phases: dict
    initramfs_modules: tuple = ()
    entry: str = "bzImage"      # or "pvh": the same kernel's vmlinux, entered directly
    how: str = "booted"         # "booted", "booted+saved" (and a snapshot made), "restored"
    snapshot: str | None = None
    save_seconds: float | None = None
    kernel_log: BootLog | None = None   # the boot's kmsg and console (restored: the saved boot's)
    retries: tuple = ()                 # why earlier attempts of this boot failed


class VM:
    def __init__(self, kernel: Kernel, accel: str, run_dir: Path, keys: RunKeys, image: GuestImage,
                 cpus: int = 1, memory: str = "1G", boot_timeout: float | None = None,
                 snapshots: SnapshotCache | None = None):
        self.kernel, self.accel, self.run_dir, self.keys, self.image = kernel, accel, run_dir, keys, image
        self.cpus, self.memory = cpus, memory
        self.boot_timeout = boot_timeout or BOOT_TIMEOUT_S[accel]
        self.snapshots = snapshots
        self.snapshot_note: str | None = None     # why a snapshot was rebuilt or not used
        self.snapshot_events: list[dict] = []     # recovery.event(): saves failed, restores fallen back
        self.guest_keys = keys      # what the guest's sshd gets at boot: the run's, or a snapshot's
        self.proc = None
        self.port: int | None = None
        self.qmp_dir: Path | None = None
        self.session: GuestSession | None = None
        self.boot: BootInfo | None = None
        self.console_log: Path | None = None
        self.initramfs = None

    @cached_property
    def kernel_digest(self) -> str:
        """The kernel image's SHA-256, once per VM: the snapshot key and the PVH cache use it."""
        return sha256_file(self.kernel.image)

    @cached_property
    def pvh_kernel(self) -> Path | None:
        """Under TCG, QEMU enters the uncompressed kernel through PVH: no emulated
        decompression (1-4 s). Under KVM decompressing is cheap, and the bzImage is what vng boots."""
        if self.accel != "tcg" or self.kernel.spec.arch != "x86_64":
            return None
        return pvh_vmlinux(self.kernel.image, self.kernel.config, self.kernel_digest)

    def vng_args(self) -> list[str]:
        return vng_base(self.accel, self.cpus, self.memory) + [
            # the run directory's name in qemu's -name tells our VMs apart from anyone else's
            # always: without it vng boots the host's architecture (an x86 kernel on an arm64
            # host went to qemu-system-aarch64 with -cpu host)
            "--arch", DEBIAN_ARCH[self.kernel.spec.arch],     # vng's --arch takes Debian's names
            "--run", str(self.kernel.image),
            "--root-disk", str(self.image.root), "--busybox", str(self.image.busybox),
            # vng's non-interactive mode: serial console into a file, no monitor on stdio.
            # The script would run under vng's init, which we replace; it is dropped.
            "--exec", "true"]

    def command(self, port: int) -> list[str]:
        try:
            # once per VM: the key, the boot and every restore use the same one
            self.initramfs = self.initramfs or ensure_initramfs(self.kernel.modules_dir, self.kernel.config,
                                                                self.image, self.kernel.release,
                                                                build_agent(arch=self.kernel.spec.arch))
        except (InitramfsError, ModuleError, BuildError) as err:
            raise BootError(f"{self.kernel.id}: {err}", retryable=False) from None
        # loglevel=5: the console (which the host keeps) shows warnings, oopses and panics,
        # not every driver's hello: printing to a serial port is slow under TCG. The
        # guest agent still reads the whole kernel log from /dev/kmsg.
        append = [arg for arg in ["loglevel=5", "random.trust_cpu=on", self.kernel.spec.cmdline, lsm_cmdline(self.kernel)] if arg]
        keys = self.guest_keys.directory
        self.qmp_dir = self.qmp_dir or Path(tempfile.mkdtemp(prefix="kr-qmp-"))   # short: a socket path
        # the run directory's name in qemu's -name tells our VMs apart from anyone else's
        extra = ["-name", f"kr-{self.run_dir.name}-{self.kernel.id}"[:63],
                 "-qmp", f"unix:{self.qmp_dir / 'qmp.sock'},server=on,wait=off",
                 "-netdev", f"user,id=kr0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
                 "-device", "virtio-net-pci,netdev=kr0",
                 "-fw_cfg", f"name=opt/kregress/host_key,file={keys / 'host_ed25519.dropbear'}",
                 "-fw_cfg", f"name=opt/kregress/authorized_keys,file={keys / 'authorized_keys'}"]
        return own_guest_command(vng_qemu_command(self.vng_args(), self.accel), initramfs=self.initramfs.path,
                                 append=append, extra=extra, kernel=self.pvh_kernel,
                                 cpu=self.tcg_cpu if self.accel == "tcg" else None, arch=self.kernel.spec.arch)

    @property
    def tcg_cpu(self) -> str:
        return ",".join(part for part in [TCG_CPU[self.kernel.spec.arch], self.kernel.spec.tcg_cpu_flags] if part)

    def start(self) -> BootInfo:
        preflight(self.kernel)
        notes = []
        # A state QEMU refused to load is removed and saved anew (once): restoring it again
        # would fail again at every start, and a new save is what a CI cache then keeps.
        for _ in range(2) if self.snapshots is not None else ():
            try:
                self.boot = self._start_from_snapshot()
                self.snapshot_note = "; ".join(notes) or self.snapshot_note     # or why it was rebuilt
                return self.boot
            except SnapshotRefused as err:
                self._forget_snapshot()
                self.snapshots.remove_refused(err.snapshot)
                notes.append(f"{err}: removed")
                self.snapshot_events.append(recovery.event("restore-fell-back", f"{err}: removed, booted anew"))
            except SnapshotSaveFailed as err:
                self._forget_snapshot()
                notes.append(f"snapshot not saved, booted instead: {err}")
                self.snapshot_events.append(recovery.event("save-failed", str(err)))
                break
            except (SnapshotError, QMPError, GuestLost) as err:
                qemu = "; ".join(self.qemu_errors())
                self._forget_snapshot()
                notes.append(f"snapshot not used, booted instead: {err}" + (f" (QEMU: {qemu})" if qemu else ""))
                self.snapshot_events.append(recovery.event("restore-fell-back", notes[-1]))
                break
        self.snapshot_note = "; ".join(notes) or None
        self.boot = self._boot_with_retries()
        return self.boot

    def _forget_snapshot(self) -> None:
        self.stop()
        self.guest_keys = self.keys

    def _boot_with_retries(self) -> BootInfo:
        errors = []
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                boot = self._boot_once(attempt)
                boot.retries = tuple(f"{error.splitlines()[0]} ({log.name})" for error, log in errors)
                return boot
            except BootError as err:
                errors.append((str(err), self.console_log))
                self.stop()
                if not err.retryable:
                    break
        raise BootError(f"{self.kernel.id}: boot failed after {len(errors)} attempt(s):\n"
                        + "\n".join(error for error, _ in errors), retryable=False)

    # -- snapshots: boot once, save, restore ever after

    def snapshot_key(self) -> str:
        command = self.command(0)
        parts = {"qemu": qemu_version(command[0]), "kernel": self.kernel_digest,
                 "initramfs": self.initramfs.path.name, "image": self.image.digest}
        if guest_runs_host_cpu(command):
            parts["host_cpu"] = host_cpu().identity     # a state saved on one CPU is never restored on another
        return snapshot_key(command, parts)

    def _start_from_snapshot(self) -> BootInfo:
        key = self.snapshot_key()
        # One process boots and saves a kernel; another that needs it meanwhile (a kernel's
        # tests spread over workers) waits here and then restores what the first one saved.
        # Restoring needs no lock: processes restoring one snapshot at once do not wait for each other.
        with self.snapshots.lock(self.kernel.id, key):
            found = self.snapshots.find(self.kernel.id, key)
            problem = self.snapshots.verify(found) if found else None
            if found and not problem and not BootLog.stored_in(found.directory):
                problem = "no boot log stored with it (saved by an older kregress)"
                self.snapshots.remove(found.directory)
            if not found or problem:
                if problem:
                    self.snapshot_note = f"snapshot {found.directory.name} discarded and rebuilt: {problem}"
                    self.snapshot_events.append(recovery.event("discarded", self.snapshot_note))
                return self._boot_and_save(key)
        return self._restore(found)

    def _restore(self, snapshot: Snapshot) -> BootInfo:
        manifest = snapshot.manifest
        try:        # the saved boot's log: judged again on every restore
            kernel_log = BootLog.load(snapshot.directory, f"snapshot {snapshot.directory.name} "
                                      f"(booted {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(manifest['saved_at']))})")
        except BootLogMissing as err:
            raise SnapshotError(str(err)) from None
        self.guest_keys = RunKeys(snapshot.keys_dir)
        self.port = free_port()
        # the same command line as the save, plus where the state comes from
        cmd, started = self._spawn(self.port, label="restore",
                                   extra=["-incoming", f"exec:cat '{snapshot.state}'"])
        try:
            qmp = QMP(self.qmp_dir / "qmp.sock", timeout=30)
            try:
                qmp.wait_status("running", timeout=120)     # input sent before this would be lost
            finally:
                qmp.close()
        except QMPError as err:
            refusal = self._load_refusal()
            if refusal:
                raise SnapshotRefused(snapshot, f"QEMU refused to load snapshot {snapshot.directory.name}: "
                                                f"{refusal}") from None
            raise err
        phases = {"restore_running": round(time.monotonic() - started, 2)}
        self.session = GuestSession(self.port, self.guest_keys, connect_timeout=30)
        phases["ssh_connected"] = round(time.monotonic() - started, 2)
        self.session.start_agent(AGENT_PORT, timeout=30)
        phases["agent_ready"] = round(time.monotonic() - started, 2)
        self._adopt_run_keys()
        self.snapshots.touch(snapshot)
        with open(self.console_log, "a") as log:      # a restored guest prints no ready marker itself
            log.write(f"# kregress: RESTORED from {snapshot.directory.name}: {phases}\n")
        return BootInfo(release=manifest["release"], lsm=manifest["lsm"], page_size=manifest.get("page_size"),
                        seconds=phases["agent_ready"], attempts=1,
                        console_log=self.console_log, cmdline=shlex.join(cmd), phases=phases,
                        initramfs_modules=self.initramfs.modules, entry=manifest["entry"], how="restored",
                        snapshot=snapshot.directory.name, kernel_log=kernel_log)

    def _boot_and_save(self, key: str) -> BootInfo:
        staging = self.snapshots.staging(self.kernel.id, key)
        try:
            self.guest_keys = RunKeys.create(staging / "ssh")      # the snapshot's own keys
            boot = self._boot_with_retries()
            started = time.monotonic()
            self.session.say_goodbye()  # the agent waits for a new connection in the saved state ...
            self.session.close()        # ... and no connection of this run lives on in it
            self.session = None
            qmp = QMP(self.qmp_dir / "qmp.sock", timeout=30)
            try:
                boot.kernel_log.save(staging)
                qmp.migrate_to_file(staging / "state", errors=self.qmp_dir / "save-errors")
            except (QMPError, OSError) as err:
                raise SnapshotSaveFailed(recovery.save_failure(str(err), staging)) from None
            finally:
                qmp.close()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)      # no half-made snapshot stays behind
            raise
        save_seconds = round(time.monotonic() - started, 2)
        snapshot = self.snapshots.commit(staging, self.kernel.id, key, {
            "release": boot.release, "lsm": boot.lsm, "page_size": boot.page_size, "entry": boot.entry,
            "boot_phases": boot.phases,
            "package": self.kernel.package, "package_version": self.kernel.package_version,
            "image": self.image.digest, "save_seconds": save_seconds})
        # This run goes on in a guest restored from the file: the first run is then exactly
        # what every later one will be, and the file has been proven to load.
        self.stop()
        restored = self._restore(snapshot)
        restored.how, restored.save_seconds = "booted+saved", save_seconds
        restored.attempts, restored.retries, restored.kernel_log = boot.attempts, boot.retries, boot.kernel_log
        restored.phases = {**boot.phases, **{f"then_{name}": value for name, value in restored.phases.items()}}
        restored.seconds = round(boot.seconds + save_seconds + restored.seconds, 2)
        return restored

    def _load_refusal(self, wait: float = 10) -> str | None:
        """Why QEMU would not load a state, when it exited over it (its error lines, else its exit status)."""
        deadline = time.monotonic() + wait
        while self.proc is not None and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.proc is None or self.proc.poll() is None:
            return None     # still running: not a refusal of the state
        return " / ".join(self.qemu_errors()) or f"qemu exited with {self.proc.returncode} while loading it"

    def _adopt_run_keys(self) -> None:
        """From now on the guest answers to this run's keys only, and its clock is the host's
        (a restored guest's clock resumes from the moment it was saved). This connection,
        made with the snapshot's own key, goes on; dropbear reads authorized_keys at each
        login and is restarted on the run's host key in the background, off the test's path."""
        directory = "/run/kregress/ssh"
        try:
            self.session.put_bytes((self.keys.directory / "authorized_keys").read_bytes(),
                                   f"{directory}/authorized_keys", 0o600)
            self.session.put_bytes((self.keys.directory / "host_ed25519.dropbear").read_bytes(),
                                   f"{directory}/host_key", 0o600)
            self.session.set_clock(time.time())
        except GuestLost as err:
            raise SnapshotError(f"could not give the guest this run's keys: {err}") from None
        result = self.session.run(["sh", "-c", "/run/kregress/start_sshd.sh > /dev/null 2>&1 &"], timeout=30)
        if result.rc != 0:
            raise SnapshotError(f"could not restart the guest's SSH server on this run's keys: {result.stderr.strip()}")

    def _spawn(self, port: int, label: str = "boot", extra: list[str] = ()) -> tuple[list[str], float]:
        (self.run_dir / "console").mkdir(parents=True, exist_ok=True)
        number = 1      # a kernel rebooted after a panic keeps its earlier logs
        while (self.run_dir / "console" / f"{self.kernel.id}.{label}{number}.log").exists():
            number += 1
        self.console_log = self.run_dir / "console" / f"{self.kernel.id}.{label}{number}.log"
        cmd = self.command(port) + list(extra)
        started = time.monotonic()
        with open(self.console_log, "w") as log:
            log.write("# " + shlex.join(cmd) + "\n")
            log.flush()
            self.proc = spawn(cmd, stdout=log, stderr=log, cwd="/tmp")
        return cmd, started

    def probe(self) -> ProbeResult:
        """Does this accelerator bring the guest to userspace? (the KVM probe) A failure is
        KVM's or QEMU's only when they said so on the console; anything else (our
        initramfs, the kernel itself, a timeout) is reported as the probe not running."""
        try:
            preflight(self.kernel)
            _, started = self._spawn(free_port(), label="probe")
            self._wait_ready(started)
            return ProbeResult(True, "ok")
        except BootError as err:
            said = self.qemu_errors()
            if said:
                return ProbeResult(False, " / ".join(said)[:300], refused_by="kvm" if "KVM" in said[0] else "qemu")
            return ProbeResult(False, f"{self.kernel.id}: {str(err).splitlines()[0][:200]}")
        finally:
            self.stop()

    def qemu_errors(self) -> list[str]:
        """The errors QEMU (or KVM through it) printed on this VM's last console log."""
        if not self.console_log or not self.console_log.exists():
            return []
        return [match.group(0).strip() for match in QEMU_ERROR.finditer(self.console_log.read_text(errors="replace"))]

    def _boot_once(self, attempt: int) -> BootInfo:
        self.port = free_port()
        cmd, started = self._spawn(self.port)
        ready = self._wait_ready(started)
        phases = self._phases(ready, time.monotonic() - started)
        try:
            self.session = GuestSession(self.port, self.guest_keys, connect_timeout=60)
            phases["ssh_connected"] = round(time.monotonic() - started, 2)
            self.session.start_agent(AGENT_PORT)
            kmsg = self.session.collect_dmesg()       # the agent's first reply: kmsg from its first line
        except GuestLost as err:
            raise BootError(f"attempt {attempt}: guest booted but SSH/agent failed: {err}\n"
                            + self.console_tail()) from err
        phases["agent_ready"] = round(time.monotonic() - started, 2)
        return BootInfo(release=ready.group(1), lsm=ready.group(2),
                        page_size=int(ready.group(3)) * 1024 if ready.group(3) else None, seconds=phases["agent_ready"],
                        attempts=attempt, console_log=self.console_log, cmdline=shlex.join(cmd), phases=phases,
                        initramfs_modules=self.initramfs.modules, entry="pvh" if self.pvh_kernel else "bzImage",
                        kernel_log=BootLog.of_boot(kmsg, self.console_log))

    def _phases(self, ready: re.Match, host_seconds: float) -> dict:
        """Boot phases on the host's clock, placing the guest's own timestamps by the
        moment the ready marker was seen (guest clock = host clock minus kernel start)."""
        kernel_start = max(0.0, host_seconds - float(ready.group(4)))
        text = self.console_log.read_text(errors="replace")
        phases = {"kernel_start": round(kernel_start, 2)}
        for name, uptime in PHASE.findall(text):
            if name in ("kernel_done", "init_done"):
                phases[name] = round(kernel_start + float(uptime), 2)
        phases["sshd_ready"] = round(host_seconds, 2)
        return phases

    def _wait_ready(self, started: float) -> re.Match:
        deadline = started + self.boot_timeout
        while time.monotonic() < deadline:
            text = self.console_log.read_text(errors="replace")
            ready = READY.search(text)
            if ready:
                return ready
            failed = GUEST_FAIL.search(text)
            if failed:
                raise BootError(f"guest set-up failed: {failed.group(1)}\n" + self.console_tail(), retryable=False)
            fatal = FATAL.search(text)
            if fatal:
                time.sleep(1)   # let the rest of the panic reach the log
                # an early-boot Oops can be a TCG code-patching flake worth one retry; a panic is not
                raise BootError(f"{fatal.group(0).strip()}\n" + self.console_around(fatal.start()),
                                retryable=fatal.group(0).startswith("Oops"))
            if self.proc.poll() is not None:
                raise BootError(f"qemu exited with {self.proc.returncode} before the guest was ready\n"
                                + self.console_tail())
            time.sleep(0.05)
        raise BootError(f"no ready marker within {self.boot_timeout:.0f}s ({self.accel})\n" + self.console_tail())

    def console_around(self, offset: int, before: int = 15, after: int = 10) -> str:
        """The console lines leading up to a fatal line: the cause is usually above the trace."""
        text = self.console_log.read_text(errors="replace")
        lines = text.splitlines()
        at = text.count("\n", 0, offset)
        picked = lines[max(0, at - before): at + after]
        return f"console lines around it ({self.console_log}):\n" + "\n".join("  | " + l for l in picked)

    def console_tail(self, lines: int = 25) -> str:
        if not self.console_log or not self.console_log.exists():
            return "(no console log)"
        tail = self.console_log.read_text(errors="replace").splitlines()[-lines:]
        return f"last console lines ({self.console_log}):\n" + "\n".join("  | " + l for l in tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def qemu_peak_rss_mb(self) -> float | None:
        """qemu's peak resident memory so far (VmHWM), found among our process group."""
        if not self.alive():
            return None
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)
                comm = fields[0].split("(", 1)[1]
                pgid = int(fields[1].split()[2])
                if pgid == self.proc.pid and comm.startswith("qemu-system"):
                    status = (stat.parent / "status").read_text()
                    kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
                    return round(kb / 1024, 1)
            except (OSError, ValueError, IndexError, StopIteration):
                continue
        return None

    def stop(self) -> None:
        if self.session:
            self.session.close()
            self.session = None
        if self.proc:
            kill_group(self.proc)
            self.proc = None
        if self.qmp_dir:
            shutil.rmtree(self.qmp_dir, ignore_errors=True)
            self.qmp_dir = None
