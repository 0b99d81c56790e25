"""The cgroup sockopt contract, rule by rule, on every kernel: what
Documentation/bpf/prog_cgroup_sockopt.rst (its pre-2023 text) promises user space and BPF
authors, against what each kernel does. Expectations come from kregress/kernels/facts.py; where a
fact changed a rule, the test records the document's word beside it and the report names
the rule as stale, with the fact. One driver case per rule: guest/sockopt_contract.c."""
import pytest

from kregress.expectation.expect import DocumentRule

pytestmark = pytest.mark.scenario(facts=["getsockopt_retval_in_run_ctx", "setsockopt_buffer_16",
                                         "getsockopt_relief", "getsockopt_race_fix", "cgroup_preorder",
                                         "cgroup_mprog"])

DRIVER = "sockopt_contract"
DOC = "Documentation/bpf/prog_cgroup_sockopt.rst"
RETURN_0 = DocumentRule(DOC, "a program returning 0 rejects the syscall: EPERM is returned to userspace")
MINUS_ONE = DocumentRule(DOC, "setsockopt optlen = -1: the kernel's setsockopt is not run, the rest of the "
                              "chain still is")
RAISE = DocumentRule(DOC, "optlen can not be increased beyond the user-supplied value: any other value "
                          "triggers EFAULT (setsockopt; getsockopt likewise)")
RETVAL = DocumentRule(DOC, "getsockopt: the only acceptable retval is 0 or the kernel's original value; any "
                           "other value triggers EFAULT")
LARGE = DocumentRule(DOC, "Large optval: optlen 0 -> the user's buffer, optlen < PAGE_SIZE -> the program's "
                          "trimmed buffer, optlen > PAGE_SIZE -> EFAULT")
ORDER = DocumentRule(DOC, "Cgroup inheritance: B (child) runs before A (parent), and A sees B's changes")

TOS_BY_USER, TOS_BY_PROG, TOS_BY_CHILD, ANSWER_BY_PROG, FIRST_GROUP = 0x10, 0x20, 0x30, 0x77, 10000
HOOKS = ["get", "set"]


def test_program_returning_0_gives_eperm(run_driver, expect):
    """Both hooks, an option the kernel knows: EPERM, and the kernel's setsockopt never ran."""
    seen = run_driver(DRIVER, "reject")
    observed = {k: seen[k] for k in ("get_valid_option", "set_valid_option", "tos_after_set", "get_reject_runs")}
    expect(observed, {"get_valid_option": "EPERM", "set_valid_option": "EPERM", "tos_after_set": 0,
                      "get_reject_runs": 2},
           document=RETURN_0, documented={"get_valid_option": "EPERM", "set_valid_option": "EPERM"})


def test_kernel_error_wins_over_eperm(run_driver, kernel_facts, expect):
    """getsockopt of an option nobody handles, through a program returning 0: since c4dcfdd406aa
    the kernel's ENOPROTOOPT is kept; before it, EPERM."""
    seen = run_driver(DRIVER, "reject")
    wins = kernel_facts.has("getsockopt_retval_in_run_ctx")
    # the program-less answer is itself expected (pinned), not taken from the kernel
    expect({"kernel_error_alone": seen["kernel_error_alone"], "get_kernel_error": seen["get_kernel_error"]},
           {"kernel_error_alone": "ENOPROTOOPT", "get_kernel_error": "ENOPROTOOPT" if wins else "EPERM"},
           facts=["getsockopt_retval_in_run_ctx"], document=RETURN_0, documented={"get_kernel_error": "EPERM"})


def test_setsockopt_optlen_minus_one_skips_kernel(run_driver, expect):
    """A child's program sets optlen -1: IP_TOS stays 0, and the parent's program still runs
    after it and sees the -1."""
    seen = run_driver(DRIVER, "optlen_minus_one")
    observed = {k: seen[k] for k in ("set", "tos_after", "order", "parent_saw_optlen")}
    expected = {"set": "OK", "tos_after": 0, "order": "set_skip_kernel,set_a", "parent_saw_optlen": -1}
    expect(observed, expected, document=MINUS_ONE, documented=expected)


def test_optlen_raised_above_callers(run_driver, kernel_facts, expect):
    """A program raising optlen: within the 16 bytes 9babe825da76 allocates for setsockopt it is
    accepted; past them, and on getsockopt, EFAULT."""
    seen = run_driver(DRIVER, "optlen_raise")
    observed = {k: v for k, v in seen.items() if k != "case"}
    within = "OK" if kernel_facts.has("setsockopt_buffer_16") else "EFAULT"
    expect(observed, {"set_4_raised_to_8": within, "set_4_raised_to_17": "EFAULT", "set_16_raised_to_17": "EFAULT",
                      "get_4_raised_to_5": "EFAULT"},
           facts=["setsockopt_buffer_16"], document=RAISE, documented={k: "EFAULT" for k in observed})


def test_getsockopt_retval_rule(run_driver, kernel_facts, expect):
    """ctx->retval = -EINVAL over a kernel success: EFAULT while the documented rule held, the
    program's EINVAL since c4dcfdd406aa. Setting 0 over a kernel error is allowed everywhere."""
    seen = run_driver(DRIVER, "retval")
    observed = {k: v for k, v in seen.items() if k != "case"}
    rule_gone = kernel_facts.has("getsockopt_retval_in_run_ctx")
    expect(observed, {"retval_set_to_einval": "EINVAL" if rule_gone else "EFAULT", "retval_set_to_0": "OK",
                      "kernel_error_replaced": "OK", "replaced_value": ANSWER_BY_PROG, "replaced_optlen": 4},
           facts=["getsockopt_retval_in_run_ctx"], document=RETVAL,
           documented={"retval_set_to_einval": "EFAULT", "retval_set_to_0": "OK", "kernel_error_replaced": "OK"})


def test_large_optval(run_driver, kernel_facts, expect):
    """optval of 2 * PAGE_SIZE (the guest's page size), both hooks; the programs scribble the
    first int of their buffer and set optlen to 0, 8, or leave it. getsockopt answers
    SO_PEERGROUPS with more than PAGE_SIZE bytes."""
    seen = run_driver(DRIVER, "large")
    page, answer = seen["page_size"], seen["kernel_answer_bytes"]
    # relations, not byte counts: the same behaviour reads the same whatever the page size
    size_of = {answer: "answer", 8: 8, -1: -1}
    observed = {f"{hook}_{mode}_{key}": size_of.get(value, value) if key == "optlen" else value
                for hook in HOOKS for mode in ("optlen_zero", "optlen_trimmed", "optlen_untouched")
                for key, value in seen[f"{hook}_{mode}"].items()}
    relief = kernel_facts.has("getsockopt_relief")
    observed["buffers_past_page_size"] = seen["user_optlen"] == 2 * page and answer > page
    expected = {
        "buffers_past_page_size": True,
        "set_optlen_zero_errno": "OK", "set_optlen_zero_tos": TOS_BY_USER,            # the user's buffer
        "set_optlen_trimmed_errno": "OK", "set_optlen_trimmed_tos": TOS_BY_PROG,      # the program's
        "get_optlen_zero_errno": "OK", "get_optlen_zero_optlen": "answer", "get_optlen_zero_first_group": FIRST_GROUP,
        "get_optlen_trimmed_errno": "OK", "get_optlen_trimmed_optlen": 8,
        "get_optlen_trimmed_first_group": TOS_BY_PROG,
    }
    if relief:      # the program's buffer is ignored: the kernel's own answer, the user's TOS
        expected.update({"set_optlen_untouched_errno": "OK", "set_optlen_untouched_tos": TOS_BY_USER,
                         "get_optlen_untouched_errno": "OK", "get_optlen_untouched_optlen": "answer",
                         "get_optlen_untouched_first_group": FIRST_GROUP})
    else:
        expected.update({"set_optlen_untouched_errno": "EFAULT", "set_optlen_untouched_tos": 0,
                         "get_optlen_untouched_errno": "EFAULT"})
    documented = {k: v for k, v in expected.items() if "untouched" not in k and k != "buffers_past_page_size"}
    documented.update({"set_optlen_untouched_errno": "EFAULT", "get_optlen_untouched_errno": "EFAULT"})
    expect(observed, expected, facts=["getsockopt_relief"], document=LARGE, documented=documented,
           page_size=page, kernel_answer_bytes=answer)


@pytest.mark.parametrize("hook", HOOKS)
def test_inheritance_child_then_parent(run_driver, expect, hook):
    """A on the parent, B (rewrites the value to 0x30) on the child, both BPF_F_ALLOW_MULTI:
    B runs first, A sees B's value, the caller gets it."""
    seen = run_driver(DRIVER, "inheritance", hook)
    result = "value_returned" if hook == "get" else "tos_after"
    observed = {k: seen[k] for k in ("errno", "order", "value_seen_by_a", result)}
    expected = {"errno": "OK", "order": f"{hook}_b,{hook}_a", "value_seen_by_a": TOS_BY_CHILD, result: TOS_BY_CHILD}
    expect(observed, expected, document=ORDER, documented=expected)


ORDERING = {"preorder": ("cgroup_preorder", "BPF_F_PREORDER on the parent"),
            "mprog": ("cgroup_mprog", "BPF_F_BEFORE in the child's own list (cgroup mprog API)")}


@pytest.mark.parametrize("how", ["preorder", "mprog"])
@pytest.mark.parametrize("hook", HOOKS)
def test_attach_flags_put_a_first(run_driver, kernel_facts, precondition, expect, hook, how):
    """A attached with BPF_F_PREORDER on the parent, or with BPF_F_BEFORE B in the child's own
    list (the mprog API), runs before B and sees the caller's value; B still has the last
    word. The facts say which kernels take the flag: a refusal is a named skip only where
    they say the kernel lacks it, otherwise a failure (so is an accepted flag they say it lacks)."""
    fact, flag = ORDERING[how]
    seen = run_driver(DRIVER, how, hook)
    precondition(f"{flag} accepted", seen["supported"], facts=[fact],
                 reason=f"the kernel answered the attach with {seen['attach_errno']}")
    result = "value_returned" if hook == "get" else "tos_after"
    observed = {k: seen[k] for k in ("errno", "order", "value_seen_by_a", result)}
    expect(observed, {"errno": "OK", "order": f"{hook}_a,{hook}_b", "value_seen_by_a": TOS_BY_USER,
                      result: TOS_BY_CHILD}, facts=[fact])


RACE_CYCLES = 300
# Where the rule "with the fix not one EFAULT, without it at least one in RACE_CYCLES" was
# calibrated: (accelerator, vCPUs). Without the fix, EFAULTs per 300 cycles: 1 vCPU TCG 10-76 on
# 5.10, 6.1 and 5.10-arm64 over 7-8 runs each; 2 vCPUs TCG 89-463 on 5.10.223 and 83-372 on
# 6.1.176 over 4 runs each (2026-12-01; 40-110 s a run). With it (6.12.117, 2 vCPUs) 0 in the one
# run that finished. Elsewhere (KVM, more vCPUs) the rate is recorded without a verdict. Under
# 2-vCPU TCG, 2 of 3 6.12.117 guests died in this case ("Oops: int3" at do_sock_getsockopt+0x1b3,
# a live-patched static branch): see known-differences.toml.
RACE_CALIBRATED = {("tcg", 1), ("tcg", 2)}


def test_first_attach_during_getsockopt(run_driver, kernel_session, kernel_facts, precondition, expect):
    """The do_sock_getsockopt race (33f339a1ba54): a thread calls getsockopt(IP_TOS) while the
    first getsockopt program is attached and detached RACE_CYCLES times."""
    seen = run_driver(DRIVER, "race", RACE_CYCLES, timeout=180)
    config = (kernel_session.accel.accel, kernel_session.vm.cpus)
    fixed = kernel_facts.has("getsockopt_race_fix")
    race = {"cycles": seen["cycles"], "calls": seen["calls"], "efaults": seen["efaults"],
            "other_errors": seen["other_errors"], "accel": config[0], "vcpus": config[1]}
    observed = {"calls_as_planned": seen["other_errors"] == 0 and seen["calls"] > RACE_CYCLES,
                "spurious_efault": seen["efaults"] > 0}
    if config not in RACE_CALIBRATED:
        precondition(f"race rule calibrated for {config[0]} with {config[1]} vCPU(s)", False, calibrated=False,
                     reason=f"{seen['efaults']} EFAULTs in {seen['calls']} calls over {seen['cycles']} cycles, "
                            f"recorded without a verdict (calibrated: {sorted(RACE_CALIBRATED)})",
                     facts=["getsockopt_race_fix"], observed={**observed, **race})
    expect(observed, {"calls_as_planned": True, "spurious_efault": not fixed}, facts=["getsockopt_race_fix"],
           race=race, note=f"{seen['efaults']} EFAULTs in {seen['calls']} getsockopt calls over {seen['cycles']} "
                           f"attach cycles ({config[0]}, {config[1]} vCPUs)")
