"""How long each kernel's tests took in the last run, kept in the cache, so that the next
run hands the longest kernels to the pytest-xdist workers first (longest processing time
first): the idle worker at the end of a run is what makes it slower than its floor."""
from __future__ import annotations

import json
import os

from .paths import cache_dir


def _path():
    return cache_dir() / "durations.json"


def load() -> dict[str, float]:
    """kernel id -> seconds of its tests last time; {} when unknown or unreadable."""
    try:
        data = json.loads(_path().read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def record(doc: dict) -> None:
    """Add this run's per-kernel seconds (setup + call + teardown of its tests)."""
    seconds: dict[str, float] = {}
    for test in doc["tests"]:
        if test.get("kernel"):
            spent = sum(test.get(key) or 0.0 for key in ("setup_seconds", "seconds", "teardown_seconds"))
            seconds[test["kernel"]] = seconds.get(test["kernel"], 0.0) + spent
    if not seconds:
        return
    merged = {**load(), **{k: round(v, 2) for k, v in seconds.items()}}
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
    os.replace(partial, path)


def longest_first(kernel_ids: list[str], known: dict[str, float]) -> list[str]:
    """Kernels never measured first (they may be the longest), then by last seconds, longest
    first; ties keep the kernels file's order."""
    position = {k: i for i, k in enumerate(kernel_ids)}
    return sorted(kernel_ids, key=lambda k: (k in known, -known.get(k, 0.0), position[k]))
