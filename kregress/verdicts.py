"""One line per kernel and fact: does the kernel have the fix, does it behave like it, and
which source said so. Built from results files (one run, or many: a fleet is many runs).

A fact's behaviour is judged by the tests whose expectations asked about it (each test
records them as facts_used): all of them consistent (passed, xfailed as known, or skipped
where the fact says the feature is missing) means the kernel behaves as the deciding
source says; any failure among them is a CONTRADICTION.
"""
from __future__ import annotations

from pathlib import Path

from . import results

CONSISTENT = {"passed", "xfailed", "skipped"}


def table(docs: list[dict]) -> list[dict]:
    rows: dict[tuple[str, str], dict] = {}
    for doc in docs:
        for test in doc.get("tests", []):
            kernel = test.get("kernel")
            for name, used in (test.get("facts_used") or {}).items():
                row = rows.setdefault((kernel, name), {
                    "kernel": kernel, "fact": name, "expected": used["expected"],
                    "decided_by": used["decided_by"], "sources": used["sources"],
                    "package_version": (doc.get("kernels", {}).get(kernel) or {}).get("package_version"),
                    "tests": 0, "inconsistent": []})
                row["tests"] += 1
                if test.get("outcome") not in CONSISTENT:
                    row["inconsistent"].append(test["nodeid"])
    for row in rows.values():
        has = row["expected"] if not row["inconsistent"] else not row["expected"]
        row["behaves"] = "with" if has else "without"
        row["verdict"] = "agree" if not row["inconsistent"] else "CONTRADICTION"
    return sorted(rows.values(), key=lambda r: (r["kernel"], r["fact"]))


def sentence(row: dict) -> str:
    """e.g. 'version says lacks it; binary says has it; behaves with it'."""
    said = [f"{source} says {'has' if answer == 'present' else 'lacks'} it"
            for source, answer in row["sources"].items() if answer in ("present", "absent")]
    return "; ".join(said + [f"behaves {row['behaves']} it"])


def render(rows: list[dict]) -> str:
    if not rows:
        return "no test recorded which facts its expectation used"
    lines = [f"{'kernel':22s} {'fact':20s} {'expected (decided by)':28s} verdict        sources and behaviour"]
    for row in rows:
        expected = f"{'has it' if row['expected'] else 'lacks it'} ({row['decided_by']})"
        lines.append(f"{row['kernel']:22s} {row['fact']:20s} {expected:28s} {row['verdict']:14s} {sentence(row)}")
        for nodeid in row["inconsistent"]:
            lines.append(f"{'':22s}   contradicted by {nodeid}")
    return "\n".join(lines)


def load(paths: list[Path]) -> list[dict]:
    return [results.load(path) for path in paths]
