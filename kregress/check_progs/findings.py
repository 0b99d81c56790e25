"""Findings of `kregress check-progs`: what a program changes in the kernel's answers.

Input: guest/check_progs's JSON (each battery call without the program, with it, and
without again) and the kernel's facts. A call the program changes is a difference; a
difference on an option the program owns (--owns, or inferred: it changes the answer at
every size and no fact explains it) is its business; every other one is a finding,
explained by a fact where one explains it, else "unexplained", never dropped.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kregress.check_progs.helpers import helper_name, helper_origin
from kregress.paths import data, kregress_command
from kregress.expectation.record import extra

# kregress.kernels.facts names the findings are explained by
RELIEF, RETVAL_FIRST, PAGE_CAP = "getsockopt_relief", "getsockopt_retval_in_run_ctx", "sockopt_page_cap"
FACTS_USED = (RELIEF, RETVAL_FIRST, PAGE_CAP)

ADVICE = {
    "efault_past_page": "for options the program does not own, set ctx->optlen = 0 when ctx->optlen is larger than "
                        "the buffer BPF got (ctx->optval_end - ctx->optval; PAGE_SIZE for large callers): the kernel's "
                        "own answer then reaches the caller",
    "efault_longer_than_buffer": "set ctx->optlen = 0 whenever ctx->optlen > ctx->optval_end - ctx->optval, not only "
                                 "above 4096: the kernel may report the length it needs, larger than a small buffer",
    "copyout_after_error": "set ctx->optlen = 0 for every option the program does not own (not only above PAGE_SIZE): "
                           "before v5.18 the kernel copies the program's buffer and optlen back after its own error",
    "error_length_lost": "set ctx->optlen = 0 for every option the program does not own: before v5.18 the program's "
                         "optlen is copied back after the kernel's error, over the length the kernel told the caller "
                         "it needs (SO_PEERGROUPS' ERANGE)",
    "truncated": "do not clamp ctx->optlen; set it to 0 instead, so the caller gets the kernel's whole answer",
    "set_efault_past_page": "in the setsockopt program, set ctx->optlen = 0 when ctx->optlen > PAGE_SIZE (the "
                            "kernel then uses the caller's own buffer)",
    "unexplained": "no fact explains this difference; if the program means to answer this option itself, say so "
                   "with --owns LEVEL:OPTNAME",
}
# Most harmful first: the caller loses the answer (EFAULT), then part of it or the length it needs,
# then what no fact explains; last, the same errno with the buffer or optlen rewritten behind it.
HARM_ORDER = ("efault_past_page", "set_efault_past_page", "efault_longer_than_buffer", "truncated",
              "error_length_lost", "unexplained", "copyout_after_error")
KIND_WORDS = {
    "efault_past_page": "EFAULT instead of the kernel's answer, optlen > PAGE_SIZE",
    "set_efault_past_page": "setsockopt EFAULT, optlen > PAGE_SIZE",
    "efault_longer_than_buffer": "EFAULT where the kernel reported a length past the buffer",
    "truncated": "the kernel's answer cut short",
    "error_length_lost": "the length the kernel said the caller needs, overwritten",
    "unexplained": "changed, no fact explains it",
    "copyout_after_error": "the same errno, buffer or optlen rewritten behind it",
}


@dataclass
class Difference:
    call: dict                  # the battery call: socket, op, level/optname (names), size, optlen_in
    kernel: list                # [errno, optlen, digest] without the program
    caller: list                # the same with it
    kind: str
    explained_by: list[str]     # fact names; empty: unexplained
    why: str
    volatile: bool = False      # the value differs between runs without the program: only errno and optlen compared

    @property
    def group(self) -> tuple:
        c = self.call
        return c["socket"], c["op"], c["level_name"], c["optname_name"]


@dataclass
class ProgramCheck:
    program: str
    section: str
    kernel_id: str
    differences: list[Difference] = field(default_factory=list)
    owned: dict[str, str] = field(default_factory=dict)     # "SOL_IP:SO_ORIGINAL_DST on tcp" -> "declared"/"inferred"
    unstable: list[dict] = field(default_factory=list)      # errno/optlen moved between runs without the program

    @property
    def findings(self) -> list[Difference]:
        return [d for d in self.differences if owner_key(d.call) not in self.owned]

    def as_record(self) -> dict:
        return {"program": self.program, "section": self.section, "owned": self.owned,
                "findings": [asdict(d) for d in self.findings],
                "owned_differences": [asdict(d) for d in self.differences if owner_key(d.call) in self.owned],
                "unstable": self.unstable}


def owner_key(call: dict) -> str:
    return f"{call['level_name']}:{call['optname_name']} ({call['op']} on {call['socket']})"


def parse_owns(items: list[str]) -> list[tuple[str, str]]:
    """--owns LEVEL:OPTNAME, names as in the battery (SOL_IP:SO_ORIGINAL_DST) or numbers (0:80)."""
    owns = []
    for item in items:
        level, sep, optname = item.partition(":")
        if not sep or not level or not optname:
            raise ValueError(f"--owns {item!r}: expected LEVEL:OPTNAME, e.g. SOL_IP:SO_ORIGINAL_DST or 0:80")
        owns.append((level.upper() if not level.isdigit() else level, optname.upper() if not optname.isdigit() else optname))
    return owns


def _declared(call: dict, owns: list[tuple[str, str]]) -> bool:
    for level, optname in owns:
        if level in (call["level_name"], str(call["level"])) and optname in (call["optname_name"], str(call["optname"])):
            return True
    return False


def classify(call: dict, kernel: list, caller: list, page: int, has) -> tuple[str, list[str], str]:
    """What kind of difference, which facts explain it (has(name) -> bool), and why, in words."""
    k_errno, k_optlen, _ = kernel
    c_errno, c_optlen, _ = caller
    n = call["optlen_in"]
    said = f"the kernel said {k_errno} (optlen {k_optlen}), the caller got {c_errno} (optlen {c_optlen})"
    if call["op"] == "set":
        if c_errno == "EFAULT" and k_errno != "EFAULT" and n > page and not has(RELIEF):
            return "set_efault_past_page", [RELIEF], f"{said}: setsockopt with optlen {n} > PAGE_SIZE ({page}) and " \
                f"the program left ctx->optlen alone; without 29ebbba7d461 that is EFAULT"
        return "unexplained", [], said
    if c_errno == "EFAULT" and k_errno != "EFAULT":
        if n > page and not has(RELIEF) and (k_errno == "OK" or not has(RETVAL_FIRST)):
            what = f"the kernel's {k_optlen}-byte answer" if k_errno == "OK" else f"the kernel's own {k_errno}"
            facts = [RELIEF] if k_errno == "OK" else [RELIEF, RETVAL_FIRST]
            return "efault_past_page", facts, f"{said}: the program left ctx->optlen at {n if k_errno != 'OK' else k_optlen}, " \
                f"past the {page}-byte buffer BPF gets; without 29ebbba7d461{' and c4dcfdd406aa' if k_errno != 'OK' else ''} " \
                f"{what} becomes EFAULT"
        if n <= page and k_errno == "OK" and k_optlen > n:
            return "efault_longer_than_buffer", [RELIEF], f"{said}: the kernel reported the {k_optlen} bytes it has for a " \
                f"{n}-byte buffer and the program left ctx->optlen there; with the caller's optlen <= PAGE_SIZE the hook " \
                f"answers EFAULT on every kernel (29ebbba7d461 relieves only optlen > PAGE_SIZE)"
        return "unexplained", [], said
    if k_errno != "OK" and c_errno == k_errno and not has(RETVAL_FIRST):
        if k_optlen != n and c_optlen != k_optlen:      # the kernel wrote a length (ERANGE: what it needs)
            return "error_length_lost", [RETVAL_FIRST], f"{said}: the kernel told the caller it needs {k_optlen} bytes; " \
                f"without c4dcfdd406aa (v5.18) the hook copies the program's optlen ({c_optlen}) back over it"
        return "copyout_after_error", [RETVAL_FIRST], f"{said}, buffer {'changed' if caller[2] != kernel[2] else 'unchanged'}: " \
            f"without c4dcfdd406aa (v5.18) the hook copies the program's buffer and optlen back after the kernel's error"
    if k_errno == c_errno == "OK" and 0 < c_optlen < k_optlen and has(PAGE_CAP):
        bpf_buffer = min(n, page)
        if c_optlen < bpf_buffer:       # not the kernel's limit: a constant of the program's own
            return "truncated", [PAGE_CAP], f"{said}: the program cut the kernel's {k_optlen}-byte answer to " \
                f"{c_optlen} bytes, a limit of its own: BPF's buffer here held {bpf_buffer} bytes (PAGE_SIZE is " \
                f"{page} on this kernel, d8fe449a9c51), and the caller's answer need not be cut at all"
        return "truncated", [PAGE_CAP], f"{said}: the program cut the kernel's {k_optlen}-byte answer to {c_optlen} bytes " \
            f"(BPF sees at most PAGE_SIZE = {page} bytes, d8fe449a9c51; the caller's answer need not be cut)"
    return "unexplained", [], said


def check_program(doc: dict, run: dict, kernel_id: str, has, owns: list[tuple[str, str]] = ()) -> ProgramCheck:
    page = doc["page_size"]
    section = next((p["section"] for p in doc["programs"] if p["name"] == run["program"]), "")
    result = ProgramCheck(run["program"], section, kernel_id)
    for call, before, with_prog, after in zip(doc["calls"], run["without_before"], run["with"], run["without_after"]):
        if before[:2] != after[:2]:
            result.unstable.append({"call": call, "runs_without": [before, after]})
            continue
        volatile = before[2] != after[2]
        seen, kernel = (with_prog[:2], before[:2]) if volatile else (with_prog, before)
        if seen == kernel:
            continue
        kind, facts, why = classify(call, before, with_prog, page, has)
        result.differences.append(Difference(call, before, with_prog, kind, facts, why, volatile))
    groups: dict[str, list] = {}
    for call in doc["calls"]:
        groups.setdefault(owner_key(call), []).append(call)
    changed = {(owner_key(d.call), d.call["size"]): d for d in result.differences}
    for key, calls in groups.items():
        if _declared(calls[0], list(owns)):
            result.owned[key] = "declared"
            continue
        sized = [c for c in calls if c["size"] != "null"]       # a NULL optval leaves a program nothing to answer
        if sized and all((key, c["size"]) in changed and changed[(key, c["size"])].kind == "unexplained" for c in sized):
            result.owned[key] = "inferred"
    return result


def reproducer(kernel_id: str, obj: str | list[str], owns: list[str] = (), maps: str | None = None,
               kernels_file: str | None = None) -> str:
    argv = [kregress_command(), "check-progs"]
    if kernels_file and Path(kernels_file).resolve() != data("kernels.toml").resolve():
        argv += ["--kernels-file", str(kernels_file)]
    argv += ["--kernel", kernel_id]
    for item in owns:
        argv += ["--owns", item]
    if maps:
        argv += ["--maps", maps]
    return shlex.join(argv + [_from_here(o) for o in ([obj] if isinstance(obj, str) else obj)])


def _from_here(path: str) -> str:
    """An object under the working directory, as the user would type it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def status(checks: list[ProgramCheck], not_checked: list = (), policy=None, sockops_findings=()) -> str:
    """findings (the sockopt programs', the policy's or the sockops programs'), else "not checked"
    when a program of the object was not checked, else clean: a program nothing looked at never
    makes its object clean."""
    if any(c.findings for c in checks) or (policy is not None and policy.findings) or sockops_findings:
        return "findings"
    return "not checked" if not_checked else "clean"


NOT_CHECKED_WHY = ("kregress checks cgroup sockopt, socket-policy (cgroup/sock_create, post_bind, sock_release, "
                   "lsm_cgroup) and sockops programs so far: it was not loaded or run")


def unchecked(record: dict) -> list[dict]:
    """The record's programs nothing looked at: {"program", "section", "why"} (older records
    listed bare names)."""
    return [item if isinstance(item, dict) else {"program": item, "section": "", "why": NOT_CHECKED_WHY}
            for item in record.get("not_checked", [])]


# ---------------------------------------------------------------- a refused object, in words

# clang 14 merges `ctx->optlen = N; ctx->retval = 0;` (struct bpf_sockopt offsets 32 and 36), or
# reads of level and optname (24, 28), into one 8-byte access the verifier refuses
MERGED_ACCESS = re.compile(r"invalid bpf_context access off=(24|32) size=8")
UNKNOWN_HELPER = re.compile(r"(?:invalid|unknown) func (?:unknown|bpf_\w+)#(\d+)")
HELPER_NOT_ALLOWED = re.compile(r"program of this type cannot use helper (bpf_\w+)#(\d+)")
REFUSED_PROGRAM = re.compile(r"prog '([^']+)': (?:BPF program load failed|failed to load)")


def refused_program(refused: dict) -> str:
    """The program the kernel refused: the driver's word (attach), else libbpf's log (load)."""
    if refused.get("program"):
        return refused["program"]
    found = REFUSED_PROGRAM.findall(refused.get("libbpf_log", ""))
    return found[-1] if found else ""


def refusal_hints(refused: dict, kernel: str) -> list[str]:
    """What the verifier's words mean for the user: a helper this kernel lacks (by name and
    the release that brought it), or the compiler's merged context store."""
    log, hints = refused.get("libbpf_log", ""), []
    for helper in dict.fromkeys(int(h) for h in UNKNOWN_HELPER.findall(log)):
        hints.append(f"{kernel} does not know {helper_origin(helper)}: load it only on kernels that have it, or "
                     f"do without it there")
    for name, helper in dict.fromkeys(HELPER_NOT_ALLOWED.findall(log)):
        hints.append(f"{kernel} does not let this kind of program call {helper_name(int(helper)) or name}")
    merged = MERGED_ACCESS.search(log)
    if merged:
        fields = "ctx->optlen and ctx->retval" if merged.group(1) == "32" else "ctx->level and ctx->optname"
        hints.append(f"the compiler merged two 4-byte accesses to {fields} into one 8-byte access at offset "
                     f"{merged.group(1)}, which the verifier refuses (clang 14 does this): put a compiler barrier "
                     f"(asm volatile(\"\" ::: \"memory\")) between them, or make one of them a volatile access")
    return hints


def render(record: dict) -> list[str]:
    """One object's check on one kernel (a test's extras["check_progs"]) as text for people."""
    kernel = record["kernel"]
    lines = []
    if record.get("refused"):
        r = record["refused"]
        program = refused_program(r)
        what = f"the {r['stage']} of {program}" if program else f"the object's {r['stage']}"
        lines.append(f"{record['object']} on {kernel}: COULD NOT CHECK: the kernel refused {what}: "
                     f"{r['errno']} ({r['strerror']})")
        lines += [f"    why: {hint}" for hint in refusal_hints(r, kernel)]
        lines += [f"    {line}" for line in r.get("libbpf_log", "").strip().splitlines()[-15:]]
    for check in record.get("programs", []):     # what ran before a refusal keeps its results
        findings, owned = by_harm(check["findings"]), check["owned"]
        head = f"{check['program']} ({check['section']}) on {kernel}"
        if not findings:
            lines.append(f"{head}: no finding")
        else:
            calls = sorted({owner_key(f['call']) for f in findings})
            lines.append(f"{head}: changes the kernel's answer on {len(findings)} call(s) it does not own "
                         f"({', '.join(calls)})")
            lines.append("    by kind, most harmful first: " + "; ".join(
                f"{count} {kind} ({KIND_WORDS.get(kind, kind)})" for kind, count in kinds_counted(findings)))
        for key, how in owned.items():
            lines.append(f"    owns {key} ({how}: {'--owns' if how == 'declared' else 'it answers at every size'})")
        for f in findings:
            c = f["call"]
            explained = ", ".join(f["explained_by"]) or "UNEXPLAINED"
            lines.append(f"  - {c['op']}sockopt({c['level_name']}, {c['optname_name']}) on {c['socket']}, optlen "
                         f"{c['optlen_in']} ({c['size']}): {f['why']} [{f['kind']}; explained by {explained}]")
        for kind, _ in kinds_counted(findings):
            lines.append(f"    what to change ({kind}): {ADVICE[kind]}")
        answered = sorted({f"{f['call']['level_name']}:{f['call']['optname_name']}" for f in findings
                           if answers_itself(f)})
        if answered:
            lines.append(f"    if the program answers {', '.join(answered)} itself, say so and those calls are its "
                         f"business: " + " ".join(f"--owns {key}" for key in answered))
        if findings:
            lines.append(f"    reproduce: {record['reproduce']}")
    if record.get("policy"):
        from kregress.check_progs.policy import render as render_policy
        lines += render_policy(record, kernel)
    if record.get("sockops"):
        from kregress.check_progs.sockops import render as render_sockops
        lines += render_sockops(record, kernel)
    lines += [f"{item['program']} ({item['section']}) on {kernel}: NOT CHECKED: {item['why']}"
              for item in unchecked(record)]
    return lines


def by_harm(findings: list[dict]) -> list[dict]:
    rank = {kind: i for i, kind in enumerate(HARM_ORDER)}
    return sorted(findings, key=lambda f: rank.get(f["kind"], len(rank)))


def kinds_counted(findings: list[dict]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for f in by_harm(findings):
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    return list(counts.items())


def answers_itself(finding: dict) -> bool:
    """The program put an answer of its own where the kernel had none, or other bytes where it had
    one: an option it may mean to own (a numeric optname with no name stays unnamed)."""
    kernel, caller = finding["kernel"], finding["caller"]
    return finding["call"]["op"] == "get" and caller[0] == "OK" and finding["kind"] == "unexplained" and \
        (kernel[0] != "OK" or caller[2] != kernel[2])


def records_of(doc: dict) -> list[tuple[dict, dict | None]]:
    """(test entry, its check_progs record or None) for each check of a user's object in a
    results file; extras first (the contract), then the entry's top level (older files)."""
    return [(test, extra(test, "check_progs")) for test in doc.get("tests", [])
            if users_check(test) and test.get("outcome") != "skipped"]


def users_check(test: dict) -> bool:
    """A results entry of check-progs on a user's object (not one of our fixture tests, which
    judge check-progs itself and pass when it says what the facts predict). Older results name
    the module tests/test_your_programs.py."""
    return "your_programs.py::" in test.get("nodeid", "")


def unchecked_in(doc: dict) -> list[str]:
    """One line per program of a user's object that a results file's check-progs run did not
    check, with its kernel and why (for `verdicts`, which exits non-zero for them)."""
    return [f"not checked: {item['program']} ({item['section']}) of {record['object']} on {record['kernel']}: "
            f"{item['why']}" for _, record in records_of(doc) if record for item in unchecked(record)]


def checked_programs(record: dict | None) -> set[str]:
    record = record or {}
    return {check["program"] for check in record.get("programs", [])} | \
        {p["name"] for p in (record.get("policy") or {}).get("programs", [])} | \
        set((record.get("sockops") or {}).get("programs", []))


def exit_code(record: dict | None) -> int:
    """One object's check on one kernel as check-progs' exit status: 0 no finding, 1 findings,
    2 could not check or a program not checked (a gate must not pass what nothing looked at)."""
    if record is None or record["status"] == "could not check" or unchecked(record):
        return 2
    return 1 if record["status"] == "findings" else 0


def summarise(doc: dict) -> tuple[list[str], int]:
    """Text for people and the exit status: the worst of every check's exit_code()."""
    lines, codes = [], []
    for test, record in records_of(doc):
        if record is None:      # it ended before the check: boot, build, or the driver itself
            reason = (test.get("longrepr") or test.get("harness_error") or "no record").strip().splitlines()
            errors = [line[1:].strip() for line in reason if line.startswith("E ")]   # pytest's error lines
            lines.append(f"{test['nodeid']}: COULD NOT CHECK: {' / '.join((errors or reason)[-6:])}")
        else:
            lines += render(record)
        codes.append(exit_code(record))
    if not lines:
        return ["check-progs: no program was checked (no kernel selected?)"], 2
    return lines, max(codes)
