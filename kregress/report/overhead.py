"""One run's harness overhead: its VM-test wall time against the guest work's floor, and
where the gap between them went (issue 24's measure, the same way every time).

wall  = the last VM test's end minus the first VM test's start (results.json
        started_at / stopped_at: setup start to teardown end)
floor = the VM tests' guest_seconds summed, divided by the workers

Every worker is there for the whole wall, so workers x wall splits exactly into guest
work and the parts below; each part divided by the workers is its seconds of wall, and
the parts add up to wall - floor:
  restores    starting each VM (restore or boot, with stopping the one before it):
              the tests' vm_start_seconds
  pushes      putting drivers into the guest: the tests' push_seconds
  per test    the rest of each test's time outside guest work: agent and SSH round
              trips, kernel log collection, fixtures
  between     a worker's time between one test's end and its next test's start
              (pytest, xdist, reports)
  imbalance   a worker's time before its first VM test and after its last one, while
              another worker still runs tests
"""
from __future__ import annotations

from dataclasses import dataclass, field

PARTS = ("restores", "pushes", "per_test", "between", "imbalance")


@dataclass
class Overhead:
    workers: int
    tests: int
    wall: float
    guest: float
    parts: dict[str, float]                 # each part's seconds summed over workers
    busy: dict[str, float] = field(default_factory=dict)    # worker -> its first test start to last test end
    restores: int = 0                       # VM starts

    @property
    def floor(self) -> float:
        return self.guest / self.workers

    @property
    def gap(self) -> float:
        return self.wall - self.floor

    @property
    def ratio(self) -> float:
        return self.wall / self.floor if self.floor else float("inf")

    def wall_seconds(self, part: str) -> float:
        """A part's share of the wall, in seconds: its sum over workers divided by them."""
        return self.parts[part] / self.workers

    def share(self, part: str) -> float:
        """A part's fraction of the gap between wall and floor."""
        return self.wall_seconds(part) / self.gap if self.gap else 0.0

    def as_record(self) -> dict:
        return {"workers": self.workers, "tests": self.tests, "wall_s": round(self.wall, 2),
                "floor_s": round(self.floor, 2), "guest_s": round(self.guest, 2), "ratio": round(self.ratio, 3),
                "gap_s": round(self.gap, 2), "restores": self.restores, "busy_s": {
                    worker: round(seconds, 2) for worker, seconds in self.busy.items()},
                "parts": {part: {"wall_s": round(self.wall_seconds(part), 2), "share": round(self.share(part), 3)}
                          for part in PARTS}}


class NotMeasurable(ValueError):
    """The results lack what the measure needs (no VM test, or one without its times)."""


def vm_tests(doc: dict) -> list[dict]:
    return [t for t in doc.get("tests", []) if t.get("kernel")]


def measure(doc: dict, workers: int | None = None) -> Overhead:
    """The overhead of one results document; workers: how many ran the tests (default: the
    run's recorded count, else the workers its VM tests name)."""
    tests = vm_tests(doc)
    if not tests:
        raise NotMeasurable("no VM test in these results")
    untimed = [t["nodeid"] for t in tests if t.get("started_at") is None or t.get("stopped_at") is None]
    if untimed:
        raise NotMeasurable(f"{len(untimed)} VM test(s) without started_at/stopped_at, e.g. {untimed[0]}")
    by_worker: dict[str, list[dict]] = {}
    for test in tests:
        by_worker.setdefault(test.get("worker") or "main", []).append(test)
    workers = workers or doc.get("workers") or len(by_worker)
    if workers < len(by_worker):
        raise NotMeasurable(f"{len(by_worker)} workers ran VM tests, more than the {workers} given")
    start = min(t["started_at"] for t in tests)
    end = max(t["stopped_at"] for t in tests)
    wall = end - start
    parts = dict.fromkeys(PARTS, 0.0)
    busy = {}
    for worker, own in sorted(by_worker.items()):
        own.sort(key=lambda t: t["started_at"])
        busy[worker] = own[-1]["stopped_at"] - own[0]["started_at"]
        parts["imbalance"] += wall - busy[worker]
        parts["between"] += sum(max(0.0, later["started_at"] - earlier["stopped_at"])
                                for earlier, later in zip(own, own[1:]))
    # a worker that ran no VM test idled through the whole wall
    parts["imbalance"] += wall * (workers - len(by_worker))
    guest = 0.0
    for test in tests:
        spent = test["stopped_at"] - test["started_at"]
        restore, push = test.get("vm_start_seconds") or 0.0, test.get("push_seconds") or 0.0
        guest += test.get("guest_seconds") or 0.0
        parts["restores"] += restore
        parts["pushes"] += push
        parts["per_test"] += spent - (test.get("guest_seconds") or 0.0) - restore - push
    return Overhead(workers=workers, tests=len(tests), wall=wall, guest=guest, parts=parts, busy=busy,
                    restores=sum(1 for t in tests if t.get("vm_start_seconds") is not None))


LABELS = {"restores": "restores (VM starts, the previous VM's stop included)",
          "pushes": "pushes (drivers into the guest)",
          "per_test": "per test, outside guest work (agent/SSH round trips, kernel log, fixtures)",
          "between": "between a worker's tests (pytest, xdist, records)",
          "imbalance": "worker imbalance (idle before its first / after its last VM test)"}


def render(overhead: Overhead, goal: float = 1.3) -> list[str]:
    o = overhead
    mean_busy = sum(o.busy.values()) / o.workers
    lines = [f"VM-test wall {o.wall:.1f} s, floor {o.floor:.1f} s (guest {o.guest:.1f} s / {o.workers} workers): "
             f"ratio {o.ratio:.2f}x (goal <= {goal}x); {o.tests} VM tests, {o.restores} VM starts",
             f"gap wall - floor {o.gap:.1f} s:"]
    if not o.restores:
        lines.append("  (no test records vm_start_seconds: results of an older kregress, or no VM start "
                     "measured; restores and pushes are then counted under per test)")
    for part in PARTS:
        lines.append(f"  {o.wall_seconds(part):6.2f} s {o.share(part):6.1%}  {LABELS[part]}")
    lines.append("  worker busy (first VM test's start to last one's end): " + ", ".join(
        f"{worker} {seconds:.1f} s" for worker, seconds in o.busy.items())
        + f"; longest {max(o.busy.values()):.1f} s against a mean of {mean_busy:.1f} s")
    return lines
