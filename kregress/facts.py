"""Upstream facts, written once: which commit brought a behaviour, which releases carry it.

Expectations for a kernel are derived from these and the kernel's upstream version,
never copied from what some kernel did. A kernels.toml entry built from source can
state a fact outright (facts = { getsockopt_relief = true }).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fact:
    name: str
    commit: str
    title: str
    mainline: tuple[int, int]                       # first release with it
    stable: dict[tuple[int, int], int] = field(default_factory=dict)  # branch -> first patch level
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.commit} \"{self.title}\" (v{self.mainline[0]}.{self.mainline[1]})"

    def in_version(self, version: tuple[int, int, int]) -> bool:
        if version[:2] >= self.mainline:
            return True
        first_patch = self.stable.get(version[:2])
        return first_patch is not None and version[2] >= first_patch

    def releases(self) -> str:
        parts = [f"v{self.mainline[0]}.{self.mainline[1]}"]
        parts += [f"{b[0]}.{b[1]}.{p}" for b, p in sorted(self.stable.items(), reverse=True)]
        return ", ".join(parts)


FACTS: dict[str, Fact] = {fact.name: fact for fact in [
    Fact("getsockopt_relief", "29ebbba7d461", "bpf: Don't EFAULT for {g,s}setsockopt with wrong optlen",
         mainline=(6, 5), stable={(6, 1): 39, (5, 15): 121},
         note="user optlen > PAGE_SIZE: the prog's buffer is ignored instead of EFAULT; "
              "not in 5.10.y"),
    Fact("sockops_hdr_opt", "0813a841566f", "bpf: tcp: Allow bpf prog to write and parse TCP header option",
         mainline=(5, 10),
         note="WRITE_HDR_OPT/PARSE_*_HDR_OPT callbacks and bpf_{reserve,store,load}_hdr_opt"),
    Fact("lsm_cgroup", "69fd337a975c", "bpf: per-cgroup lsm flavor", mainline=(6, 0),
         note="BPF_LSM_CGROUP attach type"),
    Fact("bpf_get_set_retval", "b44123b4a3dc",
         "bpf: Add cgroup helpers bpf_{get,set}_retval to get/set syscall return value",
         mainline=(5, 18),
         note="the prog array now returns the syscall's retval, and getsockopt bails out on a "
              "negative one before checking optlen: a kernel error passes through unchanged even "
              "with optlen > PAGE_SIZE (inferred from the source; no 5.18-6.4 kernel in the matrix)"),
]}


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


@dataclass(frozen=True)
class KernelFacts:
    """What one kernel should do, by fact name, and why."""
    kernel_id: str
    version: str | None
    overrides: dict[str, bool] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        if name in self.overrides:
            return self.overrides[name]
        parsed = parse_version(self.version)
        if parsed is None:
            raise LookupError(f"{self.kernel_id}: no upstream version known, so whether it has "
                              f"{FACTS[name].label} cannot be derived; set version = \"X.Y.Z\" or "
                              f"facts = {{ {name} = true/false }} in kernels.toml")
        return FACTS[name].in_version(parsed)

    def why(self, name: str) -> str:
        fact = FACTS[name]
        if name in self.overrides:
            return f"kernels.toml states {name} = {str(self.overrides[name]).lower()} for {self.kernel_id}"
        verdict = "carries" if self.has(name) else "predates"
        return f"{self.version} {verdict} {fact.label}; releases with it: {fact.releases()}"

    def contradiction(self, name: str, observed_present: bool) -> str:
        """The message for a kernel whose behaviour disagrees with its version."""
        fact = FACTS[name]
        behaves = "with" if observed_present else "without"
        says = "has it" if self.has(name) else "lacks it"
        return (f"{self.kernel_id} ({self.version}) behaves {behaves} {fact.label}, "
                f"but {'kernels.toml says' if name in self.overrides else 'its version says'} it {says}: "
                f"{self.why(name)}")
