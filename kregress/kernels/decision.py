"""The fact decision for one kernel, made once, and everything read back from it.

decide() says, for every fact in kregress.kernels.facts, what each source says, which one
decided, and the kernel's state (has, lacks, unusable here). Sources in order of trust:
kernels.toml's stated facts, then the evidence (kregress.kernels.evidence: the kernel binary,
the config where the build brings the fact (Fact.brought_by), the package changelog), then the
upstream version. The config answers only "present": a patch set the build applied outranks the
changelog's and the version's silence about it. The plugin decides once per kernel and
stores the decision in the kernel's results record ("fact_decisions"); tests, reports,
compare and verdicts read it through KernelFacts and never decide again.
"""
from __future__ import annotations

from kregress.kernels.facts import FACTS, parse_version

TRUST = ("binary", "config", "changelog", "version")      # after kernels.toml's stated facts
STATED = "kernels.toml"


class UndeclaredFact(LookupError):
    """A scenario test consulted a fact its module does not declare."""


def decide(kernel_id: str, version: str | None, overrides: dict[str, bool] | None = None,
           evidence: dict[str, dict[str, str]] | None = None, arch: str = "x86_64",
           config: dict[str, str] | None = None) -> dict[str, dict]:
    """fact name -> {expected, decided_by, sources, state[, reason][, config_needs]}; a fact
    nothing answers for gets {sources, undecided: what to state in kernels.toml}."""
    return {name: _decide_one(name, kernel_id, version, overrides or {}, evidence or {}, arch, config)
            for name in FACTS}


def _decide_one(name, kernel_id, version, overrides, evidence, arch, config) -> dict:
    fact = FACTS[name]
    parsed = parse_version(version)
    said = dict(evidence.get(name, {}))
    said["version"] = "unknown" if parsed is None else "present" if fact.in_version(parsed) else "absent"
    brought = fact.brought(config, parsed)
    if fact.brought_by and config:
        said["config"] = "present" if brought else "unknown"
    if name in overrides:
        said = {STATED: "present" if overrides[name] else "absent", **said}
    decided_by = next((source for source in (STATED, *TRUST) if said.get(source) in ("present", "absent")), None)
    if decided_by is None:
        return {"sources": said, "undecided": (
            f"{kernel_id}: nothing tells whether it has {fact.label}: no upstream version, and neither its "
            f"binary nor a changelog says; set version = \"X.Y.Z\" or facts = {{ {name} = true/false }} in "
            f"kernels.toml")}
    expected = said[decided_by] == "present"
    out = {"expected": expected, "decided_by": decided_by, "sources": said}
    if brought:
        out["brought_by"] = brought.text()
    needs = fact.needs(arch)
    missing = [option for option in needs if config.get(option) not in ("y", "m")] if config and expected else []
    out["state"] = "lacks" if not expected else "unusable" if missing else "has"
    if missing:
        per_arch = any(option in fact.needs_config_on.get(arch, ()) for option in missing)
        out["reason"] = f"{arch + ' kernel' if per_arch else 'kernel'} without {' and '.join(missing)}"
    if needs:
        out["config_needs"] = ({option: config.get(option, "unset") for option in needs} if config
                               else "unknown: no config found")
    return out


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
    the reports do, from the decision recorded for it (KernelFacts.recorded)."""

    def __init__(self, kernel_id: str, version: str | None, overrides: dict[str, bool] | None = None,
                 evidence: dict[str, dict[str, str]] | None = None, *, declared: tuple[str, ...] | None = None,
                 arch: str = "x86_64", config: dict[str, str] | None = None, config_source: str | None = None,
                 decisions: dict[str, dict] | None = None):
        self.kernel_id, self.version, self.config_source = kernel_id, version, config_source
        self.decisions = decisions if decisions is not None else decide(
            kernel_id, version, overrides, evidence, arch, config)
        self.declared = declared        # a scenario's declared facts: asking for others is an error
        self.used: set[str] = set()     # the facts a test asked about

    @classmethod
    def recorded(cls, info: dict, declared: tuple[str, ...] | None = None) -> "KernelFacts":
        """From a kernel's results record and the decision stored in it."""
        return cls(info["id"], info.get("upstream_version"), declared=declared,
                   config_source=info.get("config_source"), decisions=info["fact_decisions"])

    @property
    def overrides(self) -> dict[str, bool]:
        """kernels.toml's stated facts, as the decision took them."""
        return {name: d["sources"][STATED] == "present" for name, d in self.decisions.items()
                if STATED in d["sources"]}

    def answers(self, name: str) -> dict[str, str]:
        """Each source's answer about the fact: present, absent or unknown."""
        return dict(self.decisions[name]["sources"])

    def decided_by(self, name: str) -> str:
        decision = self.decisions[name]
        if "undecided" in decision:
            raise LookupError(decision["undecided"])
        return decision["decided_by"]

    def has(self, name: str) -> bool:
        """What the sources say about the fact; the test's expectation now depends on it."""
        if self.declared is not None and name not in self.declared:
            raise UndeclaredFact(f"the test asked about fact {name!r}, which its module's scenario marker does "
                                 f"not declare (declared: {', '.join(self.declared) or 'none'}); add it to "
                                 f"pytest.mark.scenario(facts=[...])")
        self.used.add(name)
        return self.expects(name)

    def expects(self, name: str) -> bool:
        self.decided_by(name)
        return self.decisions[name]["expected"]

    def unusable_reason(self, name: str) -> str | None:
        """Why a kernel with the fact cannot use it here, as its config says ("arm64 kernel without
        CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"); None when it can, lacks the fact, or has no config."""
        self.decided_by(name)
        return self.decisions[name].get("reason")

    def state(self, name: str) -> str:
        """"has", "lacks" or "unusable" (has the commit, not what the feature needs); the test's
        expectation now depends on it, as with has()."""
        self.has(name)
        return self.decisions[name]["state"]

    def brought_by(self, name: str) -> str | None:
        """The patch set the build applied that brought the fact ("CONFIG_PREEMPT_RT=y brings it (...)")."""
        return self.decisions[name].get("brought_by")

    def unusable_skip(self, name: str) -> str:
        """The named skip of a test whose fact is unusable here."""
        source = self.config_source and self.config_source.rsplit("/", 1)[-1]
        return f"unusable here: {name}: {self.unusable_reason(name)} (its config: {source}); {self.why(name)}"

    def summary(self, name: str) -> dict:
        """For the results: what is expected, which source decided, what each source said, and the
        state: has, lacks, or unusable (with the reason, from the config)."""
        self.decided_by(name)
        return {key: (dict(value) if isinstance(value, dict) else value)
                for key, value in self.decisions[name].items()}

    def disagreements(self, name: str) -> list[str]:
        said = self.answers(name)
        decided = said[self.decided_by(name)]
        return [source for source, answer in said.items() if answer in ("present", "absent") and answer != decided]

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
            text += " (" + "; ".join(f"{other} says {'has' if self.answers(name)[other] == 'present' else 'lacks'} it"
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
