"""The behaviour matrix: scenario cases x kernels, built from a results file.

Kernels are ordered by upstream version, so adjacent columns are the steps a fleet takes
when it upgrades. A behaviour change between adjacent kernels is explained by a fact from
kregress.kernels.facts that flips between them and that the test's results entry records as one
its expectation depended on; anything else is an "unexplained change". The same rule is used
by `kregress compare` between two runs, so the report and the upgrade gate agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kregress.report import recovery
from kregress.kernels.decision import KernelFacts, version_says, version_text
from kregress.kernels.facts import FACTS, parse_version
from kregress.expectation.behaviour import behaviour_text, value_text
from kregress.report.results import case_of, report_status

CELL_STATUS = {"pass": "pass", "fail": "fail", "error": "fail", "skip": "skip"}
# Outcomes whose observed behaviour is worth comparing (a skip may record a
# half-run scenario; an error happened outside the test body).
COMPARABLE = ("passed", "failed")


def facts_of(tests) -> tuple[str, ...]:
    """The facts the tests' expectations depended on, as their results entries record them
    (expectation_facts: named in expect(); facts_used: asked about), in the facts table's order."""
    names = set()
    for test in tests:
        names |= set(test.get("expectation_facts") or ()) | set(test.get("facts_used") or {})
    return tuple(name for name in FACTS if name in names)


def flipping(names, old: KernelFacts, new: KernelFacts) -> tuple[str, ...]:
    """The named facts one kernel has and the other lacks. Unknown versions explain nothing."""
    out = []
    for name in names:
        try:
            if old.has(name) != new.has(name):
                out.append(name)
        except LookupError:
            continue
    return tuple(out)


def fact_short(name: str) -> str:
    return f"{name} {FACTS[name].commit}"


@dataclass(frozen=True)
class Change:
    """Behaviour differs from `since` (the previous kernel, or the old run)."""
    since: str
    before: dict                # the observed behaviour there
    facts: tuple[str, ...]      # empty: nothing in the facts table explains it

    @property
    def explained(self) -> bool:
        return bool(self.facts)

    @property
    def label(self) -> str:
        return " / ".join(fact_short(n) for n in self.facts) if self.facts else "unexplained change"

    @property
    def detail(self) -> str:
        if not self.facts:
            return (f"behaviour differs from {self.since} ({behaviour_text(self.before)}) and no fact the test names "
                    f"flips between the two kernels")
        return "; ".join(FACTS[n].label for n in self.facts)


@dataclass
class Column:
    id: str
    info: dict
    facts: KernelFacts

    @property
    def version(self) -> str | None:
        return self.info.get("upstream_version")

    @property
    def booted(self) -> bool:
        return bool(self.info.get("boot_seconds"))

    def sort_key(self):
        parsed = parse_version(self.version)
        return (parsed is None, parsed or (0, 0, 0), self.id)


@dataclass
class Cell:
    kernel: str
    test: dict                  # the results-file record
    status: str = ""            # pass, fail, skip, expected-diff
    change: Change | None = None
    stale: str = ""

    @property
    def outcome(self) -> str:
        return self.test.get("outcome", "")

    @property
    def observed(self) -> dict:
        return self.test.get("observed") or {}

    @property
    def expected(self) -> dict:
        return self.test.get("expected") or {}

    @property
    def comparable(self) -> bool:
        return self.outcome in COMPARABLE and bool(self.observed)

    @property
    def text(self) -> str:
        return behaviour_text(self.observed) or self.outcome


@dataclass
class Row:
    case: str
    cells: dict[str, Cell] = field(default_factory=dict)
    facts: tuple[str, ...] = ()
    varying: list[str] = field(default_factory=list)    # observed keys that differ across kernels

    @property
    def module(self) -> str:
        return self.case.partition("::")[0]

    @property
    def name(self) -> str:
        return self.case.partition("::")[2] or self.case


@dataclass
class Matrix:
    columns: list[Column]
    rows: list[Row]
    stale: list[str]
    meta: dict

    def changes(self):
        for row in self.rows:
            for column in self.columns:
                cell = row.cells.get(column.id)
                if cell and cell.change:
                    yield row, cell

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            for cell in row.cells.values():
                counts[cell.status] = counts.get(cell.status, 0) + 1
        return counts

    @property
    def unexplained(self) -> int:
        return sum(1 for _, cell in self.changes() if not cell.change.explained)


def overrides_of(doc: dict, kernels_file: Path | None = None) -> dict[str, dict[str, bool]]:
    """kernels.toml `facts = {...}` per kernel: recorded in the results file, or read from
    the kernels file (given, or the one the run used) for results written before that."""
    found = {k: dict(v["facts"]) for k, v in doc.get("kernels", {}).items() if "facts" in v}
    path = kernels_file or (Path(doc["kernels_file"]) if doc.get("kernels_file") else None)
    if path and Path(path).is_file() and (kernels_file or len(found) < len(doc.get("kernels", {}))):
        from kregress.kernels.entries import KernelsFileError, load_kernels
        try:
            for spec in load_kernels(Path(path)):
                if kernels_file or spec.id not in found:
                    found[spec.id] = dict(spec.facts)
        except KernelsFileError:
            pass
    return found


def accelerators(doc: dict) -> list[dict]:
    """Older results files have one "accelerator"; newer ones a list; kernels each their own."""
    found = list(doc.get("accelerators") or ([doc["accelerator"]] if doc.get("accelerator") else []))
    for info in doc.get("kernels", {}).values():
        if info.get("accel"):
            choice = {"accel": info["accel"], "reason": info.get("accel_reason", "")}
            if not any(a.get("accel") == choice["accel"] and a.get("reason") == choice["reason"] for a in found):
                found.append(choice)
    return [{"accel": a.get("accel"), "reason": a.get("reason", "")} for a in found]


def shared_records(doc: dict, key: str) -> list[dict]:
    """A per-kernel record the kernels share (guest_image, build_root), once per digest,
    with the kernels that used it."""
    found: dict[str, dict] = {}
    for info in doc.get("kernels", {}).values():
        record = info.get(key)
        if record and record.get("digest"):
            found.setdefault(record["digest"], {**record, "kernels": []})["kernels"].append(info.get("id"))
    for record in found.values():
        record["kernels"].sort()         # the same for merged shards as for one run
    return list(found.values())


def guest_images(doc: dict) -> list[dict]:
    """The guest images the kernels ran (each kernel records its own), once each."""
    return shared_records(doc, "guest_image")


def build_roots(doc: dict) -> list[dict]:
    """The build roots the kernels' guest programs were compiled in, once each."""
    return shared_records(doc, "build_root")


def facts_of_kernel(kernel_id: str, info: dict, overrides: dict[str, bool]) -> KernelFacts:
    """The fact decision the run recorded for the kernel. Decided anew only where a kernels file
    restates its facts otherwise than the run did, or a record has no decision (a kernel that
    could not be fetched)."""
    if info.get("fact_decisions") is not None and overrides == (info.get("facts") or {}):
        return KernelFacts.recorded({**info, "id": kernel_id})
    return KernelFacts(kernel_id, info.get("upstream_version"), overrides, info.get("evidence") or {})


def build(doc: dict, kernels_file: Path | None = None) -> Matrix:
    overrides = overrides_of(doc, kernels_file)
    infos = {k: dict(v) for k, v in doc.get("kernels", {}).items()}
    rows: dict[str, Row] = {}
    for test in doc.get("tests", []):
        kernel = test.get("kernel")
        if not kernel:
            continue                                    # unit tests: not part of the matrix
        infos.setdefault(kernel, {"id": kernel})
        case = case_of(test["nodeid"], kernel)
        rows.setdefault(case, Row(case)).cells[kernel] = Cell(kernel, test)
    columns = sorted((Column(k, info, facts_of_kernel(k, info, overrides.get(k, {}))) for k, info in infos.items()),
                     key=Column.sort_key)
    ordered = [rows[case] for case in sorted(rows)]
    for row in ordered:
        _classify(row, columns)
    stale = _stale_overrides(columns, ordered) + [
        f"{row.case} on {cell.kernel}: {cell.stale}" for row in ordered for cell in row.cells.values() if cell.stale]
    meta = {key: doc.get(key) for key in ("started", "finished", "host", "summary")}
    meta["accelerators"] = accelerators(doc)
    meta["guest_images"] = guest_images(doc)
    meta["build_roots"] = build_roots(doc)
    meta["harness_events"] = recovery.run_lines(doc)     # boot retries, snapshot fallbacks, boot-log problems
    return Matrix(columns, ordered, stale, meta)


def _classify(row: Row, columns: list[Column]) -> None:
    cells = [(col, row.cells[col.id]) for col in columns if col.id in row.cells]
    row.facts = facts_of(cell.test for _, cell in cells)
    keys = list(dict.fromkeys(k for _, cell in cells if cell.comparable for k in cell.observed))
    row.varying = [k for k in keys if len({value_text(cell.observed.get(k)) for _, cell in cells
                                          if cell.comparable}) > 1]
    # The reference behaviour is the newest kernel's that passed: older kernels that pass
    # while behaving differently are the expected differences.
    passed = [(col, cell) for col, cell in cells if cell.outcome == "passed" and cell.observed]
    ref_col, ref = passed[-1] if passed else (None, None)
    previous: tuple[Column, Cell] | None = None
    for col, cell in cells:
        cell.status = CELL_STATUS[report_status(cell.outcome)]
        if ref and cell is not ref and cell.status == "pass" and cell.observed != ref.observed:
            cell.status = "expected-diff"
        if not cell.comparable:
            continue
        if previous and previous[1].observed != cell.observed:
            cell.change = Change(previous[0].id, previous[1].observed,
                                 flipping(row.facts, previous[0].facts, col.facts))
        previous = (col, cell)
        if ref and cell is not ref:
            cell.stale = _stale_difference(cell, ref, ref_col, row.facts, col)


def _stale_difference(cell: Cell, ref: Cell, ref_col: Column, names, col: Column) -> str:
    """Like an XPASS: the test expected this kernel to differ from the newest one, and it no
    longer does (a backport the facts table or kernels.toml does not know about yet)."""
    keys = [k for k in cell.expected if k in ref.expected and cell.expected[k] != ref.expected[k]]
    if not keys or any(k not in cell.observed or cell.observed[k] != ref.observed.get(k) for k in keys):
        return ""
    because = flipping(names, col.facts, ref_col.facts)
    why = f" ({', '.join(fact_short(n) for n in because)})" if because else ""
    return (f"stale expected difference: expected {behaviour_text(cell.expected, keys)} unlike "
            f"{ref.kernel}{why}, but behaves the same ({behaviour_text(cell.observed, keys)}); "
            f"a backport? state it in kernels.toml facts or the facts table")


def _stale_overrides(columns: list[Column], rows: list[Row]) -> list[str]:
    """kernels.toml `facts` entries that no longer earn their place."""
    stale = []
    for col in columns:
        for name, value in sorted(col.facts.overrides.items()):
            predicted = version_says(name, col.version)
            if predicted is None:
                continue                                # no version: the override is all there is
            if predicted == value:
                stale.append(f"kernels.toml: {col.id} facts.{name} = {str(value).lower()} is stale: "
                             f"{version_text(name, col.version)}; remove the override")
                continue
            # The override contradicts the version. If the kernel behaves like the kernels
            # the version would group it with, the override excuses nothing any more.
            evidence = [row.case for row in rows if name in row.facts
                        and _behaves_like(row, col, name, predicted, columns)]
            if evidence:
                stale.append(f"kernels.toml: {col.id} facts.{name} = {str(value).lower()} looks stale: "
                             f"it behaves as its version {col.version} predicts "
                             f"({'has' if predicted else 'lacks'} {fact_short(name)}) in "
                             f"{', '.join(evidence)}")
    return stale


def _behaves_like(row: Row, col: Column, name: str, predicted: bool, columns: list[Column]) -> bool:
    cell = row.cells.get(col.id)
    if not cell or not cell.comparable or cell.outcome == "passed":
        return False
    for other in columns:
        peer = row.cells.get(other.id)
        if other.id == col.id or not peer or peer.outcome != "passed":
            continue
        try:
            if other.facts.has(name) == predicted and peer.observed == cell.observed:
                return True
        except LookupError:
            continue
    return False
