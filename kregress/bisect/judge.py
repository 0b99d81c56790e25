"""Judging one pytest run on one kernel from its results file: good, bad or skip."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kregress.report import results

GOOD, BAD, SKIP = 0, 1, 125
# git bisect run stops at an exit code of 128 or more: the answer for a failure that would
# repeat at every commit (a bad command line, a broken harness), where 125 would skip them all.
ABORT = 128
EXIT_CODES = {"good": GOOD, "bad": BAD, "skip": SKIP, "abort": ABORT}
PYTEST_EXIT = {2: "pytest was interrupted", 3: "pytest internal error", 4: "pytest usage error",
               5: "the selection collected no test"}


@dataclass
class Judgement:
    """One pytest run on one kernel, read back from its results.json."""
    verdict: str                    # good | bad | skip
    reason: str
    tests: list[dict] = field(default_factory=list)
    booted: bool = False
    boot_seconds: float | None = None
    boot_attempts: int | None = None
    console_log: str | None = None
    uname_r: str | None = None
    accel: str | None = None
    every_commit: bool = False      # pytest refused the command line or selected nothing: no commit changes that

    @property
    def behaviour(self) -> dict | None:
        """test name -> observed dict; None when the run cannot be judged."""
        if self.verdict == "skip" and not (self.tests and all(t["outcome"] == "skipped" for t in self.tests)):
            return None
        return {t["name"]: (t["observed"] or {"_outcome": t["outcome"]}) for t in self.tests}

    def evidence(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason, "booted": self.booted,
                "boot_seconds": self.boot_seconds, "boot_attempts": self.boot_attempts,
                "uname_r": self.uname_r, "accel": self.accel, "console_log": self.console_log,
                "tests": self.tests}

def judge(results_path: Path, kernel_id: str, pytest_rc: int | None) -> Judgement:
    """The verdict of one run: good (all judged tests passed), bad (a test failed on the
    behaviour), skip (nothing could be judged: no results, boot failure, lost guest,
    harness error, every test skipped, or pytest itself broke)."""
    if pytest_rc is None:
        return Judgement("skip", "harness timeout: pytest was killed")
    if pytest_rc == 4:      # pytest refused the command line: the same at every commit
        return Judgement("skip", f"{PYTEST_EXIT[4]} (exit 4)", every_commit=True)
    try:
        doc = results.load(results_path)
    except (OSError, ValueError) as err:
        # pytest stopped (interrupted by a collection error, or crashed) before any kernel: no commit changes that
        return Judgement("skip", f"no results (pytest exit {pytest_rc}): cannot read {results_path}: "
                                 f"{err.__class__.__name__}", every_commit=pytest_rc in (2, 3))
    info = (doc.get("kernels") or {}).get(kernel_id, {})
    found = Judgement("skip", "", booted=bool(info.get("boot_seconds")),
                      boot_seconds=info.get("boot_seconds"), boot_attempts=info.get("boot_attempts"),
                      console_log=info.get("console_log"), uname_r=info.get("uname_r"), accel=info.get("accel"))
    for test in doc.get("tests", []):
        if test.get("kernel") != kernel_id:
            continue
        message = (test.get("longrepr") or "").strip()
        # the results entry's harness_error kind, or an error outside the test body
        harness = bool(test.get("harness_error")) or test.get("outcome") == "error"
        found.tests.append({"name": results.case_of(test.get("nodeid", "?"), kernel_id),
                            "nodeid": test.get("nodeid"), "outcome": test.get("outcome"),
                            "harness_problem": harness, "observed": test.get("observed") or {},
                            "expected": test.get("expected") or {},
                            "message": message[-1200:] if test.get("outcome") != "passed" else ""})
    if info.get("error"):
        found.reason = f"boot failed: {str(info['error']).splitlines()[0][:300]}"
        return found
    if pytest_rc in PYTEST_EXIT and pytest_rc != 5:
        found.reason = f"{PYTEST_EXIT[pytest_rc]} (exit {pytest_rc})"
        # before any kernel record or test: a collection error or a plugin crash, the same at every commit
        found.every_commit = not info and not found.tests
        return found
    if not found.tests:
        found.reason = (f"the selection ran no test on {kernel_id} (pytest exit {pytest_rc}); "
                        "check the test selection")
        found.every_commit = pytest_rc == 5     # collection does not depend on the kernel
        return found
    problems = [t for t in found.tests if t["harness_problem"]]
    if problems:
        first = problems[0]
        found.reason = (f"harness problem in {first['name']} ({first['outcome']}): "
                        f"{(first['message'].splitlines() or [''])[0][:300]}")
        return found
    failed = [t for t in found.tests if t["outcome"] == "failed"]
    passed = [t for t in found.tests if t["outcome"] == "passed"]
    if failed:
        found.verdict = "bad"
        found.reason = f"{len(failed)} of {len(found.tests)} test(s) failed: " + ", ".join(t["name"] for t in failed)
    elif passed:
        found.verdict = "good"
        skipped = len(found.tests) - len(passed)
        found.reason = f"{len(passed)} test(s) passed" + (f", {skipped} skipped" if skipped else "")
    else:
        found.reason = "every selected test was skipped: " + (found.tests[0]["message"].splitlines() or [""])[0][:200]
    return found


def combine(verdicts: list[str], repeat: int, bad_if: str) -> tuple[str, str]:
    """N runs of one commit -> one verdict.

    bad_if=any (flaky bug shows up sometimes): bad if any run was bad; good only when all
    `repeat` runs were judged good; otherwise skip.
    bad_if=all (bad only when it reproduces every time): good if any run was good; bad only
    when all `repeat` runs were judged bad; otherwise skip.
    """
    good, bad = verdicts.count("good"), verdicts.count("bad")
    skipped = verdicts.count("skip")
    tally = f"{good} good, {bad} bad, {skipped} unjudged of {len(verdicts)} run(s) (bad if {bad_if})"
    if bad_if == "any":
        if bad:
            return "bad", tally
        if good >= repeat:
            return "good", tally
        return "skip", tally
    if good:
        return "good", tally
    if bad >= repeat:
        return "bad", tally
    return "skip", tally


def settled(verdicts: list[str], repeat: int, bad_if: str) -> bool:
    """Whether more runs could still change the combined verdict."""
    if len(verdicts) >= repeat:
        return True
    if bad_if == "any":
        return "bad" in verdicts
    return "good" in verdicts
