"""Results documents for the report tests: the real 4-kernel getsockopt run, and shards of it."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from kregress.report.results import normalise, summarize

DATA = Path(__file__).parent / "data"
# A real `--kernel` x4 run of tests/test_getsockopt_efault.py under TCG (all 28 passed).
FOUR_KERNELS = DATA / "efault-4kernels.json"
RELIEF_COMMIT = "29ebbba7d461"


def four_kernels_as_written() -> dict:
    """The run as its file was written, before kernels recorded their fact decision: each test
    kept a copy of the decisions it used (facts_used as a dict)."""
    doc = json.loads(FOUR_KERNELS.read_text())
    for info in doc["kernels"].values():
        info["facts"] = {}      # as runs now record kernels.toml's overrides: none here
    return doc


def four_kernels() -> dict:
    """The run as results files hold it now: each kernel's decision in its record, tests the names."""
    return normalise(four_kernels_as_written())


def shard(doc: dict, *kernel_ids: str) -> dict:
    """What `pytest --kernel ID...` would have written for just these kernels."""
    part = copy.deepcopy(doc)
    part["kernels"] = {k: v for k, v in part["kernels"].items() if k in kernel_ids}
    part["tests"] = [t for t in part["tests"] if t.get("kernel") in kernel_ids]
    part["summary"] = summarize(part)
    return part


def record_of(doc: dict, name: str, kernel: str) -> dict:
    return next(t for t in doc["tests"] if t["kernel"] == kernel and f"::test_{name}[" in t["nodeid"])


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path
