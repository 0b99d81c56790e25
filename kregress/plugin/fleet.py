"""A fleet's run (`kregress fleet`, pytest --fleet): per kernel, only the cases needed to judge
every fact at least once. What a case judges is what its expect() and precondition() calls name
(kregress.expectation.declared.judged_by_test, read from the source), and it judges a fact on every
kernel unless a precondition on another fact can end it first (on a kernel lacking lsm_cgroup,
an lsm_priority case ends on that precondition and judges nothing else). For each fact in the
facts table's order that no chosen case judges on every kernel yet, the cheapest case that does
is chosen, else the cheapest naming it (its seconds on this kernel last time, else on the
kernels of its architecture: plugin/durations.py). The rest are deselected. --fleet-leave FACT leaves a fact not judged: no case is chosen for it (a case chosen
for another fact may still judge it)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kregress.kernels.facts import FACTS
from kregress.plugin import durations
from kregress.plugin.state import POOL, kernel_of
from kregress.expectation.declared import judged_by_test


def pytest_addoption(parser):
    group = parser.getgroup("kregress")
    group.addoption("--fleet", action="store_true",
                    help="per kernel only the cheapest cases that judge every fact at least once (kregress fleet)")
    group.addoption("--fleet-leave", action="append", default=[], metavar="FACT",
                    help="with --fleet: choose no case for this fact (repeatable): it may stay not judged")


def pytest_configure(config):
    unknown = [name for name in config.option.fleet_leave if name not in FACTS]
    if unknown:
        raise pytest.UsageError(f"--fleet-leave {', '.join(unknown)}: not a fact of kregress/kernels/facts.py")


def judged_facts(item, cache: dict[Path, dict]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(facts a scenario test names, those it judges on every kernel); ((), ()) for other tests."""
    if not any(True for _ in item.iter_markers("scenario")) or item.get_closest_marker("skip"):
        return (), ()       # not a scenario, or skipped as collected (an empty parameter set)
    path = Path(item.path)
    if path not in cache:
        cache[path] = judged_by_test(path)
    found = cache[path].get(getattr(item, "originalname", item.name))
    callspec = getattr(item, "callspec", None)
    values = list(callspec.params.values()) if callspec else []
    return (found.for_params(values)[0], found.judges_whatever_the_kernel(values)) if found else ((), ())


def choose(cases: list[tuple[object, tuple[str, ...], tuple[str, ...], float]], leave=()) -> list[object]:
    """cases: (case, facts it names, facts it judges on every kernel, seconds). For each fact in
    the facts table's order not yet judged on every kernel by a chosen case: the cheapest case
    that judges it on every kernel, else the cheapest that names it (ties: the first given)."""
    chosen: list[object] = []
    covered: set[str] = set()
    for fact in FACTS:
        if fact in leave or fact in covered:
            continue
        candidates = ([c for c in cases if fact in c[2]] or [c for c in cases if fact in c[1]])
        if not candidates:
            continue
        case, _, always, _ = min(candidates, key=lambda c: c[3])
        if case not in chosen:
            chosen.append(case)
        covered |= set(always) | {fact}
    return chosen


def estimates(config) -> durations.Estimates:
    from kregress.plugin.fixtures import known_durations, known_kernel_costs
    harness = config.stash[POOL]
    return durations.Estimates(known_durations(config), known_kernel_costs(config),
                               {kernel_id: spec.arch for kernel_id, spec in harness.specs.items()})


def pytest_collection_modifyitems(config, items):
    if not config.option.fleet:
        return
    costs = estimates(config)
    cache: dict[Path, dict] = {}
    by_kernel: dict[str, list] = {}
    for item in items:
        if kernel_of(item):
            by_kernel.setdefault(kernel_of(item), []).append(item)
    keep = set()
    for kernel_id, kernel_items in by_kernel.items():
        cases = [(item, *judged_facts(item, cache), costs.test(item.nodeid, kernel_id)) for item in kernel_items]
        keep |= {id(item) for item in choose(cases, config.option.fleet_leave)}
    deselected = [item for item in items if kernel_of(item) and id(item) not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not kernel_of(item) or id(item) in keep]
