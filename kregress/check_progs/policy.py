"""Findings for socket-policy programs: which sockets a policy reaches, per kernel.

Input: guest/check_policy's JSON (each kind of socket made in the policy's cgroup, without the
programs and with them, and how often each program ran meanwhile) and the kernel's facts. A kind
is reached when something on its socket changed or a program ran for it. A policy that sets
something (priority, mark, device) is meant for the cgroup's sockets: each of the cgroup's own
kinds it misses is a finding, explained by where its hooks run (HOOKS), never dropped. A policy
that only refuses (an errno) chooses its sockets: what it reaches is shown, not judged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

KIND_WORDS = {
    "tcp4": "active TCP over IPv4", "tcp6": "active TCP over IPv6", "udp4": "UDP", "raw4": "raw IPv4",
    "packet": "AF_PACKET", "unix": "AF_UNIX",
    "accepted_peer_inside": "accepted TCP, peer in the cgroup",
    "accepted_peer_outside": "accepted TCP, peer in another cgroup",
    "foreign_used_here": "made in another cgroup, bound and connected here",
}
OWN_KINDS = tuple(kind for kind in KIND_WORDS if kind != "foreign_used_here")
SETTINGS = ("priority", "mark", "device")
ERRNOS = ("socket", "bind", "connect", "accept")

# kregress.kernels.facts names the reach is explained by
LSM_CGROUP, CURRENT_TASK, SOFTIRQ = "lsm_cgroup", "lsm_cgroup_current_task_shim", "softirq_inline_under_ksoftirqd"
FACTS_USED = (LSM_CGROUP, CURRENT_TASK, SOFTIRQ)

INET = ("tcp4", "tcp6", "udp4", "raw4")
SOCK_CREATE_ONLY_INET = ("cgroup/sock_create runs only from inet_create/inet6_create (read in 5.10.265 and 7.1.3): "
                         "never for AF_PACKET or AF_UNIX")
CLONED = ("an accepted socket is cloned from its listener (here one started before the policy), not created: "
          "creation hooks never run for it, it keeps the listener's settings")
MADE_ELSEWHERE = "made in another cgroup: creation ran that cgroup's programs"
SOCKET_CGROUP = "the hook runs the programs of the socket's cgroup, and this socket was made in another one"
NOT_ITS_EVENT = "nothing here does what this hook watches"


@dataclass(frozen=True)
class Hook:
    """Where one attach point runs: the kinds it reaches, the facts that decide it, and why it
    misses the others (kinds absent from `misses` fall back to NOT_ITS_EVENT)."""
    reaches: tuple[str, ...]
    misses: dict[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()                 # facts the hook runs only with (lsm_cgroup)


def _lsm(reaches, **misses) -> Hook:
    return Hook(tuple(reaches), dict(misses), needs=(LSM_CGROUP,))


HOOKS = {
    "cgroup/sock_create": Hook(INET, {"packet": SOCK_CREATE_ONLY_INET, "unix": SOCK_CREATE_ONLY_INET,
                                      "accepted_peer_inside": CLONED, "accepted_peer_outside": CLONED,
                                      "foreign_used_here": MADE_ELSEWHERE}),
    "cgroup/post_bind4": Hook(("tcp4", "udp4"), {"foreign_used_here": SOCKET_CGROUP,
                                                  "raw4": "a raw socket's bind is its protocol's own: no post_bind"}),
    "cgroup/post_bind6": Hook(("tcp6",), {"foreign_used_here": SOCKET_CGROUP}),
    "cgroup/sock_release": Hook((*INET, "accepted_peer_inside", "accepted_peer_outside"),
                                {"packet": "cgroup/sock_release runs only from inet_release",
                                 "unix": "cgroup/sock_release runs only from inet_release",
                                 "foreign_used_here": "not closed here"}),
    "lsm_cgroup/socket_post_create": _lsm(
        (*INET, "packet", "unix"),
        accepted_peer_inside="accept() makes its socket without socket_post_create",
        accepted_peer_outside="accept() makes its socket without socket_post_create",
        foreign_used_here=MADE_ELSEWHERE),
    "lsm_cgroup/inet_csk_clone": _lsm(
        ("accepted_peer_inside",),
        accepted_peer_outside="the handshake completed in the connecting task, of another cgroup, and lsm_cgroup "
                              "hooks run the current task's cgroup's programs, not the listener's "
                              "(docs/findings/lsm-cgroup-current-task)"),
    "lsm_cgroup/socket_bind": _lsm((*INET, "foreign_used_here")),
    # (accepted_peer_inside's window holds its peer's connect, a socket of the cgroup too, but the
    # settings read there are the accepted socket's: not reached by this hook)
    "lsm_cgroup/socket_connect": _lsm(("tcp4", "tcp6", "udp4", "foreign_used_here")),
}
# facts behind a reason, for the findings' "explained by"
REASON_FACTS = {HOOKS["lsm_cgroup/inet_csk_clone"].misses["accepted_peer_outside"]: [CURRENT_TASK]}

ADVICE = {
    "cgroup/sock_create": "cgroup/sock_create sees only sockets that inet_create makes: add lsm_cgroup/socket_post_create "
                          "(every family) and set accepted sockets' state where the listener's cgroup runs",
    "accepted": "for accepted sockets use a sockops program (BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB with "
                "bpf_setsockopt): sockops run the programs of the socket's cgroup, which a child takes from its "
                "listener, whoever completes the handshake; lsm_cgroup/inet_csk_clone runs the current task's",
}


def hook_of(section: str) -> str:
    """"lsm_cgroup/socket_bind" and "cgroup/sock_create" as they are; "cgroup/sock" (libbpf's
    older name) is sock_create."""
    return "cgroup/sock_create" if section in ("cgroup/sock",) else section


def expected_reach(sections: list[str], has) -> dict[str, str | None]:
    """Per kind of the policy's cgroup: None if a hook of these sections reaches it on this
    kernel (has(fact) -> bool), else the reasons none does. A section HOOKS does not know
    reaches what it reaches: it is left out of the expectation ("unknown" kinds)."""
    out: dict[str, str | None] = {}
    hooks = [HOOKS.get(hook_of(s)) for s in sections]
    for kind in KIND_WORDS:
        reasons = []
        for section, hook in zip(sections, hooks):
            if hook is None:
                continue
            if hook.needs and not all(has(f) for f in hook.needs):
                reasons.append(f"{section}: not run on this kernel ({', '.join(hook.needs)})")
            elif kind in hook.reaches:
                reasons = None
                break
            else:
                reasons.append(f"{section}: {hook.misses.get(kind, NOT_ITS_EVENT)}")
        out[kind] = None if reasons is None else "; ".join(reasons) or "unknown"
    return out


@dataclass
class PolicyCheck:
    programs: list[dict]                 # name, section
    kernel_id: str
    reached: dict[str, list[str]]        # kind -> what showed it (changed keys, "ran")
    missed: dict[str, str]               # kind -> why (the hooks' reasons) or "UNEXPLAINED"
    sets: list[str]                      # what the policy sets anywhere (priority, mark, device)
    refuses: list[str]                   # errnos it causes anywhere
    explained_by: dict[str, list[str]]   # kind -> facts
    shown: dict = field(default_factory=dict)     # kind -> {"without": ..., "with": ...}

    @property
    def findings(self) -> dict[str, str]:
        """Missed kinds of the cgroup's own, where the policy sets something: its coverage gap."""
        if not self.sets:
            return {}
        return {kind: why for kind, why in self.missed.items() if kind in OWN_KINDS}

    def as_record(self) -> dict:
        return {**asdict(self), "findings": self.findings}


def changed_keys(without: dict, with_: dict) -> list[str]:
    """What the policy changed on one kind: a refused socket() is all there is to it (nothing
    after it happened); else every later step's errno and every setting read off the socket."""
    if without.get("socket") != with_.get("socket"):
        return ["socket"]
    return [key for key in (*ERRNOS, *SETTINGS) if without.get(key) != with_.get(key)]


def check_policy(doc: dict, kernel_id: str, has) -> PolicyCheck:
    """A policy that sets something reaches a kind where it set it (or refused the socket): a
    program that ran for a kind and set nothing there (a counter beside the stamp, or a program
    that chose not to) does not make the stamp reach it. A policy that only refuses reaches a
    kind where anything changed or a program ran."""
    programs = [{"name": p["name"], "section": p["section"]} for p in doc["programs"] if p["checked"]]
    sections = [p["section"] for p in programs]
    expected = expected_reach(sections, has)
    reached, missed, explained, sets, refuses, shown, seen = {}, {}, {}, [], [], {}, {}
    for kind in KIND_WORDS:
        without, with_ = doc["without"][kind], doc["with"][kind]
        changed = changed_keys(without, with_)
        ran = sorted(name for name, runs in (with_.get("runs") or {}).items() if runs > 0)
        shown[kind] = {"without": {k: v for k, v in without.items() if k != "runs"}, "with": with_}
        sets += [key for key in changed if key in SETTINGS and key not in sets]
        refuses += [with_[key] for key in changed if key in ERRNOS and with_[key] not in (*refuses, "OK")]
        seen[kind] = changed, ran
    for kind, (changed, ran) in seen.items():
        acted = [key for key in changed if key in SETTINGS or key == "socket"] if sets else changed
        if acted or (ran and not sets):
            reached[kind] = changed + [f"ran: {', '.join(ran)}"] * bool(ran)
            continue
        why = expected[kind]
        clone_hook = "lsm_cgroup/inet_csk_clone" in sections
        if ran:
            missed[kind] = f"its programs ran for it ({', '.join(ran)}) and set nothing there"
            explained[kind] = []
        elif why is None and kind == "accepted_peer_inside" and clone_hook and not has(SOFTIRQ):
            missed[kind] = ("the handshake completed in ksoftirqd (root cgroup), as it can before d15121be7485, and "
                            "lsm_cgroup hooks run the current task's cgroup's programs")
            explained[kind] = [CURRENT_TASK, SOFTIRQ]
        elif why is None:
            missed[kind] = "UNEXPLAINED: a hook that reaches it did not run"
            explained[kind] = []
        elif why == "unknown":
            missed[kind] = "no hook this check knows reaches it"
            explained[kind] = []
        else:
            missed[kind] = why
            explained[kind] = sorted({f for reason, facts in REASON_FACTS.items() if reason in why for f in facts})
    return PolicyCheck(programs, kernel_id, reached, missed, sets, refuses, explained, shown)


def render(record: dict, kernel: str) -> list[str]:
    """The policy part of one object's check on one kernel, for people."""
    check = record["policy"]
    names = ", ".join(f"{p['name']} ({p['section']})" for p in check["programs"])
    effect = (f"sets {', '.join(check['sets'])}" if check["sets"] else "sets nothing") + \
        (f", refuses with {', '.join(check['refuses'])}" if check["refuses"] else "")
    reach = ", ".join(KIND_WORDS[k] for k in check["reached"]) or "no kind of socket"
    lines = [f"policy {names} on {kernel}: {effect}; reaches {reach}"]
    for kind, shows in check["reached"].items():
        w = check["shown"][kind]
        lines.append(f"    reaches {kind}: {', '.join(shows)} "
                     f"({_state(w['without'])} -> {_state(w['with'])})")
    findings = check["findings"]
    for kind, why in check["missed"].items():
        mark = "  - MISSES" if kind in findings else "    not reached:"
        facts = ", ".join(check["explained_by"].get(kind) or [])
        lines.append(f"{mark} {KIND_WORDS[kind]} ({kind}): {why}" + (f" [explained by {facts}]" if facts else ""))
    if findings:
        advice = [ADVICE["cgroup/sock_create"]] if any(hook_of(p["section"]) == "cgroup/sock_create"
                                                      for p in check["programs"]) else []
        if any(k.startswith("accepted") for k in findings):
            advice.append(ADVICE["accepted"])
        lines += [f"    what to change: {text}" for text in advice]
        lines.append(f"    reproduce: {record['reproduce']}")
    return lines


def _state(seen: dict) -> str:
    errnos = " ".join(f"{k} {seen[k]}" for k in ERRNOS if seen.get(k) not in (None, "OK"))
    settings = " ".join(f"{k} {seen[k]!r}" if k == "device" else f"{k} {seen[k]}" for k in SETTINGS if k in seen)
    return " ".join(part for part in (errnos, settings) if part) or "no socket"
