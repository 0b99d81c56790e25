"""Kernel log lines no test was running for, kept rather than lost.

Lines logged between two tests on one VM go to the second test (plugin.py collects them at
its start, into its record's dmesg_before). Lines logged after a VM's last test (deferred
clean-up: RCU frees after a driver exits) have no next test; when the VM is stopped in
order they are written here, one file per VM, and merged into the kernel's record
(kernels[ID]: dmesg_after_last_test, problems_after_last_test) when the run finishes.
xdist workers and the controller share the run directory, so files are the way across.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

DIRECTORY = "kmsg-after-tests"


def keep(run_dir: Path, kernel_id: str, lines: list[str], find_splats) -> Path | None:
    """find_splats(lines) -> splats.Splat list (the session's rules and allowlist)."""
    if not lines:
        return None
    directory = run_dir / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    number = len(list(directory.glob(f"{kernel_id}.{os.getpid()}.*.json"))) + 1
    path = directory / f"{kernel_id}.{os.getpid()}.{number}.json"
    record = {"kernel": kernel_id, "lines": lines,
              "splats": [splat.as_record("kmsg after the last test") for splat in find_splats(lines)]}
    path.write_text(json.dumps(record, indent=1))
    return path


def merge(doc: dict, run_dir: Path) -> None:
    """Into doc["kernels"][ID]: every kept line and the problems (not allowed splats) among them."""
    for path in sorted((run_dir / DIRECTORY).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        info = doc["kernels"].setdefault(record["kernel"], {"id": record["kernel"]})
        lines = info.setdefault("dmesg_after_last_test", [])
        if record["lines"][0] in lines:
            continue        # merged before (a summary written twice)
        lines += record["lines"]
        info.setdefault("problems_after_last_test", []).extend(
            s for s in record["splats"] if "allowed" not in s)
