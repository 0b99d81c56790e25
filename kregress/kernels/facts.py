"""Upstream facts, written once: which commit brought a behaviour, which releases carry it.

Expectations for a kernel are derived from these and what the kernel's witnesses say
(kregress.kernels.evidence: its binary, its package changelog, its upstream version), never
copied from what some kernel did. A kernels.toml entry can state a fact outright
(facts = { getsockopt_relief = true }), which outranks every witness.

Having the commit is not always enough: a fact can declare what else the feature needs
(config options, on every architecture or on one), and a kernel that has the commit but
not those is "unusable here", with the reason, as its config (a witness too) says.
What one kernel has of them is decided once, in kregress.kernels.decision.

A build can bring a fact its version lacks: a patch set applied when an option is set (the
PREEMPT_RT patch set, CONFIG_PREEMPT_RT=y, carries commits of later releases). Fact.brought_by
lists them, and the config witness answers "present" for a kernel built with one (never
"absent": a build without the option says nothing). Verified in the distribution's source.

Each fact says what it is (KINDS), and a fact whose presence brings a known defect says which
(defect, with the other facts it needs): the upgrade gate tells "explained" from "harmless" by it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


# fix: repairs a defect; feature: adds an interface; behaviour change: changes what an existing
# interface does; known defect: the commit's presence is itself the defect
KINDS = ("fix", "feature", "behaviour change", "known defect")


@dataclass(frozen=True)
class BuildPatch:
    """A patch set a kernel's build applies when a config option is set, carrying a fact."""
    option: str                                     # e.g. CONFIG_PREEMPT_RT: set (y) when applied
    branches: tuple[tuple[int, int], ...]           # the upstream branches whose patch set carries it
    where: str                                      # where that was read (package, file)

    def applies(self, config: dict[str, str] | None, version: tuple[int, int, int] | None) -> bool:
        return bool(config) and config.get(self.option) == "y" and version is not None \
            and version[:2] in self.branches

    def text(self) -> str:
        return f"{self.option}=y brings it ({self.where})"


@dataclass(frozen=True)
class Fact:
    name: str
    commit: str
    title: str
    mainline: tuple[int, int]                       # first release with it
    kind: str                                       # one of KINDS
    stable: dict[tuple[int, int], int] = field(default_factory=dict)  # branch -> first patch level
    note: str = ""
    # bytes only a kernel image with the fact contains (kregress.kernels.evidence): a message the
    # commit added, or a name it added to the kernel's BTF
    signature: bytes = b""
    # the signature is a name in the BTF: a kernel without BTF says nothing either way
    signature_in_btf: bool = False
    # what the feature needs beyond its commit: options on every arch, and per arch
    needs_config: tuple[str, ...] = ()
    needs_config_on: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the known defect a kernel with this fact carries (words; "" none), and the other facts the
    # kernel must have for it to show
    defect: str = ""
    defect_with: tuple[str, ...] = ()
    # patch sets a build applies that carry the fact although its version lacks it
    brought_by: tuple[BuildPatch, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"fact {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "known defect" and not self.defect:
            raise ValueError(f"fact {self.name}: a known defect says what the defect is (defect=...)")

    def carries_defect(self, has) -> bool:
        """Whether a kernel (has(name) -> bool) carries this fact's known defect."""
        try:
            return bool(self.defect) and has(self.name) and all(has(other) for other in self.defect_with)
        except LookupError:         # a kernel whose facts cannot be decided carries nothing known
            return False

    def brought(self, config: dict[str, str] | None, version: tuple[int, int, int] | None) -> BuildPatch | None:
        """The patch set this build applies that carries the fact, if any."""
        return next((patch for patch in self.brought_by if patch.applies(config, version)), None)

    def needs(self, arch: str) -> tuple[str, ...]:
        return self.needs_config + self.needs_config_on.get(arch, ())

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


# lsm_cgroup programs: the bpf LSM, cgroup BPF, BTF, and trampolines (the JIT; on arm64 through
# ftrace direct calls)
# the 6.1-rt patch set as Debian applies it to its rt featureset (linux-image-rt-amd64), read in
# linux 6.1.176-1's debian/patches-rt (series and patches; config: featureset-rt CONFIG_PREEMPT_RT=y)
RT_6_1 = "Debian linux 6.1.176-1, debian/patches-rt"

LSM_CGROUP_NEEDS = dict(needs_config=("CONFIG_BPF_LSM", "CONFIG_CGROUP_BPF", "CONFIG_DEBUG_INFO_BTF", "CONFIG_BPF_JIT"),
                        needs_config_on={"arm64": ("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",)})

FACTS: dict[str, Fact] = {fact.name: fact for fact in [
    Fact("getsockopt_relief", "29ebbba7d461", "bpf: Don't EFAULT for {g,s}setsockopt with wrong optlen",
         mainline=(6, 5), kind="fix", stable={(6, 1): 39, (5, 15): 121},
         note="user optlen > PAGE_SIZE: the prog's buffer is ignored instead of EFAULT; "
              "not in 5.10.y",
         signature=b"ignoring program buffer with optlen", needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("sockops_hdr_opt", "0813a841566f", "bpf: tcp: Allow bpf prog to write and parse TCP header option",
         mainline=(5, 10), kind="feature",
         note="WRITE_HDR_OPT/PARSE_*_HDR_OPT callbacks and bpf_{reserve,store,load}_hdr_opt",
         signature=b"BPF_SOCK_OPS_WRITE_HDR_OPT_CB\0", signature_in_btf=True, needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("sockops_cb_flags_setsockopt", "3882dccf48f9", "bpf: Add TCP_BPF_SOCK_OPS_CB_FLAGS to bpf_*sockopt()",
         mainline=(6, 12), kind="feature",
         note="bpf_setsockopt/bpf_getsockopt(SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS = 1008): a second way to write the "
              "same per-socket callback flags byte, so a program can set back a flag another cleared. v6.12 "
              "inferred from merge timing; the enumerator is in the BTF of Debian 6.12.117 and 7.3.4, not of 6.1.176 "
              "or 5.10.223 (read 2026-12-07)",
         signature=b"TCP_BPF_SOCK_OPS_CB_FLAGS\0", signature_in_btf=True, needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("sk_bpf_cb_flags", "24e82b7c045b", "bpf: add networking timestamping support to bpf_get/setsockopt()",
         mainline=(6, 15), kind="feature",
         note="bpf_setsockopt(SOL_SOCKET, SK_BPF_CB_FLAGS = 1009): a second per-socket callback word "
              "(sk_bpf_cb_flags) for the timestamping callbacks (BPF_SOCK_OPS_TSTAMP_*), written whole like the "
              "first. v6.15 cycle inferred; the enumerator is in the BTF of Debian 7.3.4, not of 6.12.117 (read "
              "2026-12-07)",
         signature=b"SK_BPF_CB_FLAGS\0", signature_in_btf=True, needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("lsm_cgroup", "69fd337a975c", "bpf: per-cgroup lsm flavor", mainline=(6, 0), kind="feature",
         note="BPF_LSM_CGROUP attach type. Programs attach through BPF trampolines, which arm64 builds on "
              "ftrace direct calls (Debian bookworm arm64 6.1.176 lacks them and refuses every attach with "
              "ENOTSUPP, -524; trixie's arm64 6.12 has them)",
         signature=b"BPF_LSM_CGROUP\0", signature_in_btf=True, **LSM_CGROUP_NEEDS),
    Fact("lsm_cgroup_current_task_shim", "69fd337a975c", "bpf: per-cgroup lsm flavor", mainline=(6, 0),
         kind="known defect",
         defect="lsm_cgroup hooks whose first argument is a socket run the current task's cgroup's programs, "
                "not the socket's (docs/findings/lsm-cgroup-current-task)",
         note="bpf_lsm_find_cgroup_shim() compares the hook's first argument type (a pointer type's BTF "
              "id) with btf_sock_ids[] (struct ids): never equal, so every lsm_cgroup hook runs the "
              "programs of the current task's cgroup, against the commit's stated intent (socket or sock "
              "first argument: the socket's cgroup). Read in 6.0 ... 7.1.3; no fix known",
         signature=b"BPF_LSM_CGROUP\0", signature_in_btf=True, **LSM_CGROUP_NEEDS),
    Fact("getsockopt_retval_in_run_ctx", "c4dcfdd406aa", "bpf: Move getsockopt retval to struct bpf_cg_run_ctx",
         mainline=(5, 18), kind="behaviour change",
         note="getsockopt bails out on a negative retval before checking optlen, so a kernel error "
              "passes through even with optlen > PAGE_SIZE; a prog returning 0 gives EPERM only when no "
              "error is set yet; a prog may set any retval (the documented 'only 0 or the kernel's "
              "value, else EFAULT' rule is gone). Binary signature: the bpf_get_retval helper of "
              "b44123b4a3dc, same v5.18 series (c4dcfdd406aa adds no string of its own)",
         signature=b"BPF_FUNC_get_retval\0", signature_in_btf=True, needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("setsockopt_buffer_16", "9babe825da76", "bpf: always allocate at least 16 bytes for setsockopt hook",
         mainline=(5, 4), kind="fix",
         note="a setsockopt prog may raise optlen up to 16 bytes past a shorter user buffer (release "
              "inferred from the bpf-next batch it was merged with; older than every kernel here)"),
    Fact("sockopt_page_cap", "d8fe449a9c51", "bpf: Don't return EINVAL from {get,set}sockopt when optlen > PAGE_SIZE",
         mainline=(5, 8), kind="fix", stable={(5, 4): 50},
         note="a sockopt program sees at most PAGE_SIZE bytes of optval (sockopt_alloc_buf caps the buffer); "
              "ctx->optlen = 0 is the documented way to leave the kernel's answer alone"),
    Fact("getsockopt_null_optval", "00e74ae08638", "bpf: Don't EFAULT for getsockopt with optval=NULL",
         mainline=(6, 4), kind="fix", stable={(6, 1): 28, (5, 10): 180},
         note="getsockopt(optval NULL) after a program no longer EFAULTs when the kernel reports a length "
              "(NETLINK_LIST_MEMBERSHIPS after a join); 6.4 inferred from merge timing, 5.15 and 5.4 backports "
              "(May 2023) not pinned to a patch level"),
    Fact("sctp_bypass_getsockopt", "2598619e012c", "sctp: add bpf_bypass_getsockopt proto callback",
         mainline=(6, 5), kind="behaviour change", stable={(6, 1): 39, (5, 10): 188},
         note="getsockopt(SOL_SCTP, SCTP_SOCKOPT_PEELOFF, PEELOFF_FLAGS or CONNECTX3) skips the cgroup getsockopt "
              "hook (sctp_bpf_bypass_getsockopt): those options make a new socket or association, and the hook's "
              "buffer copy broke them. Read in Debian 6.1.176's source; Debian's changelogs list it under "
              "ChangeLog-6.1.39 (6.1.176) and ChangeLog-5.10.188 (5.10.223); 6.3.y stable per the project's notes "
              "(not re-read, patch level not pinned); 5.15.y not checked. No binary signature (sctp is a module, the callback static)",
         needs_config=("CONFIG_CGROUP_BPF", "CONFIG_IP_SCTP")),
    Fact("io_uring_getsockopt", "a5d2f99aff6b", "io_uring/cmd: Introduce SOCKET_URING_OP_GETSOCKOPT",
         mainline=(6, 7), kind="feature",
         note="IORING_OP_URING_CMD with cmd_op SOCKET_URING_OP_GETSOCKOPT on a socket calls do_sock_getsockopt "
              "(the sockptr rework of the same series), so the cgroup getsockopt hook runs as for the syscall, "
              "with optlen a kernel pointer; level SOL_SOCKET only, any other level EOPNOTSUPP before the hook "
              "(io_uring/uring_cmd.c, read in Debian 6.12.118 and 7.3.4); the CQE's res is the optlen on success. "
              "v6.7 inferred from merge timing; the enumerator is in the BTF of Debian 6.12.117 and 7.3.4, not "
              "of 6.1.176 or 5.10.223",
         signature=b"SOCKET_URING_OP_GETSOCKOPT\0", signature_in_btf=True,
         needs_config=("CONFIG_CGROUP_BPF", "CONFIG_IO_URING")),
    Fact("getsockopt_iter_packet", "67fab22a7adc", "net: move .getsockopt away from __user buffers",
         mainline=(7, 1), kind="behaviour change",
         note="AF_PACKET (and CAN raw) answer getsockopt through proto_ops.getsockopt_iter: do_sock_getsockopt "
              "reads optlen first and answers a negative one with EINVAL before the handler and the hook (so a "
              "level the family does not know, with optlen < 0, is EINVAL, not ENOPROTOOPT), and writes optlen "
              "back even when the handler fails (a read-only optlen is EFAULT, returned before the hook, so no "
              "getsockopt program runs). Read in Debian 7.3.4's source (net/socket.c, net/packet/af_packet.c); "
              "net-next 2026-04, v7.1 inferred; the ids and title are the series' as the project's notes give "
              "them (67fab22a7adc, 5bd0dec150f5; which one converts AF_PACKET was not read). Debian 6.12.118 has getsockopt_iter for l2cap only (AF_PACKET "
              "not converted), so the member name in the BTF is no witness of this fact: no binary signature",
         needs_config=("CONFIG_CGROUP_BPF", "CONFIG_PACKET")),
    Fact("getsockopt_race_fix", "33f339a1ba54", "bpf, net: Fix a potential race in do_sock_getsockopt()",
         mainline=(6, 11), kind="fix", stable={(6, 6): 57},
         note="max_optlen is read whether or not a getsockopt prog is attached: a prog attached while a "
              "getsockopt is in flight no longer turns it into EFAULT. 6.6.y: present in 6.6.57, the first "
              "6.6.y with it is not pinned; absent in 6.1.y"),
    Fact("cgroup_preorder", "4b82b181a26c", "bpf: Allow pre-ordering for bpf cgroup progs",
         mainline=(6, 15), kind="feature", stable={(6, 12): 31, (6, 6): 93},
         note="BPF_F_PREORDER: a program attached with it runs before the programs of sub-cgroups. 6.12.y: "
              "in 6.12.31 (Debian's 6.12.117 changelog lists it under ChangeLog-6.12.31); 6.6.93 from the "
              "source reading. No binary signature: the flag is a #define and the commit adds no string or "
              "BTF name, so Debian kernels are witnessed by their changelog",
         needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("cgroup_mprog", "120933984460", "bpf: Implement mprog API on top of existing cgroup progs",
         mainline=(6, 17), kind="feature", stable={(6, 12): 110},
         note="BPF_F_BEFORE/AFTER/ID/LINK and expected_revision for cgroup programs. 6.12.y: in 6.12.110 "
              "(stable id 97f7c22aeb93; Debian's 6.12.117 changelog lists it under ChangeLog-6.12.110, and "
              "Debian 6.12.107 refused BPF_F_BEFORE). No binary signature (#defines only): the changelog "
              "is the witness",
         needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("bpf_link_put_deferred", "ab5d47bd41b1", "bpf: Remove in_atomic() from bpf_link_put().",
         mainline=(6, 5), kind="behaviour change",
         defect="with lsm_cgroup_shim_not_revived, a hook's lsm_cgroup programs can run twice per call after its "
                "last link is destroyed and another attached (the old shim lingers until its work item runs)",
         defect_with=("lsm_cgroup", "lsm_cgroup_shim_not_revived"),
         note="bpf_link_put() always frees a link from a work item; only closing the link's fd frees at once "
              "(bpf_link_put_direct). The lsm_cgroup shim (kernel/bpf/trampoline.c) is released with "
              "bpf_link_put(), so after a hook's last lsm_cgroup link is destroyed its shim stays in the "
              "trampoline until the work runs (it runs an emptied program array meanwhile). Read in 6.12.107 and "
              "7.3.4 (Debian linux-source); 6.1.176 still frees at once outside atomic context (in_atomic()). "
              "v6.5 inferred (patch of 2023-06-14, absent in 6.2, present in 6.5); no 6.1.y backport, but the 6.1-rt "
              "patch set carries it (Debian's patches-rt 0059, cherry-picked from ab5d47bd41b1), so bookworm's "
              "PREEMPT_RT kernel has it; no binary signature (no string, the new function is static)",
         brought_by=(BuildPatch("CONFIG_PREEMPT_RT", ((6, 1),),
                                f"{RT_6_1}/0059-bpf-Remove-in_atomic-from-bpf_link_put.patch"),)),
    Fact("lsm_cgroup_shim_not_revived", "56145d237385", "bpf: Fix a UAF issue in bpf_trampoline_link_cgroup_shim",
         mainline=(7, 0), kind="fix", stable={(6, 19): 7, (6, 12): 77, (6, 1): 167},
         note="an lsm_cgroup attach that finds the hook's shim with no references left (released, its unlink "
              "still pending) no longer revives it (bpf_link_inc_not_zero) but installs a new shim beside it: "
              "with bpf_link_put_deferred both stay in the trampoline until the old one's work runs, and both "
              "run the cgroup's programs for that hook (the same atype slot, by attach_btf_id), so each program "
              "runs twice per call. Stable: 6.19.7 review (2026-03), Debian changelogs list it under 6.12.77 and "
              "6.1.167 (CVE-2026-23319); v7.0 inferred from that timing; 6.6.y not pinned. No binary signature"),
    Fact("cgroup_set_retval", "b44123b4a3dc",
         "bpf: Add cgroup helpers bpf_{get,set}_retval to get/set syscall return value",
         mainline=(5, 18), kind="feature",
         note="bpf_set_retval (helper 187) lets a cgroup program that refuses a call choose the errno (e.g. "
              "EAFNOSUPPORT from cgroup/sock_create); without it a refusal is always EPERM and a program calling "
              "the helper is refused at load (5.10's verifier: \"invalid func unknown#187\"). v5.18: in net-next "
              "on 2022-01-25 (push notice), after the 5.17 merge window",
         signature=b"BPF_FUNC_set_retval\0", signature_in_btf=True, needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("bind_rewrite_privileged_port", "772412176fb9",
         "bpf: Allow rewriting to ports under ip_unprivileged_port_start",
         mainline=(5, 12), kind="feature",
         note="cgroup/bind4 and bind6 programs may return 3 (bit 1: skip the CAP_NET_BIND_SERVICE check, "
              "BPF_RET_BIND_NO_CAP_NET_BIND_SERVICE), so a bind they rewrite to a port under "
              "ip_unprivileged_port_start succeeds for a task without the capability; before it the verifier "
              "allows only 0 and 1 there, and a rewrite returning 1 is EACCES for such a task on every kernel. "
              "v5.12 inferred: in bpf-next on 2021-01-28 (push notice), during 5.11-rc; no stable backport found. "
              "No binary signature (a #define and a verifier range)",
         needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("bind_sockopt_helpers", "427167c0b064", "bpf: Allow bpf_{s,g}etsockopt from cgroup bind{4,6} hooks",
         mainline=(5, 11), kind="feature",
         note="cgroup/bind4 and bind6 programs may call bpf_getsockopt and bpf_setsockopt (e.g. to hold the "
              "socket's IP_TOS against a list at bind); before it the verifier refuses the call (\"unknown func "
              "bpf_getsockopt#57\"). v5.11 inferred: in the bpf-next pull request of 2020-12-03 to net-next, "
              "during 5.10-rc; no stable backport found. No binary signature",
         needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("cgroup_storage_shared", "7d9c3427894f", "bpf: Make cgroup storages shared between programs on the same cgroup",
         mainline=(5, 9), kind="feature",
         note="a BPF_MAP_TYPE_CGROUP_STORAGE map may be used by several programs, and one storage per cgroup and "
              "key is shared by every program attached there: with a __u64 key (the cgroup id) across attach "
              "types, with struct bpf_cgroup_storage_key one per attach type. Before it a map served one program "
              "only (a second program using it is refused at load, EBUSY), the key had to be the struct, and "
              "every attach made a fresh zeroed storage. v5.9: in the bpf-next pull request of 2020-08-04 to "
              "net-next for the 5.9 merge window; Documentation/bpf/map_cgroup_storage.rst says \"Since Linux "
              "5.9\" (read in Debian's linux-source-6.12). No binary signature",
         needs_config=("CONFIG_CGROUP_BPF",)),
    Fact("softirq_inline_under_ksoftirqd", "d15121be7485", "Revert \"softirq: Let ksoftirqd do its job\"",
         mainline=(6, 5), kind="behaviour change",
         note="before it, while ksoftirqd is runnable every softirq raised in a task (loopback TCP's "
              "handshake) waits for ksoftirqd; after it, the raising task runs it on its way out. With "
              "lsm_cgroup's current-task shim, a handshake completed in ksoftirqd runs the root cgroup's "
              "inet_csk_clone programs, not the connecting task's. No 6.1.y backport, but the 6.1-rt patch set "
              "carries it (Debian's patches-rt 0055, from the rt tree); no binary signature",
         brought_by=(BuildPatch("CONFIG_PREEMPT_RT", ((6, 1),),
                                f"{RT_6_1}/0055-revert-softirq-Let-ksoftirqd-do-its-job.patch"),)),
]}


def carried_defects(has) -> list[Fact]:
    """The facts whose known defect a kernel (has(name) -> bool) carries, in the table's order."""
    return [fact for fact in FACTS.values() if fact.carries_defect(has)]


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
