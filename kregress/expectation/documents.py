"""Documented rules against kernels: where a test recorded what a document says (expect(...,
document=DocumentRule(...), documented={...})), each rule is held against every kernel's
observed behaviour. A rule a kernel does not follow is stale there; the facts named by the
expectation and present on those kernels are what changed it."""
from __future__ import annotations

from kregress.kernels.decision import HAS, UNUSABLE, recorded
from kregress.kernels.facts import FACTS


def rules(docs: list[dict]) -> list[dict]:
    found: dict[tuple[str, str], dict] = {}
    for doc in docs:
        for test in doc.get("tests", []):
            kernel = test.get("kernel")
            if not kernel or test.get("outcome") not in ("passed", "failed"):
                continue
            for said in test.get("documented") or []:
                rule = found.setdefault((said["document"], said["rule"]), {
                    "document": said["document"], "rule": said["rule"], "holds_on": [], "stale_on": {},
                    "facts": []})
                observed = test.get("observed") or {}
                differs = {key: {"observed": observed.get(key), "document": value}
                           for key, value in said["says"].items() if observed.get(key) != value}
                if not differs:
                    if kernel not in rule["holds_on"] and kernel not in rule["stale_on"]:
                        rule["holds_on"].append(kernel)
                    continue
                if kernel in rule["holds_on"]:
                    rule["holds_on"].remove(kernel)
                rule["stale_on"].setdefault(kernel, {}).update(differs)
                info = doc.get("kernels", {}).get(kernel)
                for name in test.get("expectation_facts") or []:
                    decided = recorded(info, name) if name in (test.get("facts_used") or ()) else None
                    if decided and decided.state in (HAS, UNUSABLE) and name not in rule["facts"]:
                        rule["facts"].append(name)
    return list(found.values())


def render(found: list[dict]) -> list[str]:
    if not found:
        return []
    stale = [r for r in found if r["stale_on"]]
    lines = [f"documentation: {len(found)} rule(s) checked, {len(stale)} stale on some kernel"]
    for rule in found:
        if not rule["stale_on"]:
            lines.append(f"  holds     {rule['rule']} ({len(rule['holds_on'])} kernels)")
            continue
        because = "; ".join(f"{FACTS[n].commit} \"{FACTS[n].title}\" (v{FACTS[n].mainline[0]}.{FACTS[n].mainline[1]})"
                            for n in rule["facts"]) or "no fact in kregress/kernels/facts.py (older than every kernel here?)"
        lines.append(f"  STALE     {rule['document']}: \"{rule['rule']}\"")
        lines.append(f"            changed by {because}")
        lines.append(f"            not on {', '.join(sorted(rule['stale_on']))}"
                     + (f"; still on {', '.join(sorted(rule['holds_on']))}" if rule["holds_on"] else ""))
        first_kernel, differs = next(iter(rule["stale_on"].items()))
        shown = ", ".join(f"{k}: {v['observed']!r} (document: {v['document']!r})" for k, v in differs.items())
        lines.append(f"            e.g. {first_kernel}: {shown}")
    return lines
