"""Each test's results entry: the record its fixtures filled, how it ended, its seconds, its
reproducer; on the controller, one entry per test in the results file.

A kernel's own record is not on any test's report: the process that resolves the kernel writes
it to the kernel's file in the run directory (kregress.run.kernel_record: fact decision, boots,
recoveries, an RSS reading), and the controller reads that file into results.json when the
kernel's first test ends and again at the end of the run, whichever worker ran it and however
that worker ended. Every report names its kernel (id, versions, accelerator) for --junitxml. A
kernel whose worker died in one of its tests is said to be so (worker_died)."""
from __future__ import annotations

import json

import pytest

from kregress import procs
from kregress.plugin.state import POOL, PROPERTY, RESULTS, kernel_of, record_of
from kregress.report import reproduce
from kregress.report.junit import junit_properties
from kregress.report.results import ResultsFile
from kregress.run import kernel_record
from kregress.run.session import GuestFailure
from kregress.expectation.record import ending_problem

IDENTITY = "kernel_identity"        # in every VM test's record: what --junitxml names its kernel by
WORKER_DIED = ("its worker died during one of its tests: this record is what the worker's kernel file "
               "said before (the fact decision, the VM starts), not its VMs' state at the end")


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
        record = record_of(item)
        record["kernel"] = kernel_id
        record[IDENTITY] = item.config.stash[POOL].identity(kernel_id)
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
    _flatten_properties(report, record, identity)
    if record.get("harness_error"):
        entry["outcome"] = "error"      # the guest failed, not the behaviour under test
    if record.get("kernel") and record["kernel"] not in results.doc["kernels"]:
        results.set_kernel(_kernel_file(record["kernel"]))
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
_run_dirs: list = []        # the controller's run directory, where each kernel has its file
_specs: dict = {}           # the controller's kernels, by id: what a kernel nobody resolved states


def _kernel_file(kernel_id: str) -> dict:
    """The kernel's record as its file says now (a kernel nobody resolved: what kernels.toml states)."""
    info = kernel_record.read(_run_dirs[0], kernel_id) if _run_dirs else None
    if info is None:
        spec = _specs.get(kernel_id)
        info = {"id": kernel_id, **({"facts": dict(spec.facts)} if spec else {})}
    return info


def crashed_entry(nodeid: str, entry: dict, kernel_ids: set[str]) -> dict:
    """A test its worker died in (xdist reports the crash and no teardown follows): in the
    results as an error of the harness, not left out."""
    base, _, group = nodeid.partition("@")      # xdist's loadgroup names the kernel after "@"
    kernel = group if group in kernel_ids else None
    return {"nodeid": base, **entry, "outcome": "error", "kernel": kernel, "harness_error": "worker-crashed"}


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """After a kernel's last test in this process (its fixtures torn down), its VM stops
    rather than idling on through what the process runs next: an idle guest under TCG still
    costs the host a tenth of a core or more."""
    kernel_id = kernel_of(item)
    if kernel_id and (nextitem is None or kernel_of(nextitem) != kernel_id):
        item.config.stash[POOL].stop_live()


def pytest_sessionstart(session):
    results = session.config.stash.get(RESULTS, None)
    if results:
        harness = session.config.stash[POOL]
        kernel_record.clear(harness.run_dir)        # before any worker resolves a kernel
        _controller_results.append(results)
        _run_dirs.append(harness.run_dir)
        _specs.update(harness.specs)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    harness = config.stash[POOL]
    harness.stop_live()     # its kernel's file gets what the VM went through
    if not hasattr(config, "workeroutput") and _controller_results:
        results = _controller_results[0]
        for nodeid in sorted(_crashed & set(_phases)):
            results.add_test(crashed_entry(nodeid, _phases.pop(nodeid), set(harness.specs)))
        died = {t["kernel"] for t in results.doc["tests"] if t.get("harness_error") == "worker-crashed"}
        for kernel_id in dict.fromkeys(t["kernel"] for t in results.doc["tests"] if t.get("kernel")):
            info = _kernel_file(kernel_id)        # as the file says at the end: every worker has ended
            results.set_kernel({**info, "worker_died": WORKER_DIED} if kernel_id in died else info)
        results.flush()      # the summary writes it again, when it runs
    procs.kill_all()
