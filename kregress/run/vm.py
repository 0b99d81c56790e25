"""Run one kernel's QEMU: spawn it, wait for its guest to be ready, stop it.

The command is written by kregress/run/qemu_command.py (vng's dry run and our guest: our
initramfs, the read-only guest image, the run's SSH keys through fw_cfg, a port forward
on 127.0.0.1, nothing of the host mounted) from inputs kregress/run/boot_inputs.py
prepares. A start restores the kernel's snapshot when there is one
(kregress/run/snapshot_start.py); the console log is read by kregress/run/console.py.
"""
from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from functools import cached_property
from pathlib import Path

from kregress.files import sha256_file
from kregress.kernel_log.boot import BootLog
from kregress.kernels.kernel import Kernel
from kregress.procs import group_peak_rss_mb, kill_group, spawn
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.run import console, snapshot_start
from kregress.run.accel import ProbeResult
from kregress.run.boot_inputs import BootFiles, describe, dry_run, preflight, prepare, snapshot_key_of
from kregress.run.boot_record import BootInfo
from kregress.run.errors import BootError
from kregress.run.guest import AGENT_PORT, GuestLost, GuestSession, RunKeys, free_port
from kregress.run.qemu_command import GuestMachine, qemu_command
from kregress.run.qmp import QMP, QMPError
from kregress.run.snapshot import SnapshotCache

BOOT_TIMEOUT_S = {"kvm": 90, "tcg": 300}
BOOT_ATTEMPTS = 2


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

    @cached_property
    def kernel_digest(self) -> str:
        """The kernel image's SHA-256, once per VM: the snapshot key and the PVH cache use it."""
        return sha256_file(self.kernel.image)

    @cached_property
    def files(self) -> BootFiles:
        """Once per VM: the key, the boot and every restore use the same initramfs and entry."""
        return prepare(self.kernel, self.accel, self.image, self.kernel_digest)

    @property
    def initramfs(self) -> Initramfs:
        return self.files.initramfs

    @property
    def pvh_kernel(self) -> Path | None:
        return self.files.entry_kernel

    def machine(self, port: int, incoming: Path | None = None) -> GuestMachine:
        """This VM's guest as qemu_command takes it, answering SSH on port."""
        self.qmp_dir = self.qmp_dir or Path(tempfile.mkdtemp(prefix="kr-qmp-"))   # short: a socket path
        return describe(self.kernel, self.accel, self.image, self.files, run_dir=self.run_dir,
                        keys_dir=self.guest_keys.directory, qmp_socket=self.qmp_dir / "qmp.sock", port=port,
                        cpus=self.cpus, memory=self.memory, incoming=incoming)

    def command(self, port: int, incoming: Path | None = None) -> list[str]:
        machine = self.machine(port, incoming)
        return qemu_command(dry_run(machine), machine)

    def forward_port(self, guest_port: int) -> int:
        """A second host port (127.0.0.1) forwarded to guest_port, added to the running guest's
        user netdev (QMP hostfwd_add), so it lives on no command line and in no snapshot key:
        connections to it arrive in the guest from outside, through its network interface."""
        host_port = free_port()
        self._monitor(f"hostfwd_add kr0 tcp:127.0.0.1:{host_port}-:{guest_port}", done="")
        return host_port

    def unforward_port(self, host_port: int) -> None:
        self._monitor(f"hostfwd_remove kr0 tcp:127.0.0.1:{host_port}", done="removed")

    def _monitor(self, command: str, done: str) -> None:
        """One human monitor command; QEMU's answer must be `done` (or contain it; "" = silence)."""
        qmp = QMP(self.qmp_dir / "qmp.sock", timeout=30)
        try:
            said = str(qmp.execute("human-monitor-command", **{"command-line": command}) or "").strip()
        finally:
            qmp.close()
        if (done and done not in said) or (not done and said):
            raise QMPError(f"{command}: {said or 'no answer'}")

    def snapshot_key(self) -> str:
        return snapshot_key_of(self.machine(0), self.kernel_digest, self.image.digest)

    def start(self) -> BootInfo:
        preflight(self.kernel)
        if self.snapshots is not None:
            self.boot = snapshot_start.start(self)
        else:
            self.snapshot_note = None
            self.boot = self._boot_with_retries()
        return self.boot

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

    def _spawn(self, port: int, label: str = "boot", incoming: Path | None = None) -> tuple[list[str], float]:
        self.console_log = console.next_log(self.run_dir, self.kernel.id, label)
        cmd = self.command(port, incoming)
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
        return console.qemu_errors(self.console_log)

    def _boot_once(self, attempt: int) -> BootInfo:
        self.port = free_port()
        cmd, started = self._spawn(self.port)
        ready = self._wait_ready(started)
        phases = console.phases(console.read(self.console_log), ready, time.monotonic() - started)
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

    def _wait_ready(self, started: float):
        """The console's ready marker (a match of console.READY), waited for until the boot timeout;
        the guest's own failure, a fatal line or QEMU's exit end the wait with a BootError."""
        deadline = started + self.boot_timeout
        while time.monotonic() < deadline:
            text = console.read(self.console_log)
            ready = console.READY.search(text)
            if ready:
                return ready
            failed = console.GUEST_FAIL.search(text)
            if failed:
                raise BootError(f"guest set-up failed: {failed.group(1)}\n" + self.console_tail(), retryable=False)
            fatal = console.FATAL.search(text)
            if fatal:
                time.sleep(1)   # let the rest of the panic reach the log
                # an early-boot Oops can be a TCG code-patching flake worth one retry; a panic is not
                raise BootError(f"{fatal.group(0).strip()}\n" + console.around(self.console_log, fatal.start()),
                                retryable=fatal.group(0).startswith("Oops"))
            if self.proc.poll() is not None:
                raise BootError(f"qemu exited with {self.proc.returncode} before the guest was ready\n"
                                + self.console_tail())
            time.sleep(0.05)
        raise BootError(f"no ready marker within {self.boot_timeout:.0f}s ({self.accel})\n" + self.console_tail())

    def console_tail(self, lines: int = 25) -> str:
        return console.tail(self.console_log, lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def qemu_peak_rss_mb(self) -> float | None:
        """qemu's peak resident memory so far (VmHWM), found among our process group."""
        return group_peak_rss_mb(self.proc.pid, "qemu-system") if self.alive() else None

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
