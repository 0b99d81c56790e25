"""`kregress check-progs` on socket-policy programs of our own that stand for the LPC 2022 talk's
(tests/policy_progs): per kernel, which kinds of socket each policy reaches must be what the hooks'
reach (kregress.check_progs.policy.HOOKS) and the kernel's facts say, and the verdict must follow:
a setting policy that misses some of its cgroup's sockets has findings, each explained; a
refusing policy is shown, not judged; lsm_cgroup programs are named unusable or unsupported
where the facts say so, never clean."""
from pathlib import Path

import pytest

from kregress.check_progs import findings as checkprogs, guest as progs_guest, policy

LSM_CGROUP = "lsm_cgroup"
CURRENT_TASK = "lsm_cgroup_current_task_shim"
SOFTIRQ = "softirq_inline_under_ksoftirqd"
RETVAL_FIRST = "getsockopt_retval_in_run_ctx"   # its series brought bpf_set_retval (b44123b4a3dc, v5.18)
pytestmark = pytest.mark.scenario(facts=[LSM_CGROUP, CURRENT_TASK, SOFTIRQ, RETVAL_FIRST])

FIXTURES = Path(__file__).parent.parent / "policy_progs"
SECTIONS = {"sock_create_priority": ["cgroup/sock_create"],
            "lsm_priority_stamp": ["lsm_cgroup/socket_post_create", "lsm_cgroup/inet_csk_clone"],
            "hide_ipv4": ["cgroup/sock_create"]}
SETS = {"sock_create_priority": ["priority"], "lsm_priority_stamp": ["priority"], "hide_ipv4": []}
NEEDS = {"hide_ipv4": RETVAL_FIRST}     # a helper the fixture calls -> the fact whose series brought it


@pytest.mark.parametrize("fixture", sorted(SECTIONS))
def test_policy_fixture(fixture, kernel_session, kernel_facts, expect):
    facts = {name: kernel_facts.has(name) for name in (LSM_CGROUP, CURRENT_TASK, SOFTIRQ, RETVAL_FIRST)}
    has = facts.__getitem__
    lsm_here = progs_guest.lsm_cgroup_here(kernel_facts)
    record = progs_guest.check_object(kernel_session, FIXTURES / f"{fixture}.bpf.c", has, lsm_cgroup=lsm_here)
    record.pop("raw", None)
    exit_code = checkprogs.exit_code(record)
    lsm = SECTIONS[fixture][0].startswith("lsm_cgroup/")
    runs_here = (lsm_here[0] or not lsm) and (has(NEEDS[fixture]) if fixture in NEEDS else True)
    check = record.get("policy") or {}
    observed = {"status": record["status"], "exit": exit_code,
                "not_checked": sorted(item["why"] for item in checkprogs.unchecked(record))}
    if not runs_here:       # the facts say the kernel cannot run it: named, never clean
        expected_why = [lsm_here[1]] * len(SECTIONS[fixture]) if lsm else []
        expected = {"status": "not checked" if lsm else "could not check", "exit": 2, "not_checked": expected_why}
        if not lsm:         # refused: every program named as unchecked by the refusal
            observed["not_checked"] = len(observed["not_checked"])
            expected["not_checked"] = len(SECTIONS[fixture])
        expect(observed, expected, facts=[LSM_CGROUP, CURRENT_TASK, SOFTIRQ, RETVAL_FIRST],
               note="\n".join(checkprogs.render(record)),
               check_progs=record)
        return
    reach = policy.expected_reach(SECTIONS[fixture], has)
    may_miss = {"accepted_peer_inside"} if lsm and not has(SOFTIRQ) else set()   # ksoftirqd now and then
    reached = set(check.get("reached", {}))
    misses = sorted(check.get("findings", {}))
    wanted_reach = {kind for kind, why in reach.items() if why is None}
    wanted_misses = sorted(k for k in policy.OWN_KINDS if reach[k] is not None) if SETS[fixture] else []
    observed.update(sets=check.get("sets"), reached=sorted(reached - may_miss), misses=sorted(set(misses) - may_miss),
                    unexplained=sorted(k for k, why in check.get("missed", {}).items() if why.startswith("UNEXPLAINED")))
    expected = {"status": "findings" if wanted_misses else "clean", "exit": 1 if wanted_misses else 0,
                "not_checked": [], "sets": SETS[fixture], "reached": sorted(wanted_reach - may_miss),
                "misses": wanted_misses, "unexplained": []}
    if fixture == "hide_ipv4":
        observed["refuses"] = check.get("refuses")
        expected["refuses"] = ["EAFNOSUPPORT"]
    expect(observed, expected, facts=[LSM_CGROUP, CURRENT_TASK, SOFTIRQ, RETVAL_FIRST],
           note="\n".join(checkprogs.render(record)), check_progs=record)
