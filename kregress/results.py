"""The results file: one JSON document per run, rewritten after every test so that an
interrupted run still leaves valid JSON with what finished."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


# What each recorded outcome counts as in every report (matrix, JUnit, KCIDB): an xfail
# is a known deviation, reported like a skip; an xpass is a pass, as in pytest's junitxml.
VERDICT = {"passed": "pass", "xpassed": "pass", "failed": "fail", "error": "error",
           "skipped": "skip", "xfailed": "skip"}


def verdict(outcome: str | None) -> str:
    return VERDICT.get(outcome or "", "error")


class ResultsFile:
    def __init__(self, path: Path, run_dir: Path, kernels_file: Path):
        self.path = path
        self.doc = {
            "format": "kregress-results/1",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "finished": None,
            "host": {"machine": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count()},
            "run_dir": str(run_dir),
            "kernels_file": str(kernels_file),
            "accelerators": [],     # each kernel also records its own
            "kernels": {},
            "tests": [],
            "summary": {},
        }
        self.write()

    def add_kernel(self, info: dict) -> None:
        known = self.doc["kernels"].get(info["id"], {})
        known.update({k: v for k, v in info.items() if v is not None})
        self.doc["kernels"][info["id"]] = known
        if info.get("accel"):
            choice = {"accel": info["accel"], "reason": info.get("accel_reason", "")}
            if choice not in self.doc["accelerators"]:
                self.doc["accelerators"].append(choice)

    def add_test(self, record: dict) -> None:
        self.doc["tests"].append(record)
        self.doc["summary"] = self.summary()
        self.write()

    def summary(self) -> dict:
        return summarize(self.doc)

    def finish(self) -> dict:
        self.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.doc["summary"] = self.summary()
        self.write()
        return self.doc["summary"]

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str))
        os.replace(tmp, self.path)


def summarize(doc: dict) -> dict:
    """The "summary" of a results document (also recomputed when shards are merged)."""
    tests = doc["tests"]
    vm_tests = [t for t in tests if t.get("kernel")]
    counts: dict[str, int] = {}
    for test in vm_tests:
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    booted = [k for k, v in doc["kernels"].items() if v.get("boot_seconds")]
    return {"kernels_booted": len(booted), "kernels_failed": sorted(
                k for k, v in doc["kernels"].items() if v.get("error")),
            "vm_tests": len(vm_tests), "vm_tests_run": sum(
                n for outcome, n in counts.items() if outcome in ("passed", "failed", "error", "xfailed", "xpassed")),
            "outcomes": counts, "tests": len(tests)}
