"""A guest's serial console log: where each start's log goes, and what its lines say.

The guest's init prints KREGRESS: markers (ready, phases, its own failure); the kernel and
QEMU print the lines that end a boot whatever the timeout says. Every start of a kernel
(boot, restore, probe) gets a log of its own, numbered: a kernel restarted after a panic
keeps its earlier logs.
"""
from __future__ import annotations

import re
from pathlib import Path

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


def next_log(run_dir: Path, kernel_id: str, label: str) -> Path:
    """The next unused console log of this kernel and kind of start (boot, restore, probe)."""
    directory = run_dir / "console"
    directory.mkdir(parents=True, exist_ok=True)
    number = 1
    while (directory / f"{kernel_id}.{label}{number}.log").exists():
        number += 1
    return directory / f"{kernel_id}.{label}{number}.log"


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def qemu_errors(log: Path | None) -> list[str]:
    """The errors QEMU (or KVM through it) printed on a console log."""
    if not log or not log.exists():
        return []
    return [match.group(0).strip() for match in QEMU_ERROR.finditer(read(log))]


def phases(text: str, ready: re.Match, host_seconds: float) -> dict:
    """Boot phases on the host's clock, placing the guest's own timestamps by the
    moment the ready marker was seen (guest clock = host clock minus kernel start)."""
    kernel_start = max(0.0, host_seconds - float(ready.group(4)))
    found = {"kernel_start": round(kernel_start, 2)}
    for name, uptime in PHASE.findall(text):
        if name in ("kernel_done", "init_done"):
            found[name] = round(kernel_start + float(uptime), 2)
    found["sshd_ready"] = round(host_seconds, 2)
    return found


def around(log: Path, offset: int, before: int = 15, after: int = 10) -> str:
    """The console lines leading up to a fatal line: the cause is usually above the trace."""
    text = read(log)
    lines = text.splitlines()
    at = text.count("\n", 0, offset)
    picked = lines[max(0, at - before): at + after]
    return f"console lines around it ({log}):\n" + "\n".join("  | " + l for l in picked)


def tail(log: Path | None, lines: int = 25) -> str:
    if not log or not log.exists():
        return "(no console log)"
    last = read(log).splitlines()[-lines:]
    return f"last console lines ({log}):\n" + "\n".join("  | " + l for l in last)
