"""`kregress compare` (the upgrade gate) and `kregress merge` (CI-matrix shards)."""
import json

import pytest

from kregress.cli import main
from kregress.report.compare import compare
from kregress.report.results import MergeError, merge
from kregress.report.matrix import build
from kregress.report import junit, kcidb
from kregress.report.write import render_html, render_text

from reportdata import RELIEF_COMMIT, four_kernels, record_of, shard, write

TOS = "tests/test_getsockopt_efault.py::test_setsockopt_ip_tos_optlen_4097"


@pytest.fixture
def shards(tmp_path):
    doc = four_kernels()
    return {k: write(tmp_path / f"{k}.json", shard(doc, k)) for k in doc["kernels"]}


def test_5_10_to_6_1_differences_are_the_relief_fix(shards, capsys):
    assert main(["compare", str(shards["debian-5.10"]), str(shards["debian-6.1"])]) == 0
    out = capsys.readouterr().out
    assert "old debian-5.10 (5.10.223-1, upstream 5.10.223, uname -r 5.10.0-32-amd64, tcg)" in out
    assert (f"  explained   {TOS}: EFAULT tos=0 -> OK tos=16: explained by getsockopt_relief "
            f"({RELIEF_COMMIT} " "\"bpf: Don't EFAULT for {g,s}setsockopt with wrong optlen\" (v6.5))") in out
    assert ("7 case(s) compared: 4 explained, 0 unexplained behaviour change(s), 0 worse outcome(s), "
            "0 missing, 0 other outcome change(s), 0 recorded-value change(s), 0 added (0 failing)") in out
    assert out.rstrip().endswith("compare: ok: debian-5.10 -> debian-6.1 (7 case(s)): nothing worse, missing, "
                                 "unexplained or bringing an unaccepted known defect")


def test_same_behaviour_no_differences(shards, capsys):
    assert main(["compare", str(shards["debian-6.12"]), str(shards["debian-backports"])]) == 0
    assert "7 case(s) compared: 0 explained, 0 unexplained" in capsys.readouterr().out


BIG = "unknown_option_big_optlen"


def gate(tmp_path, capsys, change) -> tuple[int, str]:
    """compare debian-5.10 -> debian-6.1 of the real run, after `change(new_doc)`."""
    doc = four_kernels()
    new = shard(doc, "debian-6.1")
    change(new)
    old = write(tmp_path / "old.json", shard(doc, "debian-5.10"))
    status = main(["compare", str(old), str(write(tmp_path / "new.json", new))])
    return status, capsys.readouterr().out


def test_a_new_failure_gates_even_when_a_named_fact_flips(tmp_path, capsys):
    # EFAULT -> ENOPROTOOPT is what the relief fix explains, but the new kernel fails the case now
    status, out = gate(tmp_path, capsys, lambda new: record_of(new, BIG, "debian-6.1").update(
        outcome="failed", expected={"errno": "EFAULT"}))
    assert status == 1
    assert (f"  WORSE       tests/test_getsockopt_efault.py::test_{BIG}: EFAULT -> ENOPROTOOPT [passed -> failed]: "
            f"worse outcome, whatever flips (getsockopt_relief") in out
    assert out.rstrip().splitlines()[-1] == (f"compare: FAIL: debian-5.10 -> debian-6.1 (7 case(s)): gated by 1: "
                                             f"WORSE test_{BIG} (passed -> failed)")


def test_passed_to_skipped_gates(tmp_path, capsys):
    status, out = gate(tmp_path, capsys, lambda new: record_of(new, BIG, "debian-6.1").update(
        outcome="skipped", observed={}))
    assert status == 1
    assert f"  WORSE       tests/test_getsockopt_efault.py::test_{BIG}: passed -> skipped" in out
    assert out.rstrip().endswith(f"gated by 1: WORSE test_{BIG} (passed -> skipped)")


def test_a_case_missing_from_the_new_run_gates(tmp_path, capsys):
    def drop(new):
        new["tests"].remove(record_of(new, BIG, "debian-6.1"))
    status, out = gate(tmp_path, capsys, drop)
    assert status == 1
    assert f"  MISSING     tests/test_getsockopt_efault.py::test_{BIG}: not in the new run (was passed" in out
    assert "6 case(s) compared" in out and out.rstrip().endswith(f"gated by 1: MISSING test_{BIG} (passed -> missing)")


def test_a_new_case_gates_only_when_it_fails(tmp_path, capsys):
    """Nothing was worse before a case existed, but an upgrade onto a failure is no upgrade."""
    def add(outcome):
        def change(new):
            extra = json.loads(json.dumps(record_of(new, BIG, "debian-6.1")))
            extra["nodeid"] = extra["nodeid"].replace(f"test_{BIG}[", "test_brand_new[")
            extra["outcome"] = outcome
            new["tests"].append(extra)
        return change
    status, out = gate(tmp_path, capsys, add("passed"))
    assert status == 0 and "1 added (0 failing)" in out
    status, out = gate(tmp_path, capsys, add("failed"))
    assert status == 1
    assert "  NEW FAILURE tests/test_getsockopt_efault.py::test_brand_new: new case (failed" in out
    assert out.rstrip().endswith("gated by 1: NEW FAILURE test_brand_new (absent -> failed)")


def test_a_changed_behaviour_that_still_fails_is_not_explained(tmp_path, capsys):
    """Failed before and after, a named fact flips: no better, but not explained either."""
    doc = four_kernels()
    old, new = shard(doc, "debian-5.10"), shard(doc, "debian-6.1")
    record_of(old, BIG, "debian-5.10").update(outcome="failed", expected={"errno": "ENOPROTOOPT"})
    record_of(new, BIG, "debian-6.1").update(outcome="failed", expected={"errno": "EFAULT"})
    [pairing] = compare(old, new)
    [difference] = [d for d in pairing.differences if d.case.endswith(BIG)]
    assert "getsockopt_relief" in difference.facts and not difference.worse
    assert not difference.explained and difference.gating and difference.tag == "UNEXPLAINED"


def test_a_better_outcome_does_not_gate(tmp_path, capsys):
    doc = four_kernels()
    old = shard(doc, "debian-6.12")
    record_of(old, "unknown_option_optlen_page_size", "debian-6.12").update(outcome="error", observed={})
    assert main(["compare", str(write(tmp_path / "old.json", old)),
                 str(write(tmp_path / "new.json", shard(doc, "debian-backports")))]) == 0
    assert "  outcome     tests/test_getsockopt_efault.py::test_unknown_option_optlen_page_size: error -> passed" \
        in capsys.readouterr().out


def test_unexplained_difference_fails_the_gate(tmp_path, capsys):
    doc = four_kernels()
    new = shard(doc, "debian-backports")
    record_of(new, "workaround_resets_optlen", "debian-backports").update(observed={"errno": "EFAULT"})
    old = write(tmp_path / "old.json", shard(doc, "debian-6.12"))
    assert main(["compare", str(old), str(write(tmp_path / "new.json", new))]) == 1
    out = capsys.readouterr().out
    assert ("UNEXPLAINED tests/test_getsockopt_efault.py::test_workaround_resets_optlen: ENOPROTOOPT -> EFAULT: "
            "UNEXPLAINED") in out
    assert out.rstrip().endswith("compare: FAIL: debian-6.12 -> debian-backports (7 case(s)): gated by 1: "
                                 "UNEXPLAINED test_workaround_resets_optlen")


def test_new_failure_fails_the_gate_even_with_the_same_behaviour():
    doc = four_kernels()
    new = shard(doc, "debian-backports")
    record_of(new, "unknown_option_optlen_page_size", "debian-backports").update(outcome="error", observed={})
    [pairing] = compare(shard(doc, "debian-6.12"), new)
    [difference] = pairing.differences
    assert difference.kind == "outcome" and difference.gating and difference.tag == "WORSE"


def test_same_kernel_ids_pair_up_and_ambiguity_is_refused(tmp_path, capsys):
    doc = four_kernels()
    both = write(tmp_path / "both.json", doc)
    assert main(["compare", str(both), str(both)]) == 0         # a re-run of the whole matrix
    two = write(tmp_path / "two.json", shard(doc, "debian-5.10", "debian-6.1"))
    other = write(tmp_path / "other.json", shard(doc, "debian-6.12", "debian-backports"))
    assert main(["compare", str(two), str(other)]) == 2
    assert "--old-kernel ID --new-kernel ID" in capsys.readouterr().err
    assert main(["compare", str(two), str(other), "--old-kernel", "debian-6.1", "--new-kernel", "debian-6.12"]) == 0


def test_merged_shards_give_the_same_reports_as_one_run(shards, tmp_path, capsys):
    whole = four_kernels()
    out = tmp_path / "merged" / "results.json"
    # shards in any order, as a CI download might list them
    assert main(["merge", str(out), *map(str, reversed(list(shards.values())))]) == 0
    merged = json.loads(out.read_text())
    assert merged["summary"] == whole["summary"]
    assert (merged["started"], merged["finished"]) == (whole["started"], whole["finished"])
    assert render_html(build(merged)) == render_html(build(whole))
    assert render_text(build(merged)) == render_text(build(whole))
    assert kcidb.from_results(merged) == kcidb.from_results(whole)
    assert junit.from_results(merged) == junit.from_results(whole)
    assert main(["report", str(out), "--quiet"]) == 0
    one_run = tmp_path / "whole" / "results.json"
    one_run.parent.mkdir()
    one_run.write_text(json.dumps(whole))
    assert main(["report", str(one_run), "--quiet"]) == 0
    assert (tmp_path / "merged" / "report.html").read_text() == (tmp_path / "whole" / "report.html").read_text()
    assert 'id="verdicts"' in (tmp_path / "whole" / "report.html").read_text()


def test_overlapping_shards_are_refused():
    doc = four_kernels()
    with pytest.raises(MergeError, match="debian-6.1 has results in both a and b"):
        merge([("a", shard(doc, "debian-6.1")), ("b", shard(doc, "debian-6.1", "debian-6.12"))])


def test_interrupted_shard_leaves_the_merge_unfinished():
    doc = four_kernels()
    part = shard(doc, "debian-6.1")
    part["finished"] = None
    assert merge([("a", shard(doc, "debian-5.10")), ("b", part)])["finished"] is None



def test_a_change_only_in_an_unjudged_key_does_not_gate(tmp_path, capsys):
    """A count a test shows without an expectation (a race the facts allow: lsm_cgroup double
    runs) varies between two runs of kernels that behave alike: shown, not gated. The same
    change in a key the test judges is an unexplained behaviour change."""
    doc = four_kernels()
    old = write(tmp_path / "old.json", shard(doc, "debian-6.12"))

    def run(expect_it: bool) -> tuple[int, str]:
        new = shard(doc, "debian-backports")
        entry = record_of(new, BIG, "debian-backports")
        entry["observed"]["double_runs"] = "3 of 20"
        if expect_it:
            entry["expected"]["double_runs"] = "3 of 20"
        status = main(["compare", str(old), str(write(tmp_path / "new.json", new))])
        return status, capsys.readouterr().out

    status, out = run(expect_it=False)
    assert status == 0 and "0 unexplained behaviour change(s)" in out
    assert (f"  recorded    tests/test_getsockopt_efault.py::test_{BIG}:  -> double_runs=3 of 20: "
            "recorded values only, no expectation judges them (shown, not gating)") in out
    assert "1 recorded-value change(s)" in out
    status, out = run(expect_it=True)
    assert status == 1 and "1 unexplained behaviour change(s)" in out


def test_a_program_checked_before_and_not_now_gates(tmp_path, capsys):
    """The old kernel's check-progs checked get_x; on the new one the kernel refused it: the gate
    names the program and why, even where both outcomes are failures."""
    doc = four_kernels()
    case = "tests/test_your_programs.py::test_programs"

    def progs_test(kernel, record, outcome):
        return {"nodeid": f"{case}[{kernel}]", "kernel": kernel, "outcome": outcome,
                "observed": {"status": record["status"]}, "expected": {"status": "clean"},
                "extras": {"check_progs": record}}
    checked = {"object": "o.bpf.o", "kernel": "debian-5.10", "status": "findings", "not_checked": [],
               "programs": [{"program": "get_x", "section": "cgroup/getsockopt", "findings": [{}], "owned": {}}]}
    refused = {"object": "o.bpf.o", "kernel": "debian-6.1", "status": "could not check", "programs": [],
               "not_checked": [{"program": "get_x", "section": "cgroup/getsockopt",
                                "why": "the kernel refused it (above)"}]}
    old, new = shard(doc, "debian-5.10"), shard(doc, "debian-6.1")
    old["tests"].append(progs_test("debian-5.10", checked, "failed"))
    new["tests"].append(progs_test("debian-6.1", refused, "failed"))
    status = main(["compare", str(write(tmp_path / "old.json", old)), str(write(tmp_path / "new.json", new))])
    out = capsys.readouterr().out
    assert status == 1
    assert (f"  NOT CHECKED {case}: checked on the old kernel, not checked on the new one: get_x (the kernel "
            f"refused it (above))") in out
    assert "1 with programs no longer checked" in out and "NOT CHECKED test_programs" in out.splitlines()[-1]


SHIM = "tests/test_lsm_priority.py::test_shim_outlives_last_link"


def shim_case(kernel: str, twice: str) -> dict:
    """test_shim_outlives_last_link as the CI run recorded it: judged 0 on 6.1, shown on 6.12."""
    expected = {"sched_fifo_destroyed_program_ran": "0 of 20"}
    if kernel == "debian-6.1":
        expected["sched_fifo_attached_ran_more_than_once"] = "0 of 20"
    return {"nodeid": f"{SHIM}[{kernel}]", "kernel": kernel, "outcome": "passed",
            "observed": {"sched_fifo_destroyed_program_ran": "0 of 20",
                         "sched_fifo_attached_ran_more_than_once": twice},
            "expected": expected,
            "expectation_facts": ["lsm_cgroup", "bpf_link_put_deferred", "lsm_cgroup_shim_not_revived"]}


def test_an_upgrade_that_brings_a_known_defect_gates_until_accepted(tmp_path, capsys):
    doc = four_kernels()
    old, new = shard(doc, "debian-6.1"), shard(doc, "debian-6.12")
    old["tests"].append(shim_case("debian-6.1", "0 of 20"))
    new["tests"].append(shim_case("debian-6.12", "10 of 20"))
    old_path, new_path = write(tmp_path / "old.json", old), write(tmp_path / "new.json", new)
    assert main(["compare", str(old_path), str(new_path)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if SHIM in line)
    assert line.startswith("  KNOWN DEFECT") and "explained by bpf_link_put_deferred" in line
    assert "brings the known defect of bpf_link_put_deferred" in line and "--accept-defect bpf_link_put_deferred" in line
    assert "KNOWN DEFECT test_shim_outlives_last_link (bpf_link_put_deferred)" in out.splitlines()[-1]
    assert main(["compare", str(old_path), str(new_path), "--accept-defect", "bpf_link_put_deferred"]) == 0
    out = capsys.readouterr().out
    assert "(accepted by --accept-defect)" in out
    assert "accepted known defect(s) of the new kernel, by --accept-defect: bpf_link_put_deferred" in out
    assert main(["compare", str(old_path), str(new_path), "--accept-defect", "getsockopt_relief"]) == 2


def test_every_fact_says_what_it_is():
    from kregress.kernels.facts import FACTS, KINDS, Fact
    assert all(fact.kind in KINDS for fact in FACTS.values())
    assert {name for name, fact in FACTS.items() if fact.defect} == {"lsm_cgroup_current_task_shim",
                                                                    "bpf_link_put_deferred"}
    with pytest.raises(ValueError, match="kind"):
        Fact("x", "0", "t", mainline=(6, 0), kind="improvement")
    with pytest.raises(ValueError, match="defect="):
        Fact("x", "0", "t", mainline=(6, 0), kind="known defect")
