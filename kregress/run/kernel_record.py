"""Each kernel's own record in the run directory: RUN_DIR/kernels/<id>.json.

The process that resolves a kernel writes it then, before any test runs on it: kernels.toml's
stated facts and the fact decision, made here once (what the binary and the changelog say,
kregress.kernels.evidence; the version and the config, kregress.kernels.decision). It then merges
in what its VMs of the kernel went through (the pool's record: the newest VM's state, every
start's boots and recoveries, a failed start's error) at each start and when it stops the VM.
Several processes may run one kernel (--spread module): each merges under a lock, the lists of
recoveries adding up. The controller builds results.json's "kernels" from these files
(kregress.plugin.records), so a kernel whose worker died is recorded as far as its file went.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from kregress.files import locked, sha256_file, write_whole
from kregress.kernels import decision, evidence
from kregress.kernels.decision import FactDecision, decisions_json

FOLDER = "kernels"
# per-kernel lists (kregress.report.recovery) that add up over every start of the kernel, in
# every process that ran it: an item one process already recorded counts once
ACCUMULATED = ("snapshot_events", "boot_retries")
PARTS = "accumulated_by_process"       # in the file only: each process's own lists, folded into ACCUMULATED


def path_of(run_dir: Path, kernel_id: str) -> Path:
    return run_dir / FOLDER / f"{kernel_id}.json"


def read(run_dir: Path, kernel_id: str) -> dict | None:
    """The kernel's record as its file says now (None: no process resolved it)."""
    record = _read(path_of(run_dir, kernel_id))
    return None if record is None else {key: value for key, value in record.items() if key != PARTS}


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def clear(run_dir: Path) -> None:
    """A run directory used again: the records of its earlier run are not this run's."""
    for path in (run_dir / FOLDER).glob("*.json"):
        path.unlink()


def merge_into(run_dir: Path, info: dict, process: str | None = None) -> dict:
    """Merge what this process knows of the kernel (info, with its "id") into the kernel's file:
    its values where it has them (the others kept), its ACCUMULATED lists in place of what it
    said before, added to the other processes'."""
    path = path_of(run_dir, info["id"])
    with locked(path.with_suffix(".lock")):
        known = _read(path) or {}
        parts = known.pop(PARTS, {})
        own = {key: info[key] for key in ACCUMULATED if info.get(key) is not None}
        if own:
            parts[process or str(os.getpid())] = {**parts.get(process or str(os.getpid()), {}), **own}
        merged = {key: value for key, value in info.items() if value is not None}
        merged.update({key: value for key, value in known.items() if key not in merged})
        for key in ACCUMULATED:
            if any(key in part for part in parts.values()):
                merged[key] = []
                for part in parts.values():
                    merged[key] = merged[key] + [item for item in part.get(key, []) if item not in merged[key]]
        write_whole(path, json.dumps({**merged, PARTS: parts} if parts else merged, indent=1, default=str))
    return merged


class KernelRecords:
    """One process's side of its kernels' files: the fact decision of each kernel it resolved."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.decisions: dict[str, dict[str, FactDecision]] = {}

    def resolved(self, kernel) -> dict[str, FactDecision]:
        """Decide the kernel's facts (once per process) and write them into its file."""
        if kernel.id not in self.decisions:
            said = evidence.gather(kernel.image, sha256_file(kernel.image))
            self.decisions[kernel.id] = decision.decide(kernel.id, kernel.upstream_version, dict(kernel.spec.facts),
                                                        said, arch=kernel.spec.arch, config=kernel.config)
            merge_into(self.run_dir, {"id": kernel.id, "facts": dict(kernel.spec.facts),
                                      "fact_decisions": decisions_json(self.decisions[kernel.id])})
        return self.decisions[kernel.id]

    def update(self, info: dict) -> None:
        """What this process's VMs of the kernel went through, or why it could not start one."""
        merge_into(self.run_dir, info)
