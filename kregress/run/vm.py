"""One kernel's QEMU process and its guest: boot it, save it, restore it, stop it.

Each operation is the VM's own and returns what happened: boot() -> BootInfo (with its
retries), save(staging) -> Saved, restore(snapshot) -> BootInfo. The VM alone writes its
process, port, QMP directory, console log, guest connection and the keys its guest was
started with. Whether to restore, or to boot and save, is the snapshot policy's
(kregress/run/snapshot_start.py), which composes these.

The command is written by kregress/run/qemu_command.py (vng's dry run and our guest: our
initramfs, the read-only guest image, the run's SSH keys through fw_cfg, a port forward
on 127.0.0.1, nothing of the host mounted) from the guest's stable description and this
start's slots, which kregress/run/boot_inputs.py prepares; the console log is read by
kregress/run/console.py.
"""
from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kregress.arch import arch as arch_of
from kregress.files import sha256_file
from kregress.kernel_log.boot import BootLog, BootLogMissing
from kregress.kernels.kernel import Kernel
from kregress.procs import group_peak_rss_mb, kill_group, spawn
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.run import console
from kregress.run.accel import ProbeResult
from kregress.run.boot_inputs import BootFiles, describe, dry_run, preflight, prepare, run_slots, snapshot_key_of
from kregress.run.boot_record import BootInfo
from kregress.run.errors import BootError
from kregress.run.guest import AGENT_PORT, GuestLost, GuestConnection, RunKeys, free_port
from kregress.run.qemu_command import GuestMachine, RunSlots, qemu_command
from kregress.run.qmp import QMP, QMPError
from kregress.run.snapshot import Snapshot, SnapshotError, SnapshotRefused

BOOT_TIMEOUT_S = {"kvm": 90, "tcg": 300}
BOOT_ATTEMPTS = 2
LOAD_REFUSAL_WAIT_S = 10        # how long QEMU is given to exit over a state it will not load


@dataclass(frozen=True)
class Saved:
    """What VM.save() wrote: the guest's state, and how long saving it took."""
    seconds: float
    files: tuple[Path, ...]


class VM:
    def __init__(self, kernel: Kernel, accel: str, run_dir: Path, keys: RunKeys, image: GuestImage,
                 cpus: int = 1, memory: str = "1G", boot_timeout: float | None = None):
        self.kernel, self.accel, self.run_dir, self.keys, self.image = kernel, accel, run_dir, keys, image
        self.cpus, self.memory = cpus, memory
        self.boot_timeout = boot_timeout or BOOT_TIMEOUT_S[accel]
        # this start's, written by boot(), restore() and stop() only
        self.guest_keys = keys      # what the guest's sshd was started with: the run's, or a snapshot's
        self.proc = None
        self.port: int | None = None
        self.qmp_dir: Path | None = None
        self.connection: GuestConnection | None = None
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

    @cached_property
    def machine(self) -> GuestMachine:
        """This VM's guest as every start of it looks: what its snapshot key covers."""
        return describe(self.kernel, self.accel, self.image, self.files, cpus=self.cpus, memory=self.memory)

    def snapshot_key(self) -> str:
        return snapshot_key_of(self.machine, self.kernel_digest, self.image.digest)

    def slots(self, port: int, incoming: Path | None = None) -> RunSlots:
        """This start's per-run values: a QMP socket of its own, the guest's keys, port and state to load."""
        self.qmp_dir = self.qmp_dir or Path(tempfile.mkdtemp(prefix="kr-qmp-"))   # short: a socket path
        return run_slots(self.kernel, self.run_dir, qmp_socket=self.qmp_dir / "qmp.sock",
                         keys_dir=self.guest_keys.directory, port=port, incoming=incoming)

    def command(self, port: int, incoming: Path | None = None) -> list[str]:
        return qemu_command(dry_run(self.machine), self.machine, self.slots(port, incoming))

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

    # -- the operations

    def boot(self, keys: RunKeys | None = None) -> BootInfo:
        """Boot the guest until its agent answers, trying once more after a retryable failure;
        keys: what its sshd gets (the run's by default; a snapshot's own when it is to be saved).
        Raises BootError naming every attempt's failure."""
        preflight(self.kernel)
        errors = []
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                boot = self._boot_once(attempt, keys or self.keys)
                boot.retries = tuple(f"{error.splitlines()[0]} ({log.name})" for error, log in errors)
                return boot
            except BootError as err:
                errors.append((str(err), self.console_log))
                self.stop()
                if not err.retryable:
                    break
        raise BootError(f"{self.kernel.id}: boot failed after {len(errors)} attempt(s):\n"
                        + "\n".join(error for error, _ in errors), retryable=False)

    def save(self, staging: Path) -> Saved:
        """The booted guest's state, saved into staging/state: its agent waits for a new
        connection in it and no connection of this run lives on in it. QEMU is left paused:
        stop() follows. Raises QMPError or OSError."""
        started = time.monotonic()
        self.connection.say_goodbye()
        self.connection.close()
        self.connection = None
        qmp = QMP(self.qmp_dir / "qmp.sock", timeout=30)
        try:
            qmp.migrate_to_file(staging / "state", errors=self.qmp_dir / "save-errors")
        finally:
            qmp.close()
        return Saved(round(time.monotonic() - started, 2), (staging / "state",))

    def restore(self, snapshot: Snapshot) -> BootInfo:
        """The guest restored from a snapshot, answering to this run's keys. Raises
        SnapshotRefused when QEMU would not load the state, SnapshotError, QMPError or
        GuestLost when the restored guest could not be used."""
        manifest = snapshot.manifest
        try:        # the saved boot's log: judged again on every restore
            kernel_log = BootLog.load(snapshot.directory, f"snapshot {snapshot.directory.name} (booted "
                                      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(manifest['saved_at']))})")
        except BootLogMissing as err:
            raise SnapshotError(str(err)) from None
        self.guest_keys = RunKeys(snapshot.keys_dir)
        self.port = free_port()
        # the same command line as the save, plus where the state comes from
        cmd, started = self._spawn(self.port, label="restore", incoming=snapshot.state)
        try:
            qmp = QMP(self.qmp_dir / "qmp.sock", timeout=30)
            try:
                qmp.wait_status("running", timeout=120)     # input sent before this would be lost
            finally:
                qmp.close()
        except QMPError:
            refusal = self._load_refusal()
            if refusal:
                raise SnapshotRefused(snapshot, f"QEMU refused to load snapshot {snapshot.directory.name}: "
                                                f"{refusal}") from None
            raise
        phases = {"restore_running": round(time.monotonic() - started, 2)}
        self.connection = GuestConnection(self.port, self.guest_keys, connect_timeout=30)
        phases["ssh_connected"] = round(time.monotonic() - started, 2)
        self.connection.start_agent(AGENT_PORT, timeout=30)
        phases["agent_ready"] = round(time.monotonic() - started, 2)
        self._adopt_run_keys()
        with open(self.console_log, "a") as log:      # a restored guest prints no ready marker itself
            log.write(f"# kregress: RESTORED from {snapshot.directory.name}: {phases}\n")
        return BootInfo(release=manifest["release"], lsm=manifest["lsm"], page_size=manifest.get("page_size"),
                        seconds=phases["agent_ready"], attempts=1,
                        console_log=self.console_log, cmdline=shlex.join(cmd), phases=phases,
                        initramfs_modules=self.initramfs.modules, entry=manifest["entry"], how="restored",
                        snapshot=snapshot.directory.name, kernel_log=kernel_log)

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

    # -- their parts

    def _spawn(self, port: int, label: str = "boot", incoming: Path | None = None) -> tuple[list[str], float]:
        self.console_log = console.next_log(self.run_dir, self.kernel.id, label)
        cmd = self.command(port, incoming)
        started = time.monotonic()
        with open(self.console_log, "w") as log:
            log.write("# " + shlex.join(cmd) + "\n")
            log.flush()
            self.proc = spawn(cmd, stdout=log, stderr=log, cwd="/tmp")
        return cmd, started

    def _boot_once(self, attempt: int, keys: RunKeys) -> BootInfo:
        self.guest_keys = keys
        self.port = free_port()
        cmd, started = self._spawn(self.port)
        ready = self._wait_ready(started)
        phases = console.phases(console.read(self.console_log), ready, time.monotonic() - started)
        try:
            self.connection = GuestConnection(self.port, self.guest_keys, connect_timeout=60)
            phases["ssh_connected"] = round(time.monotonic() - started, 2)
            self.connection.start_agent(AGENT_PORT)
            kmsg = self.connection.collect_dmesg()       # the agent's first reply: kmsg from its first line
        except GuestLost as err:
            raise BootError(f"attempt {attempt}: guest booted but SSH/agent failed: {err}\n"
                            + self.console_tail()) from err
        phases["agent_ready"] = round(time.monotonic() - started, 2)
        return BootInfo(release=ready.group(1), lsm=ready.group(2),
                        page_size=int(ready.group(3)) * 1024 if ready.group(3) else None, seconds=phases["agent_ready"],
                        attempts=attempt, console_log=self.console_log, cmdline=shlex.join(cmd), phases=phases,
                        initramfs_modules=self.initramfs.modules,
                        entry="pvh" if self.pvh_kernel else arch_of(self.kernel.spec.arch).image.entry,
                        kernel_log=BootLog.of_boot(kmsg, self.console_log))

    def _load_refusal(self) -> str | None:
        """Why QEMU would not load a state, when it exited over it (its error lines, else its exit status)."""
        deadline = time.monotonic() + LOAD_REFUSAL_WAIT_S
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
            self.connection.put_bytes((self.keys.directory / "authorized_keys").read_bytes(),
                                   f"{directory}/authorized_keys", 0o600)
            self.connection.put_bytes((self.keys.directory / "host_ed25519.dropbear").read_bytes(),
                                   f"{directory}/host_key", 0o600)
            self.connection.set_clock(time.time())
        except GuestLost as err:
            raise SnapshotError(f"could not give the guest this run's keys: {err}") from None
        result = self.connection.run(["sh", "-c", "/run/kregress/start_sshd.sh > /dev/null 2>&1 &"], timeout=30)
        if result.rc != 0:
            raise SnapshotError(f"could not restart the guest's SSH server on this run's keys: "
                                f"{result.stderr.strip()}")

    def qemu_errors(self) -> list[str]:
        """The errors QEMU (or KVM through it) printed on this VM's last console log."""
        return console.qemu_errors(self.console_log)

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
        if self.connection:
            self.connection.close()
            self.connection = None
        if self.proc:
            kill_group(self.proc)
            self.proc = None
        if self.qmp_dir:
            shutil.rmtree(self.qmp_dir, ignore_errors=True)
            self.qmp_dir = None
