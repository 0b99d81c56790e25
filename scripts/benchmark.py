#!/usr/bin/env python3
"""Measure the harness on this machine and print figures and ratios (no timed assertions).

  .venv/bin/python scripts/benchmark.py [--kernel ID ...] [--naive-kernel debian-6.12]

1. the scenario matrix, twice: cold-or-warm, then warm (bytes downloaded, programs rebuilt)
2. per-test harness overhead: test duration minus the seconds its commands ran in the guest
3. wall time against the floor: sum(boot seconds) / workers + guest seconds / workers
4. one booted kernel: guest-agent round trips versus one SSH exec session per command
5. the naive way for one scenario: one `vng --exec` boot per test case, as a plain
   virtme-ng user would write it, against the harness's boot-once time for the same cases
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

from kregress import build  # noqa: E402
from kregress.accel import choose_for_host  # noqa: E402
from kregress.config import load_kernels, select_kernels  # noqa: E402
from kregress.guest import RunKeys  # noqa: E402
from kregress.kernels import resolve  # noqa: E402
from kregress.procs import run_bounded  # noqa: E402
from kregress.session import KernelSession  # noqa: E402
from kregress.vm import vng_base, vng_env  # noqa: E402

SCENARIO_TESTS = ["tests/test_getsockopt_efault.py", "tests/test_sockops_flags.py", "tests/test_lsm_priority.py"]
# The getsockopt tests as a plain virtme-ng user would run them: one boot per test case.
NAIVE_CASES = {
    "unknown_option_big_optlen": ["unknown 8192 none", "unknown 8192 buggy"],
    "unknown_option_optlen_page_size": ["unknown 4096 none", "unknown 4096 buggy"],
    "private_option_answered_by_program": ["private 8192 buggy"],
    "workaround_resets_optlen": ["unknown 8192 none", "unknown 8192 fixed"],
    "setsockopt_ip_tos_optlen_4097": ["tos 4097 none", "tos 4097 buggy"],
    "kernel_answer_longer_than_page": ["peergroups 8192 none", "peergroups 8192 buggy", "peergroups 8192 fixed"],
    "dmesg_line_exactly_with_fix": ["tos 4097 buggy", "peergroups 8192 buggy"],
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def run_matrix(label: str, kernels: list[str], workers: int) -> dict:
    run_dir = ROOT / "runs" / f"bench-{label}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", str(workers),
           "--dist", "loadgroup", "--run-dir", str(run_dir), *SCENARIO_TESTS]
    for kernel in kernels:
        cmd += ["--kernel", kernel]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    doc = json.loads((run_dir / "results.json").read_text())
    tests = [t for t in doc["tests"] if t.get("kernel") and t["outcome"] in ("passed", "failed", "xfailed", "xpassed")]
    boots = {k: v.get("boot_seconds") for k, v in doc["kernels"].items()}
    guest = sum(t.get("guest_seconds", 0.0) for t in tests)
    overhead = [t["seconds"] - t.get("guest_seconds", 0.0) for t in tests if "seconds" in t]
    floor = sum(b for b in boots.values() if b) / workers + guest / workers
    return {"label": label, "exit": proc.returncode, "wall_s": round(wall, 1), "workers": workers,
            "outcomes": doc["summary"]["outcomes"], "boot_s": boots,
            "peak_rss_mb": {k: v.get("qemu_peak_rss_mb") for k, v in doc["kernels"].items()},
            "downloaded_bytes": sum(v.get("downloaded_bytes") or 0 for v in doc["kernels"].values()),
            "programs_rebuilt": sum(v.get("programs_rebuilt") or 0 for v in doc["kernels"].values()),
            "accelerators": doc["accelerators"], "guest_s": round(guest, 2),
            "overhead_median_ms": round(statistics.median(overhead) * 1000, 1) if overhead else None,
            "overhead_p95_ms": round(pct(overhead, 0.95) * 1000, 1) if overhead else None,
            "floor_s": round(floor, 1), "ratio_to_floor": round(wall / floor, 2) if floor else None,
            "tests": len(tests), "results": str(run_dir / "results.json"),
            "per_test": {t["nodeid"]: t.get("seconds") for t in tests}}


def round_trips(kernel_id: str) -> dict:
    spec = select_kernels(load_kernels(ROOT / "kernels.toml"), [kernel_id])[0]
    kernel = resolve(spec)
    run_dir = Path(tempfile.mkdtemp(prefix="kregress-bench-"))
    accel = choose_for_host("auto", vng_base("kvm", 1, "512M"), kernel.image, vng_env())
    session = KernelSession(kernel, accel, run_dir, RunKeys.create(run_dir / "ssh"))
    try:
        session.start()
        agent = []
        for _ in range(50):
            started = time.monotonic()
            session.run(["true"])
            agent.append(time.monotonic() - started)
        ssh = []
        for _ in range(5):
            started = time.monotonic()
            session.vm.session.ssh_exec("true")
            ssh.append(time.monotonic() - started)
    finally:
        session.stop()
    return {"kernel": kernel_id, "boot_s": session.vm.boot.seconds if session.vm.boot else None,
            "agent_median_ms": round(statistics.median(agent) * 1000, 1),
            "agent_p95_ms": round(pct(agent, 0.95) * 1000, 1),
            "ssh_exec_median_ms": round(statistics.median(ssh) * 1000, 1),
            "ssh_exec_p95_ms": round(pct(ssh, 0.95) * 1000, 1)}


def naive(kernel_id: str) -> dict:
    spec = select_kernels(load_kernels(ROOT / "kernels.toml"), [kernel_id])[0]
    kernel = resolve(spec)
    driver = build.build("getsockopt_efault").driver
    accel = choose_for_host("auto", vng_base("kvm", 1, "512M"), kernel.image, vng_env())
    per_case = {}
    for case, invocations in NAIVE_CASES.items():
        script = "; ".join(f"{shlex.quote(str(driver))} {args}" for args in invocations)
        cmd = vng_base(accel.accel, 1, "1G") + ["--run", str(kernel.image), "--exec", script]
        started = time.monotonic()
        code, output = run_bounded(cmd, timeout=600, env=vng_env())
        per_case[case] = {"seconds": round(time.monotonic() - started, 1), "exit": code,
                          "json_lines": sum(line.startswith("{") for line in output.splitlines())}
    return {"kernel": kernel_id, "cases": per_case, "total_s": round(sum(c["seconds"] for c in per_case.values()), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", action="append", default=[])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--naive-kernel", default="debian-6.12")
    args = parser.parse_args()
    kernels = args.kernel or [s.id for s in select_kernels(load_kernels(ROOT / "kernels.toml"), [])]
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host_cpus": os.cpu_count(),
              "kernels": kernels, "load_before": os.getloadavg()}
    report["first_run"] = run_matrix("first", kernels, args.workers)
    report["warm_run"] = run_matrix("warm", kernels, args.workers)
    report["round_trips"] = round_trips(args.naive_kernel)
    report["naive"] = naive(args.naive_kernel)
    warm = report["warm_run"]
    harness_same = (warm["boot_s"].get(args.naive_kernel) or 0) + sum(
        s or 0 for node, s in warm["per_test"].items()
        if "test_getsockopt_efault" in node and f"[{args.naive_kernel}]" in node)
    report["naive"]["harness_same_cases_s"] = round(harness_same, 1)
    report["naive"]["speedup"] = round(report["naive"]["total_s"] / harness_same, 1) if harness_same else None
    report["load_after"] = os.getloadavg()
    out = ROOT / "runs" / f"benchmark-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=1))
    print_report(report)
    print(f"\nwritten: {out}")
    return 0


def print_report(r: dict) -> None:
    warm, first, rt, nv = r["warm_run"], r["first_run"], r["round_trips"], r["naive"]
    accel = ", ".join(f"{a['accel']} ({a['reason'][:60]})" for a in warm["accelerators"])
    print(f"kregress benchmark, {r['date']}, {r['host_cpus']} host CPUs, accelerator: {accel}; "
          f"load average before {r['load_before'][0]:.1f}, after {r['load_after'][0]:.1f}")
    print("boot-to-ready seconds per kernel (warm run), peak qemu RSS:")
    for kernel, seconds in warm["boot_s"].items():
        print(f"  {kernel:20s} {seconds:6}s  {warm['peak_rss_mb'].get(kernel)} MiB")
    for run in (first, warm):
        print(f"{run['label']} matrix: {run['tests']} tests, wall {run['wall_s']}s with {run['workers']} workers, "
              f"floor {run['floor_s']}s (boots/workers + guest {run['guest_s']}s/workers), "
              f"ratio {run['ratio_to_floor']} (goal <= 1.3); downloaded {run['downloaded_bytes']} bytes, "
              f"rebuilt {run['programs_rebuilt']} programs; outcomes {run['outcomes']}")
    print(f"harness overhead per test (duration minus guest time): median {warm['overhead_median_ms']} ms, "
          f"p95 {warm['overhead_p95_ms']} ms (goal median < 50 ms)")
    print(f"command round trip on {rt['kernel']}: agent median {rt['agent_median_ms']} ms / p95 {rt['agent_p95_ms']} ms; "
          f"one SSH exec session per command: median {rt['ssh_exec_median_ms']} ms / p95 {rt['ssh_exec_p95_ms']} ms "
          f"(x{round(rt['ssh_exec_median_ms'] / rt['agent_median_ms'], 1)})")
    print(f"naive getsockopt_efault on {nv['kernel']}: {len(nv['cases'])} vng --exec boots, {nv['total_s']}s; "
          f"the harness for the same cases: {nv['harness_same_cases_s']}s (boot once + tests); "
          f"speed-up x{nv['speedup']} (goal >= 5)")


if __name__ == "__main__":
    sys.exit(main())
