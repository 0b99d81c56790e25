"""What one start of a kernel's guest came to (BootInfo): how, how fast, on which kernel."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kregress.kernel_log.boot import BootLog


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
