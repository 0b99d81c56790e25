"""bisect-kernels: coarse bisection over prebuilt kernels, about log2(N) boots."""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kregress.kernels.facts import FACTS
from kregress.paths import NoSuite, suite_root
from kregress.bisect.run import pytest_command, run_selection, split_dashes
from kregress.bisect.steps import StepLog


@dataclass
class CoarseResult:
    evaluated: dict[int, dict | None]        # index -> behaviour (None: could not judge)
    last_same: int | None                    # index known to behave as the first
    first_diff: int | None                   # index known to differ (None: no change found)
    unknown_between: list[int]
    order: list[int]                         # indices in the order they were evaluated
    note: str = ""


def coarse_bisect(count: int, evaluate: Callable[[int], dict | None]) -> CoarseResult:
    """Find the first index whose behaviour differs from index 0's, evaluating ~log2(count)+2.

    Assumes one change along the list (like git bisect). An index that cannot be judged
    is skipped; if the answer lies among skipped ones, they are all reported."""
    results: dict[int, dict | None] = {}
    order: list[int] = []

    def get(i: int) -> dict | None:
        if i not in results:
            results[i] = evaluate(i)
            order.append(i)
        return results[i]

    ref = get(0)
    if ref is None:
        return CoarseResult(results, None, None, [], order, "the first kernel could not be judged")
    lo, hi = 0, None
    for i in range(count - 1, 0, -1):           # the last judgeable kernel
        behaviour = get(i)
        if behaviour is None:
            continue
        if behaviour == ref:
            lo = i
        else:
            hi = i
        break
    if hi is None:
        unknown = [i for i in range(lo + 1, count) if results.get(i, 0) is None]
        return CoarseResult(results, lo, None, unknown, order,
                            "no kernel differs from the first one among those judged "
                            "(a change and its reversal in between would not be seen)")
    while True:
        candidates = [i for i in range(lo + 1, hi) if i not in results]
        if not candidates:
            break
        middle = (lo + hi) / 2
        pick = min(candidates, key=lambda i: (abs(i - middle), i))
        behaviour = get(pick)
        if behaviour is None:
            continue
        if behaviour == ref:
            lo = pick
        else:
            hi = pick
    unknown = [i for i in range(lo + 1, hi) if results.get(i, 0) is None]
    return CoarseResult(results, lo, hi, unknown, order)


def diff_behaviour(a: dict, b: dict) -> list[str]:
    lines = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            lines.append(f"{name}: {json.dumps(a.get(name), sort_keys=True)} -> "
                         f"{json.dumps(b.get(name), sort_keys=True)}")
    return lines


def kernels_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kregress bisect-kernels",
                                description="Coarse bisection over prebuilt kernels: boot ~log2(N) of them "
                                            "to find the first whose observed behaviour differs from the first.")
    p.add_argument("--kernels-file", type=Path, default=None, help="default: the checkout's kernels-bisect.toml")
    p.add_argument("--kernel", action="append", default=[], metavar="ID",
                   help="kernel ids in order, oldest first (default: every entry of the file, in file order)")
    p.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    p.add_argument("--test-timeout", type=float, default=1800, help="seconds per kernel (fetch+boot+tests)")
    p.add_argument("--log", type=Path, default=None, help="JSON-lines step log (default: RUN_DIR/bisect.jsonl)")
    p.add_argument("--resume", type=Path, default=None, metavar="LOG",
                   help="reuse the behaviours judged in an earlier log (same kernels file and selection); "
                        "new steps are appended to it")
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--pytest-command", default=None, help=argparse.SUPPRESS)
    p.add_argument("selection", nargs="*", help="pytest arguments (after --)")
    return p


def main_kernels(argv: list[str]) -> int:
    from kregress.kernels.entries import KernelsFileError, load_kernels
    before, after = split_dashes(argv)
    args = kernels_parser().parse_args(before)
    selection = [*args.selection, *after]
    if not selection:
        print("bisect-kernels: give a test selection after --", file=sys.stderr)
        return 2
    try:
        suite = suite_root()
    except NoSuite as err:
        print(f"bisect-kernels: {err}", file=sys.stderr)
        return 2
    kernels_file = (args.kernels_file or suite / "kernels-bisect.toml").resolve()
    try:
        specs = load_kernels(kernels_file, known_facts=set(FACTS))
    except KernelsFileError as err:
        print(f"bisect-kernels: {err}", file=sys.stderr)
        return 2
    by_id = {s.id: s for s in specs}
    ids = args.kernel or [s.id for s in specs]
    unknown = [k for k in ids if k not in by_id]
    if unknown or len(ids) < 2:
        print(f"bisect-kernels: need at least two known kernel ids (unknown: {unknown}; "
              f"known: {', '.join(by_id)})", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = (args.run_dir or suite / "runs" / f"bisect-kernels-{stamp}-{os.getpid()}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.resume or args.log or run_dir / "bisect.jsonl"
    steps = StepLog(log_path)
    known: dict[str, dict] = {}
    if args.resume:
        for record in steps.records():
            if (record.get("event") == "kernel" and record.get("kernels_file") == str(kernels_file)
                    and record.get("selection") == selection and record.get("behaviour") is not None):
                known[record["kernel"]] = record
    pytest_cmd = pytest_command(args.pytest_command)
    base = {"tool": "bisect-kernels", "kernels_file": str(kernels_file), "selection": selection,
            "kernels": ids, "run_dir": str(run_dir)}
    print(f"coarse bisection over {len(ids)} kernels ({ids[0]} .. {ids[-1]}), selection: {shlex.join(selection)}")
    print(f"log: {log_path}")
    stats = {"booted": 0, "boot_attempts": 0, "reused": 0, "seconds": 0.0}
    versions: dict[str, str | None] = {}

    def evaluate(index: int) -> dict | None:
        kernel_id = ids[index]
        if kernel_id in known:
            record = known[kernel_id]
            versions[kernel_id] = record.get("version")
            stats["reused"] += 1
            print(f"  [{index + 1}/{len(ids)}] {kernel_id}: from the log ({record.get('version')})", flush=True)
            return record["behaviour"]
        print(f"  [{index + 1}/{len(ids)}] {kernel_id}: booting ...", end="", flush=True)
        judgement, seconds, results = run_selection(pytest_cmd, kernels_file, kernel_id, selection,
                                                    run_dir / kernel_id, args.accel, args.test_timeout)
        stats["seconds"] += seconds
        if judgement.booted:
            stats["booted"] += 1
            stats["boot_attempts"] += judgement.boot_attempts or 1
        version = _results_version(results, kernel_id)
        versions[kernel_id] = version
        behaviour = judgement.behaviour
        steps.append({**base, "event": "kernel", "index": index, "kernel": kernel_id, "version": version,
                      "uname_r": judgement.uname_r, "behaviour": behaviour,
                      "verdict": "unknown" if behaviour is None else "judged", "reason": judgement.reason,
                      "boot_seconds": judgement.boot_seconds, "boot_attempts": judgement.boot_attempts,
                      "pytest_seconds": seconds, "results": str(results), "evidence": judgement.evidence()})
        state = "cannot judge: " + judgement.reason.splitlines()[0] if behaviour is None else \
            f"{judgement.uname_r}, boot {judgement.boot_seconds}s, {seconds:.0f}s in all"
        print(f" {state}", flush=True)
        return behaviour

    result = coarse_bisect(len(ids), evaluate)
    ref = result.evaluated.get(0)
    lines = []
    for index in result.order:
        behaviour = result.evaluated[index]
        mark = "?" if behaviour is None else ("same" if behaviour == ref else "DIFFERS")
        lines.append(f"  {ids[index]:<28} {versions.get(ids[index]) or '':<12} {mark}")
    print("evaluated (in order):")
    print("\n".join(lines))
    summary = {**base, "event": "result", "evaluated": [ids[i] for i in result.order],
               "booted": stats["booted"], "boot_attempts": stats["boot_attempts"], "reused": stats["reused"],
               "log2_n": round(math.log2(len(ids)), 2), "seconds": round(stats["seconds"], 1),
               "note": result.note}
    code = 0
    if ref is None:
        print(f"result: {result.note}")
        code = 1
    elif result.first_diff is None:
        print(f"result: {result.note}; last judged: {ids[result.last_same]}")
    else:
        same, diff = ids[result.last_same], ids[result.first_diff]
        summary.update(last_same=same, first_diff=diff, unknown_between=[ids[i] for i in result.unknown_between],
                       last_same_version=versions.get(same), first_diff_version=versions.get(diff),
                       differences=diff_behaviour(ref, result.evaluated[result.first_diff]))
        print(f"result: behaviour changes between {same} ({versions.get(same)}, same as {ids[0]}) "
              f"and {diff} ({versions.get(diff)}, first that differs)")
        if result.unknown_between:
            print(f"  could not judge in between: {', '.join(ids[i] for i in result.unknown_between)}")
        for line in summary["differences"]:
            print(f"  {line}")
        hint = source_range_hint(versions.get(same), versions.get(diff))
        summary["source_bisect"] = hint
        print(f"hand to a source bisect: {hint}")
    print(f"boots: {stats['booted']} kernel(s) booted ({stats['boot_attempts']} boot attempt(s)), "
          f"{stats['reused']} reused from the log, of {len(ids)} kernels (log2 {len(ids)} = "
          f"{math.log2(len(ids)):.1f}); {stats['seconds']:.0f}s of test runs")
    steps.append(summary)
    return code


def _results_version(results: Path, kernel_id: str) -> str | None:
    try:
        info = json.loads(results.read_text())["kernels"][kernel_id]
    except (OSError, ValueError, KeyError):
        return None
    return info.get("upstream_version") or info.get("package_version")


def source_range_hint(old: str | None, new: str | None) -> str:
    def tag(version: str | None) -> str:
        if not version:
            return "?"
        parts = version.split(".")
        return "v" + (".".join(parts[:2]) if len(parts) > 2 and parts[2] == "0" else version)
    if not old or not new:
        return f"git bisect start {tag(new)} {tag(old)}"
    hint = f"git bisect start {tag(new)} {tag(old)}"
    if old.split(".")[:2] != new.split(".")[:2]:
        hint += ("   (different release lines: git tests their merge base first, and the change "
                 "may be a stable backport; narrow the selection to one behaviour first)")
    return hint
