"""The fact decision for one kernel, made once, and everything read back from it.

decide() says, for every fact in kregress.kernels.facts, a FactDecision: the kernel's state (one
of STATES), which witness decided, what each witness said (one of ANSWERS), and why. Witnesses
in order of trust: kernels.toml's stated facts, then the evidence (kregress.kernels.evidence:
the kernel binary and the package changelog; the config where the build brings the fact
(Fact.brought_by)), then the upstream version, which only this module reads. The config
answers only "present": a patch set the build applied outranks the changelog's and the
version's silence about it.

The decision is made where the kernel is resolved (kregress.run.kernel_record writes it into
the kernel's own file in the run directory); tests, reports, compare and verdicts read it
through KernelFacts and never decide again.
"""
from __future__ import annotations

from dataclasses import dataclass

from kregress.kernels.facts import FACTS, parse_version

TRUST = ("binary", "config", "changelog", "version")      # after kernels.toml's stated facts
STATED = "kernels.toml"
# what a kernel is, for one fact: has it (and can use it), lacks it, has the commit but not what
# the feature needs here, or nothing tells
HAS, LACKS, UNUSABLE, UNDECIDED = STATES = ("has", "lacks", "unusable", "undecided")
# what one witness says about a fact
PRESENT, ABSENT, UNKNOWN = ANSWERS = ("present", "absent", "unknown")
NO_CONFIG = "unknown: no config found"


class UndeclaredFact(LookupError):
    """A scenario test consulted a fact its module does not declare."""


@dataclass(frozen=True)
class FactDecision:
    """One kernel's decision about one fact. Its JSON is the kernel record's fact_decisions
    entry as results files have always had it (`expected` is written for their readers, read
    back from `state` never stored apart)."""
    fact: str
    state: str                                  # one of STATES
    decided_by: str | None                      # the witness that decided (None: undecided)
    said: tuple[tuple[str, str], ...]           # (witness, one of ANSWERS), in the order asked
    reason: str = ""        # unusable: what the config lacks; undecided: what to state in kernels.toml
    brought_by: str = ""    # the patch set the build applied that carries the fact
    # (option, what the config sets it to) for what the feature needs, or NO_CONFIG
    config_needs: tuple[tuple[str, str], ...] | str = ()

    def __post_init__(self):
        if self.state not in STATES:
            raise ValueError(f"{self.fact}: state {self.state!r} is not one of {', '.join(STATES)}")
        wrong = [f"{witness}: {answer!r}" for witness, answer in self.said if answer not in ANSWERS]
        if wrong:
            raise ValueError(f"{self.fact}: a witness answers one of {', '.join(ANSWERS)}, not {', '.join(wrong)}")
        if (self.decided_by is None) != (self.state == UNDECIDED):
            raise ValueError(f"{self.fact}: decided_by {self.decided_by!r} with state {self.state!r}")

    @property
    def answers(self) -> dict[str, str]:
        return dict(self.said)

    @property
    def expected(self) -> bool:
        """Whether the kernel has the fact's commit (usable here or not)."""
        if self.state == UNDECIDED:
            raise LookupError(self.reason)
        return self.state != LACKS

    def to_json(self) -> dict:
        if self.state == UNDECIDED:
            return {"sources": self.answers, "undecided": self.reason}
        out = {"expected": self.expected, "decided_by": self.decided_by, "sources": self.answers}
        if self.brought_by:
            out["brought_by"] = self.brought_by
        out["state"] = self.state
        if self.reason:
            out["reason"] = self.reason
        if self.config_needs:
            out["config_needs"] = (self.config_needs if isinstance(self.config_needs, str)
                                   else dict(self.config_needs))
        return out

    @classmethod
    def from_json(cls, fact: str, data: dict) -> "FactDecision":
        """From a fact_decisions entry (or a test's copy of one in an older results file, which may
        lack `state`: then `expected` says has or lacks)."""
        said = tuple((witness, answer) for witness, answer in (data.get("sources") or {}).items())
        if "undecided" in data:
            return cls(fact, UNDECIDED, None, said, reason=data["undecided"])
        needs = data.get("config_needs") or {}
        return cls(fact, data.get("state") or (HAS if data.get("expected") else LACKS), data["decided_by"], said,
                   reason=data.get("reason") or "", brought_by=data.get("brought_by") or "",
                   config_needs=needs if isinstance(needs, str) else tuple(needs.items()))


def decisions_json(decisions: dict[str, FactDecision]) -> dict[str, dict]:
    return {name: decided.to_json() for name, decided in decisions.items()}


def decisions_from_json(data: dict[str, dict]) -> dict[str, FactDecision]:
    return {name: FactDecision.from_json(name, entry) for name, entry in data.items()}


def recorded(info: dict | None, name: str) -> FactDecision | None:
    """A kernel record's decision about one fact (None: the record has none)."""
    entry = ((info or {}).get("fact_decisions") or {}).get(name)
    return FactDecision.from_json(name, entry) if entry else None


def decide(kernel_id: str, version: str | None, overrides: dict[str, bool] | None = None,
           evidence: dict[str, dict[str, str]] | None = None, arch: str = "x86_64",
           config: dict[str, str] | None = None) -> dict[str, FactDecision]:
    """fact name -> its FactDecision, for every fact in the table. evidence: what the binary and
    the changelog said (kregress.kernels.evidence.gather); the version is read here, once."""
    parsed = parse_version(version)
    return {name: _decide_one(name, kernel_id, version, parsed, overrides or {}, evidence or {}, arch, config)
            for name in FACTS}


def _decide_one(name, kernel_id, version, parsed, overrides, evidence, arch, config) -> FactDecision:
    fact = FACTS[name]
    said = {witness: answer for witness, answer in evidence.get(name, {}).items() if witness != "version"}
    said["version"] = UNKNOWN if parsed is None else PRESENT if fact.in_version(parsed) else ABSENT
    brought = fact.brought(config, parsed)
    if fact.brought_by and config:
        said["config"] = PRESENT if brought else UNKNOWN
    if name in overrides:
        said = {STATED: PRESENT if overrides[name] else ABSENT, **said}
    decided_by = next((witness for witness in (STATED, *TRUST) if said.get(witness) in (PRESENT, ABSENT)), None)
    if decided_by is None:
        return FactDecision(name, UNDECIDED, None, tuple(said.items()), reason=(
            f"{kernel_id}: nothing tells whether it has {fact.label}: no upstream version, and neither its "
            f"binary nor a changelog says; set version = \"X.Y.Z\" or facts = {{ {name} = true/false }} in "
            f"kernels.toml"))
    expected = said[decided_by] == PRESENT
    needs = fact.needs(arch)
    missing = [option for option in needs if config.get(option) not in ("y", "m")] if config and expected else []
    reason = ""
    if missing:
        per_arch = any(option in fact.needs_config_on.get(arch, ()) for option in missing)
        reason = f"{arch + ' kernel' if per_arch else 'kernel'} without {' and '.join(missing)}"
    return FactDecision(name, LACKS if not expected else UNUSABLE if missing else HAS, decided_by,
                        tuple(said.items()), reason=reason, brought_by=brought.text() if brought else "",
                        config_needs=(tuple((option, config.get(option, "unset")) for option in needs) if config
                                      else NO_CONFIG) if needs else ())


def version_says(name: str, version: str | None) -> bool | None:
    """Whether the upstream version alone carries the fact (None: no version to go by)."""
    parsed = parse_version(version)
    return None if parsed is None else FACTS[name].in_version(parsed)


def version_text(name: str, version: str | None) -> str:
    fact = FACTS[name]
    verdict = "carries" if version_says(name, version) else "predates"
    return f"{version} {verdict} {fact.label}; releases with it: {fact.releases()}"


class KernelFacts:
    """What one kernel should do, by fact name, and why: read from its one decision.

    Built from a kernel's raw witnesses (the decision is made here, once) or, as the plugin and
    the reports do, from the decision recorded in its kernel record (KernelFacts.recorded)."""

    def __init__(self, kernel_id: str, version: str | None, overrides: dict[str, bool] | None = None,
                 evidence: dict[str, dict[str, str]] | None = None, *, declared: tuple[str, ...] | None = None,
                 arch: str = "x86_64", config: dict[str, str] | None = None, config_source: str | None = None,
                 decisions: dict[str, FactDecision] | None = None):
        self.kernel_id, self.version, self.config_source = kernel_id, version, config_source
        self.decisions = decisions if decisions is not None else decide(
            kernel_id, version, overrides, evidence, arch, config)
        self.declared = declared        # a scenario's declared facts: asking for others is an error
        self.used: set[str] = set()     # the facts a test asked about

    @classmethod
    def recorded(cls, info: dict, declared: tuple[str, ...] | None = None) -> "KernelFacts":
        """From a kernel's record and the decision stored in it."""
        return cls(info["id"], info.get("upstream_version"), declared=declared, config_source=info.get("config_source"),
                   decisions=decisions_from_json(info["fact_decisions"]))

    @property
    def overrides(self) -> dict[str, bool]:
        """kernels.toml's stated facts, as the decision took them."""
        return {name: decided.answers[STATED] == PRESENT for name, decided in self.decisions.items()
                if STATED in decided.answers}

    def answers(self, name: str) -> dict[str, str]:
        """Each witness's answer about the fact: present, absent or unknown."""
        return self.decisions[name].answers

    def decided_by(self, name: str) -> str:
        decided = self.decisions[name]
        if decided.state == UNDECIDED:
            raise LookupError(decided.reason)
        return decided.decided_by

    def has(self, name: str) -> bool:
        """What the sources say about the fact; the test's expectation now depends on it."""
        if self.declared is not None and name not in self.declared:
            raise UndeclaredFact(f"the test asked about fact {name!r}, which its module's scenario marker does "
                                 f"not declare (declared: {', '.join(self.declared) or 'none'}); add it to "
                                 f"pytest.mark.scenario(facts=[...])")
        self.used.add(name)
        return self.expects(name)

    def expects(self, name: str) -> bool:
        return self.decisions[name].expected

    def unusable_reason(self, name: str) -> str | None:
        """Why a kernel with the fact cannot use it here, as its config says ("arm64 kernel without
        CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"); None when it can, lacks the fact, or has no config."""
        decided = self.decisions[name]
        self.decided_by(name)
        return decided.reason if decided.state == UNUSABLE else None

    def state(self, name: str) -> str:
        """"has", "lacks" or "unusable" (has the commit, not what the feature needs); the test's
        expectation now depends on it, as with has()."""
        self.has(name)
        return self.decisions[name].state

    def brought_by(self, name: str) -> str | None:
        """The patch set the build applied that brought the fact ("CONFIG_PREEMPT_RT=y brings it (...)")."""
        return self.decisions[name].brought_by or None

    def unusable_skip(self, name: str) -> str:
        """The named skip of a test whose fact is unusable here."""
        source = self.config_source and self.config_source.rsplit("/", 1)[-1]
        return f"unusable here: {name}: {self.unusable_reason(name)} (its config: {source}); {self.why(name)}"

    def summary(self, name: str) -> dict:
        """The decision as the kernel record has it: state, which witness decided, what each said."""
        self.decided_by(name)
        return self.decisions[name].to_json()

    def disagreements(self, name: str) -> list[str]:
        said = self.answers(name)
        decided = said[self.decided_by(name)]
        return [source for source, answer in said.items() if answer in (PRESENT, ABSENT) and answer != decided]

    def why(self, name: str) -> str:
        fact = FACTS[name]
        source = self.decided_by(name)
        if source == STATED:
            text = f"kernels.toml states {name} = {str(self.overrides[name]).lower()} for {self.kernel_id}"
        elif source == "version":
            text = version_text(name, self.version)
        elif source == "config" and self.brought_by(name):
            text = f"its build brings {fact.label}: {self.brought_by(name)}"
        else:
            text = f"its {source} says it {'has' if self.expects(name) else 'lacks'} {fact.label}"
        others = self.disagreements(name)
        if others:
            text += " (" + "; ".join(f"{other} says {'has' if self.answers(name)[other] == PRESENT else 'lacks'} it"
                                     for other in others) + ")"
        return text

    def contradiction(self, name: str, observed_present: bool) -> str:
        """The message for a kernel whose behaviour disagrees with what the sources say."""
        fact = FACTS[name]
        reason = self.unusable_reason(name)
        if reason and observed_present:
            return (f"{self.kernel_id} ({self.version}) behaves with {fact.label}, but its config "
                    f"({self.config_source}) says it cannot use it here: {reason}")
        behaves = "with" if observed_present else "without"
        says = "has it" if self.expects(name) else "lacks it"
        source = self.decided_by(name)
        who = "kernels.toml says" if source == STATED else f"its {source} says"
        return f"{self.kernel_id} ({self.version}) behaves {behaves} {fact.label}, but {who} it {says}: {self.why(name)}"
