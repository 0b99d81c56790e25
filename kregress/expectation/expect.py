"""One expectation vocabulary for every scenario: observed against expected, the facts the
expectation was derived from, and (where a document states a rule) what the document says.

A scenario module declares, as data, the facts its expectations may depend on:

    pytestmark = pytest.mark.scenario(facts=["getsockopt_relief"])

and each test ends in `expect(observed, expected, facts=[...])`. The plugin records the
observation, the expectation and each fact's answer (which source decided, what every
source said) as fields of the test's results entry; the report, `kregress compare`, the
verdict table and bisect read them from there (bisect reads the declaration from the source:
kregress.expectation.declared).
"""
from __future__ import annotations

from dataclasses import dataclass

from kregress.kernels.decision import KernelFacts, UndeclaredFact
from kregress.kernels.facts import FACTS


@dataclass(frozen=True)
class DocumentRule:
    """A rule a document states, to be held against every kernel's behaviour."""
    document: str
    rule: str

    def as_record(self, says: dict) -> dict:
        return {"document": self.document, "rule": self.rule, "says": says}


@dataclass(frozen=True)
class StatedRule:
    """A rule a commit states as its intent that the facts (a reading of the source) say
    kernels break: the test expects what the kernel does, and each kernel that breaks the
    rule is listed as deviating from it; a kernel that follows it fails as changed behaviour."""
    source: str         # e.g. "69fd337a975c's stated intent"
    rule: str

    def broken(self, observed: dict, stated: dict) -> dict:
        return {key: {"observed": observed.get(key, "<missing>"), "stated": want} for key, want in stated.items()
                if observed.get(key, "<missing>") != want}

    def as_record(self, broken: dict) -> dict:
        return {"rule": self.rule, "source": self.source, "observed": broken}

    def followed_note(self) -> str:
        return (f"CHANGED: this kernel follows {self.source} ({self.rule}), which the facts say kernels break: "
                f"find the commit that fixed it and add it to kregress/kernels/facts.py")


def declared_facts(markers) -> tuple[str, ...] | None:
    """The facts named by a test's `scenario` markers (None: not a scenario test)."""
    markers = list(markers)
    if not markers:
        return None
    names: list[str] = []
    for marker in markers:
        for name in marker.kwargs.get("facts", ()):
            if name not in FACTS:
                raise UndeclaredFact(f"scenario marker names {name!r}, which kregress/kernels/facts.py does not define "
                                     f"(known: {', '.join(FACTS)})")
            if name not in names:
                names.append(name)
    return tuple(names)


def facts_mismatch(consulted: set[str], named: set[str] | None) -> str:
    """Why a test's recorded facts and its expectation disagree ("" when they agree).

    consulted: the facts the test asked KernelFacts about (only declared ones: KernelFacts
    refuses the others); named: the facts its expect() calls said the expectation came
    from (None: it never reached expect())."""
    problems = []
    if named is not None and named != consulted:
        if consulted - named:
            problems.append(f"its expectation depends on {sorted(consulted - named)} but expect() does not name "
                            f"them")
        if named - consulted:
            problems.append(f"expect() names {sorted(named - consulted)} but the test never consulted them")
    return "; ".join(problems)


def differences(observed: dict, expected: dict) -> dict[str, tuple]:
    return {key: (observed.get(key, "<missing>"), want) for key, want in expected.items()
            if observed.get(key, "<missing>") != want}


def failure_message(facts: KernelFacts, observed: dict, expected: dict, names, note: str = "") -> str:
    """The one shape of a failed expectation: what differs, then which fact says so."""
    wrong = differences(observed, expected)
    lines = [f"{facts.kernel_id} ({facts.version}): {len(wrong)} of {len(expected)} observation(s) differ "
             f"from the expectation"]
    lines += [f"  {key}: observed {got!r}, expected {want!r}" for key, (got, want) in wrong.items()]
    if names:
        lines.append("expected because: " + "; ".join(facts.why(name) for name in names))
    else:
        lines.append("expected on every kernel (no fact in kregress/kernels/facts.py changes it)")
    if note:
        lines.append(note)
    lines.append(f"observed: {observed}")
    return "\n".join(lines)
