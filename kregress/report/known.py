"""Known, unexplained differences (known-differences.toml): what a kernel did that nobody has
explained yet, with the rate seen and what was tried. The report shows them as "known,
unexplained" beside the cases they cover; they never turn a failure into a pass."""
from __future__ import annotations

import tomllib
from pathlib import Path

from kregress.paths import data
from kregress.report.results import case_of

KNOWN_FILE = data("known-differences.toml")
FIELDS = ("case", "kernels", "observed", "rate", "tried")
LABEL = "known, unexplained"


class KnownDifferencesError(ValueError):
    """An entry of known-differences.toml is incomplete."""


def load(path: Path = KNOWN_FILE) -> list[dict]:
    if not path.is_file():
        return []
    entries = tomllib.loads(path.read_text()).get("difference", [])
    for number, entry in enumerate(entries, 1):
        missing = [field for field in FIELDS if not entry.get(field)]
        if missing:
            raise KnownDifferencesError(f"{path}: [[difference]] #{number} ({entry.get('case', 'no case')}) lacks "
                                        f"{', '.join(missing)}; every entry needs {', '.join(FIELDS)}")
        if not isinstance(entry["kernels"], list):
            raise KnownDifferencesError(f"{path}: [[difference]] #{number}: kernels must be a list of kernel ids, "
                                        f"e.g. kernels = [\"debian-6.1\"]")
    return entries


def covering(entries: list[dict], case: str, kernel: str) -> dict | None:
    return next((e for e in entries if e["case"] == case and kernel in e["kernels"]), None)


def failing_cases(doc: dict) -> dict[str, list[str]]:
    """case -> kernels where the run's test ended in anything but a pass."""
    out: dict[str, list[str]] = {}
    for test in doc.get("tests", []):
        if test.get("kernel") and test.get("outcome") not in ("passed", "xpassed"):
            out.setdefault(case_of(test["nodeid"], test["kernel"]), []).append(test["kernel"])
    return out


def ran(entries: list[dict], cases) -> list[dict]:
    """The entries whose case this run ran (on any kernel): the others say nothing about it."""
    cases = set(cases)
    return [entry for entry in entries if entry["case"] in cases]


def render(entries: list[dict], failing: dict[str, list[str]] | None = None) -> list[str]:
    """One block per entry; failing: case -> kernels where this run's test did not pass."""
    lines = []
    for entry in entries:
        seen = sorted(set((failing or {}).get(entry["case"], [])) & set(entry["kernels"]))
        lines.append(f"{LABEL}: {entry['case']} on {', '.join(entry['kernels'])}"
                     + (f" (this run: not passed on {', '.join(seen)})" if seen else ""))
        lines += [f"  observed: {entry['observed']}", f"  rate: {entry['rate']}", f"  tried: {entry['tried']}"]
    return lines
