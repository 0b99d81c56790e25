"""One booted kernel and everything a test needs from it: drivers pushed, commands run."""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import zlib

from kregress.provision import programs as build
from kregress.provision.initramfs import InitramfsError, builtin_names, load_order
from kregress.kernels.modules import ModuleError, module_files
from kregress.kernels import evidence, vmlinux
from kregress.kernel_log import splats
from kregress.run.accel import AccelChoice
from kregress.run.guest import CommandResult, GuestLost, RunKeys
from kregress.provision.image import GuestImage
from kregress.run.snapshot import SnapshotCache
from kregress.kernels.kernel import Kernel
from kregress.arch import arch as arch_of
from kregress.run.hostcpu import host_cpu
from kregress.run.qemu_command import guest_runs_host_cpu, qemu_option
from kregress.run import snapshot_start
from kregress.run.boot_record import BootInfo, StartFailed, StartReport
from kregress.run.vm import VM

GUEST_BIN = "/tmp/kregress/bin"
GUEST_MODULES = "/tmp/kregress/modules"


class GuestFailure(Exception):
    """The guest panicked, hung or vanished during a test; the VM has been stopped and the
    next test gets a new one (restored from the kernel's snapshot, or booted)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class VMOptions:
    cpus: int = 1
    memory: str = "1G"
    boot_timeout: float | None = None
    snapshots: bool = True      # restore a saved guest instead of booting (kregress/run/snapshot.py)
    allowlist: list = field(default_factory=list)      # splats.Allowed: known-benign kernel log lines


class KernelSession:
    def __init__(self, kernel: Kernel, accel: AccelChoice, run_dir: Path, keys: RunKeys, image: GuestImage,
                 options: VMOptions | None = None):
        self.kernel, self.accel, self.run_dir, self.image = kernel, accel, run_dir, image
        options = options or VMOptions()
        self.vm = VM(kernel, accel.accel, run_dir, keys, image, cpus=options.cpus, memory=options.memory,
                     boot_timeout=options.boot_timeout)
        self.snapshots = SnapshotCache() if options.snapshots else None
        self.started: StartReport | None = None     # what start() came to, failed or not
        self.allowlist = options.allowlist
        self._pushed: dict[str, str] = {}
        # the current test's record: its kernel log lines and the seconds spent in the guest
        self.test_record: dict = {"dmesg": [], "guest_seconds": 0.0}
        self.programs_rebuilt = 0
        self.start_seconds: float | None = None    # what start() took; goes to the first test's record

    def begin_test(self, record: dict) -> None:
        """From now on commands, kernel log lines and pushes go to this test's record, and
        the lines logged since the previous test ended go to its dmesg_before (asked for
        now, read with the next reply: no wait of its own). The first test on this VM also
        gets the seconds its start took (vm_start_seconds)."""
        self.test_record = record
        if self.start_seconds is not None:
            record["vm_start_seconds"], self.start_seconds = self.start_seconds, None
        try:
            self.vm.connection.collect_dmesg_soon(record.setdefault("dmesg_before", []))
        except GuestLost as err:
            raise self._lost(f"asking for the kernel log: {err}") from None

    def start(self, since: float | None = None) -> "KernelSession":
        """Restore or boot the kernel's guest (the snapshot policy's choice); a failure raises
        StartFailed, its report kept as `started` too. since: when the change of VM began (the
        previous VM's stop counts), for start_seconds."""
        since = time.monotonic() if since is None else since
        try:
            self.started = snapshot_start.start(self.vm, self.snapshots)
        except StartFailed as err:
            self.started = err.report
            raise
        self.boot.kernel_log.judge(self.kernel.id, self.allowlist)     # on a restore: the saved boot's log
        self.start_seconds = round(time.monotonic() - since, 3)
        return self

    @property
    def boot(self) -> BootInfo | None:
        return self.started.boot if self.started else None

    @property
    def kernel_log(self):
        """The boot's kernel log (bootlog.BootLog), judged."""
        return self.boot.kernel_log

    def splats(self, lines: list[str]) -> list[splats.Splat]:
        return splats.find(lines, self.kernel.id, self.allowlist)

    @property
    def release(self) -> str:
        return self.boot.release if self.boot else ""

    @property
    def page_size(self) -> int | None:
        return self.boot.page_size if self.boot else None

    @property
    def active_lsms(self) -> list[str]:
        return self.boot.lsm.split(",") if self.boot else []

    def driver_path(self, name: str, root: Path | None = None) -> str:
        """Build (cached by content) and push a scenario driver once per VM; root: where
        its progs/ and guest/ are (the project's own by default, or a reproducer's)."""
        key = f"{root or ''}:{name}"
        if key not in self._pushed:
            program = build.build(name, root, arch=self.kernel.spec.arch)
            self.programs_rebuilt += program.rebuilt
            remote = f"{GUEST_BIN}/{name}"
            started = time.monotonic()
            self.vm.connection.put(program.driver, remote)
            pushed = self.test_record.get("push_seconds", 0.0) + time.monotonic() - started
            self.test_record["push_seconds"] = round(pushed, 4)     # the benchmark's overhead parts
            self._pushed[key] = remote
        if root:        # a reproducer's own program: its replay needs to know where it lives
            self.test_record.setdefault("programs_from", {})[name] = str(root)
        return self._pushed[key]

    def run_driver(self, name: str, *args, timeout: float = 60, root: Path | None = None) -> CommandResult:
        return self.run([self.driver_path(name, root), *map(str, args)], timeout=timeout)

    def forward_port(self, guest_port: int) -> int:
        """A host port whose connections reach guest_port from outside the guest (per run: in
        no snapshot key); unforward_port() takes it away again."""
        return self.vm.forward_port(guest_port)

    def unforward_port(self, host_port: int) -> None:
        self.vm.unforward_port(host_port)

    def load_modules(self, names: list[str]) -> dict:
        """Push the kernel's own modules (decompressed, with what they depend on, in order) and
        insmod them with the image's busybox: the guest has no modprobe tree of its kernel.
        Returns what happened per module ({"error": ...} when the kernel lacks one): an
        observation, as a kernel refusing a program is."""
        kernel = self.kernel
        if kernel.modules_dir is None or not kernel.modules_dir.is_dir():
            return {"error": f"no modules directory for {kernel.id}"}
        builtin = builtin_names(kernel.modules_dir)
        try:
            order = load_order(names, module_files(kernel.modules_dir), builtin)
        except (InitramfsError, ModuleError) as err:
            return {"error": str(err)}
        loaded = {}
        for name, ko in order:
            remote = f"{GUEST_MODULES}/{name}.ko"
            # compressed: the guest inflates it; SSH into an emulated guest is what a push costs
            self.vm.connection.put_bytes(zlib.compress(ko, 6), remote, compressed=True)
            result = self.run(["busybox", "insmod", remote])
            loaded[name] = "loaded" if result.rc == 0 else \
                "already loaded" if "exists" in result.stderr else f"insmod failed: {result.stderr.strip()[-300:]}"
        loaded.update({name: "built in" for name in names if name in builtin})
        return loaded

    def run(self, argv: list[str], timeout: float = 60) -> CommandResult:
        """Run in the guest; a panic, a hang or a lost guest stops this VM and raises GuestFailure."""
        what = " ".join(map(str, argv))
        try:
            result = self.vm.connection.run(argv, timeout=timeout)
        except GuestLost as err:
            raise self._lost(f"while running {what}: {err}") from None
        self.test_record["dmesg"].extend(result.dmesg)
        self.test_record["guest_seconds"] = round(self.test_record.get("guest_seconds", 0.0) + result.seconds, 4)
        # what ran, drivers by name: to replay a test elsewhere (the benchmark's naive run)
        shown = [argv[0].removeprefix(GUEST_BIN + "/"), *map(str, argv[1:])]
        self.test_record.setdefault("commands", []).append(shown)
        if result.timed_out:
            self.stop()
            dump = "\n".join(result.dmesg[-80:]) or "(no kernel log lines)"
            raise GuestFailure("guest-hang", f"{self.kernel.id}: {what} still running after {timeout}s; "
                               f"killed.\n{result.stderr[-3000:]}\n"
                               f"Kernel log (sysrq w: blocked tasks):\n{dump}\n{self.replacement()}.")
        return result

    def collect_dmesg(self, into: str = "dmesg") -> list[str]:
        """Kernel log lines since the last collection, added to the test record's `into`."""
        try:
            lines = self.vm.connection.collect_dmesg()
        except GuestLost as err:
            raise self._lost(f"collecting the kernel log: {err}") from None
        self.test_record.setdefault(into, []).extend(lines)
        return lines

    def trailing_dmesg(self) -> list[str]:
        """What the kernel logged after the last test's end, before this VM is stopped in order."""
        if not self.alive():
            return []
        try:
            return self.vm.connection.collect_dmesg(timeout=10)
        except GuestLost:
            return []

    def _lost(self, what: str) -> GuestFailure:
        # a panicking guest exits qemu (panic=-1, -no-reboot): give the console a moment
        deadline = time.monotonic() + 10
        while self.vm.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        console = self.vm.console_tail(60)
        kind = "guest-panic" if "Kernel panic" in console else "guest-lost"
        self.stop()
        return GuestFailure(kind, f"{self.kernel.id}: guest lost {what}.\n{console}\n{self.replacement()}.")

    def replacement(self) -> str:
        if self.snapshots is not None:
            return "VM stopped; the next test gets one restored from the kernel's snapshot"
        return "VM stopped; the next test gets a freshly booted one"

    def alive(self) -> bool:
        return self.vm.alive() and self.vm.connection is not None

    @property
    def evidence(self) -> dict[str, dict[str, str]]:
        """What the kernel binary and its package changelog say about each fact."""
        return evidence.gather(self.kernel.image, self.vm.kernel_digest)

    def info(self) -> dict:
        boot = self.boot
        return {**self.kernel.describe(), "uname_r": self.release, "arch": self.kernel.spec.arch,
                "page_size": boot.page_size if boot else None, "accel": self.accel.accel,
                "accel_reason": self.accel.reason,
                "cpu_model": self.cpu_record()["qemu_cpu"] if boot else None,
                "cpu": self.cpu_record() if boot else None,
                "accel_probe_error": self.accel.probe_error,
                "boot_seconds": boot.seconds if boot else None,
                "boot_attempts": boot.attempts if boot else None, "lsm": boot.lsm if boot else None,
                "boot_phases": boot.phases if boot else None,
                "initramfs_modules": list(boot.initramfs_modules) if boot else None,
                "boot_entry": boot.entry if boot else None,
                "boot_how": boot.how if boot else None, "snapshot": boot.snapshot if boot else None,
                "save_seconds": boot.save_seconds if boot else None,
                "snapshot_note": self.started.note if self.started else None,
                "snapshot_events": list(self.started.events) if self.started else [],
                "boot_retries": list(boot.retries) if boot else [],
                "boot_log": boot.kernel_log.summary() if boot and boot.kernel_log else None,
                "boot_problems": boot.kernel_log.problems if boot and boot.kernel_log else None,
                "boot_splats_allowed": [s for s in boot.kernel_log.splats if "allowed" in s]
                if boot and boot.kernel_log else None,
                "guest_image": {k: v for k, v in self.image.describe().items() if k != "path"},
                "build_root": build.buildroot.ensure().describe(),
                "console_log": str(boot.console_log) if boot else None,
                "downloaded_bytes": self.kernel.downloaded_bytes, "programs_rebuilt": self.programs_rebuilt,
                "qemu_peak_rss_mb": self.vm.qemu_peak_rss_mb(), "evidence": self.evidence,
                "evidence_coverage": evidence.coverage(self.kernel, self.vm.kernel_digest),
                "image_format": evidence.binary_witness(self.kernel.image, self.vm.kernel_digest)[2],
                "boot_entry_why": self._why_bzimage(boot)}

    def _why_bzimage(self, boot) -> str | None:
        """Why an x86 kernel under TCG was entered through its bzImage (emulated decompression), not PVH."""
        if not boot or boot.entry != "bzImage" or self.accel.accel != "tcg" or not arch_of(self.kernel.spec.arch).pvh:
            return None
        return vmlinux.why_not_pvh(self.kernel.image, self.kernel.config)

    def cpu_record(self) -> dict:
        """The -cpu and -machine the guest really ran with, and the host CPU under it."""
        command = shlex.split(self.boot.cmdline)
        return {"qemu_cpu": qemu_option(command, "-cpu"), "machine": qemu_option(command, "-machine"),
                "guest_sees_host_cpu": guest_runs_host_cpu(command), "host": host_cpu().describe()}

    def stop(self) -> None:
        self.vm.stop()
