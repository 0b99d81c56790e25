"""Two results files against each other (`kregress compare`): the upgrade gate. Merging
shards into one file (`kregress merge`) lives in kregress.report.results.

compare gates a fleet upgrade. Every scenario case whose behaviour or outcome differs between the
old run's kernel and the new run's is listed. Any outcome worse than before gates (passed ->
failed, error or skipped; a case missing from the new run), whatever facts flip. A behaviour
change is "explained" only when the new kernel still passes the case and a fact the test names
flips between the two kernels (the matrix's rule); any other behaviour change gates too. An
explained change still gates when the new kernel brings a known defect of a fact the test names
(kregress.kernels.facts: defect), unless the user accepts that fact by name (--accept-defect).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kregress.check_progs.findings import checked_programs, unchecked
from kregress.kernels.facts import FACTS, carried_defects
from kregress.expectation.record import extra
from kregress.expectation.behaviour import behaviour_text
from kregress.report.matrix import Cell, Column, Matrix, build, facts_of, flipping


class CompareError(ValueError):
    """The files cannot be compared as asked; the message says how to ask."""


# How good an outcome is for a gate: a known deviation (xfail) is less than a pass, a skip
# checks nothing, a failure or error is the worst.
OUTCOME_RANK = {"passed": 3, "xpassed": 3, "xfailed": 2, "skipped": 1, "failed": 0, "error": 0}


def rank(outcome: str) -> int:
    return OUTCOME_RANK.get(outcome, 0)


@dataclass
class Difference:
    case: str
    old: Cell | None
    new: Cell | None
    kind: str                   # behaviour, outcome, recorded, only-old, only-new, unchecked
    facts: tuple[str, ...] = ()  # named by the test and flipping between the two kernels
    programs: tuple[str, ...] = ()   # unchecked: a user's programs checked before, not now
    defects: tuple[str, ...] = ()    # facts named by the test whose known defect the new kernel brings
    accepted: tuple[str, ...] = ()   # of those, the ones the user accepted by name

    @property
    def unaccepted_defects(self) -> tuple[str, ...]:
        """Only an explained change brings a known defect: an unexplained one gates as that."""
        return tuple(name for name in self.defects if name not in self.accepted) if self.explained else ()

    @property
    def worse(self) -> bool:
        """The new outcome is worse than the old one (a missing case is)."""
        if self.kind == "only-old":
            return True
        return self.kind != "only-new" and rank(self.new.outcome) < rank(self.old.outcome)

    @property
    def explained(self) -> bool:
        return self.kind == "behaviour" and bool(self.facts) and rank(self.new.outcome) == OUTCOME_RANK["passed"]

    @property
    def new_failure(self) -> bool:
        """A case the old run did not have that fails or errors in the new one: nothing was
        worse before, but a fleet must not take an upgrade onto a failure either."""
        return self.kind == "only-new" and rank(self.new.outcome) == OUTCOME_RANK["failed"]

    @property
    def gating(self) -> bool:
        return self.worse or self.new_failure or self.kind == "unchecked" or bool(self.unaccepted_defects) or \
            (self.kind == "behaviour" and not self.explained)

    @property
    def tag(self) -> str:
        if self.kind == "only-old":
            return "MISSING"
        if self.kind == "unchecked":
            return "NOT CHECKED"
        if self.unaccepted_defects and not self.worse:
            return "KNOWN DEFECT"
        if self.worse:
            return "WORSE"
        if self.new_failure:
            return "NEW FAILURE"
        if self.kind == "behaviour":
            return "explained" if self.explained else "UNEXPLAINED"
        return {"outcome": "outcome", "recorded": "recorded", "only-new": "added"}[self.kind]

    def describe(self) -> str:
        if self.kind == "unchecked":
            why = {item["program"]: item["why"] for item in unchecked(extra(self.new.test, "check_progs") or {})}
            return "checked on the old kernel, not checked on the new one: " + "; ".join(
                f"{name} ({why.get(name, 'no record')})" for name in self.programs)
        if self.kind == "only-old":
            return f"not in the new run (was {self.old.outcome}: {self.old.text})"
        if self.kind == "only-new":
            return f"new case ({self.new.outcome}: {self.new.text})"
        outcomes = f"{self.old.outcome} -> {self.new.outcome}"
        if self.kind == "outcome":
            return f"{outcomes} ({self.new.text})"
        old, new = self.old.observed, self.new.observed
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]   # just what changed
        if self.kind == "recorded":
            return (f"{behaviour_text(old, keys)} -> {behaviour_text(new, keys)}: recorded values only, "
                    f"no expectation judges them (shown, not gating)")
        flips = "; ".join(f"{n} ({FACTS[n].label})" for n in self.facts)
        if self.explained:
            why = "explained by " + flips
            for name in self.defects:
                how = "accepted by --accept-defect" if name in self.accepted else \
                    f"gates unless accepted with --accept-defect {name}"
                why += f"; brings the known defect of {name}: {FACTS[name].defect} ({how})"
        elif self.facts:
            why = (f"the new kernel does not pass it, so the flip of {flips} does not explain it"
                   if not self.worse else f"worse outcome, whatever flips ({flips})")
        else:
            why = "UNEXPLAINED: no fact the test names flips between the two kernels"
        outcome = f" [{outcomes}]" if self.old.outcome != self.new.outcome else ""
        return f"{behaviour_text(old, keys)} -> {behaviour_text(new, keys)}{outcome}: {why}"


@dataclass
class Pairing:
    old: Column
    new: Column
    compared: int
    differences: list[Difference]


def _tested(matrix: Matrix) -> list[Column]:
    with_tests = {k for row in matrix.rows for k in row.cells}
    return [col for col in matrix.columns if col.id in with_tests]


def pair_kernels(old: Matrix, new: Matrix, old_kernel: str | None, new_kernel: str | None):
    old_cols, new_cols = {c.id: c for c in _tested(old)}, {c.id: c for c in _tested(new)}
    if old_kernel or new_kernel:
        if len(old_cols) > 1 and not old_kernel or len(new_cols) > 1 and not new_kernel:
            raise CompareError("give both --old-kernel and --new-kernel when a file has several kernels")
        old_id = old_kernel or next(iter(old_cols), None)
        new_id = new_kernel or next(iter(new_cols), None)
        for wanted, cols, which in ((old_id, old_cols, "old"), (new_id, new_cols, "new")):
            if wanted not in cols:
                raise CompareError(f"{which} run has no results for kernel {wanted!r}; it has: {', '.join(cols) or 'none'}")
        return [(old_cols[old_id], new_cols[new_id])]
    if len(old_cols) == 1 and len(new_cols) == 1:
        return [(next(iter(old_cols.values())), next(iter(new_cols.values())))]
    common = [k for k in new_cols if k in old_cols]
    if not common:
        raise CompareError(f"no kernel id in both runs (old: {', '.join(old_cols) or 'none'}; new: "
                           f"{', '.join(new_cols) or 'none'}); pick a pair with --old-kernel ID --new-kernel ID")
    return [(old_cols[k], new_cols[k]) for k in common]


def judged_change(old: Cell, new: Cell) -> bool:
    """Whether the behaviour changed in a key either run judges. A key a test records without an
    expectation (a race's count it shows but may not judge, e.g. lsm_cgroup double runs where the
    facts allow them) is shown in the matrix but does not gate by itself; a case with no expected
    key at all is compared on everything it observed."""
    changed = {k for k in {*old.observed, *new.observed} if old.observed.get(k) != new.observed.get(k)}
    judged = {*old.expected, *new.expected}
    return bool(changed & judged) if judged else bool(changed)


def lost_checks(old: Cell, new: Cell) -> tuple[str, ...]:
    """A user's programs (check-progs) the old run checked and the new run did not."""
    before = checked_programs(extra(old.test, "check_progs"))
    after = extra(new.test, "check_progs") or {}
    return tuple(sorted(before - checked_programs(after)))


def brought_defects(names, old: Column, new: Column) -> tuple[str, ...]:
    """Of the facts a test names, those whose known defect the new kernel carries and the old did not."""
    before = {fact.name for fact in carried_defects(old.facts.has)}
    return tuple(fact.name for fact in carried_defects(new.facts.has) if fact.name in names and fact.name not in before)


def compare(old_doc: dict, new_doc: dict, old_kernel: str | None = None, new_kernel: str | None = None,
            kernels_file: Path | None = None, accept_defects: tuple[str, ...] = ()) -> list[Pairing]:
    old, new = build(old_doc, kernels_file), build(new_doc, kernels_file)
    old_rows, new_rows = {r.case: r for r in old.rows}, {r.case: r for r in new.rows}
    pairings = []
    for old_col, new_col in pair_kernels(old, new, old_kernel, new_kernel):
        differences, compared = [], 0
        for case in sorted(set(old_rows) | set(new_rows)):
            o = old_rows[case].cells.get(old_col.id) if case in old_rows else None
            n = new_rows[case].cells.get(new_col.id) if case in new_rows else None
            if o is None and n is None:
                continue
            if o is None or n is None:
                differences.append(Difference(case, o, n, "only-new" if o is None else "only-old"))
                continue
            compared += 1
            lost = lost_checks(o, n)
            if lost:
                differences.append(Difference(case, o, n, "unchecked", programs=lost))
            if o.comparable and n.comparable and judged_change(o, n):
                names = facts_of([o.test, n.test])
                defects = brought_defects(names, old_col, new_col)
                differences.append(Difference(case, o, n, "behaviour", flipping(names, old_col.facts, new_col.facts),
                                              defects=defects,
                                              accepted=tuple(d for d in defects if d in accept_defects)))
            elif o.outcome != n.outcome:
                differences.append(Difference(case, o, n, "outcome"))
            elif o.comparable and n.comparable and o.observed != n.observed:
                differences.append(Difference(case, o, n, "recorded"))
        pairings.append(Pairing(old_col, new_col, compared, differences))
    return pairings


def _kernel_line(col: Column) -> str:
    info = col.info
    return (f"{col.id} ({info.get('package_version') or info.get('image') or '?'}, "
            f"upstream {col.version or '?'}, uname -r {info.get('uname_r') or '?'}, {info.get('accel') or '?'})")


def render(pairings: list[Pairing]) -> tuple[list[str], int]:
    """The lines to print and the exit status (1: a worse outcome, a missing case, a new case
    that fails, or an unexplained behaviour change). The last line says what was compared and what gated."""
    lines, compared, gated = [], [], []
    for p in pairings:
        lines.append(f"old {_kernel_line(p.old)}")
        lines.append(f"new {_kernel_line(p.new)}")
        lines += [f"  {d.tag:<11} {d.case}: {d.describe()}" for d in p.differences]
        count = {tag: sum(1 for d in p.differences if d.tag == tag)
                 for tag in ("explained", "UNEXPLAINED", "WORSE", "MISSING", "outcome", "recorded", "added",
                             "NEW FAILURE", "NOT CHECKED", "KNOWN DEFECT")}
        lines.append(f"  {p.compared} case(s) compared: {count['explained']} explained, "
                     f"{count['UNEXPLAINED']} unexplained behaviour change(s), {count['WORSE']} worse outcome(s), "
                     f"{count['MISSING']} missing, {count['outcome']} other outcome change(s), "
                     f"{count['recorded']} recorded-value change(s), "
                     f"{count['added'] + count['NEW FAILURE']} added ({count['NEW FAILURE']} failing), "
                     f"{count['NOT CHECKED']} with programs no longer checked, {count['KNOWN DEFECT']} bringing a "
                     f"known defect")
        accepted = sorted({name for d in p.differences for name in d.accepted})
        if accepted:
            lines.append(f"  accepted known defect(s) of the new kernel, by --accept-defect: {', '.join(accepted)}")
        compared.append(f"{p.old.id} -> {p.new.id} ({p.compared} case(s))")
        gated += [f"{d.tag} {d.case.rpartition('::')[2] or d.case}"
                  + (f" ({d.old.outcome if d.old else 'absent'} -> {d.new.outcome if d.new else 'missing'})"
                     if d.tag not in ("UNEXPLAINED", "KNOWN DEFECT") else
                     f" ({', '.join(d.unaccepted_defects)})" if d.tag == "KNOWN DEFECT" else "")
                  for d in p.differences if d.gating]
    what = "; ".join(compared) or "no kernel pair"
    if gated:
        lines.append(f"compare: FAIL: {what}: gated by {len(gated)}: {', '.join(gated)}")
    else:
        lines.append(f"compare: ok: {what}: nothing worse, missing, unexplained or bringing an unaccepted known defect")
    return lines, 1 if gated else 0
