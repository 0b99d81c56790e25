"""What one start of a kernel's guest came to: the boot (BootInfo: how, how fast, on which
kernel) and the start's report (StartReport: the boot and what the snapshot policy did)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kregress.kernel_log.boot import BootLog
from kregress.run.errors import BootError


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


@dataclass(frozen=True)
class StartReport:
    """What one start of a kernel's guest came to, as the snapshot policy
    (kregress/run/snapshot_start.py) composed it: the boot or restore (None when the start
    failed), and why a snapshot was rebuilt, not used, refused and removed, or not saved:
    a note for the record and recovery events (kregress/report/recovery.py)."""
    boot: BootInfo | None
    note: str | None = None
    events: tuple[dict, ...] = ()

    @property
    def retries(self) -> tuple:
        return self.boot.retries if self.boot else ()


class StartFailed(BootError):
    """A start that ended with no guest; its report says what the policy did on the way."""

    def __init__(self, error: BootError, report: StartReport):
        super().__init__(str(error), retryable=error.retryable)
        self.report = report
