"""pytest wiring: options, the per-kernel VM pool, fixtures, results file, summary.

Tests ask for `kernel_session`; the plugin parametrizes them over the selected kernels,
boots each kernel once per worker process and reuses it for every test on it. With
pytest-xdist (-n N --dist loadgroup) each kernel is one xdist group, so one worker boots it.
"""
from __future__ import annotations

import atexit
import json
import signal
from pathlib import Path

import pytest

from kregress.verdict import deviations, documents
from kregress.report import known
from kregress import procs
from kregress.plugin import durations
from kregress.kernels import evidence
from kregress.kernel_log import gaps as kmsg_gaps, splats
from kregress.report import recovery, reproduce, verdicts
from kregress.kernels.entries import KernelsFileError
from kregress.verdict.expect import declared_facts, differences, facts_mismatch, failure_message
from kregress.kernels.facts import KernelFacts
from kregress.report.junit import junit_properties
from kregress.kernels.kernel import KernelFetchError
from kregress.report.matrix import build_roots, guest_images
from kregress.paths import PROJECT_ROOT, new_run_dir
from kregress.run.pool import KernelPool
from kregress.verdict.record import add_extras, ending_problem, new_record
from kregress.report.write import page_text, render_text, write_reports
from kregress.report.results import ResultsFile, case_of
from kregress.run.session import GuestFailure, KernelSession, SessionOptions
from kregress.run.vm import BootError

PROPERTY = "kregress"


def pytest_addoption(parser):
    group = parser.getgroup("kregress", "kernel matrix")
    group.addoption("--kernels-file", type=Path, default=PROJECT_ROOT / "kernels.toml",
                    help="kernel matrix (default: kernels.toml)")
    group.addoption("--kernel", action="append", default=[], metavar="ID",
                    help="run only this kernel id (repeatable); default: entries with default = true")
    group.addoption("--arch", action="append", default=[], metavar="ARCH",
                    help="only kernels of this architecture (x86_64, arm64; repeatable), of the default "
                         "matrix or of the --kernel ids")
    group.addoption("--accel", default="auto", choices=["auto", "kvm", "tcg"],
                    help="auto probes KVM with a real boot and falls back to TCG")
    group.addoption("--results", type=Path, default=None, help="results JSON (default: RUN_DIR/results.json)")
    group.addoption("--run-dir", type=Path, default=None, help="where console logs and results go")
    group.addoption("--vm-cpus", type=int, default=1)
    group.addoption("--vm-memory", default="1G")
    group.addoption("--boot-timeout", type=float, default=None, help="seconds (default: 90 KVM, 300 TCG)")
    group.addoption("--refresh-kernels", action="store_true", help="re-read Debian indexes now")
    group.addoption("--kernel-log-allowlist", type=Path, default=None, metavar="TOML",
                    help="known-benign kernel log lines, each naming its kernels and why "
                         "(default: kernel-log-allowlist.toml)")
    group.addoption("--no-snapshots", action="store_true",
                    help="boot every kernel instead of restoring its saved guest (and save none)")
    group.addoption("--fresh-vm", default="kernel", choices=["kernel", "module", "test"],
                    help="a fresh guest (restored from the kernel's snapshot) for each kernel (default: "
                         "tests share it), each test module, or each test")
    group.addoption("--spread", default="kernel", choices=["kernel", "module"],
                    help="what one pytest-xdist worker takes at a time: all of a kernel's tests (default: "
                         "its guest starts once per run), or one test module of one kernel (a kernel's "
                         "modules may run on several workers at once, each restoring its guest)")


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: runs inside a booted kernel")
    config.addinivalue_line("markers", "scenario(facts=[...]): a scenario on every kernel of the matrix; facts: "
                                       "the kregress/kernels/facts.py names its expectations may depend on")
    opt = config.option
    worker = getattr(config, "workerinput", None)
    run_dir = Path(worker["kregress_run_dir"]) if worker else (opt.run_dir or new_run_dir())
    try:
        harness = KernelPool(opt.kernels_file, opt.kernel, run_dir,
                             SessionOptions(cpus=opt.vm_cpus, memory=opt.vm_memory, boot_timeout=opt.boot_timeout,
                                            snapshots=not opt.no_snapshots,
                                            allowlist=splats.load_allowlist(opt.kernel_log_allowlist)),
                             accel_request=opt.accel, refresh=opt.refresh_kernels, arches=opt.arch)
    except (KernelsFileError, splats.AllowlistError) as err:
        raise pytest.UsageError(str(err)) from None
    harness.is_controller = worker is None
    config.stash[HARNESS] = harness
    if harness.is_controller and not config.option.collectonly and not _unit_only(config):
        config.stash[RESULTS] = ResultsFile(config.option.results or harness.run_dir / "results.json",
                                            harness.run_dir, config.option.kernels_file)
        config.stash[RESULTS].doc.update({"fresh_vm": opt.fresh_vm, "snapshots": not opt.no_snapshots,
                                          "spread": opt.spread, "workers": _workers(config)})
        harness.run_keys()      # once, before any xdist worker starts and needs them
    atexit.register(procs.kill_all)
    # SIGTERM (CI cancelling the job) must shut the VMs down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


HARNESS = pytest.StashKey[KernelPool]()
RESULTS = pytest.StashKey[ResultsFile]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: workers share the controller's run directory."""
    node.workerinput["kregress_run_dir"] = str(node.config.stash[HARNESS].run_dir)
    node.workerinput["kregress_durations"] = known_durations(node.config)


def pytest_generate_tests(metafunc):
    if "kernel_id" in metafunc.fixturenames:
        ids = list(metafunc.config.stash[HARNESS].specs)
        metafunc.parametrize("kernel_id", ids, ids=ids, scope="session")


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config, items):
    """One xdist group per kernel (or per kernel and test module, with --spread module),
    marked before xdist's own hook turns the marks into groups. Then, after pytest's own
    reordering (by parametrized fixture scope, which interleaves kernels), each kernel's
    tests together, the kernels whose tests took longest last time first: xdist hands a
    worker its next group only when it is nearly done, so no worker is left with a long
    kernel at the end."""
    for item in items:
        kernel_id = _kernel_of(item)
        if kernel_id:
            item.add_marker(pytest.mark.vm)
            group = kernel_id if config.option.spread == "kernel" else f"{kernel_id}@{item.path.stem}"
            item.add_marker(pytest.mark.xdist_group(group))
    yield
    tests_by_kernel = {kernel_id: [] for kernel_id in config.stash[HARNESS].specs}
    for item in items:
        if _kernel_of(item) in tests_by_kernel:
            tests_by_kernel[_kernel_of(item)].append(item.nodeid.split("@")[0])
    kernels = durations.longest_first(tests_by_kernel, known_durations(config))
    order = {kernel_id: i for i, kernel_id in enumerate(kernels)}
    items.sort(key=lambda item: order.get(_kernel_of(item), -1))


def known_durations(config) -> dict[str, float]:
    """The tests' seconds last time, read once by the controller: every xdist worker must
    order its collection the same way, even if another run rewrites the file meanwhile."""
    worker = getattr(config, "workerinput", None)
    if worker and "kregress_durations" in worker:
        return worker["kregress_durations"]
    if not hasattr(config, "_kregress_durations"):
        config._kregress_durations = durations.load()
    return config._kregress_durations


def _kernel_of(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("kernel_id") if callspec else None


@pytest.fixture
def kernel_session(request, kernel_id) -> KernelSession:
    """The kernel's VM: booted once, reused, and rebooted only after a test lost it.

    Every test gets the kernel log lines produced while it ran (dmesg) and those logged
    since the previous test on its VM ended, or since the VM started (dmesg_before); a
    kernel problem among them (kregress/kernel_log/splats.py: WARN, BUG, Oops, KASAN, UBSAN, lockdep,
    hung task, RCU stall), unless allowlisted, fails the test at teardown.
    """
    harness = request.config.stash[HARNESS]
    fresh = {"kernel": None, "module": request.node.path, "test": request.node.nodeid}[request.config.option.fresh_vm]
    record = _record_of(request.node)
    try:
        session, error = harness.session(kernel_id, fresh_for=fresh), None
    except (BootError, KernelFetchError) as err:
        error = str(err)
        record["harness_error"] = "boot-failed" if isinstance(err, BootError) else "fetch-failed"
    if error:
        pytest.fail(error, pytrace=False)
    session.begin_test(record)
    session.collect_dmesg(into="dmesg_before")
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
    """The kernel's facts; the ones the test asked about go into its record (facts_used).
    A scenario test may only ask about the facts its module declares, and its expect()
    calls must name exactly the facts it asked about."""
    kernel = kernel_session.kernel
    declared = declared_facts(request.node.iter_markers("scenario"))
    facts = KernelFacts(kernel.id, kernel.upstream_version, dict(kernel.spec.facts), kernel_session.evidence,
                        declared=declared, arch=kernel.spec.arch, config=kernel.config,
                        config_source=kernel.config_source)
    yield facts
    record = _record_of(request.node)
    record["facts_used"] = {name: facts.summary(name) for name in sorted(facts.used)}
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
        entry = _record_of(request.node)
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
        entry = _record_of(request.node)
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
    lacks it, a contradiction (FAIL). optional=True: a configuration the expectation was not
    calibrated for (not a kernel feature): not held is a named SKIP with what was measured
    (observed=...). Recorded as `precondition`."""
    def check(name: str, holds: bool, *, facts=(), reason: str = "", fix: str = "", optional: bool = False,
              observed: dict | None = None) -> None:
        states = {fact: kernel_facts.state(fact) for fact in facts}     # every fact consulted
        should = all(state == "has" for state in states.values())
        if holds and (should or optional):
            return
        entry = _record_of(request.node)
        entry["precondition"] = {"name": name, "met": bool(holds), "reason": reason, "facts": list(facts),
                                 "optional": optional}      # optional: verdicts count it for no fact
        entry["ended_by"] = "precondition"
        entry["observed"].update(observed or {})
        if optional:        # a configuration the rule was not made for: measured, not judged
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
            _record_of(request.node)["harness_error"] = "driver-failed"
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


def _record_of(item) -> dict:
    for key, value in item.user_properties:
        if key == PROPERTY:
            return value
    value = new_record()
    item.user_properties.append((PROPERTY, value))
    return value


def _is_scenario(item) -> bool:
    return item.get_closest_marker("scenario") is not None and _kernel_of(item) is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, GuestFailure):
        # a harness-level error, not a behaviour verdict: keep the console, drop the traceback
        _record_of(item)["harness_error"] = call.excinfo.value.kind
        report.longrepr = f"{call.excinfo.value.kind.upper()}: {call.excinfo.value}"
    kernel_id = _kernel_of(item)
    if report.when == "call" and _is_scenario(item):
        _check_ending(item, report)
    if kernel_id and report.when == "call" and report.failed:
        _add_reproducer(item, report, kernel_id)
    if kernel_id and report.when == "teardown":
        harness = item.config.stash[HARNESS]
        harness.update_info(kernel_id)
        record = _record_of(item)
        record["kernel"] = kernel_id
        record["kernel_info"] = harness.infos.get(kernel_id) or {
            "id": kernel_id, "error": harness.boot_errors.get(kernel_id) or harness.fetch_errors.get(kernel_id)}
        spec = harness.specs.get(kernel_id)
        if spec:    # kernels.toml's facts overrides: reports flag the stale ones, offline too
            record["kernel_info"] = {**record["kernel_info"], "facts": dict(spec.facts)}
        report.user_properties = list(item.user_properties)
    return report


def _check_ending(item, report) -> None:
    """A scenario test ends through expect() or the precondition helper; any other ending
    (bare assert, pytest.fail/skip/xfail of its own) turns into a failure saying so."""
    outcome = "skipped" if report.skipped else report.outcome
    problem = ending_problem(_record_of(item), outcome, xfailed=hasattr(report, "wasxfail"))
    if not problem:
        return
    original = str(report.longrepr or "")[-2000:]
    report.outcome = "failed"
    if hasattr(report, "wasxfail"):
        del report.wasxfail
    report.longrepr = f"{item.nodeid}: {problem}" + (f"\nthe test's own ending:\n{original}" if original else "")


def _add_reproducer(item, report, kernel_id: str) -> None:
    """The commands that replay what the failed test ran, in its record and its message."""
    record = _record_of(item)
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


@pytest.hookimpl(tryfirst=True)     # before --junitxml reads user_properties
def pytest_runtest_logreport(report):
    """Controller side (also without xdist): one results entry per test, after teardown."""
    entry = _phases.setdefault(report.nodeid, {"outcome": "passed", "longrepr": ""})
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
    results = _results_of(report)
    if results is None:
        return
    record = dict(next((v for k, v in report.user_properties if k == PROPERTY), {}))
    _flatten_properties(report, record)
    if record.get("harness_error"):
        entry["outcome"] = "error"      # the guest failed, not the behaviour under test
    kernel_info = record.pop("kernel_info", None)
    if kernel_info:
        results.add_kernel(kernel_info)
    nodeid = report.nodeid.split("@")[0]      # xdist's loadgroup appends "@<group>"
    results.add_test({"nodeid": nodeid, **entry, **record})


def _flatten_properties(report, record: dict) -> None:
    """--junitxml writes user_properties as <property>: give it the kernel (id, exact version,
    accelerator) and the behaviour as flat pairs, not the whole record (results.json has it)."""
    if not record.get("kernel"):
        return
    flat = junit_properties(record["kernel"], record.get("kernel_info") or {})
    flat.append(("observed", json.dumps(record.get("observed") or {}, sort_keys=True)))
    report.user_properties = [(k, v) for k, v in report.user_properties if k != PROPERTY] + flat


_controller_results: list[ResultsFile] = []


def _results_of(report):
    return _controller_results[0] if _controller_results else None


def pytest_sessionstart(session):
    results = session.config.stash.get(RESULTS, None)
    if results:
        _controller_results.append(results)


def pytest_sessionfinish(session, exitstatus):
    harness = session.config.stash[HARNESS]
    harness.stop_live()
    procs.kill_all()


def _workers(config) -> int:
    """How many processes run the tests: pytest-xdist's workers (-n, resolved), else this one."""
    return max(1, int(getattr(config.option, "numprocesses", None) or 0))


def _unit_only(config) -> bool:
    """A run of tests/unit alone boots nothing: no probe, no run directory."""
    return bool(config.args) and all(
        Path(a.split("::")[0]).resolve().is_relative_to(PROJECT_ROOT / "tests/unit") for a in config.args)


def pytest_report_header(config):
    """The accelerator, decided once at the top of the run (a refusal KVM or QEMU reported is cached per host)."""
    harness = config.stash[HARNESS]
    if not harness.is_controller or _unit_only(config) or config.option.collectonly:
        return None
    accel = harness.choose_accel()
    cached = ", cached probe" if accel.cached else ""
    return [f"kregress: accelerator {accel.accel} ({accel.reason}{cached})",
            f"kregress: kernels {', '.join(harness.specs)}; run directory {harness.run_dir}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(RESULTS, None)
    if not results:
        return
    kmsg_gaps.merge(results.doc, config.stash[HARNESS].run_dir)
    summary = results.finish()
    durations.record(results.doc)
    write = terminalreporter.write_line
    terminalreporter.section("kregress")
    rows = verdicts.table([results.doc])
    if rows:        # first: the fleet's question, one line per kernel and fact
        for line in verdicts.render(rows).splitlines():
            write(line)
    for line in documents.render(documents.rules([results.doc])):
        write(line)
    for line in deviations.render(deviations.rules([results.doc])):
        write(line)
    cases = {case_of(t["nodeid"], t.get("kernel")) for t in results.doc["tests"] if t.get("kernel")}
    for line in known.render(known.ran(known.load(), cases), known.failing_cases(results.doc)):
        write(line)
    for accel in results.doc["accelerators"]:
        write(f"accelerator: {accel['accel']} ({accel['reason']})")
    for image in guest_images(results.doc):
        packages = image.get("packages") or {}
        write(f"guest image: {image['suite']} {image['arch']} sha256 {image['digest'][:16]}, {len(packages)} packages "
              f"(libc6 {packages.get('libc6', '?')}; every version in results.json)")
    for root in build_roots(results.doc):
        write(f"build root: {root['suite']} {root['digest'][:16]}: " + ", ".join(
            f"{name} {root['versions'].get(name, '?')}" for name in ("clang", "gcc", "libbpf-dev", "libelf-dev")))
    for kernel_id, info in results.doc["kernels"].items():
        if info.get("error"):
            write(f"  {kernel_id}: NOT BOOTED: {info['error'].splitlines()[0]}")
        else:
            phases = ", ".join(f"{name} {value}" for name, value in (info.get("boot_phases") or {}).items())
            write(f"  {kernel_id}: {info.get('package') or info.get('image')} {info.get('package_version') or ''} "
                  f"uname -r {info.get('uname_r')}, {info.get('arch')} {page_text(info.get('page_size'))} pages, "
                  f"{came_up(info)} in {info.get('boot_seconds')}s under {info.get('accel')} ({phases})")
    missing = evidence.missing_witnesses(results.doc["kernels"])
    if missing:
        write(missing)
    # what the harness did to keep going, and what the boot logs showed: never only in results.json
    for line in recovery.run_lines(results.doc):
        terminalreporter.write_line("  " + line, yellow=True)
    write(f"kernels booted: {summary['kernels_booted']}, VM tests run: {summary['vm_tests_run']} "
          f"(outcomes {summary['outcomes']})")
    write(f"results: {results.path}")
    if summary["vm_tests"]:
        _write_reports(terminalreporter, config, results.path)


def came_up(info: dict) -> str:
    return {"restored": "restored", "booted+saved": "booted (and saved)"}.get(info.get("boot_how"), "booted")


def _write_reports(terminalreporter, config, results_path: Path) -> None:
    """report.html, kcidb.json and junit.xml beside results.json, and the matrix as text."""
    ours = results_path.parent / "junit.xml"
    xmlpath = getattr(config.option, "xmlpath", None)
    skip = ("junit.xml",) if xmlpath and Path(xmlpath).resolve() == ours.resolve() else ()
    try:
        matrix, written = write_reports(results_path, skip=skip)
    except Exception as err:    # a report bug must not hide the results above
        terminalreporter.write_line(f"kregress: could not write the reports: {err!r}", red=True)
        return
    for line in render_text(matrix):
        terminalreporter.write_line(line)
    for path in written.values():
        terminalreporter.write_line(f"report: {path}")
