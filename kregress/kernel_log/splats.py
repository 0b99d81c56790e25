"""Kernel problems ("splats") in a kernel log, and the allowlist of known-benign ones.

The rules follow what BPF CI fails a run on: a WARN, a BUG, an Oops, a KASAN or UBSAN
report, a lockdep report, a hung task, an RCU stall, a panic. Each rule matches the
first line of a report, as the kernel prints it; a report's later lines (registers, call
trace) are not counted again. Lines that merely contain "WARNING:" (the CPU-vulnerability
notes every TCG boot prints, "RETBleed: WARNING: ...") are not kernel problems.

The allowlist (kernel-log-allowlist.toml) names, for each line it allows, the kernels it
applies to and why it is benign; a line it allows is still recorded, as allowed.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kregress.paths import data

DEFAULT_ALLOWLIST = data("kernel-log-allowlist.toml")

# (rule, first line of its report); the first rule that matches names the problem, so the
# specific ones (KASAN is printed as "BUG: KASAN: ...", lockdep as "WARNING: possible ...")
# come before BUG and WARN.
RULES: list[tuple[str, re.Pattern]] = [(name, re.compile(pattern)) for name, pattern in [
    ("KASAN", r"\bBUG: KASAN: |\bKASAN: (null-ptr-deref|wild-memory-access|maybe wild-memory-access)"),
    ("UBSAN", r"\bUBSAN: "),
    ("lockdep", r"\bWARNING: (possible (circular|recursive) locking dependency|possible irq lock inversion|"
                r"inconsistent lock state|suspicious RCU usage|bad unlock balance|held lock freed|"
                r"lock held when returning to user space|nested lock was not taken|"
                r"\S+ is leaving the kernel with locks still held)|"
                r"\bINFO: trying to register non-static key|\bBUG: MAX_LOCKDEP|DEBUG_LOCKS_WARN_ON\("),
    ("hung task", r"\bINFO: task \S+ blocked for more than \d+ seconds"),
    ("RCU stall", r"\bINFO: rcu_\w+ (self-)?detected stalls?\b|\brcu_\w+ kthread (starved|timer wakeup didn't happen)"),
    ("panic", r"\bKernel panic - not syncing"),
    ("Oops", r"\bOops: |\bInternal error: Oops|\bgeneral protection fault\b|\bUnable to handle kernel "),
    ("BUG", r"\bBUG: |\bkernel BUG at "),
    # "WARNING: CPU: 1 PID: 42 at kernel/fork.c:12 f+0x1/0x2", before 4.x "WARNING: at ...",
    # since 6.x also "WARNING: lib/math/int_log.c:63 at intlog2+0x55/0x60, CPU#0: ..."
    ("WARN", r"\bWARNING: (CPU: \d+ PID: \d+ at |at |\S+:\d+ at )"),
]]
# the kernel's own time stamp ("[   12.345678] ") and the printk caller id ("[    T1] ")
PREFIX = re.compile(r"^(<\d+>)?(\[\s*[\d.]+\]\s?)?(\[\s*[TC]\d+\]\s?)?")


class AllowlistError(ValueError):
    """The allowlist file is malformed; the message names the entry and the fix."""


@dataclass(frozen=True)
class Allowed:
    kernels: tuple[str, ...]    # kernel ids, shell patterns allowed ("debian-6.12*")
    line: re.Pattern            # searched in the message
    why: str

    def allows(self, kernel_id: str, message: str) -> bool:
        return any(fnmatch.fnmatchcase(kernel_id, k) for k in self.kernels) and bool(self.line.search(message))


@dataclass(frozen=True)
class Splat:
    rule: str
    line: str                   # as logged
    allowed_because: str | None = None

    def as_record(self, source: str) -> dict:
        record = {"rule": self.rule, "line": self.line, "source": source}
        if self.allowed_because:
            record["allowed"] = self.allowed_because
        return record


def message_of(line: str) -> str:
    return PREFIX.sub("", line.rstrip("\n"), count=1)


def rule_of(line: str) -> str | None:
    message = message_of(line)
    return next((name for name, pattern in RULES if pattern.search(message)), None)


def find(lines, kernel_id: str, allowlist: list[Allowed] = ()) -> list[Splat]:
    """Every kernel problem among the lines, in order, allowed ones marked as such."""
    found = []
    for line in lines:
        rule = rule_of(line)
        if rule is None:
            continue
        message = message_of(line)
        allowed = next((entry for entry in allowlist if entry.allows(kernel_id, message)), None)
        found.append(Splat(rule, line.rstrip("\n"), allowed.why if allowed else None))
    return found


def problems(splats: list[Splat]) -> list[Splat]:
    """The ones that count: not allowed."""
    return [splat for splat in splats if not splat.allowed_because]


def load_allowlist(path: Path | None = None) -> list[Allowed]:
    """The allowlist file's entries; a missing default file is an empty list."""
    path = Path(path) if path else DEFAULT_ALLOWLIST
    if not path.exists():
        if path == DEFAULT_ALLOWLIST:
            return []
        raise AllowlistError(f"{path}: no such allowlist file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise AllowlistError(f"{path}: not valid TOML: {err}") from None
    entries = data.get("allow", [])
    if not isinstance(entries, list):
        raise AllowlistError(f"{path}: 'allow' must be an array of tables ([[allow]] entries)")
    return [_entry(path, number, entry) for number, entry in enumerate(entries, 1)]


def _entry(path: Path, number: int, entry) -> Allowed:
    where = f"{path}: [[allow]] entry {number}"
    if not isinstance(entry, dict):
        raise AllowlistError(f"{where}: must be a table with kernels, line and why")
    unknown = set(entry) - {"kernels", "line", "why"}
    if unknown:
        raise AllowlistError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; an entry has kernels, line, why")
    kernels, line, why = entry.get("kernels"), entry.get("line"), entry.get("why")
    if not isinstance(kernels, list) or not kernels or not all(isinstance(k, str) and k for k in kernels):
        raise AllowlistError(f"{where}: 'kernels' must list the kernel ids it applies to (patterns like "
                             f"\"debian-6.12*\" allowed), e.g. kernels = [\"debian-6.12\"]")
    if not isinstance(line, str) or not line.strip():
        raise AllowlistError(f"{where}: 'line' must be a regular expression matching the allowed line's text")
    if not isinstance(why, str) or len(why.split()) < 3:
        raise AllowlistError(f"{where}: 'why' must say in a sentence why this line is benign on these kernels")
    try:
        pattern = re.compile(line)
    except re.error as err:
        raise AllowlistError(f"{where}: 'line' is not a valid regular expression: {err}") from None
    return Allowed(tuple(kernels), pattern, why.strip())
