"""Findings for sockops programs: which co-attached program silences which.

Input: guest/check_sockops's JSON (scenarios: our reference header-option program alone, each
user program alone, before and after the reference, and all of them together; per scenario the
options on every data segment seen on the wire, the reference's own counts, the read-only
probe's callback flags per op, and each program's runs). The sockops callback flags are one
byte per socket (tcp_sock->bpf_sock_ops_cb_flags, fact sockops_hdr_opt, 0813a841566f), shared by
every sockops program of the cgroup, and a passive child takes its listener's (82f45c6c4a70): a
program that clears WRITE_HDR_OPT or PARSE_*_HDR_OPT silences the others. A finding names the
program, the op at which the flags lost the bit, and what the other program lost.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

FACT = "sockops_hdr_opt"
RESTORE, CB_WORD = "sockops_cb_flags_setsockopt", "sk_bpf_cb_flags"     # the later writers of the same words
FACTS_USED = (FACT, RESTORE, CB_WORD)
EINVAL = 22
REFERENCE_OPTION = "254:0xc3c3"         # progs/check_sockops.h REFERENCE_MAGIC
DIRECTIONS = ("to_server", "to_client")

# include/uapi/linux/bpf.h: BPF_SOCK_OPS_*_CB op numbers and callback flag bits
OPS = {1: "TIMEOUT_INIT", 2: "RWND_INIT", 6: "NEEDS_ECN", 3: "TCP_CONNECT_CB", 4: "ACTIVE_ESTABLISHED_CB", 5: "PASSIVE_ESTABLISHED_CB", 10: "STATE_CB",
       11: "TCP_LISTEN_CB", 13: "PARSE_HDR_OPT_CB", 14: "HDR_OPT_LEN_CB", 15: "WRITE_HDR_OPT_CB"}
# the ops that run once per connection, in their order, per side: the probe keeps the flags of an
# op's last run, which for the per-segment ops (HDR_OPT_LEN, WRITE, PARSE) is whichever segment came last
OP_ORDER = {"active": (3, 4), "passive": (11, 5)}
FLAGS = {0x01: "RTO", 0x02: "RETRANS", 0x04: "STATE", 0x08: "RTT", 0x10: "PARSE_ALL_HDR_OPT",
         0x20: "PARSE_UNKNOWN_HDR_OPT", 0x40: "WRITE_HDR_OPT"}
HDR_FLAGS = 0x70
ADVICE = ("never clear a callback flag another program may need: the flags are one byte per socket for every "
          "sockops program of the cgroup. Keep your own 'do I still want header-option callbacks' in "
          "bpf_sk_storage (BPF_F_CLONE so children inherit it) and return early when not, as the talk's "
          "workaround does; set flags with a read-modify-write of skops->bpf_sock_ops_cb_flags")


def flag_names(bits: int) -> str:
    return "|".join(name for bit, name in FLAGS.items() if bits & bit) or "none"


@dataclass
class Silencing:
    program: str                 # the user's program that silences
    victim: str                  # "the reference" or another program of the object
    order: str                   # the scenario it showed in
    lost: dict                   # direction -> [before, now] data segments with the victim's option
    cleared: list                # [{"side", "op", "before", "after", "bits"}] from the probe
    callbacks_lost: dict         # side -> header-option op -> [before, now]: the callbacks the cgroup got
    explained_by: list
    why: str


def options(scenario: dict, direction: str) -> dict:
    return scenario["wire"][direction]["options"]


def data_segments(scenario: dict, direction: str) -> int:
    return scenario["wire"][direction]["data"]


def cleared_flags(quiet: dict, loud: dict) -> list[dict]:
    """Where the probe saw header-option bits in `loud` (the victim alone) that `quiet` (beside
    the silencer) lacks: the first op of each side, in the connection's order."""
    out = []
    for side, order in OP_ORDER.items():
        mine, theirs = quiet.get("probe", {}).get(side, {}), loud.get("probe", {}).get(side, {})
        for op in order:
            if str(op) not in mine or str(op) not in theirs:
                continue
            had, has = int(theirs[str(op)], 16), int(mine[str(op)], 16)
            gone = had & ~has & HDR_FLAGS
            if gone:
                out.append({"side": side, "op": OPS.get(op, str(op)), "before": theirs[str(op)],
                            "after": mine[str(op)], "bits": flag_names(gone)})
                break
    return out


def _callbacks_lost(loud: dict, quiet: dict) -> dict:
    out = {}
    for side in ("passive", "active"):
        for op in (14, 15, 13):
            before = loud.get("callbacks", {}).get(side, {}).get(str(op), 0)
            now = quiet.get("callbacks", {}).get(side, {}).get(str(op), 0)
            if now < before:
                out.setdefault(side, {})[OPS[op]] = [before, now]
    return out


def _lost(alone: dict, together: dict, option: str) -> dict:
    return {d: [options(alone, d).get(option, 0), options(together, d).get(option, 0)] for d in DIRECTIONS
            if options(together, d).get(option, 0) < options(alone, d).get(option, 0)}


def check_sockops(doc: dict, has) -> dict:
    """The record's "sockops" part: the scenarios compact, the probe's neutrality, and the
    silencings found (a finding each)."""
    scenarios = {s["name"]: s for s in doc["scenarios"]}
    reference, with_probe = scenarios["reference"], scenarios["reference+probe"]
    programs = [p.get("label", p["name"]) for p in doc["programs"] if p["checked"]]
    neutral = all(options(reference, d).get(REFERENCE_OPTION, 0) == options(with_probe, d).get(REFERENCE_OPTION, 0)
                  for d in DIRECTIONS)
    found: list[Silencing] = []
    why = (f"the callback flags are one byte per socket (tcp_sock->bpf_sock_ops_cb_flags, {FACT}: 0813a841566f) "
           f"shared by every sockops program of the cgroup; a passive child takes its listener's (82f45c6c4a70)")
    facts = [FACT] if has(FACT) else []
    for program in programs:
        for name in (f"user:{program}+reference", f"user:reference+{program}"):
            lost = _lost(with_probe, scenarios[name], REFERENCE_OPTION)
            for side in ("passive", "active"):      # the reference's PARSE callbacks that found its option
                before = with_probe["reference"][side]["seen_data"]
                now = scenarios[name]["reference"][side]["seen_data"]
                if now < before:
                    lost[f"parsed_on_{side}_side"] = [before, now]
            if lost:
                found.append(Silencing(program, "the reference (another team's header-option program)", name,
                                       lost, cleared_flags(scenarios[name], with_probe),
                                       _callbacks_lost(with_probe, scenarios[name]), facts, why))
                break
    together = scenarios.get("user:all")
    if together:                 # the programs beside each other
        silencers = sorted({s.program for s in found})
        for program in programs:
            alone = scenarios[f"user:{program}"]
            for option in sorted({o for d in DIRECTIONS for o in options(alone, d)} - {REFERENCE_OPTION}):
                lost = _lost(alone, together, option)
                if not lost:
                    continue
                culprits = [p for p in silencers if p != program]
                # a loss no program's silencing of the reference accounts for is shown, unexplained
                found.append(Silencing(", ".join(culprits) or "(none of the programs alone)",
                                       f"{program} (its option {option})", "user:all", lost,
                                       cleared_flags(together, alone), _callbacks_lost(alone, together),
                                       facts if culprits else [],
                                       why if culprits else "its option went missing beside the others, though no "
                                       "program alone silenced the reference: look at how they interact"))
    return {"programs": programs, "probe_neutral": neutral,
            "later_writers": later_writers(scenarios, with_probe, found, has),
            "reference_alone": {d: options(reference, d).get(REFERENCE_OPTION, 0) for d in DIRECTIONS},
            "data_segments": {d: data_segments(reference, d) for d in DIRECTIONS},
            "findings": [asdict(s) for s in found],
            "runs": {name: s.get("runs", {}) for name, s in scenarios.items()},
            # the callbacks the cgroup's programs got per op and side (every program of the cgroup
            # runs for each), where the probe ran
            "callbacks": {name: {side: {OPS.get(int(op), op): n for op, n in counts.items()}
                                 for side, counts in s["callbacks"].items()}
                          for name, s in scenarios.items() if "callbacks" in s}}


def _answer(ret: int) -> str:
    return "OK" if ret == 0 else "not called" if ret == 1 else f"-{-ret}" if ret != -EINVAL else "EINVAL"


def later_writers(scenarios: dict, loud: dict, found: list[Silencing], has) -> dict:
    """The later writers of the callback words, as the kernel answered our probes: whether
    TCP_BPF_SOCK_OPS_CB_FLAGS set back what a user's program cleared (and the reference wrote
    again), and whether a second program's SK_BPF_CB_FLAGS replaced the first's."""
    restores = {}
    for f in found:
        name = f"user:reference+{f.program}+restorer"
        if f.victim.startswith("the reference") and name in scenarios:
            w = scenarios[name]["writers"]
            restores[f.program] = {"setsockopt": {side: _answer(w[f"restore_{side}"]) for side in ("passive", "active")},
                                   "silence_ended": not _lost(loud, scenarios[name], REFERENCE_OPTION)}
    word = scenarios["sk_bpf_cb_flags"]["writers"] if "sk_bpf_cb_flags" in scenarios else {}
    return {RESTORE: {"expected": has(RESTORE), "restores": restores},
            CB_WORD: {"expected": has(CB_WORD), "first_set": _answer(word.get("word_a", 1)),
                      "second_set": _answer(word.get("word_b", 1)), "read_back": _answer(word.get("word_get", 1)),
                      "word_after": word.get("word_after")}}


def render(record: dict, kernel: str) -> list[str]:
    check = record["sockops"]
    ref = check["reference_alone"]
    lines = [f"sockops {', '.join(check['programs'])} on {kernel}: the reference alone wrote its option on "
             f"{ref['to_server']} + {ref['to_client']} data segments; the probe "
             + ("changed nothing" if check["probe_neutral"] else "CHANGED what the reference wrote: judge with care")]
    if not check["findings"]:
        lines.append("    no program silenced another")
    writers = check.get("later_writers") or {}
    for program, r in (writers.get(RESTORE) or {}).get("restores", {}).items():
        lines.append(f"    after {program}, bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS) from another program answered "
                     f"{r['setsockopt']['passive']} (passive side), {r['setsockopt']['active']} (active side): the "
                     f"silence {'ended' if r['silence_ended'] else 'went on'}")
    word = writers.get(CB_WORD)
    if word:
        lines.append(f"    SK_BPF_CB_FLAGS (timestamping word): first program's set {word['first_set']}, second's "
                     f"{word['second_set']}, read back {word['read_back']}"
                     + (f" = {word['word_after']}" if word["read_back"] == "OK" else "")
                     + (": one word per socket, the second write replaced the first" if word["first_set"] == "OK"
                        and word["read_back"] == "OK" and word["word_after"] == 0 else ""))
    for f in check["findings"]:
        lost = "; ".join(f"{d}: {a} -> {b} data segments with it" if d in DIRECTIONS else
                         f"its PARSE callbacks found it on {a} -> {b} data segments ({d.split('_')[2]} side)"
                         for d, (a, b) in f["lost"].items())
        where = "; ".join(f"{c['side']} side after {c['op']}: flags {c['before']} -> {c['after']} ({c['bits']} "
                          f"cleared)" for c in f["cleared"]) or \
            "the flags after LISTEN, CONNECT and ESTABLISHED were as without it: cleared later"
        calls = "; ".join(f"{side} side {op} {a} -> {b}" for side, ops in f.get("callbacks_lost", {}).items()
                          for op, (a, b) in ops.items())
        lines.append(f"  - {f['program']} silences {f['victim']} ({f['order']}): {lost}; {where}"
                     + (f"; header-option callbacks: {calls}" if calls else "")
                     + f" [explained by {', '.join(f['explained_by']) or 'UNEXPLAINED'}]")
    if check["findings"]:
        lines.append(f"    why: {check['findings'][0]['why']}")
        lines.append(f"    what to change: {ADVICE}")
        lines.append(f"    reproduce: {record['reproduce']}")
    return lines
