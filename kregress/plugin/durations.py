"""How long each test took last time it ran, kept in the cache, so that a run hands the
kernels with the longest tests to the pytest-xdist workers first (longest processing
time first): a worker left alone with a long kernel at the end is what makes a matrix
slower than its floor. Kept per test, so a partial run does not distort the next."""
from __future__ import annotations

import json

from kregress.files import write_whole
from kregress.paths import cache_dir

UNKNOWN_TEST_S = 1.0        # a test never measured: about a scenario test under TCG


def _path():
    return cache_dir() / "durations.json"


def load() -> dict[str, float]:
    """Test node id -> seconds (setup + call + teardown) last time; {} when unknown or unreadable."""
    try:
        data = json.loads(_path().read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def record(doc: dict) -> None:
    """Remember this run's seconds for each VM test it ran."""
    seconds = {t["nodeid"]: round(sum(t.get(key) or 0.0 for key in ("setup_seconds", "seconds", "teardown_seconds")), 3)
               for t in doc["tests"] if t.get("kernel") and "nodeid" in t}
    if not seconds:
        return
    path = _path()
    write_whole(path, json.dumps({**load(), **seconds}, indent=0, sort_keys=True))


def longest_first(tests_by_kernel: dict[str, list[str]], known: dict[str, float]) -> list[str]:
    """Kernel ids by the summed seconds of their tests, longest first; a test never
    measured counts UNKNOWN_TEST_S; ties keep the given order."""
    position = {kernel: i for i, kernel in enumerate(tests_by_kernel)}
    total = {kernel: sum(known.get(nodeid, UNKNOWN_TEST_S) for nodeid in nodeids)
             for kernel, nodeids in tests_by_kernel.items()}
    return sorted(tests_by_kernel, key=lambda kernel: (-total[kernel], position[kernel]))
