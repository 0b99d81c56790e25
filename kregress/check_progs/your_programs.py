"""Your programs on your kernels: the pytest module `kregress check-progs OBJECT.bpf.o` runs
(in a checkout also `pytest kregress/check_progs/your_programs.py --progs OBJECT.bpf.o`); with several objects, one more test runs all their
sockops programs together on one cgroup. Each object's cgroup getsockopt/setsockopt
programs run against guest/check_progs's battery, with and without them; a test fails
when a program changes an answer on a call it does not own (kregress.check_progs.findings), and
when a program of the object was not checked (another kind of program): never "clean" for what
nothing looked at. A load or attach the kernel refuses fails the test with the kernel's and
libbpf's words."""
import pytest

from kregress.check_progs import findings as checkprogs, guest as progs_guest

RELIEF = "getsockopt_relief"
RETVAL_FIRST = "getsockopt_retval_in_run_ctx"
PAGE_CAP = "sockopt_page_cap"
LSM_CGROUP = "lsm_cgroup"
CURRENT_TASK = "lsm_cgroup_current_task_shim"
SOFTIRQ = "softirq_inline_under_ksoftirqd"
HDR_OPT = "sockops_hdr_opt"
RESTORE = "sockops_cb_flags_setsockopt"
CB_WORD = "sk_bpf_cb_flags"
# checkprogs.FACTS_USED, policy.FACTS_USED and sockops.FACTS_USED
FACTS = [RELIEF, RETVAL_FIRST, PAGE_CAP, LSM_CGROUP, CURRENT_TASK, SOFTIRQ, HDR_OPT, RESTORE, CB_WORD]
pytestmark = pytest.mark.scenario(facts=[RELIEF, RETVAL_FIRST, PAGE_CAP, LSM_CGROUP, CURRENT_TASK, SOFTIRQ, HDR_OPT,
                                         RESTORE, CB_WORD])


def test_programs(user_program, request, kernel_session, kernel_facts, expect, precondition):
    precondition("programs given with --progs", user_program is not None, calibrated=False,
                 reason="nothing of yours to check: kregress check-progs OBJECT.bpf.o")
    option = request.config.option
    facts = {name: kernel_facts.has(name) for name in FACTS}
    if isinstance(user_program, tuple):     # all the objects' sockops programs on one cgroup
        record = progs_guest.check_together(kernel_session, list(user_program), facts.__getitem__, option.maps,
                                            option.kernels_file)
        precondition("sockops programs in two objects or more", record["status"] != "nothing together",
                     calibrated=False, reason="nothing to run together: each object was checked on its own")
    else:
        record = progs_guest.check_object(kernel_session, user_program, facts.__getitem__, option.owns, option.maps,
                                          option.kernels_file, lsm_cgroup=progs_guest.lsm_cgroup_here(kernel_facts),
                                          maps_shared=len(option.progs) > 1, hdr_opt=facts[HDR_OPT])
    record.pop("raw", None)
    observed = {check["program"]: len(check["findings"]) for check in record["programs"]}
    unchecked = [item["program"] for item in checkprogs.unchecked(record)]
    # a program passes when it changes nothing it does not own, and an object only when every
    # program in it was checked; the findings, the unchecked programs (or the kernel's refusal,
    # with libbpf's log) are the failure's text
    misses = sorted((record.get("policy") or {}).get("findings", {}))
    silences = sorted(f["program"] for f in (record.get("sockops") or {}).get("findings", []))
    expect({"status": record["status"], "findings": observed, "not_checked": unchecked, "policy_misses": misses,
            "sockops_silencing": silences},
           {"status": "clean", "findings": {check["program"]: 0 for check in record["programs"]}, "not_checked": [],
            "policy_misses": [], "sockops_silencing": []},
           facts=FACTS,
           note="\n".join(checkprogs.render(record)), check_progs=record)
