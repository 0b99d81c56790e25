"""The step log: append-only JSON lines, one per step of a bisection."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


# --------------------------------------------------------------------------- step log

class StepLog:
    """Append-only JSON lines, flushed and fsynced per record: a crash loses nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict) -> dict:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, default=str, sort_keys=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue        # a line cut short by a crash: ignore it
        return out
