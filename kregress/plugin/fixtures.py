"""The fixtures a scenario test asks for (kernel_session, kernel_facts, expect, precondition,
run_driver, record_behaviour) and how tests meet kernels: parametrized over the selected
kernels, one xdist group per kernel, the longest kernels first.

Tests ask for `kernel_session`; it boots each kernel once per worker process and reuses it for
every test on it. With pytest-xdist (-n N --dist loadgroup) each kernel is one xdist group, so
one worker boots it.
"""
from __future__ import annotations

import pytest

from kregress.kernels.decision import KernelFacts
from kregress.kernels.kernel import KernelFetchError
from kregress.plugin import durations
from kregress.plugin.state import POOL, kernel_of, record_of
from kregress.run.session import KernelSession
from kregress.run.vm import BootError
from kregress.expectation.expect import declared_facts, differences, facts_mismatch, failure_message
from kregress.expectation.record import add_extras


def pytest_generate_tests(metafunc):
    if "kernel_id" in metafunc.fixturenames:
        ids = list(metafunc.config.stash[POOL].specs)
        metafunc.parametrize("kernel_id", ids, ids=ids, scope="session")


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config, items):
    """One xdist group per kernel (or per kernel and test module, with --spread module),
    marked before xdist's own hook turns the marks into groups. Then, after pytest's own
    reordering (by parametrized fixture scope, which interleaves kernels), each kernel's
    tests together, the kernels whose tests took longest last time first: xdist hands a
    worker its next group only when it is nearly done, so no worker is left with a long
    kernel at the end. The folders say what a test needs, and its markers follow them:
    tests/harness is the harness on real kernels (make test only); tests/scenarios hold the
    scenarios (each module marked with its facts)."""
    for item in items:
        if "harness" in item.path.parent.parts[-2:]:
            item.add_marker(pytest.mark.harness)
        kernel_id = kernel_of(item)
        if kernel_id:
            item.add_marker(pytest.mark.vm)
            group = kernel_id if config.option.spread == "kernel" else f"{kernel_id}@{item.path.stem}"
            item.add_marker(pytest.mark.xdist_group(group))
    yield
    tests_by_kernel = {kernel_id: [] for kernel_id in config.stash[POOL].specs}
    for item in items:
        if kernel_of(item) in tests_by_kernel:
            tests_by_kernel[kernel_of(item)].append(item.nodeid.split("@")[0])
    arches = {kernel_id: spec.arch for kernel_id, spec in config.stash[POOL].specs.items()}
    kernels = durations.longest_first(tests_by_kernel, durations.Estimates(known_durations(config),
                                                                          known_kernel_costs(config), arches))
    order = {kernel_id: i for i, kernel_id in enumerate(kernels)}
    # within a kernel, its scenarios first: the VM start they need is theirs, and the harness
    # tests that look at the same guest (tests/harness/test_guest.py) reuse it
    items.sort(key=lambda item: (order.get(kernel_of(item), -1), item.get_closest_marker("harness") is not None))


def _read_once(config, name: str, load):
    """What the controller read once and handed to its xdist workers (workerinput[name]):
    every worker must order and choose its collection the same way, even if another run
    rewrites the file meanwhile."""
    worker = getattr(config, "workerinput", None)
    if worker and name in worker:
        return worker[name]
    if not hasattr(config, f"_{name}"):
        setattr(config, f"_{name}", load())
    return getattr(config, f"_{name}")


def known_durations(config) -> dict[str, float]:
    """The tests' seconds last time."""
    return _read_once(config, "kregress_durations", durations.load)


def known_kernel_costs(config) -> dict[str, dict]:
    """Each kernel's arch and first-boot seconds last time."""
    return _read_once(config, "kregress_kernel_costs", durations.load_kernels)


@pytest.fixture
def kernel_session(request, kernel_id) -> KernelSession:
    """The kernel's VM: booted once, reused, and rebooted only after a test lost it.

    Every test gets the kernel log lines produced while it ran (dmesg) and those logged
    since the previous test on its VM ended, or since the VM started (dmesg_before); a
    kernel problem among them (kregress/kernel_log/splats.py: WARN, BUG, Oops, KASAN, UBSAN, lockdep,
    hung task, RCU stall), unless allowlisted, fails the test at teardown.
    """
    pool = request.config.stash[POOL]
    fresh = {"kernel": None, "module": request.node.path, "test": request.node.nodeid}[request.config.option.fresh_vm]
    record = record_of(request.node)
    try:
        session, error = pool.session(kernel_id, fresh_for=fresh), None
    except (BootError, KernelFetchError) as err:
        error = str(err)
        record["harness_error"] = "boot-failed" if isinstance(err, BootError) else "fetch-failed"
    if error:
        pytest.fail(error, pytrace=False)
    session.begin_test(record)        # kernel log lines since the previous test: dmesg_before
    yield session
    if session.alive():
        session.collect_dmesg()
    found = [(splat, "while this test ran") for splat in session.splats(record["dmesg"])] + [
        (splat, "before this test began (since the previous test on this VM ended, or since the VM started)")
        for splat in session.splats(record.get("dmesg_before", []))]
    record["kernel_problems"] = [splat.as_record(when) for splat, when in found]
    problems = [(splat, when) for splat, when in found if not splat.allowed_because]
    if problems:
        pytest.fail(f"{kernel_id}: the kernel reported a problem:\n" + "\n".join(
            f"{splat.rule} {when}: {splat.line}" for splat, when in problems[:20]), pytrace=False)


@pytest.fixture
def kernel_facts(request, kernel_session) -> KernelFacts:
    """The kernel's facts, read from its one decision (made once per kernel where it was resolved,
    kept in the kernel's record); the names of those the test asked about go into the test's
    record (facts_used).
    A scenario test may only ask about the facts its module declares, and its expect()
    calls must name exactly the facts it asked about."""
    kernel = kernel_session.kernel
    declared = declared_facts(request.node.iter_markers("scenario"))
    facts = KernelFacts(kernel.id, kernel.upstream_version, declared=declared, config_source=kernel.config_source,
                        decisions=request.config.stash[POOL].records.resolved(kernel))
    yield facts
    record = record_of(request.node)
    record["facts_used"] = sorted(facts.used)
    named = set(record["expectation_facts"]) if "expectation_facts" in record else None
    mismatch = facts_mismatch(set(facts.used), named)
    if mismatch:
        pytest.fail(f"{request.node.nodeid}: recorded facts and expectation disagree: {mismatch}", pytrace=False)


@pytest.fixture
def expect(request, kernel_facts, record_behaviour):
    """expect(observed, expected, facts=[...]): the one way a scenario test ends on an
    observation. Records both and the facts the expectation came from, and fails with
    observed vs expected and what each fact's sources say.
    document=DocumentRule(...), documented={...}: what a document says the same keys should be;
    deviation=StatedRule(...), stated={...}: what a commit's stated intent says they should be,
    where the facts say the kernel does otherwise (recorded as a deviation when it does).
    Other keywords are the test's extras (record["extras"])."""
    def check(observed: dict, expected: dict, *, facts=(), note: str = "", document=None,
              documented: dict | None = None, deviation=None, stated: dict | None = None, **extra) -> None:
        record_behaviour(observed, expected, **extra)
        entry = record_of(request.node)
        entry["ended_by"] = "expect"
        named = entry.setdefault("expectation_facts", [])
        named += [name for name in facts if name not in named]
        if document is not None:
            entry.setdefault("documented", []).append(document.as_record(documented or {}))
        if deviation is not None:
            broken = deviation.broken(observed, stated or {})
            if broken:
                entry.setdefault("deviations", []).append(deviation.as_record(broken))
            else:       # the kernel follows the stated intent: news, named by its rule
                note = (note + "\n" if note else "") + deviation.followed_note()
        if differences(observed, expected):
            pytest.fail(failure_message(kernel_facts, observed, expected, facts, note), pytrace=False)
    return check


@pytest.fixture
def record_behaviour(request):
    """record_behaviour(observed={...}, expected={...}, **extras): goes into the results file;
    extras go into record["extras"], so they cannot overwrite what the harness recorded."""
    def record(observed: dict, expected: dict | None = None, **extra) -> None:
        entry = record_of(request.node)
        entry["observed"].update(observed)
        entry["expected"].update(expected or {})
        add_extras(entry, extra)
    return record


@pytest.fixture
def precondition(request, kernel_facts):
    """precondition(name, holds, facts=[...], reason=...): the one named way a scenario test
    stops before expect(). The facts say whether the precondition should hold here (each
    fact's state: has, lacks, unusable): held where they say so, the test goes on; not held
    where they say it should, the test FAILS ("precondition failed: NAME"); not held where
    they say the kernel lacks it or cannot use it here, a named SKIP; held where they say it
    lacks it, a contradiction (FAIL). calibrated=False: a configuration the expectation was not
    calibrated for (not a kernel feature): not held is a named SKIP with what was measured
    (observed=...). Recorded as `precondition`."""
    def check(name: str, holds: bool, *, facts=(), reason: str = "", fix: str = "", calibrated: bool = True,
              observed: dict | None = None) -> None:
        states = {fact: kernel_facts.state(fact) for fact in facts}     # every fact consulted
        should = all(state == "has" for state in states.values())
        if holds and (should or not calibrated):
            return
        entry = record_of(request.node)
        entry["precondition"] = {"name": name, "met": bool(holds), "reason": reason, "facts": list(facts),
                                 "calibrated": calibrated}      # not calibrated: verdicts count it for no fact
        entry["ended_by"] = "precondition"
        entry["observed"].update(observed or {})
        if not calibrated:      # a configuration the rule was not made for: measured, not judged
            pytest.skip(f"no verdict: {name} does not hold: {reason}")
        why = "; ".join(kernel_facts.why(fact) for fact in facts) or "no fact: it should hold on every kernel"
        if holds:
            pytest.fail(f"precondition {name!r} holds, but the facts say it should not: "
                        + "; ".join(kernel_facts.contradiction(fact, True) for fact, state in states.items()
                                    if state != "has") + f". {reason}", pytrace=False)
        if should:
            pytest.fail(f"precondition failed: {name}: {reason}; the facts say it should hold ({why})"
                        + (f". {fix}" if fix else ""), pytrace=False)
        unusable = [fact for fact, state in states.items() if state == "unusable"]
        if unusable:
            pytest.skip(f"{kernel_facts.unusable_skip(unusable[0])}; {name}: {reason}")
        pytest.skip(f"not supported by this kernel: {name}: {reason}; {why}")
    return check


@pytest.fixture
def run_driver(request, kernel_session, kernel_facts, expect):
    """run_driver(name, *args) -> the driver's JSON. A driver that could not set up its
    observation is the harness's fault (harness_error driver-failed); a kernel refusing to
    load or attach a program ({"refused": ...}) is an observation: the test ends in expect()
    with the refusal observed, expected on no kernel (a case that expects a refusal asks for
    it in its own fields)."""
    def run(name: str, *args, timeout: float = 60) -> dict:
        result = kernel_session.run_driver(name, *args, timeout=timeout)
        data = result.json()
        if result.rc != 0 or "error" in data:
            record_of(request.node)["harness_error"] = "driver-failed"
            pytest.fail(f"{name} {' '.join(map(str, args))} failed (exit {result.rc}): "
                        f"{data.get('error', '')}\nstderr:\n{result.stderr[-3000:]}", pytrace=False)
        if "refused" in data:
            refused = data["refused"]
            seen = f"{refused['stage']} of {refused['program']}: {refused['errno']}"
            expect({"refused": seen}, {"refused": "nothing"}, facts=sorted(kernel_facts.used),
                   note=f"the kernel refused the {seen} (libbpf: {refused.get('libbpf') or '-'}) in "
                        f"{name} {' '.join(map(str, args))}: what this kernel does, judged as a behaviour",
                   refusal=refused)
        return data
    return run
