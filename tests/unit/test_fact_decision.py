"""The fact decision is made once per kernel and read everywhere else: the reports, compare and
the verdict table read the decision a kernel's record holds; a results file written before
kernels recorded one gets it, as its tests recorded it, when it is loaded."""
import copy

import pytest

from kregress.kernels import decision
from kregress.report import compare, matrix, results, verdicts
from reportdata import four_kernels, write


@pytest.fixture
def loaded(tmp_path):
    """The real four-kernel run, written before kernels recorded their decision, loaded."""
    return results.load(write(tmp_path / "old.json", four_kernels()))


@pytest.fixture
def no_deciding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fact decision was made again")
    monkeypatch.setattr(decision, "decide", refuse)


def test_an_old_file_gets_the_decisions_its_tests_recorded(loaded):
    old = four_kernels()
    for test in old["tests"]:
        for name, used in test.get("facts_used", {}).items():
            assert loaded["kernels"][test["kernel"]]["fact_decisions"][name] == used
    relief = loaded["kernels"]["debian-5.10"]["fact_decisions"]["getsockopt_relief"]
    assert (relief["expected"], relief["decided_by"]) == (False, "binary")
    # facts no test asked about are decided from what the kernel's record holds
    assert loaded["kernels"]["debian-6.12"]["fact_decisions"]["lsm_cgroup"]["expected"] is True


def test_reports_read_the_recorded_decision(loaded, no_deciding):
    built = matrix.build(loaded)
    assert [c.facts.has("getsockopt_relief") for c in built.columns] == [False, True, True, True]
    assert any(cell.change and cell.change.facts for _, cell in built.changes())
    rows = verdicts.table([loaded])
    assert {(r["kernel"], r["verdict"]) for r in rows if r["fact"] == "getsockopt_relief"} == {
        ("debian-5.10", "agree"), ("debian-6.1", "agree"), ("debian-6.12", "agree"), ("debian-backports", "agree")}
    pairings = compare.compare(loaded, copy.deepcopy(loaded), "debian-6.1", "debian-6.12")
    assert pairings and pairings[0].compared


def test_verdicts_take_the_kernel_decision_over_a_test_copy(loaded):
    test = next(t for t in loaded["tests"] if t["kernel"] == "debian-5.10" and "getsockopt_relief" in t["facts_used"])
    test["facts_used"]["getsockopt_relief"] = {**test["facts_used"]["getsockopt_relief"], "state": "has"}
    row = next(r for r in verdicts.table([loaded]) if (r["kernel"], r["fact"]) == ("debian-5.10", "getsockopt_relief"))
    assert row["state"] == "lacks"


def test_a_kernels_file_restating_facts_is_decided_anew(loaded, tmp_path):
    restated = tmp_path / "kernels.toml"
    restated.write_text('[[kernel]]\nid = "debian-5.10"\nimage = "/nonexistent"\nversion = "5.10.223"\n'
                        'facts = { getsockopt_relief = true }\n')
    column = next(c for c in matrix.build(loaded, restated).columns if c.id == "debian-5.10")
    assert column.facts.has("getsockopt_relief") is True
    assert column.facts.decided_by("getsockopt_relief") == "kernels.toml"
