"""getsockopt/setsockopt with optlen > PAGE_SIZE through a cgroup sockopt program that
ignores the option ("Cgroup-bpf production surprises"). Expected outcomes come from
kregress.facts: the relief fix 29ebbba7d461 and, for the kernel-error path, b44123b4a3dc."""
import pytest

pytestmark = pytest.mark.vm

DRIVER = "getsockopt_efault"
RELIEF = "getsockopt_relief"
DMESG_GET = "bpf getsockopt: ignoring program buffer"
DMESG_SET = "bpf setsockopt: ignoring program buffer"


def observe(run_driver, case, optlen, prog):
    return run_driver(DRIVER, case, optlen, prog)


def check_relief(kernel_facts, observed_fixed: bool, detail: str):
    """Fail with the contradiction message when behaviour disagrees with the version."""
    expected_fixed = kernel_facts.has(RELIEF)
    assert observed_fixed == expected_fixed, kernel_facts.contradiction(RELIEF, observed_fixed) + f"\n{detail}"


def test_unknown_option_big_optlen(run_driver, kernel_facts, record_behaviour):
    """A kernel error (ENOPROTOOPT) with optlen 8192 through the ignoring program."""
    baseline = observe(run_driver, "unknown", 8192, "none")
    seen = observe(run_driver, "unknown", 8192, "buggy")
    # Before the fix the optlen check turned the error into EFAULT, unless the kernel
    # already let negative retvals through before that check (bpf_get_set_retval).
    passes_through = kernel_facts.has(RELIEF) or kernel_facts.has("bpf_get_set_retval")
    expected = baseline["errno"] if passes_through else "EFAULT"
    record_behaviour({"errno": seen["errno"]}, {"errno": expected},
                     why=f"{kernel_facts.why(RELIEF)}; {kernel_facts.why('bpf_get_set_retval')}")
    if passes_through:
        assert seen["errno"] == baseline["errno"], (
            f"expected the kernel's own {baseline['errno']}, got {seen['errno']}: "
            + kernel_facts.contradiction(RELIEF, False))
    else:
        assert seen["errno"] == "EFAULT", (
            f"expected EFAULT, got {seen['errno']}: " + kernel_facts.contradiction(RELIEF, True))


def test_unknown_option_optlen_page_size(run_driver, record_behaviour):
    """optlen == PAGE_SIZE never trips the check: the kernel's own errno on every kernel."""
    baseline = observe(run_driver, "unknown", 4096, "none")
    seen = observe(run_driver, "unknown", 4096, "buggy")
    record_behaviour({"errno": seen["errno"]}, {"errno": baseline["errno"]})
    assert baseline["errno"] == "ENOPROTOOPT", f"no program attached should give ENOPROTOOPT: {baseline}"
    assert seen == {**baseline, "prog": "buggy"}, f"expected the kernel's answer {baseline}, got {seen}"


def test_private_option_answered_by_program(run_driver, record_behaviour):
    """The program's own option: the value from sk storage with optlen 1, any caller optlen."""
    seen = observe(run_driver, "private", 8192, "buggy")
    record_behaviour({"errno": seen["errno"], "optlen": seen["optlen_out"], "value": seen["value"]},
                     {"errno": "OK", "optlen": 1, "value": 0x5A})
    assert (seen["set_errno"], seen["errno"], seen["optlen_out"], seen["value"]) == ("OK", "OK", 1, 0x5A), seen


def test_workaround_resets_optlen(run_driver, record_behaviour):
    """The talk's fixed program (optlen = 0 past PAGE_SIZE) gives the kernel's answer everywhere."""
    baseline = observe(run_driver, "unknown", 8192, "none")
    seen = observe(run_driver, "unknown", 8192, "fixed")
    record_behaviour({"errno": seen["errno"]}, {"errno": baseline["errno"]})
    assert seen["errno"] == baseline["errno"], f"expected {baseline['errno']}, got {seen['errno']}"


def test_setsockopt_ip_tos_optlen_4097(run_driver, kernel_facts, record_behaviour):
    """setsockopt(IP_TOS, 4097 bytes): EFAULT without the fix, TOS really set with it."""
    baseline = observe(run_driver, "tos", 4097, "none")
    seen = observe(run_driver, "tos", 4097, "buggy")
    assert (baseline["errno"], baseline["tos_after"]) == ("OK", 0x10), f"baseline without a program: {baseline}"
    has_fix = kernel_facts.has(RELIEF)
    expected = {"errno": "OK", "tos": 0x10} if has_fix else {"errno": "EFAULT", "tos": 0}
    observed = {"errno": seen["errno"], "tos": seen["tos_after"]}
    record_behaviour(observed, expected, why=kernel_facts.why(RELIEF))
    if observed not in ({"errno": "OK", "tos": 0x10}, {"errno": "EFAULT", "tos": 0}):
        pytest.fail(f"neither the fixed nor the unfixed behaviour: {observed}")
    check_relief(kernel_facts, observed["errno"] == "OK", f"observed {observed}, expected {expected}")


def test_kernel_answer_longer_than_page(run_driver, kernel_facts, record_behaviour):
    """SO_PEERGROUPS with 1100 groups: the kernel answers 4400 bytes (> PAGE_SIZE)."""
    baseline = observe(run_driver, "peergroups", 8192, "none")
    assert (baseline["errno"], baseline["optlen_out"], baseline["groups_seen"]) == ("OK", 4400, 1100), baseline
    seen = observe(run_driver, "peergroups", 8192, "buggy")
    workaround = observe(run_driver, "peergroups", 8192, "fixed")
    has_fix = kernel_facts.has(RELIEF)
    observed = {"errno": seen["errno"], "optlen": seen["optlen_out"], "workaround_errno": workaround["errno"],
                "workaround_groups": workaround["groups_seen"]}
    expected = {"errno": "OK" if has_fix else "EFAULT", "optlen": 4400,
                "workaround_errno": "OK", "workaround_groups": 1100}
    record_behaviour(observed, expected, why=kernel_facts.why(RELIEF))
    check_relief(kernel_facts, seen["errno"] == "OK", f"observed {observed}")
    if has_fix:
        assert seen["groups_seen"] == 1100 and seen["first_group_ok"], f"kernel's data not intact: {seen}"
    assert (workaround["errno"], workaround["groups_seen"]) == ("OK", 1100), f"workaround broke: {workaround}"


def test_dmesg_line_exactly_with_fix(kernel_session, run_driver, kernel_facts, record_behaviour):
    """pr_info_once: trigger both paths, then look at the whole boot's kernel log."""
    observe(run_driver, "tos", 4097, "buggy")
    observe(run_driver, "peergroups", 8192, "buggy")
    log = kernel_session.run(["dmesg"]).stdout
    observed = {"getsockopt_line": DMESG_GET in log, "setsockopt_line": DMESG_SET in log}
    expected_present = kernel_facts.has(RELIEF)
    expected = {"getsockopt_line": expected_present, "setsockopt_line": expected_present}
    record_behaviour(observed, expected)
    assert observed == expected, (f"dmesg lines {observed}, expected {expected}: "
                                  + kernel_facts.contradiction(RELIEF, observed["getsockopt_line"]))
