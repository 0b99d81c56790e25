"""Stated rules kernels break: where a test recorded a deviation (expect(..., deviation=
StatedRule(...))), the rule, its source and the kernels that break it, for the summary, the
report, JUnit and KCIDB, always worded "deviates from <source>"."""
from __future__ import annotations


def label(deviation: dict) -> str:
    return f"deviates from {deviation['source']}: {deviation['rule']}"


def rules(docs: list[dict]) -> list[dict]:
    found: dict[tuple[str, str], dict] = {}
    for doc in docs:
        for test in doc.get("tests", []):
            for deviation in test.get("deviations") or []:
                rule = found.setdefault((deviation["source"], deviation["rule"]), {
                    "source": deviation["source"], "rule": deviation["rule"], "kernels": {}})
                rule["kernels"].setdefault(test.get("kernel") or "?", {}).update(deviation.get("observed") or {})
    return list(found.values())


def render(found: list[dict]) -> list[str]:
    lines = []
    for rule in found:
        lines.append(f"deviation: {len(rule['kernels'])} kernel(s) {label(rule)}")
        lines.append(f"  on {', '.join(sorted(rule['kernels']))}")
        first, broken = next(iter(sorted(rule["kernels"].items())))
        shown = ", ".join(f"{k}: {v['observed']!r} (stated: {v['stated']!r})" for k, v in broken.items())
        lines.append(f"  e.g. {first}: {shown}")
    return lines
