"""The reproducers in docs/findings/ run on every kernel, built and pushed the way their
reports say to run them (`kregress exec --from DIR -- NAME`), so they cannot rot; each is
expected to give the finding's verdict where the facts say the kernel has the finding."""
import json

import pytest

from kregress.paths import SUITE_ROOT

pytestmark = pytest.mark.scenario(facts=["lsm_cgroup", "lsm_cgroup_current_task_shim"])

LSM_CGROUP_FINDING = SUITE_ROOT / "docs/findings/lsm-cgroup-current-task"


def test_lsm_cgroup_reproducer_gives_the_findings_verdict(kernel_session, kernel_facts, precondition, expect):
    result = kernel_session.run_driver("whose_cgroup", root=LSM_CGROUP_FINDING)
    out = json.loads(result.stdout or "{}")
    precondition("lsm_cgroup programs load and attach", result.rc == 0 and "error" not in out, facts=["lsm_cgroup"],
                 reason=f"the reproducer says {out.get('error') or 'nothing'} (exit {result.rc})")
    by_task = kernel_facts.has("lsm_cgroup_current_task_shim")
    observed = {key: out.get(key) for key in ("programs_of", "socket_of_a_bound_from_b", "socket_of_b_bound_from_a")}
    expected = {"programs_of": "current task's cgroup" if by_task else "socket's cgroup"}
    expect(observed, expected, facts=["lsm_cgroup", "lsm_cgroup_current_task_shim"])
