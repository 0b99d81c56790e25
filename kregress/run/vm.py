"""Run one kernel's QEMU: spawn it, wait for the guest to be ready, stop it.

The command comes from kregress/run/qemu_command.py (vng's dry run and our guest: our
initramfs, the read-only guest image, the run's SSH keys through fw_cfg, a port forward
on 127.0.0.1, nothing of the host mounted); its inputs are prepared by
kregress/run/boot_inputs.py. A start restores the kernel's snapshot when there is one.
"""
from __future__ import annotations

import re
import shlex
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kregress.files import sha256_file
from kregress.kernel_log.boot import BootLog, BootLogMissing
from kregress.kernels.kernel import Kernel
from kregress.procs import kill_group, spawn
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.report import recovery
from kregress.run.accel import ProbeResult
from kregress.run.boot_inputs import BootFiles, describe, dry_run, preflight, prepare, snapshot_key_of
from kregress.run.errors import BootError
from kregress.run.guest import GuestLost, GuestSession, RunKeys
from kregress.run.qemu_command import GuestMachine, qemu_command
from kregress.run.qmp import QMP, QMPError
from kregress.run.snapshot import Snapshot, SnapshotCache, SnapshotError, SnapshotRefused

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
BOOT_ATTEMPTS = 2
AGENT_PORT = 7001


class SnapshotSaveFailed(SnapshotError):
    """The guest booted but its state could not be saved; the message says why."""


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
        return snapshot_key_of(self.machine(0), self.kernel_digest, self.image.digest)

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
        cmd, started = self._spawn(self.port, label="restore", incoming=snapshot.state)
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

    def _spawn(self, port: int, label: str = "boot", incoming: Path | None = None) -> tuple[list[str], float]:
        (self.run_dir / "console").mkdir(parents=True, exist_ok=True)
        number = 1      # a kernel rebooted after a panic keeps its earlier logs
        while (self.run_dir / "console" / f"{self.kernel.id}.{label}{number}.log").exists():
            number += 1
        self.console_log = self.run_dir / "console" / f"{self.kernel.id}.{label}{number}.log"
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
