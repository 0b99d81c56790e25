"""What the harness did to keep a kernel going, said where people look: boot retries,
snapshot saves that failed, restores that fell back to a boot, snapshots discarded, and
the kernel problems its boot log showed. The records live in results.json's kernels[ID]
(boot_retries, snapshot_events, boot_problems); this module says why a save failed and
renders the lines the terminal summary and the report header show."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

NO_SPACE = re.compile(r"No space left on device|ENOSPC|Disk quota exceeded", re.I)


def save_failure(error: str, directory: Path) -> str:
    """Why saving a guest failed, in words a person can act on. QEMU only sees the pipe
    to the writer break ("Unable to write to command: Broken pipe"); the writer (or the
    free space left) says what happened."""
    try:
        free_mb = shutil.disk_usage(directory).free / (1 << 20)
    except OSError:
        free_mb = None
    where = f"{directory.parent}" + (f", {free_mb:.1f} MB free after the attempt" if free_mb is not None else "")
    if NO_SPACE.search(error):
        return f"no space left for the snapshot in {where} ({error})"
    return f"{error} (snapshot directory {where})"


def event(kind: str, reason: str) -> dict:
    """kind: "save-failed", "restore-fell-back" or "discarded"."""
    return {"event": kind, "reason": reason}


EVENT_TEXT = {"save-failed": "snapshot save failed, the run went on booting",
              "restore-fell-back": "restore failed, fell back to a boot",
              "discarded": "snapshot discarded and rebuilt"}


def kernel_lines(kernel_id: str, info: dict) -> list[str]:
    """One line per thing that happened to this kernel beyond a clean start."""
    lines = [f"{kernel_id}: {info['worker_died']}"] if info.get("worker_died") else []
    if info.get("record_lost"):     # results files before kernels had files of their own
        lines.append(f"{kernel_id}: kernel record lost: {info['record_lost']}")
    for number, reason in enumerate(info.get("boot_retries") or [], 1):
        lines.append(f"{kernel_id}: boot attempt {number} failed and was retried: {reason}")
    for item in info.get("snapshot_events") or []:
        lines.append(f"{kernel_id}: {EVENT_TEXT.get(item.get('event'), item.get('event'))}: {item.get('reason')}")
    problems = info.get("boot_problems") or []
    if problems:
        origin = (info.get("boot_log") or {}).get("origin", "its boot")
        shown = "; ".join(f"{p['rule']}: {p['line'].strip()}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        lines.append(f"{kernel_id}: kernel log of {origin}: {len(problems)} problem(s): {shown}{more}")
    after = info.get("problems_after_last_test") or []
    if after:
        lines.append(f"{kernel_id}: kernel problem(s) logged after its last test: "
                     + "; ".join(p["line"].strip() for p in after[:3]))
    return lines


def run_lines(doc: dict) -> list[str]:
    """Every kernel's lines, for the terminal summary and the report header."""
    return [line for kernel_id, info in sorted(doc.get("kernels", {}).items())
            for line in kernel_lines(kernel_id, info)]
