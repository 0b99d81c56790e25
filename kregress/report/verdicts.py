"""Per kernel and fact: does the kernel have the fix, does it behave like it, and which source
said so. Built from results files (one run, or many: a fleet is many runs).

Only what was judged counts. A test counts for a fact when its expect() named that fact and it
ended in pass or fail with no harness error: a pass agrees with the expected state, a failure
that named only this fact contradicts it, a failure that named several puts all of them "in
question" (the test cannot say which one is wrong).

A test that ended on a precondition (`precondition`, written by the plugin's helper) for the
fact: not met and skipped where the facts say the feature is lacking or unusable agrees; not met
and failed where they say it should hold is "precondition failed: NAME", never "behaves
without"; met where the facts say the kernel lacks it contradicts them; one not calibrated (a
configuration no rule was calibrated for: calibrated=False) judges nothing.

Anything else (harness errors, skips, xfails, tests that ended before their expectation) is
listed as not counted, with why, and never counts for or against a fact. So is a check of a
user's own program (check-progs): the facts explain what the program changes, and its findings
judge the program, not the kernel.
"""
from __future__ import annotations

from pathlib import Path

from kregress.check_progs.findings import unchecked_in, users_check
from kregress.kernels.decision import HAS, LACKS, UNDECIDED, UNUSABLE, FactDecision, decisions_from_json
from kregress.kernels.facts import FACTS
from kregress.report import results

JUDGED = ("passed", "failed")
# Verdicts that fail `kregress verdicts` (exit 1): behaviour and facts disagree.
DISAGREEING = ("CONTRADICTION", "IN QUESTION")
STATE_TEXT = {HAS: "has it", LACKS: "lacks it", UNUSABLE: "unusable here", UNDECIDED: "undecided"}


def judge(test: dict, name: str, decisions: dict[str, FactDecision]) -> tuple[str, object]:
    """What one test says about one fact: (kind, detail) with kind agree, against, in question
    (detail: the facts named), precondition (detail: the precondition), or not counted (why).
    decisions: its kernel's fact decision (the kernel's record)."""
    outcome = test.get("outcome") or "?"
    if users_check(test):
        return "not counted", f"{outcome}: a check of your program judges the program, not the kernel's facts"
    if test.get("harness_error"):
        return "not counted", f"harness error ({test['harness_error']})"
    if decisions[name].state == UNDECIDED:
        return "not counted", f"{outcome}: nothing decided the fact"
    precondition = test.get("precondition") or {}
    used = list(test.get("facts_used") or ())
    if precondition and name in precondition.get("facts", used):
        return _judge_precondition(precondition, outcome, name, decisions, used)
    if precondition:        # it ended on a precondition about other facts before judging this one
        return "not counted", f"{outcome} on precondition {precondition.get('name', '?')!r}"
    named = list(test.get("expectation_facts") or ())
    if name not in named:
        return "not counted", (f"{outcome}, its expectation does not name it" if named
                               else f"{outcome} before its expectation")
    if outcome not in JUDGED:
        return "not counted", outcome
    if outcome == "passed":
        return "agree", None
    return ("in question", named) if len(named) > 1 else ("against", None)


def _judge_precondition(precondition: dict, outcome: str, name: str, decisions: dict[str, FactDecision],
                        used: list[str]) -> tuple[str, object]:
    """A test that ended on its precondition (kregress.plugin's precondition helper)."""
    what, state = precondition.get("name", "?"), decisions[name].state
    if precondition.get("calibrated") is False:        # a configuration no rule was calibrated for
        return "not counted", f"{outcome}: no verdict on precondition {what!r}"
    if precondition.get("met") is False:
        if outcome == "skipped" and state in (LACKS, UNUSABLE):
            return "agree", None            # the kernel refused what the facts say it lacks
        if outcome == "failed" and state == HAS:
            return "precondition", precondition
        return "not counted", f"{outcome} on precondition {what!r}"
    if outcome != "failed":
        return "not counted", f"{outcome} on precondition {what!r}"
    # it holds where the facts say it should not: the facts saying "lacks" are contradicted
    lacking = [n for n in precondition.get("facts", used) if n not in decisions or decisions[n].state != HAS]
    if name not in lacking:
        return "not counted", f"failed: precondition {what!r} holds, which other facts said it should not"
    return ("in question", lacking) if len(lacking) > 1 else ("against", None)


def table(docs: list[dict]) -> list[dict]:
    """One row per kernel and fact its tests used (docs: results documents as results.load reads them)."""
    rows: dict[tuple[str, str], dict] = {}
    for doc in docs:
        decided: dict[str, dict[str, FactDecision]] = {}
        for test in doc.get("tests", []):
            kernel = test.get("kernel")
            if not kernel:
                continue                    # unit tests judge no kernel
            info = doc.get("kernels", {}).get(kernel) or {}
            if kernel not in decided:
                decided[kernel] = decisions_from_json(info.get("fact_decisions") or {})
            decisions = decided[kernel]
            for name in test.get("facts_used") or ():
                if name not in decisions:
                    continue                # a kernel with no record of its decision says nothing
                fact = decisions[name]
                row = rows.setdefault((kernel, name), {
                    "kernel": kernel, "fact": name, "state": fact.state, "reason": fact.reason or None,
                    "brought_by": fact.brought_by or None,
                    "expected": None if fact.state == UNDECIDED else fact.expected, "decided_by": fact.decided_by,
                    "sources": fact.answers,
                    "package_version": info.get("package_version"),
                    "coverage": info.get("evidence_coverage") or {},
                    "agree": [], "against": [], "in_question": [], "precondition": [], "not_counted": []})
                kind, detail = judge(test, name, decisions)
                nodeid = test.get("nodeid", "?")
                if kind in ("agree", "against"):
                    row[kind].append(nodeid)
                elif kind == "in question":
                    row["in_question"].append({"nodeid": nodeid, "facts": detail})
                elif kind == "precondition":
                    row["precondition"].append({"nodeid": nodeid, "name": detail.get("name", "?"),
                                                "reason": detail.get("reason", "")})
                else:
                    row["not_counted"].append({"nodeid": nodeid, "why": detail})
    for row in rows.values():
        _conclude(row)
    return sorted(rows.values(), key=lambda r: (r["kernel"], r["fact"]))


def _conclude(row: dict) -> None:
    row["tests"] = len(row["agree"]) + len(row["against"]) + len(row["in_question"])      # judged
    opposite = {HAS: "without", LACKS: "with", UNUSABLE: "with"}.get(row["state"])
    if row["against"]:
        row["verdict"], row["behaves"] = "CONTRADICTION", opposite
    elif row["in_question"]:
        row["verdict"], row["behaves"] = "IN QUESTION", None
    elif row["precondition"]:
        names = ", ".join(dict.fromkeys(p["name"] for p in row["precondition"]))
        row["verdict"], row["behaves"] = f"precondition failed: {names}", None
    elif row["agree"]:
        row["verdict"] = "agree"
        row["behaves"] = {"has": "with", "lacks": "without", "unusable": "unusable"}[row["state"]]
    else:
        row["verdict"], row["behaves"] = "not judged", None


def disagreeing(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["verdict"] in DISAGREEING]


def questioned_with(row: dict) -> list[str]:
    """The other facts a failing multi-fact test named beside this row's fact."""
    others = [n for q in row["in_question"] for n in q["facts"] if n != row["fact"]]
    return list(dict.fromkeys(others))


def behaviour(row: dict) -> str:
    verdict = row["verdict"]
    if row["behaves"] in ("with", "without"):
        return f"behaves {row['behaves']} it"
    if row["behaves"] == "unusable":
        return f"unusable here ({row.get('reason') or 'no reason recorded'})"
    if verdict == "IN QUESTION":
        return f"fails expectations that also depend on {', '.join(questioned_with(row))}: facts in question"
    if verdict.startswith("precondition failed"):
        return "; ".join(dict.fromkeys(p["reason"] or p["name"] for p in row["precondition"]))
    return "no test judged it"


def sentence(row: dict) -> str:
    """e.g. 'version says lacks it; binary says has it; behaves with it'."""
    said = [f"{source} says {'has' if answer == 'present' else 'lacks'} it"
            + (f" ({row['brought_by']})" if source == "config" and row.get("brought_by") else "")
            for source, answer in row["sources"].items() if answer in ("present", "absent")]
    silent = [why for why in row.get("coverage", {}).values() if why != "answered"]     # evidence.coverage()
    unusable = ([f"unusable here ({row.get('reason') or 'no reason recorded'})"]
                if row["state"] == "unusable" and row["behaves"] != "unusable" else [])
    return "; ".join(said + silent + unusable + [behaviour(row)])


def expected_text(row: dict) -> str:
    return f"{STATE_TEXT[row['state']]} ({row['decided_by']})"


def not_counted_text(row: dict) -> str:
    """'3 skipped before its expectation, 1 harness error (guest-lost)'."""
    counts: dict[str, int] = {}
    for entry in row["not_counted"]:
        counts[entry["why"]] = counts.get(entry["why"], 0) + 1
    return ", ".join(f"{n} {why}" for why, n in counts.items())


def render(rows: list[dict]) -> str:
    if not rows:
        return "no test recorded which facts its expectation used"
    lines = [f"{'kernel':22s} {'fact':28s} {'expected (decided by)':28s} {'verdict':14s} sources and behaviour"]
    for row in rows:
        lines.append(f"{row['kernel']:22s} {row['fact']:28s} {expected_text(row):28s} {row['verdict']:14s} "
                     f"{sentence(row)}")
        lines += [f"{'':22s}   contradicted by {nodeid}" for nodeid in row["against"]]
        lines += [f"{'':22s}   in question ({', '.join(q['facts'])}): failed {q['nodeid']}" for q in row["in_question"]]
        lines += [f"{'':22s}   precondition failed ({p['name']}): {p['nodeid']}" for p in row["precondition"]]
        if row["not_counted"]:
            lines.append(f"{'':22s}   not counted: {not_counted_text(row)}")
    lines += brought_lines(rows)
    lines += defect_lines(rows)
    lines.append(summary(rows))
    return "\n".join(lines)


def known_defects(rows: list[dict]) -> list[tuple[str, str]]:
    """(kernel, fact) for each known defect a kernel carries, as decided in these rows (the
    fact and every fact it needs for the defect decided "has" on that kernel)."""
    state = {(row["kernel"], row["fact"]): row["state"] for row in rows}
    kernels = list(dict.fromkeys(row["kernel"] for row in rows))
    return [(kernel, name) for kernel in kernels for name, fact in FACTS.items()
            if fact.defect and all(state.get((kernel, n)) == "has" for n in (name, *fact.defect_with))]


def defect_lines(rows: list[dict]) -> list[str]:
    return [f"known defect: {kernel} carries {name}'s: {FACTS[name].defect}" for kernel, name in known_defects(rows)]


def summary(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        key = "precondition failed" if row["verdict"].startswith("precondition failed") else row["verdict"]
        counts[key] = counts.get(key, 0) + 1
    kernels = len({row["kernel"] for row in rows})
    order = ("agree", "CONTRADICTION", "IN QUESTION", "precondition failed", "not judged")
    return (f"verdicts: {len(rows)} kernel/fact pair(s) over {kernels} kernel(s): "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in order))


# ---- the grid: kernels as rows, facts as columns (a fleet's view) ----------------------------

def grid(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(kernels, facts, cells by (kernel, fact))."""
    kernels = list(dict.fromkeys(row["kernel"] for row in rows))
    facts = sorted({row["fact"] for row in rows})
    return kernels, facts, {(row["kernel"], row["fact"]): row for row in rows}


def cell_text(row: dict | None) -> str:
    if row is None:
        return "-"
    if row["verdict"] == "IN QUESTION":
        return f"{row['state']}: IN QUESTION (with {', '.join(questioned_with(row))})"
    return f"{row['state']}: {row['verdict']}"


def render_grid(rows: list[dict]) -> str:
    if not rows:
        return "no test recorded which facts its expectation used"
    kernels, facts, cells = grid(rows)
    versions = {row["kernel"]: row["package_version"] for row in rows if row.get("package_version")}
    table_rows = [["kernel", *facts]] + [[f"{k} ({versions[k]})" if k in versions else k,
                                          *(cell_text(cells.get((k, f))) for f in facts)] for k in kernels]
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(facts) + 1)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(r, widths)).rstrip() for r in table_rows]
    unusable = [row for row in rows if row["state"] == "unusable"]
    lines += [f"unusable: {row['kernel']} {row['fact']}: {row.get('reason') or 'no reason recorded'}"
              for row in unusable]
    lines += brought_lines(rows)
    lines += defect_lines(rows)
    lines.append(summary(rows))
    return "\n".join(lines)


def brought_lines(rows: list[dict]) -> list[str]:
    return [f"brought by the build: {row['kernel']} {row['fact']}: {row['brought_by']}"
            for row in rows if row.get("brought_by")]


def verdict_lines(docs: list[dict], grid_view: bool, rows: list[dict] | None = None) -> tuple[list[str], int]:
    """What `kregress verdicts` (and `kregress fleet`) print, and the exit: 1 on a contradiction
    or facts in question, or a user's program nothing looked at (no verdict of "fine").
    rows: the docs' table when the caller has made it already."""
    rows = table(docs) if rows is None else rows
    not_checked = [line for doc in docs for line in unchecked_in(doc)]
    text = render_grid(rows) if grid_view else render(rows)
    return [text, *not_checked], 1 if disagreeing(rows) or not_checked else 0


def load(paths: list[Path]) -> list[dict]:
    return [results.load(path) for path in paths]
