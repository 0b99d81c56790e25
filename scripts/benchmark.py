#!/usr/bin/env python3
"""Measure the harness on this machine and print figures and ratios (no timed assertions).

  .venv/bin/python scripts/benchmark.py [--kernel ID ...] [--naive-kernel debian-6.12]
  .venv/bin/python scripts/benchmark.py --overhead RUN_DIR/results.json

--fleet RUN_DIR, --split RESULTS (either or both, in one run): a fleet run's figures (per kernel
fetch, first boot, save and guest work; kernels a minute: kregress/report/fleet.py) and a `make
test` run's worker-seconds by folder (harness, scenarios, unit) and per harness module.
--fleet-kernels FILE runs `kregress fleet FILE` first, its kernels' snapshots pruned (cold), and
prints its figures.

--overhead: only issue 24's measure of one run, the VM-test wall against its floor and
the parts of the gap (kregress/report/overhead.py); `make bench` runs the matrix twice
and prints it for the second run, every kernel restored. Otherwise:

0. single boots of one kernel, 3 times: boot-to-agent with its phases, against a plain
   `vng --exec true` boot of the same kernel on the host's root over 9p (what the suite
   booted before it had a guest of its own, minus its sshd and agent), in the same run
1. the old matrix's four kernels with every one booted (--no-snapshots), against the 52 s
   the host-root path took; then the scenario matrix four times: cold (no snapshots: every kernel boots and saves),
   warm (every kernel restores), warm with a kernel's test modules spread over workers
   (--spread module), and warm with a fresh guest restored for every test
   (--fresh-vm test); restore seconds per kernel, the snapshot cache's size
2. per-test harness overhead: test duration minus the seconds its commands ran in the guest
3. wall time against the floor: sum(boot seconds) / workers + guest seconds / workers
4. one booted kernel: guest-agent round trips versus one SSH exec session per command
5. the naive way for one kernel's tests: each test's commands in a `vng --exec` boot of
   its own, as a plain virtme-ng user would write it, against the harness's time for the
   same tests (one boot, in the first test's setup, + the tests)
Writes everything to runs/benchmark-<time>.json as well.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kregress.provision import programs as build  # noqa: E402
from kregress.report import fleet as fleet_figures  # noqa: E402
from kregress.report import overhead as harness_overhead  # noqa: E402
from kregress.report.results import load as load_results  # noqa: E402
from kregress.kernels.entries import load_kernels, select_kernels  # noqa: E402
from kregress.run.pool import KernelPool  # noqa: E402
from kregress.procs import run_bounded  # noqa: E402
from kregress.run.session import VMOptions  # noqa: E402
from kregress.run.snapshot import SnapshotCache  # noqa: E402
from kregress.run.vng import vng_base, vng_env  # noqa: E402

KERNELS_FILE = ROOT / "kernels.toml"
PHASES = ["kernel_start", "kernel_done", "init_done", "sshd_ready", "restore_running", "ssh_connected", "agent_ready"]

# The matrix before the guest of our own (host root over 9p, every kernel booted, 2 workers),
# measured on this machine on 2026-11-22: the yardstick for booting without snapshots.
OLD_MATRIX = ["debian-5.10", "debian-6.1", "debian-6.12", "debian-backports"]
OLD_MATRIX_WALL_S = 52.0
# ... and the selection it ran then, for a like-for-like ratio (the sockopt contract came
# later); every other run here takes every scenario module there is.
OLD_MATRIX_SELECTION = ["tests/scenarios/test_getsockopt_efault.py", "tests/scenarios/test_sockops_flags.py", "tests/scenarios/test_lsm_priority.py"]
# Every scenario module (pytest.mark.scenario), whatever scenarios exist when it runs. The
# yardstick above had three; the sockopt contract scenario came after it.
SCENARIOS = ["tests/scenarios"]
# one kernel per emulated architecture: boot-to-agent and restore per architecture
ARCH_KERNELS = ["debian-6.12-arm64-16k", "debian-6.1-ppc64le", "debian-6.1-s390x"]
# The naive way replays each test's recorded commands (results.json "commands") in a
# vng --exec boot of its own, as a plain virtme-ng user would write one test per boot.


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def run_matrix(label: str, kernels: list[str], workers: int, *options: str, selection=SCENARIOS) -> dict:
    run_dir = ROOT / "runs" / f"bench-{label}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", str(workers),
           "--dist", "loadgroup", "--run-dir", str(run_dir), *options, *selection]
    for kernel in kernels:
        cmd += ["--kernel", kernel]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    doc = json.loads((run_dir / "results.json").read_text())
    tests = [t for t in doc["tests"] if t.get("kernel") and t["outcome"] in ("passed", "failed", "xfailed", "xpassed")]
    boots = {k: v.get("boot_seconds") for k, v in doc["kernels"].items()}
    starts = {k: v.get("boots") for k, v in doc["kernels"].items()}
    phases = {k: v.get("boot_phases") for k, v in doc["kernels"].items()}
    guest = sum(t.get("guest_seconds", 0.0) for t in tests)
    overhead = [t["seconds"] - t.get("guest_seconds", 0.0) for t in tests if "seconds" in t]
    floor = sum(b for b in boots.values() if b) / workers + guest / workers
    return {"label": label, "exit": proc.returncode, "wall_s": round(wall, 1), "workers": workers,
            "outcomes": doc["summary"]["outcomes"], "boot_s": boots, "boot_phases": phases, "starts": starts,
            "peak_rss_mb": {k: v.get("qemu_peak_rss_mb") for k, v in doc["kernels"].items()},
            "downloaded_bytes": sum(v.get("downloaded_bytes") or 0 for v in doc["kernels"].values()),
            "programs_rebuilt": sum(v.get("programs_rebuilt") or 0 for v in doc["kernels"].values()),
            "accelerators": doc["accelerators"], "guest_s": round(guest, 2),
            "overhead_median_ms": round(statistics.median(overhead) * 1000, 1) if overhead else None,
            "overhead_p95_ms": round(pct(overhead, 0.95) * 1000, 1) if overhead else None,
            "floor_s": round(floor, 1), "ratio_to_floor": round(wall / floor, 2) if floor else None,
            "tests": len(tests), "results": str(run_dir / "results.json"),
            "per_test": {t["nodeid"]: t.get("seconds") for t in tests},
            "overhead": overhead_lines(doc)}


def overhead_lines(doc: dict) -> list[str]:
    """Issue 24's measure of a run: VM-test wall against guest seconds / workers, and the gap's parts."""
    try:
        return harness_overhead.render(harness_overhead.measure(doc))
    except harness_overhead.NotMeasurable as err:
        return [f"overhead not measurable: {err}"]


def pool_for(kernel_id: str, snapshots: bool = True) -> KernelPool:
    run_dir = Path(tempfile.mkdtemp(prefix="kregress-bench-"))
    return KernelPool(KERNELS_FILE, [kernel_id], run_dir, VMOptions(snapshots=snapshots))


def starts(kernel_id: str, snapshots: bool, times: int) -> list[dict]:
    """Phases of `times` starts of the kernel: full boots, or restores of its snapshot."""
    pool = pool_for(kernel_id, snapshots)
    phases = []
    for _ in range(times):
        phases.append(pool.session(kernel_id).boot.phases)
        pool.stop_live()
    return phases


def single_boots(kernel_id: str, times: int = 3, plain_vng: bool = True) -> dict:
    """Boot-to-agent of our guest, restore-to-agent from its snapshot, and (plain_vng) a
    plain vng host-root boot of the same kernel (only of the host's own architecture)."""
    ours = starts(kernel_id, snapshots=False, times=times)
    starts(kernel_id, snapshots=True, times=1)          # make sure the snapshot exists
    restores = starts(kernel_id, snapshots=True, times=times)
    pool = pool_for(kernel_id)
    kernel = pool.kernel(kernel_id)
    accel = pool.accels.for_kernel(kernel).accel
    plain = []
    for _ in range(times if plain_vng else 0):
        cmd = vng_base(accel, 1, "1G") + ["--run", str(kernel.image), "--exec", "true"]
        started = time.monotonic()
        # vng exits 255 here after a full boot ("cannot find script I/O ports": no udev for
        # /dev/virtio-ports); the boot happened, so any exit counts, a timeout does not
        code, _ = run_bounded(cmd, timeout=600, env=vng_env())
        plain.append(round(time.monotonic() - started, 2) if code is not None else None)
    done = [p for p in plain if p]
    return {"kernel": kernel_id, "accel": accel, "arch": kernel.spec.arch, "phases": ours,
            "agent_ready_median_s": statistics.median(p["agent_ready"] for p in ours),
            "restores": restores, "restore_median_s": statistics.median(p["agent_ready"] for p in restores),
            "vng_host_root_exec_s": plain, "vng_host_root_median_s": statistics.median(done) if done else None}


def round_trips(kernel_id: str) -> dict:
    pool = pool_for(kernel_id)
    session = pool.session(kernel_id)
    try:
        agent = []
        for _ in range(50):
            started = time.monotonic()
            session.run(["true"])
            agent.append(time.monotonic() - started)
        ssh = []
        for _ in range(5):
            started = time.monotonic()
            session.vm.connection.ssh_exec("true")
            ssh.append(time.monotonic() - started)
    finally:
        pool.stop_live()
    return {"kernel": kernel_id, "boot_s": session.boot.seconds,
            "agent_median_ms": round(statistics.median(agent) * 1000, 1),
            "agent_p95_ms": round(pct(agent, 0.95) * 1000, 1),
            "ssh_exec_median_ms": round(statistics.median(ssh) * 1000, 1),
            "ssh_exec_p95_ms": round(pct(ssh, 0.95) * 1000, 1)}


def naive(kernel_id: str, results: str) -> dict:
    """A plain virtme-ng user: each test's commands in a `vng --exec` boot of its own, on
    the host's root (the drivers are static, so they run there too)."""
    pool = pool_for(kernel_id)
    kernel, accel = pool.kernel(kernel_id), pool.accels.choose()
    drivers = {name: str(build.build(name).driver) for name in build.scenario_names()}
    tests = [t for t in json.loads(Path(results).read_text())["tests"]
             if t.get("kernel") == kernel_id and t.get("commands")]
    per_test, harness = {}, 0.0
    for test in tests:
        script = "; ".join(shlex.join([drivers.get(argv[0], argv[0]), *argv[1:]]) for argv in test["commands"])
        cmd = vng_base(accel.accel, 1, "1G") + ["--run", str(kernel.image), "--exec", script]
        started = time.monotonic()
        code, _ = run_bounded(cmd, timeout=600, env=vng_env())
        per_test[test["nodeid"]] = {"seconds": round(time.monotonic() - started, 1), "exit": code}
        harness += sum(test.get(k) or 0 for k in ("setup_seconds", "seconds", "teardown_seconds"))
    return {"kernel": kernel_id, "tests": per_test, "boots": len(per_test),
            "total_s": round(sum(t["seconds"] for t in per_test.values()), 1),
            "harness_tests_s": round(harness, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", action="append", default=[])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--naive-kernel", default="debian-6.12")
    parser.add_argument("--arch-kernel", action="append", default=[], metavar="ID",
                        help="a kernel of another architecture whose boot-to-agent and restore are printed next "
                             f"to --naive-kernel's (repeatable; default: {', '.join(ARCH_KERNELS)})")
    parser.add_argument("--arches-only", action="store_true",
                        help="only the single boots and restores per architecture (no matrix runs)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the slow naive replay")
    parser.add_argument("--overhead", type=Path, metavar="RESULTS",
                        help="print only this run's VM-test wall against its floor and the gap's parts")
    parser.add_argument("--fleet", type=Path, metavar="RUN_DIR", help="print this fleet run's figures")
    parser.add_argument("--fleet-kernels", type=Path, metavar="FILE",
                        help="run `kregress fleet FILE` with its kernels' snapshots pruned, then print its figures")
    parser.add_argument("--split", type=Path, metavar="RESULTS", help="print a make-test run's worker-seconds split")
    parser.add_argument("--full", type=Path, action="append", default=[], metavar="RESULTS",
                        help="with --fleet: compare its verdicts with these full-matrix runs' (kernels matched by "
                             "package and version)")
    args = parser.parse_args()
    if args.overhead:
        return print_overhead(args.overhead)
    if args.fleet or args.fleet_kernels or args.split:
        return print_fleet_and_split(args.fleet, args.fleet_kernels, args.split, args.full)
    kernels = args.kernel or [s.id for s in select_kernels(load_kernels(KERNELS_FILE), [])]
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host_cpus": os.cpu_count(),
              "kernels": kernels, "load_before": os.getloadavg()}
    report["single_boots"] = single_boots(args.naive_kernel)
    report["single_boots_arches"] = [single_boots(kernel_id, plain_vng=False)
                                     for kernel_id in args.arch_kernel or ARCH_KERNELS]
    if args.arches_only:
        print_arches(report)
        return 0
    report["booted_run"] = run_matrix("booted-old-matrix", OLD_MATRIX, args.workers, "--no-snapshots",
                                      selection=OLD_MATRIX_SELECTION)
    cache = SnapshotCache()
    cache.evict(max_bytes=0)            # cold: no kernel has a snapshot yet
    report["first_run"] = run_matrix("cold", kernels, args.workers)
    report["warm_run"] = run_matrix("warm", kernels, args.workers)
    report["spread_run"] = run_matrix("warm-spread-by-module", kernels, args.workers, "--spread", "module")
    report["fresh_run"] = run_matrix("fresh-per-test", kernels, args.workers, "--fresh-vm", "test")
    report["snapshot_cache_bytes"] = sum(e["bytes"] for e in cache.entries())
    report["round_trips"] = round_trips(args.naive_kernel)
    warm = report["warm_run"]
    if not args.skip_naive:
        report["naive"] = naive(args.naive_kernel, warm["results"])
        # the harness's time for the same tests: its one boot (inside the first test's setup) + the tests
        harness_same = report["naive"]["harness_tests_s"]
        report["naive"]["harness_same_cases_s"] = round(harness_same, 1)
        report["naive"]["speedup"] = round(report["naive"]["total_s"] / harness_same, 1) if harness_same else None
    report["load_after"] = os.getloadavg()
    out = ROOT / "runs" / f"benchmark-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=1))
    print_report(report)
    print(f"\nwritten: {out}")
    return 0


def print_fleet_and_split(run_dir: Path | None, kernels_file: Path | None, split: Path | None,
                          full: list[Path] = ()) -> int:
    """The fleet's figures (running it first, cold, when given its kernels file) and the suite's split."""
    if kernels_file:
        ids = {spec.id for spec in load_kernels(kernels_file)}
        cache = SnapshotCache()
        for entry in cache.entries():       # cold: only the fleet's own kernels lose their snapshots
            if entry.get("kernel") in ids:
                cache.remove(Path(entry["directory"]))
        run_dir = ROOT / "runs" / f"bench-fleet-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        subprocess.run([sys.executable, "-m", "kregress.cli", "fleet", str(kernels_file), "--run-dir", str(run_dir)],
                       cwd=ROOT)
    if run_dir:
        print(f"fleet {run_dir}; load average now {os.getloadavg()[0]:.2f}")
        print("\n".join(fleet_figures.render(fleet_figures.figures(Path(run_dir) / "results.json"))))
        fleet_doc = load_results(Path(run_dir) / "results.json")
        for path in full:
            full_doc = load_results(path)
            kernels = fleet_figures.same_packages(fleet_doc, full_doc)
            compared, differences = fleet_figures.compare_verdicts(fleet_doc, full_doc, kernels)
            print(f"verdicts against the full matrix {path}: {len(kernels)} kernel(s) "
                  f"({', '.join(f'{k}={v}' for k, v in kernels.items())}), {compared} kernel/fact pair(s), "
                  f"{len(differences)} difference(s)")
            print("\n".join(f"  {line}" for line in differences))
    if split:
        print(f"suite split {split}")
        print("\n".join(fleet_figures.render_split(fleet_figures.suite_split(json.loads(split.read_text())))))
    return 0


def print_overhead(results: Path) -> int:
    doc = json.loads(results.read_text())
    try:
        harness_overhead.measure(doc)
    except harness_overhead.NotMeasurable as err:
        print(f"{results}: cannot measure: {err}", file=sys.stderr)
        return 2
    hows = sorted({boot.get("how") for info in doc["kernels"].values() for boot in info.get("boots") or []})
    print(f"{results}: {len(doc['kernels'])} kernels ({', '.join(hows)}), outcomes {doc['summary']['outcomes']}; "
          f"load average now {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}")
    for line in overhead_lines(doc):
        print(line)
    return 0


def print_arches(r: dict, header: bool = True) -> None:
    """Boot-to-agent and restore-to-agent per architecture, next to the host's own kernel."""
    single = r["single_boots"]
    if header:
        print(f"single boots of {single['kernel']} ({single['arch']}, {single['accel']}): boot-to-agent median "
              f"{single['agent_ready_median_s']}s, restore-to-agent median {single['restore_median_s']}s")
    for arch in r.get("single_boots_arches") or ([r["single_boots_arm64"]] if r.get("single_boots_arm64") else []):
        print(f"single boots of {arch['kernel']} ({arch['arch']}, {arch['accel']}: emulated on this host):")
        for phases in arch["phases"]:
            print(f"  {phase_line(phases)}")
        for phases in arch["restores"]:
            print(f"  restored: {phase_line(phases)}")
        print(f"  {arch['arch']}: boot-to-agent median {arch['agent_ready_median_s']}s, restore-to-agent median "
              f"{arch['restore_median_s']}s; next to {single['kernel']}: boot "
              f"{round(arch['agent_ready_median_s'] / single['agent_ready_median_s'], 2)}x, restore "
              f"{round(arch['restore_median_s'] / single['restore_median_s'], 2)}x")


def phase_line(phases: dict | None) -> str:
    return " ".join(f"{name} {phases[name]:5.2f}" for name in PHASES if phases and name in phases)


def print_report(r: dict) -> None:
    warm, first, rt, nv, single = r["warm_run"], r["first_run"], r["round_trips"], r.get("naive"), r["single_boots"]
    accel = ", ".join(f"{a['accel']} ({a['reason'][:60]})" for a in warm["accelerators"])
    print(f"kregress benchmark, {r['date']}, {r['host_cpus']} host CPUs, accelerator: {accel}; "
          f"load average before {r['load_before'][0]:.1f}, after {r['load_after'][0]:.1f}")
    print(f"single boots of {single['kernel']} ({single['accel']}), seconds from spawning QEMU:")
    for phases in single["phases"]:
        print(f"  {phase_line(phases)}")
    plain = single["vng_host_root_median_s"]
    for phases in single["restores"]:
        print(f"  restored: {phase_line(phases)}")
    print(f"  restore-to-agent median {single['restore_median_s']}s (goal <= 1.5s)")
    print(f"  boot-to-agent median {single['agent_ready_median_s']}s (goal <= 5s); a plain `vng --exec true` on the "
          f"host's root over 9p, no sshd or agent: {single['vng_host_root_exec_s']}, median {plain}s "
          f"(ratio ours/plain {round(single['agent_ready_median_s'] / plain, 2) if plain else '?'})")
    print_arches(r, header=False)
    booted = r.get("booted_run")
    if booted:
        print(f"the old matrix's kernels ({', '.join(OLD_MATRIX)}), every one booted (--no-snapshots): "
              f"{booted['wall_s']}s, {booted['tests']} tests; before this guest {OLD_MATRIX_WALL_S}s "
              f"(ratio {round(booted['wall_s'] / OLD_MATRIX_WALL_S, 2)}, goal <= 0.5)")
    print("boot phases per kernel (warm run), seconds from spawning QEMU; peak qemu RSS:")
    for kernel, phases in warm["boot_phases"].items():
        print(f"  {kernel:20s} {phase_line(phases)}  {warm['peak_rss_mb'].get(kernel)} MiB")
    fresh = r["fresh_run"]
    print("restore-to-agent seconds per kernel (warm run): " + ", ".join(
        f"{kernel} {seconds}" for kernel, seconds in warm["boot_s"].items()))
    print(f"matrix wall: cold {first['wall_s']}s (boot + save + restore), warm {warm['wall_s']}s "
          f"(ratio {round(warm['wall_s'] / first['wall_s'], 2)}, goal <= 0.33), a fresh guest for each test "
          f"{fresh['wall_s']}s ({sum(len(s or []) for s in fresh['starts'].values())} restores; ratio to the shared warm "
          f"run {round(fresh['wall_s'] / warm['wall_s'], 2)}, goal <= 2); snapshot cache "
          f"{r['snapshot_cache_bytes'] / (1 << 20):.0f} MiB")
    spread = r.get("spread_run")
    if spread:
        print(f"warm, a kernel's test modules spread over workers (--spread module): {spread['wall_s']}s "
              f"({sum(len(s or []) for s in spread['starts'].values())} restores; ratio to one worker per kernel "
              f"{round(spread['wall_s'] / warm['wall_s'], 2)})")
    for run in (first, warm, *([spread] if spread else []), fresh):
        print(f"{run['label']} matrix: {run['tests']} tests, wall {run['wall_s']}s with {run['workers']} workers, "
              f"floor {run['floor_s']}s (boots/workers + guest {run['guest_s']}s/workers), "
              f"ratio {run['ratio_to_floor']} (process wall; the goal is on the VM-test measure); "
              f"downloaded {run['downloaded_bytes']} bytes, "
              f"rebuilt {run['programs_rebuilt']} programs; outcomes {run['outcomes']}")
    print("warm run, VM-test wall against its floor (the measure of `make bench`):")
    for line in warm["overhead"]:
        print(f"  {line}")
    print(f"harness overhead per test (duration minus guest time): median {warm['overhead_median_ms']} ms, "
          f"p95 {warm['overhead_p95_ms']} ms (goal median < 50 ms)")
    print(f"command round trip on {rt['kernel']}: agent median {rt['agent_median_ms']} ms / p95 {rt['agent_p95_ms']} ms; "
          f"one SSH exec session per command: median {rt['ssh_exec_median_ms']} ms / p95 {rt['ssh_exec_p95_ms']} ms "
          f"(x{round(rt['ssh_exec_median_ms'] / rt['agent_median_ms'], 1)})")
    if nv:
        print(f"naive way on {nv['kernel']}: its {nv['boots']} tests, one vng --exec boot each, {nv['total_s']}s; "
              f"the harness for the same tests: {nv['harness_same_cases_s']}s (one boot + tests); "
              f"speed-up x{nv['speedup']} (goal >= 5)")


if __name__ == "__main__":
    sys.exit(main())
