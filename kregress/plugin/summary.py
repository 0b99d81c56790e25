"""What the run prints: the accelerator at the top, and at the end the verdicts, the kernels,
what the harness did to keep going, and the reports written beside results.json."""
from __future__ import annotations

from pathlib import Path

from kregress.kernel_log import gaps as kmsg_gaps
from kregress.kernels import evidence
from kregress.plugin import durations
from kregress.plugin.state import POOL, RESULTS, unit_only
from kregress.report import known, recovery, verdicts
from kregress.report.matrix import build_roots, guest_images
from kregress.report.results import case_of, source_text
from kregress.report.write import page_text, render_text, write_reports
from kregress.expectation import deviations, documents


def pytest_report_header(config):
    """The accelerator, decided once at the top of the run (a refusal KVM or QEMU reported is cached per host)."""
    pool = config.stash[POOL]
    if not pool.is_controller or unit_only(config) or config.option.collectonly:
        return None
    accel = pool.accels.choose()
    cached = ", cached probe" if accel.cached else ""
    return [f"kregress: accelerator {accel.accel} ({accel.reason}{cached})",
            f"kregress: kernels {', '.join(pool.specs)}; run directory {pool.run_dir}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(RESULTS, None)
    if not results:
        return
    kmsg_gaps.merge(results.doc, config.stash[POOL].run_dir)
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
                  f"{came_up(info)} in {info.get('boot_seconds')}s under {info.get('accel')} ({phases}); "
                  f"{source_text(info)}")
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
