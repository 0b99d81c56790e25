"""The reproducers in docs/findings/ run on every kernel, built and pushed the way their
reports say to run them (`kregress exec --from DIR -- NAME`), so they cannot rot."""
import json

import pytest

from kregress.paths import PROJECT_ROOT

LSM_CGROUP_FINDING = PROJECT_ROOT / "docs/findings/lsm-cgroup-current-task"


def test_lsm_cgroup_reproducer_gives_a_verdict(kernel_session, kernel_facts, record_behaviour):
    result = kernel_session.run_driver("whose_cgroup", root=LSM_CGROUP_FINDING)
    out = json.loads(result.stdout or "{}")
    if not kernel_facts.has("lsm_cgroup"):
        assert result.rc == 2 and "error" in out, (result.rc, result.stdout, result.stderr)
        pytest.skip(f"no lsm_cgroup here ({kernel_facts.why('lsm_cgroup')}): the reproducer says {out['error']}")
    assert result.rc == 0, (result.rc, result.stdout, result.stderr)
    record_behaviour({"programs_of": out["programs_of"], "socket_of_a_bound_from_b": out["socket_of_a_bound_from_b"],
                      "socket_of_b_bound_from_a": out["socket_of_b_bound_from_a"]})
    assert out["programs_of"] in ("socket's cgroup", "current task's cgroup"), out
