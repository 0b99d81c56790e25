"""getsockopt/setsockopt with optlen > PAGE_SIZE through a cgroup sockopt program that
ignores the option ("Cgroup-bpf production surprises"). Sizes come from the guest's own
page size (the driver's page, page+1, 2page); expectations from kregress.kernels.facts: the relief
fix 29ebbba7d461 and, for the kernel-error path, c4dcfdd406aa."""
import re

import pytest

pytestmark = pytest.mark.scenario(facts=["getsockopt_relief", "getsockopt_retval_in_run_ctx"])

DRIVER = "getsockopt_efault"
RELIEF = "getsockopt_relief"
RETVAL = "getsockopt_retval_in_run_ctx"
KERNEL_ANSWER = "ENOPROTOOPT"    # an option no handler knows, on every kernel: the pinned baseline
DMESG = re.compile(r"bpf (get|set)sockopt: ignoring program buffer with optlen=(-?\d+) \(max_optlen=(\d+)\)")


def observe(run_driver, case, optlen, prog):
    return run_driver(DRIVER, case, optlen, prog)


def relief_note(kernel_facts, observed_fixed: bool) -> str:
    return "behaves " + ("with" if observed_fixed else "without") + " the relief: " + \
        kernel_facts.contradiction(RELIEF, observed_fixed)


def test_unknown_option_big_optlen(run_driver, kernel_facts, expect):
    """A kernel error (ENOPROTOOPT) with optlen 2 * PAGE_SIZE through the ignoring program."""
    baseline = observe(run_driver, "unknown", "2page", "none")
    seen = observe(run_driver, "unknown", "2page", "buggy")
    # Before the fix the optlen check turned the error into EFAULT, unless the kernel
    # already let negative retvals through before that check (c4dcfdd406aa).
    relief, retval_first = kernel_facts.has(RELIEF), kernel_facts.has(RETVAL)
    passes_through = relief or retval_first
    # the program-less answer is pinned too: a kernel whose own answer became EFAULT fails here
    expect({"errno_without_program": baseline["errno"], "errno": seen["errno"]},
           {"errno_without_program": KERNEL_ANSWER, "errno": KERNEL_ANSWER if passes_through else "EFAULT"},
           facts=[RELIEF, RETVAL], optlen=seen["optlen_in"])


def test_unknown_option_optlen_page_size(run_driver, expect):
    """optlen == PAGE_SIZE never trips the check: the kernel's own errno on every kernel."""
    baseline = observe(run_driver, "unknown", "page", "none")
    seen = observe(run_driver, "unknown", "page", "buggy")
    # relations, not byte counts: the same behaviour reads the same whatever the page size
    expect({"errno_without_program": baseline["errno"], "errno": seen["errno"],
            "optlen_out_unchanged": seen["optlen_out"] == baseline["optlen_out"]},
           {"errno_without_program": KERNEL_ANSWER, "errno": KERNEL_ANSWER, "optlen_out_unchanged": True},
           optlen=seen["optlen_in"],
           optlen_out=seen["optlen_out"])


def test_private_option_answered_by_program(run_driver, expect):
    """The program's own option: the value from sk storage with optlen 1, any caller optlen."""
    seen = observe(run_driver, "private", "2page", "buggy")
    expect({"set_errno": seen["set_errno"], "errno": seen["errno"], "optlen": seen["optlen_out"],
            "value": seen["value"]},
           {"set_errno": "OK", "errno": "OK", "optlen": 1, "value": seen["private_value"]})


def test_workaround_resets_optlen(run_driver, expect):
    """The talk's fixed program (optlen = 0 past PAGE_SIZE) gives the kernel's answer everywhere;
    its PAGE_SIZE is the guest's (the driver hands it over before the load: 16384 on 16K pages)."""
    baseline = observe(run_driver, "unknown", "2page", "none")
    seen = observe(run_driver, "unknown", "2page", "fixed")
    # relations, not byte counts: the same behaviour reads the same whatever the page size
    expect({"errno_without_program": baseline["errno"], "errno": seen["errno"],
            "program_threshold_is_page_size": seen["prog_page_size"] == seen["page_size"]},
           {"errno_without_program": KERNEL_ANSWER, "errno": KERNEL_ANSWER, "program_threshold_is_page_size": True},
           page_size=seen["page_size"], program_page_size=seen["prog_page_size"])


def test_setsockopt_ip_tos_optlen_4097(run_driver, kernel_facts, expect):
    """setsockopt(IP_TOS, PAGE_SIZE + 1 bytes): EFAULT without the fix, TOS really set with it."""
    baseline = observe(run_driver, "tos", "page+1", "none")
    seen = observe(run_driver, "tos", "page+1", "buggy")
    fixed = {"errno": "OK", "tos": seen["tos_value"]}
    observed = {"errno": seen["errno"], "tos": seen["tos_after"]}
    expected = fixed if kernel_facts.has(RELIEF) else {"errno": "EFAULT", "tos": 0}
    note = relief_note(kernel_facts, observed == fixed) if observed in (fixed, {"errno": "EFAULT", "tos": 0}) \
        else "neither the fixed nor the unfixed behaviour"
    expect({**observed, "errno_without_program": baseline["errno"], "tos_without_program": baseline["tos_after"]},
           {**expected, "errno_without_program": "OK", "tos_without_program": baseline["tos_value"]},
           facts=[RELIEF], note=note, optlen=seen["optlen_in"])


def test_kernel_answer_longer_than_page(run_driver, kernel_facts, expect):
    """SO_PEERGROUPS with PAGE_SIZE/4 + 76 groups: the kernel's answer is longer than a page."""
    baseline = observe(run_driver, "peergroups", "2page", "none")
    groups = baseline["groups_set"]
    seen = observe(run_driver, "peergroups", "2page", "buggy")
    workaround = observe(run_driver, "peergroups", "2page", "fixed")
    has_fix = kernel_facts.has(RELIEF)
    # relations, not byte counts: the same behaviour reads the same whatever the page size
    observed = {"errno_without_program": baseline["errno"],
                "optlen_without_program_is_the_answer": baseline["optlen_out"] == 4 * groups,
                "all_groups_without_program": baseline["groups_seen"] == groups,
                "answer_longer_than_page": 4 * groups > baseline["page_size"],
                "errno": seen["errno"], "optlen_is_the_answer": seen["optlen_out"] == 4 * groups,
                "data_intact": seen["first_group_ok"], "workaround_errno": workaround["errno"],
                "workaround_all_groups": workaround["groups_seen"] == groups}
    expected = {"errno_without_program": "OK", "optlen_without_program_is_the_answer": True,
                "all_groups_without_program": True, "answer_longer_than_page": True, "errno": "OK" if has_fix else "EFAULT",
                "optlen_is_the_answer": True,
                "workaround_errno": "OK", "workaround_all_groups": True}
    if has_fix:
        expected["data_intact"] = True
    expect(observed, expected, facts=[RELIEF], note=relief_note(kernel_facts, seen["errno"] == "OK"),
           page_size=baseline["page_size"], sizes={"groups": groups, "optlen_out": seen["optlen_out"],
                                                   "workaround_groups": workaround["groups_seen"]})


def test_dmesg_line_exactly_with_fix(kernel_session, run_driver, kernel_facts, expect):
    """pr_info_once: trigger both paths, then look at the whole boot's kernel log. The
    line's max_optlen is the page size."""
    tos = observe(run_driver, "tos", "page+1", "buggy")
    observe(run_driver, "peergroups", "2page", "buggy")
    lines = {hook: (int(optlen), int(max_optlen))
             for hook, optlen, max_optlen in DMESG.findall(kernel_session.run(["dmesg"]).stdout)}
    page = tos["page_size"]
    observed = {"driver_page_size_is_boot_page_size": page == kernel_session.page_size,
                "getsockopt_line": "get" in lines, "setsockopt_line": "set" in lines,
                "max_optlen_is_page_size": all(max_optlen == page for _, max_optlen in lines.values())}
    present = kernel_facts.has(RELIEF)
    expect(observed, {"driver_page_size_is_boot_page_size": True, "getsockopt_line": present,
                      "setsockopt_line": present, "max_optlen_is_page_size": True},
           facts=[RELIEF], note=relief_note(kernel_facts, observed["getsockopt_line"]), page_size=page)
