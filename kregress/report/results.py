"""The results file's schema, in one place: one JSON document per run, rewritten (atomically)
as tests finish and at the end, so that an interrupted run still leaves valid JSON with what
finished: everything on an interrupt, all but the last few seconds' tests if it is killed.

A test's entry holds, besides its outcome: observed and expected (dicts), expectation_facts
(the facts expect() said the expectation came from), facts_used (the names of the facts it asked
about; their decision is its kernel's), documented (rules a document states, with what it says),
harness_error (a kind, when the harness rather than the behaviour failed: guest-lost,
guest-panic, guest-hang, boot-failed, fetch-failed, driver-failed, worker-crashed; a kernel
refusing a program is an observation, never a harness_error), reproduce (commands), precondition (a test that ended on
one: name, met, reason, facts), deviations (stated rules the kernel breaks: rule, source,
observed), extras (what the test added; kregress.expectation.record) and ended_by (expect | precondition).

A kernel's entry is its record as the run directory's file of the kernel says
(kregress.run.kernel_record): what its run knew of it, and fact_decisions, the one decision of
which facts it has (kregress.kernels.decision.FactDecision as JSON), which every report reads.

Older files (kregress-results/1 and /2 before kernels had files of their own) are read too: a
test's copy of its kernel's decision (facts_used as a dict) fills in a kernel whose record has
none, then becomes the list of names (normalise()).
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from kregress.kernels.decision import decide, decisions_json

FORMAT = "kregress-results/2"
# /1 lacked expectation_facts and harness_error kinds for boot and driver failures
READABLE = ("kregress-results/1", FORMAT)


# What each recorded outcome counts as in every report (matrix, JUnit, KCIDB): an xfail
# is a known deviation, reported like a skip; an xpass is a pass, as in pytest's junitxml.
REPORT_STATUS = {"passed": "pass", "xpassed": "pass", "failed": "fail", "error": "error",
           "skipped": "skip", "xfailed": "skip"}


# While tests run, the file is rewritten after a test when WRITE_EVERY_S have passed since the
# last write and that write's cost is at most 1/WRITE_COST_SHARE of the time since; at the end
# (finish(), also after Ctrl-C or SIGTERM) always.
WRITE_EVERY_S = 1.0
WRITE_COST_SHARE = 20


def report_status(outcome: str | None) -> str:
    """pass, fail, error or skip: what a test's outcome counts as in every report."""
    return REPORT_STATUS.get(outcome or "", "error")


class ResultsFile:
    def __init__(self, path: Path, run_dir: Path, kernels_file: Path):
        self.path = path
        self.doc = {
            "format": FORMAT,
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
        self._written_at, self._write_cost, self._unwritten = 0.0, 0.0, False
        self.write()

    def set_kernel(self, info: dict) -> None:
        """The kernel's record, as its own file in the run directory says it now."""
        self.doc["kernels"][info["id"]] = info
        self._unwritten = True
        if info.get("accel"):
            choice = {"accel": info["accel"], "reason": info.get("accel_reason", "")}
            if choice not in self.doc["accelerators"]:
                self.doc["accelerators"].append(choice)

    def add_test(self, record: dict) -> None:
        self.doc["tests"].append(record)
        self.doc["summary"] = self.summary()
        # the whole document is rewritten: after every test that grows quadratically (about
        # 15 s of CPU for a 368-test matrix, taken from the guests on a small host), so only
        # once the last write's cost is a small share of the time since
        self._unwritten = True
        if time.monotonic() - self._written_at >= max(WRITE_EVERY_S, WRITE_COST_SHARE * self._write_cost):
            self.write()

    def flush(self) -> None:
        """Write what the file still lacks (the run is ending, however it ends)."""
        if self._unwritten:
            self.write()

    def summary(self) -> dict:
        return summarize(self.doc)

    def finish(self) -> dict:
        self.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # kernels in the order their first test ended (a kernel's record arrives with its last)
        first = list(dict.fromkeys(t["kernel"] for t in self.doc["tests"] if t.get("kernel") in self.doc["kernels"]))
        kernels = self.doc["kernels"]
        self.doc["kernels"] = {k: kernels[k] for k in first + [k for k in kernels if k not in first]}
        self.doc["summary"] = self.summary()
        self.write()
        return self.doc["summary"]

    def write(self) -> None:
        started = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str))
        os.replace(tmp, self.path)
        self._written_at, self._unwritten = time.monotonic(), False
        self._write_cost = self._written_at - started


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


def load(path) -> dict:
    """A results file, checked and normalised to the current schema."""
    doc = json.loads(Path(path).read_text())
    return normalise(doc, str(path))


def normalise(doc: dict, where: str = "results") -> dict:
    if not isinstance(doc, dict) or doc.get("format") not in READABLE:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{where}: not a kregress results file (format {found!r}; readable: "
                         f"{', '.join(READABLE)})")
    doc.setdefault("kernels", {})
    doc.setdefault("tests", [])
    for test in doc["tests"]:
        for key in ("observed", "expected"):
            test[key] = test.get(key) or {}
        for key in ("expectation_facts", "documented", "deviations"):
            test[key] = test.get(key) or []
        test["extras"] = test.get("extras") or {}
        if "optional" in (test.get("precondition") or {}):      # older files: optional meant not calibrated
            old = test["precondition"]
            test["precondition"] = {**{k: v for k, v in old.items() if k != "optional"}, "calibrated": not old["optional"]}
    _decisions_from_copies(doc)
    doc["format"] = FORMAT
    return doc


def _decisions_from_copies(doc: dict) -> None:
    """Older files: a kernel without a recorded decision takes it from what its tests copied of it
    (decided with its config), the rest decided from its record; a kernel whose record never
    came, from the copies alone. Then each test keeps the names it used."""
    copies: dict[str, dict[str, dict]] = {}
    for test in doc["tests"]:
        used = test.get("facts_used") or []
        if isinstance(used, dict) and test.get("kernel"):
            copies.setdefault(test["kernel"], {}).update({name: dict(entry) for name, entry in used.items()})
        test["facts_used"] = sorted(used)
    for kernel_id, info in doc["kernels"].items():
        if "fact_decisions" not in info:
            info["fact_decisions"] = {**decisions_json(decide(
                kernel_id, info.get("upstream_version"), info.get("facts") or {}, info.get("evidence") or {},
                arch=info.get("arch") or "x86_64")), **copies.get(kernel_id, {})}
    for kernel_id, copied in copies.items():
        doc["kernels"].setdefault(kernel_id, {"id": kernel_id, "fact_decisions": copied})


# A kernel's source as its entry said it (KernelSpec.source, "KIND:detail"), in words for reports
SOURCE_KINDS = {"debian": "Debian archive", "deb": ".deb files", "local": "local image", "tree": "source tree"}


def source_of(info: dict) -> tuple[str, str]:
    """(kind, detail) of the kernel record's source: kind is a SOURCE_KINDS key, or "unknown"
    for a record that does not say (never guessed from its other fields)."""
    kind, sep, detail = (info.get("source") or "").partition(":")
    return (kind, detail) if sep and kind in SOURCE_KINDS else ("unknown", "")


def source_text(info: dict) -> str:
    kind, detail = source_of(info)
    if kind == "unknown":
        return "source not recorded"
    commit = ((info.get("tree_build") or {}).get("commit") or "")[:12]
    return f"{SOURCE_KINDS[kind]} {detail}" + (f" at {commit}" if commit else "")


def case_of(nodeid: str, kernel: str | None) -> str:
    """The scenario case: the node id without the kernel parameter, so one case lines up
    across kernels ('tests/x.py::test_a[debian-6.1]' -> 'tests/x.py::test_a')."""
    base, bracket, params = nodeid.partition("[")
    if not bracket or not kernel:
        return nodeid
    params = params[:-1] if params.endswith("]") else params
    if params == kernel:
        rest = ""
    elif params.startswith(kernel + "-"):
        rest = params[len(kernel) + 1:]
    elif params.endswith("-" + kernel):
        rest = params[:-len(kernel) - 1]
    else:
        rest = params.replace(f"-{kernel}-", "-", 1)
    return f"{base}[{rest}]" if rest else base


class MergeError(ValueError):
    pass


def merge(shards: list[tuple[str, dict]]) -> dict:
    """Shards of one matrix (each run with --kernel ID) into one results document."""
    if not shards:
        raise MergeError("no shard results given")
    merged = {"format": FORMAT, "started": None, "finished": None, "host": {},
              "run_dir": None, "kernels_file": None, "accelerators": [], "kernels": {}, "tests": [],
              "summary": {}, "shards": []}
    owner: dict[str, str] = {}
    for path, doc in shards:
        try:
            normalise(doc, path)
        except ValueError as err:
            raise MergeError(str(err)) from None
        tested = {t["kernel"] for t in doc.get("tests", []) if t.get("kernel")}
        for kernel_id in tested:
            if kernel_id in owner:
                raise MergeError(f"kernel {kernel_id} has results in both {owner[kernel_id]} and {path}; "
                                 f"shards must split the matrix by --kernel")
            owner[kernel_id] = path
        for kernel_id, info in doc.get("kernels", {}).items():
            merged["kernels"][kernel_id] = {**merged["kernels"].get(kernel_id, {}), **info}
        merged["tests"] += doc.get("tests", [])
        old_style = [doc["accelerator"]] if doc.get("accelerator") else []
        for accel in doc.get("accelerators") or old_style:
            choice = {"accel": accel.get("accel"), "reason": accel.get("reason", "")}
            if choice not in merged["accelerators"]:
                merged["accelerators"].append(choice)
        merged["shards"].append({"path": str(path), **{k: doc.get(k) for k in ("started", "finished", "host", "run_dir")}})
        merged["kernels_file"] = merged["kernels_file"] or doc.get("kernels_file")
    starts = [s["started"] for s in merged["shards"] if s["started"]]
    ends = [s["finished"] for s in merged["shards"] if s["finished"]]
    merged["started"] = min(starts) if starts else None
    # An interrupted shard has no "finished": neither has the merged run.
    merged["finished"] = max(ends) if len(ends) == len(merged["shards"]) else None
    hosts = [s["host"] or {} for s in merged["shards"]]
    machines = list(dict.fromkeys(h.get("machine", "?") for h in hosts))
    merged["host"] = hosts[0] if len(machines) == 1 else {"machine": ", ".join(machines)}
    merged["summary"] = summarize(merged)
    return merged
