"""kregress fleet's choices: what each test judges (read from its source), the cheapest case per
fact, a fact left not judged, never-run kernels estimated by arch, and the figures per phase."""
import json
import textwrap

from kregress.kernels.facts import FACTS
from kregress.paths import SUITE_ROOT
from kregress.plugin import durations
from kregress.plugin.fleet import choose
from kregress.report.fleet import figures, render, render_split, suite_split
from kregress.expectation.declared import judged_by_test

RELIEF, RETVAL, LSM = "getsockopt_relief", "getsockopt_retval_in_run_ctx", "lsm_cgroup"


def test_each_test_judges_what_its_calls_name_helpers_fixtures_and_tables_too(tmp_path):
    module = tmp_path / "test_m.py"
    module.write_text(textwrap.dedent('''
        import pytest
        RELIEF = "getsockopt_relief"
        pytestmark = pytest.mark.scenario(facts=[RELIEF, "lsm_cgroup", "cgroup_preorder", "cgroup_mprog"])
        TABLE = {"preorder": ("cgroup_preorder", "flag"), "mprog": ("cgroup_mprog", "flag")}

        @pytest.fixture
        def ready(precondition):
            precondition("x", True, facts=["lsm_cgroup"])

        def helper(expect):
            expect({}, {}, facts=[RELIEF])

        def test_direct(expect):
            expect({}, {}, facts=[RELIEF, "lsm_cgroup"])

        def test_through_helper_and_fixture(ready, expect):
            helper(expect)

        def test_names_none(expect, kernel_facts):
            expect({}, {}, facts=sorted(kernel_facts.used))

        @pytest.mark.parametrize("how", ["preorder", "mprog"])
        def test_by_table(how, precondition, expect):
            fact, flag = TABLE[how]
            precondition(flag, True, facts=[fact])
            expect({}, {}, facts=[fact])
    '''))
    found = judged_by_test(module)
    assert found["test_direct"].for_params([]) == ((RELIEF, LSM), ())
    # the fixture's precondition on lsm_cgroup can end it first: it judges the relief fix only
    # where the kernel has lsm_cgroup
    assert found["test_through_helper_and_fixture"].for_params([]) == ((RELIEF, LSM), (LSM,))
    assert found["test_through_helper_and_fixture"].judges_whatever_the_kernel([]) == (LSM,)
    assert found["test_direct"].judges_whatever_the_kernel([]) == (RELIEF, LSM)
    assert found["test_names_none"].for_params([]) == ((), ())
    assert found["test_by_table"].for_params(["k", "mprog"]) == (("cgroup_mprog",), ("cgroup_mprog",))
    assert found["test_by_table"].for_params(["k", "preorder"])[0] == ("cgroup_preorder",)
    assert found["test_by_table"].judges_whatever_the_kernel(["k", "preorder"]) == ("cgroup_preorder",)


def test_the_scenarios_name_only_facts_and_the_shim_fact_has_one_case():
    naming = {}
    for path in sorted((SUITE_ROOT / "tests/scenarios").glob("test_*.py")):
        for name, facts in judged_by_test(path).items():
            for fact in facts.for_params([])[0]:
                assert fact in FACTS
                naming.setdefault(fact, set()).add(name)
    # docs/run.md says so: the one case that judges it, and what --leave saves
    assert naming["lsm_cgroup_shim_not_revived"] == {"test_shim_outlives_last_link"}


def test_cheapest_case_per_fact_and_a_fact_left():
    cases = [("slow_both", (RELIEF, RETVAL), (RELIEF, RETVAL), 9.0), ("relief", (RELIEF,), (RELIEF,), 1.0),
             ("retval", (RETVAL,), (RETVAL,), 2.0), ("lsm", (LSM,), (LSM,), 5.0), ("nothing", (), (), 0.1)]
    assert sorted(choose(cases)) == ["lsm", "relief", "retval"]
    assert sorted(choose(cases, leave=[LSM])) == ["relief", "retval"]


def test_a_case_a_precondition_may_stop_is_chosen_only_when_no_other_judges_the_fact():
    shim = "lsm_cgroup_current_task_shim"
    cases = [("lsm_gated", (LSM, shim), (LSM,), 0.5), ("policy", (shim, RETVAL), (shim, RETVAL), 2.0),
             ("only_gated", (LSM, "bpf_link_put_deferred"), (LSM,), 1.0)]
    assert sorted(choose(cases)) == ["lsm_gated", "only_gated", "policy"]


def test_never_run_kernels_are_estimated_by_their_arch():
    known = {"t.py::a[x86-old]": 1.0, "t.py::a[arm-old]": 4.0, "t.py::b[p-arm-old]": 3.0}
    kernels = {"x86-old": {"arch": "x86_64", "first_boot_s": 5.0}, "arm-old": {"arch": "arm64", "first_boot_s": 9.0}}
    est = durations.Estimates(known, kernels, {"arm-new": "arm64", "x86-new": "x86_64"})
    assert est.test("t.py::a[arm-new]", "arm-new") == 4.0
    assert est.test("t.py::a[x86-new]", "x86-new") == 1.0
    assert est.test("t.py::b[p-x86-new]", "x86-new") == 3.0         # only another arch knows it
    assert est.test("t.py::c[x86-new]", "x86-new") == durations.UNKNOWN_TEST_S
    assert est.first_boot("arm-new") == 9.0 and est.first_boot("x86-new") == 5.0
    tests = {"x86-new": ["t.py::a[x86-new]"], "arm-new": ["t.py::a[arm-new]"]}
    assert durations.longest_first(tests, est) == ["arm-new", "x86-new"]


def test_kernel_costs_keep_the_last_first_boot(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    durations.record({"tests": [], "kernels": {"k": {"arch": "arm64", "boot_how": "booted+saved",
                                                     "boot_seconds": 7.5, "save_seconds": 0.3}}})
    durations.record({"tests": [], "kernels": {"k": {"arch": "arm64", "boot_how": "restored", "boot_seconds": 1.0}}})
    assert durations.load_kernels() == {"k": {"arch": "arm64", "first_boot_s": 7.5, "save_s": 0.3}}


def test_figures_split_each_kernel_into_phases(tmp_path):
    doc = {"kernels": {"k": {"arch": "x86_64", "package_version": "1", "boot_how": "booted+saved",
                             "boot_seconds": 5.0, "save_seconds": 0.5}},
           "tests": [{"kernel": "k", "outcome": "passed", "setup_seconds": 7.0, "vm_start_seconds": 6.5, "seconds": 2.0},
                     {"kernel": "k", "outcome": "skipped", "seconds": 0.5}]}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    (tmp_path / "fleet.json").write_text(json.dumps({"wall_s": 30.0, "fetch_wall_s": 4.0,
                                                     "fetched": {"k": {"seconds": 4.0, "downloaded_bytes": 10**8}}}))
    fig = figures(tmp_path / "results.json")
    row, = fig["rows"]
    assert (row["fetch_s"], row["prep_s"], row["boot_s"], row["save_s"], row["guest_s"]) == (4.0, 1.0, 5.0, 0.5, 3.0)
    assert fig["kernels_per_minute"] == 2.0
    assert "2.0 kernels/min" in render(fig)[-1]


def test_fleet_verdicts_compared_with_the_full_matrix_by_package():
    from kregress.report.fleet import compare_verdicts, same_packages
    from kregress.report.results import FORMAT, normalise

    def doc(kernel, package, tests):     # as an older kregress wrote it: each test with its facts' copies
        return normalise({"format": FORMAT, "kernels": {kernel: {"package": package, "package_version": "1"}},
                "tests": [{"nodeid": f"t::{n}[{kernel}]", "kernel": kernel, "outcome": outcome,
                           "expectation_facts": [fact], "facts_used": {fact: {"expected": True, "decided_by": "binary"}}}
                          for n, fact, outcome in tests]})
    full = doc("debian-6.12", "linux-image-6.12", [("a", RELIEF, "passed"), ("b", LSM, "passed"),
                                                  ("c", RETVAL, "skipped")])
    fleet = doc("trixie-amd64", "linux-image-6.12", [("a", RELIEF, "passed"), ("b", LSM, "failed")])
    kernels = same_packages(fleet, full)
    assert kernels == {"debian-6.12": "trixie-amd64"}
    compared, differences = compare_verdicts(fleet, full, kernels)
    assert compared == 3 and differences == [
        "debian-6.12 (trixie-amd64) lsm_cgroup: full matrix has: agree, fleet has: CONTRADICTION"]


def test_the_suite_split_sums_worker_seconds_by_folder_and_names_the_vm_starts():
    doc = {"tests": [
        {"nodeid": "tests/scenarios/test_a.py::test_x[k]", "setup_seconds": 5.0, "seconds": 2.0, "vm_start_seconds": 4.5},
        {"nodeid": "tests/harness/test_guest.py::test_y[k]", "setup_seconds": 0.1, "seconds": 1.0},
        {"nodeid": "tests/harness/test_resilience.py::test_z", "seconds": 10.0, "teardown_seconds": 0.5},
        {"nodeid": "tests/unit/test_u.py::test_u", "seconds": 0.2}]}
    split = suite_split(doc)
    assert split["folders"] == {"tests/harness": 11.6, "tests/scenarios": 7.0, "tests/unit": 0.2}
    assert split["vm_starts"] == {"tests/scenarios": 4.5}
    assert list(split["harness"]) == ["test_resilience.py", "test_guest.py"]
    lines = render_split(split)
    assert "harness / scenarios: 11.6 / 7.0 s = 1.66" in lines and any("tests/scenarios 4.5" in l for l in lines)
