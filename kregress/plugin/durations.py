"""How long each test took last time it ran, and what each kernel's start cost, kept in the
cache, so that a run hands the kernels with the longest work to the pytest-xdist workers first
(longest processing time first): a worker left alone with a long kernel at the end is what makes
a matrix slower than its floor. Kept per test, so a partial run does not distort the next.

A kernel never run before is estimated from what is known: each of its tests from the same test
on the kernels of its architecture that ran it (else on any kernel, else UNKNOWN_TEST_S), and its
start from the first boots of its architecture (an arm64 kernel under TCG boots slower), not one
guess for every new kernel."""
from __future__ import annotations

import json
import re
from statistics import mean

from kregress.files import write_whole
from kregress.paths import cache_dir

UNKNOWN_TEST_S = 1.0        # a test no kernel ever ran: about a scenario test under TCG
UNKNOWN_BOOT_S = 6.0        # a first boot on an architecture never booted: about one under TCG


def _path():
    return cache_dir() / "durations.json"


def _kernels_path():
    return cache_dir() / "kernel-costs.json"


def load() -> dict[str, float]:
    """Test node id -> seconds (setup + call + teardown) last time; {} when unknown or unreadable."""
    try:
        data = json.loads(_path().read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def load_kernels() -> dict[str, dict]:
    """Kernel id -> {"arch", "first_boot_s", "save_s"} from the runs that booted it; {} when unknown."""
    try:
        data = json.loads(_kernels_path().read_text())
        return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def record(doc: dict) -> None:
    """Remember this run's seconds for each VM test it ran, and each booted kernel's arch and
    first-boot seconds (a restore says nothing of a first boot, so it keeps the last one known)."""
    seconds = {t["nodeid"]: round(sum(t.get(key) or 0.0 for key in ("setup_seconds", "seconds", "teardown_seconds")), 3)
               for t in doc["tests"] if t.get("kernel") and "nodeid" in t}
    if seconds:
        write_whole(_path(), json.dumps({**load(), **seconds}, indent=0, sort_keys=True))
    known = load_kernels()
    kernels = {}
    for kernel_id, info in (doc.get("kernels") or {}).items():
        if not info.get("arch"):
            continue
        entry = {**known.get(kernel_id, {}), "arch": info["arch"]}
        if str(info.get("boot_how") or "").startswith("booted") and info.get("boot_seconds"):
            entry["first_boot_s"] = info["boot_seconds"]
            if info.get("save_seconds"):
                entry["save_s"] = info["save_seconds"]
        kernels[kernel_id] = entry
    if kernels:
        write_whole(_kernels_path(), json.dumps({**known, **kernels}, indent=0, sort_keys=True))


class Estimates:
    """Seconds a test or a kernel's start will take, from what is known (see the module's doc)."""

    def __init__(self, known: dict[str, float], kernels: dict[str, dict] | None = None,
                 arches: dict[str, str] | None = None):
        self.known = known
        self.kernels = kernels or {}
        self.arches = {**{k: v.get("arch") for k, v in self.kernels.items()}, **(arches or {})}

    def test(self, nodeid: str, kernel_id: str) -> float:
        if nodeid in self.known:
            return self.known[nodeid]
        found = re.search(r"(?<=[\[-])" + re.escape(kernel_id) + r"(?=[\]-])", nodeid)      # in its parameters
        if not found:
            return UNKNOWN_TEST_S
        head, tail = nodeid[:found.start()], nodeid[found.end():]
        elsewhere = {other: self.known[head + other + tail] for other in self.arches if head + other + tail in self.known}
        same_arch = [s for other, s in elsewhere.items() if self.arches.get(other) == self.arches.get(kernel_id)]
        return mean(same_arch or list(elsewhere.values()) or [UNKNOWN_TEST_S])

    def first_boot(self, kernel_id: str) -> float:
        own = self.kernels.get(kernel_id, {}).get("first_boot_s")
        if own:
            return own
        arch = self.arches.get(kernel_id)
        boots = [v["first_boot_s"] for v in self.kernels.values() if v.get("first_boot_s") and v.get("arch") == arch]
        return mean(boots) if boots else UNKNOWN_BOOT_S


def longest_first(tests_by_kernel: dict[str, list[str]], known: dict[str, float] | Estimates) -> list[str]:
    """Kernel ids by the estimated seconds of their tests (and, given Estimates, their first
    boot), longest first; ties keep the given order. Given plain known seconds, a test never
    measured counts UNKNOWN_TEST_S."""
    estimates = known if isinstance(known, Estimates) else None
    position = {kernel: i for i, kernel in enumerate(tests_by_kernel)}
    if estimates:
        total = {kernel: estimates.first_boot(kernel) + sum(estimates.test(n, kernel) for n in nodeids)
                 for kernel, nodeids in tests_by_kernel.items()}
    else:
        total = {kernel: sum(known.get(nodeid, UNKNOWN_TEST_S) for nodeid in nodeids)
                 for kernel, nodeids in tests_by_kernel.items()}
    return sorted(tests_by_kernel, key=lambda kernel: (-total[kernel], position[kernel]))
