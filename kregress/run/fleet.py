"""`kregress fleet KERNELS_FILE`: every kernel of a fleet, each booted once (snapshots as
usual), running only the cases that judge every fact at least once (pytest --fleet, see
kregress/plugin/fleet.py), then the verdict grid with `kregress verdicts`' exit rules.

The cases are chosen and ordered by pytest (a collection first, longest kernel first, never-run
kernels estimated by arch and first-boot cost); the kernels are fetched in that order in a thread
while the run boots the first ones, so fetching overlaps booting (a worker that reaches a kernel
before the thread does resolves it itself, under the same per-suite lock)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from kregress.kernels.entries import load_kernels, select_kernels
from kregress.kernels.kernel import KernelFetchError
from kregress.kernels.sources import resolve
from kregress.report import verdicts
from kregress.report.fleet import FLEET_FILE

SCENARIOS = "tests/scenarios"


def pytest_argv(kernels_file: Path, kernel_ids: list[str], run_dir: Path, workers: str, leave: list[str],
                selection: list[str]) -> list[str]:
    # the selection first: pytest finds the project's conftest (and so these options) from it
    argv = [sys.executable, "-m", "pytest", *selection, "-p", "no:cacheprovider", "-q", "--fleet",
            "--kernels-file", str(kernels_file), "--run-dir", str(run_dir)]
    argv += [f"--kernel={k}" for k in kernel_ids] + [f"--fleet-leave={f}" for f in leave]
    return argv + (["-n", workers, "--dist", "loadgroup"] if workers != "0" else [])


def run_order(argv: list[str], ids: list[str], cwd: Path) -> list[str]:
    """The kernel ids in the order the run will take them (pytest's collection, deselected cases gone)."""
    collect = [a for a in argv if a not in ("--dist", "loadgroup")]
    if "-n" in collect:
        del collect[collect.index("-n"):collect.index("-n") + 2]
    out = subprocess.run(collect + ["--collect-only"], capture_output=True, text=True, cwd=cwd).stdout
    order: list[str] = []
    for line in out.splitlines():
        params = line.rsplit("[", 1)[-1] if "::" in line else ""
        for kernel_id in sorted(ids, key=len, reverse=True):        # the longest id that matches
            if f"[{kernel_id}]" in "[" + params or f"-{kernel_id}]" in params or f"[{kernel_id}-" in "[" + params:
                if kernel_id not in order:
                    order.append(kernel_id)
                break
    return order + [k for k in ids if k not in order]


def prefetch(specs: dict, order: list[str], fetched: dict, refresh: bool) -> threading.Thread:
    """Resolve (fetch) the kernels in run order; each one's seconds and bytes into `fetched`."""
    def work():
        for kernel_id in order:
            started = time.monotonic()
            try:
                kernel = resolve(specs[kernel_id], refresh=refresh)
                fetched[kernel_id] = {"seconds": round(time.monotonic() - started, 2),
                                      "downloaded_bytes": kernel.downloaded_bytes}
            except KernelFetchError as err:
                fetched[kernel_id] = {"seconds": round(time.monotonic() - started, 2), "error": str(err)}
    thread = threading.Thread(target=work, name="fleet-prefetch", daemon=True)
    thread.start()
    return thread


def run(kernels_file: Path, kernel_ids: list[str], run_dir: Path, cwd: Path, workers: str = "auto",
        leave: list[str] = (), refresh: bool = False, selection: list[str] = (SCENARIOS,)) -> int:
    specs = {s.id: s for s in select_kernels(load_kernels(kernels_file), kernel_ids)}
    started = time.monotonic()
    argv = pytest_argv(kernels_file, list(kernel_ids), run_dir, workers, list(leave), list(selection))
    order = run_order(argv, list(specs), cwd)
    fetched: dict[str, dict] = {}
    thread = prefetch(specs, order, fetched, refresh)
    proc = subprocess.run(argv, cwd=cwd)
    thread.join()
    wall = round(time.monotonic() - started, 1)
    fetch_wall = round(sum(f["seconds"] for f in fetched.values()), 1)     # one thread: its seconds add up
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FLEET_FILE).write_text(json.dumps({"wall_s": wall, "fetch_wall_s": fetch_wall, "order": order,
                                                  "fetched": fetched, "leave": list(leave),
                                                  "pytest_exit": proc.returncode}, indent=1))
    results = run_dir / "results.json"
    if not results.exists():
        print(f"fleet: the run wrote no results ({results}); pytest exit {proc.returncode}", file=sys.stderr)
        return 2
    lines, status = verdicts.verdict_lines(verdicts.load([results]), grid_view=True)
    print("\n".join(lines))
    for kernel_id, f in fetched.items():
        if "error" in f:
            print(f"fleet: {kernel_id}: not fetched: {f['error']}", file=sys.stderr)
    return status
