"""Each test's results entry: the record its fixtures filled, how it ended, its seconds, its
reproducer; on the controller, one entry per test in the results file.

A kernel's own record (kregress.run.pool.KernelPool.kernel_info: evidence, fact decision, boots,
an RSS reading) is built once per kernel and worker process, when the worker's last test on it
ends, and travels with that test's report only; every report names its kernel (id, versions,
accelerator) for --junitxml. A run interrupted before a kernel's last test sends the record at
the worker's end; a kernel whose record never comes (its worker died) is recorded as lost."""
from __future__ import annotations

import json

import pytest

from kregress import procs
from kregress.plugin.state import HARNESS, PROPERTY, RESULTS, kernel_of, record_of
from kregress.report import reproduce
from kregress.report.junit import junit_properties
from kregress.report.results import ResultsFile, decisions_copied
from kregress.run.session import GuestFailure
from kregress.verdict.record import ending_problem

KERNEL_INFO = "kernel_info"         # in the record of a kernel's last test here: the kernel's record
IDENTITY = "kernel_identity"        # in every VM test's record: what --junitxml names its kernel by
LATE_KERNELS = "kregress_kernels"   # xdist workeroutput: the records of kernels whose last test never ended
LAST_ON_KERNEL = pytest.StashKey[bool]()
UNSENT = pytest.StashKey[set]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Whether this process moves on from the test's kernel after it (its record goes now)."""
    item.stash[LAST_ON_KERNEL] = nextitem is None or kernel_of(nextitem) != kernel_of(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, GuestFailure):
        # a harness-level error, not a behaviour verdict: keep the console, drop the traceback
        record_of(item)["harness_error"] = call.excinfo.value.kind
        report.longrepr = f"{call.excinfo.value.kind.upper()}: {call.excinfo.value}"
    kernel_id = kernel_of(item)
    if report.when == "call" and item.get_closest_marker("scenario") is not None and kernel_id:
        _check_ending(item, report)
    if kernel_id and report.when == "call" and report.failed:
        _add_reproducer(item, report, kernel_id)
    if kernel_id and report.when == "teardown":
        harness = item.config.stash[HARNESS]
        record = record_of(item)
        record["kernel"] = kernel_id
        record[IDENTITY] = harness.identity(kernel_id)
        unsent = item.config.stash.setdefault(UNSENT, set())
        if item.stash.get(LAST_ON_KERNEL, True):
            record[KERNEL_INFO] = harness.kernel_info(kernel_id)
            unsent.discard(kernel_id)
        else:
            unsent.add(kernel_id)
        report.user_properties = list(item.user_properties)
    return report


def _check_ending(item, report) -> None:
    """A scenario test ends through expect() or the precondition helper; any other ending
    (bare assert, pytest.fail/skip/xfail of its own) turns into a failure saying so."""
    outcome = "skipped" if report.skipped else report.outcome
    problem = ending_problem(record_of(item), outcome, xfailed=hasattr(report, "wasxfail"))
    if not problem:
        return
    original = str(report.longrepr or "")[-2000:]
    report.outcome = "failed"
    if hasattr(report, "wasxfail"):
        del report.wasxfail
    report.longrepr = f"{item.nodeid}: {problem}" + (f"\nthe test's own ending:\n{original}" if original else "")


def _add_reproducer(item, report, kernel_id: str) -> None:
    """The commands that replay what the failed test ran, in its record and its message."""
    record = record_of(item)
    lines = reproduce.commands(record, kernel_id, item.config.option.kernels_file)
    if not lines:
        return
    record["reproduce"] = lines
    text = "\n".join(lines)
    if hasattr(report.longrepr, "addsection"):
        report.longrepr.addsection(f"reproduce on {kernel_id}", text)
    else:
        report.longrepr = f"{report.longrepr}\nreproduce on {kernel_id}:\n{text}"


_phases: dict[str, dict] = {}
_crashed: set[str] = set()


@pytest.hookimpl(tryfirst=True)     # before --junitxml reads user_properties
def pytest_runtest_logreport(report):
    """Controller side (also without xdist): one results entry per test, after teardown."""
    entry = _phases.setdefault(report.nodeid, {"outcome": "passed", "longrepr": ""})
    if report.when == "???":        # pytest-xdist's report of a test its worker died in
        _crashed.add(report.nodeid)
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["longrepr"] = str(report.longrepr)[-4000:]
    elif report.skipped and entry["outcome"] == "passed":
        xfail = getattr(report, "wasxfail", None)
        entry["outcome"] = "xfailed" if xfail is not None else "skipped"
        entry["longrepr"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if xfail:
            entry["xfail_reason"] = xfail
    elif report.passed and report.when == "call" and getattr(report, "wasxfail", None) is not None:
        entry["outcome"] = "xpassed"
        entry["xfail_reason"] = report.wasxfail
    if report.when == "call":
        entry["seconds"] = round(report.duration, 3)
    else:   # fixtures: boots land in a kernel's first setup, dmesg collection in every one
        entry[f"{report.when}_seconds"] = round(report.duration, 3)
    if report.when == "setup":
        entry["started_at"] = round(report.start, 3)
    if report.when == "teardown":
        entry["stopped_at"] = round(report.stop, 3)
        entry["worker"] = getattr(getattr(report, "node", None), "gateway", None) and report.node.gateway.id
    if report.when != "teardown":
        return
    _phases.pop(report.nodeid)
    results = _controller_results[0] if _controller_results else None
    if results is None:
        return
    record = dict(next((v for k, v in report.user_properties if k == PROPERTY), {}))
    identity = record.pop(IDENTITY, None) or {}
    kernel_info = record.pop(KERNEL_INFO, None)
    if record.get("kernel") and identity:
        _identities[record["kernel"]] = identity
    _flatten_properties(report, record, identity)
    if record.get("harness_error"):
        entry["outcome"] = "error"      # the guest failed, not the behaviour under test
    if kernel_info:
        results.add_kernel(kernel_info)
    nodeid = report.nodeid.split("@")[0]      # xdist's loadgroup appends "@<group>"
    results.add_test({"nodeid": nodeid, **entry, **record})


def _flatten_properties(report, record: dict, identity: dict) -> None:
    """--junitxml writes user_properties as <property>: give it the kernel (id, exact version,
    accelerator) and the behaviour as flat pairs, not the whole record (results.json has it)."""
    if not record.get("kernel"):
        return
    flat = junit_properties(record["kernel"], identity)
    flat.append(("observed", json.dumps(record.get("observed") or {}, sort_keys=True)))
    report.user_properties = [(k, v) for k, v in report.user_properties if k != PROPERTY] + flat


_controller_results: list[ResultsFile] = []
_identities: dict[str, dict] = {}     # controller: each kernel as its tests' reports last named it


def crashed_entry(nodeid: str, entry: dict, kernel_ids: set[str]) -> dict:
    """A test its worker died in (xdist reports the crash and no teardown follows): in the
    results as an error of the harness, not left out."""
    base, _, group = nodeid.partition("@")      # xdist's loadgroup names the kernel after "@"
    kernel = group if group in kernel_ids else None
    return {"nodeid": base, **entry, "outcome": "error", "kernel": kernel, "harness_error": "worker-crashed"}


def lost_record(kernel_id: str, identity: dict, tests: list[dict]) -> dict:
    """A kernel whose record never arrived (its worker died during its last test there): what
    its tests' reports named it by, and the fact decision as its tests copied it, said plainly
    rather than left out of the results."""
    return {"id": kernel_id, **identity, "fact_decisions": decisions_copied(tests, kernel_id),
            "record_lost": "the worker running its last test ended before sending the kernel's record: "
                           "evidence, boots and the facts no test asked about are not in this file"}


def pytest_sessionstart(session):
    results = session.config.stash.get(RESULTS, None)
    if results:
        _controller_results.append(results)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: the kernel records a worker could only send at its end."""
    for info in getattr(node, "workeroutput", {}).get(LATE_KERNELS, []):
        if _controller_results:
            _controller_results[0].add_kernel(info)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    harness = config.stash[HARNESS]
    late = [harness.kernel_info(kernel_id) for kernel_id in sorted(config.stash.get(UNSENT, set()))]
    if hasattr(config, "workeroutput"):
        config.workeroutput[LATE_KERNELS] = late
    elif _controller_results:
        results = _controller_results[0]
        for info in late:
            results.add_kernel(info)
        for nodeid in sorted(_crashed & set(_phases)):
            results.add_test(crashed_entry(nodeid, _phases.pop(nodeid), set(harness.specs)))
        for kernel_id in dict.fromkeys(t["kernel"] for t in results.doc["tests"] if t.get("kernel")):
            if kernel_id not in results.doc["kernels"]:
                results.add_kernel(lost_record(kernel_id, _identities.get(kernel_id, {}), results.doc["tests"]))
        results.flush()      # the summary writes it again, when it runs
    harness.stop_live()
    procs.kill_all()
