"""The verdict table from results records (facts_used per test)."""
import json

from kregress.cli import main
from kregress.results import FORMAT
from kregress.verdicts import render, sentence, table

SOURCES_61_AS_510 = {"binary": "present", "changelog": "present", "version": "absent"}


def record(nodeid, kernel, outcome, expected=True, decided_by="binary", sources=SOURCES_61_AS_510):
    return {"nodeid": nodeid, "kernel": kernel, "outcome": outcome,
            "facts_used": {"getsockopt_relief": {"expected": expected, "decided_by": decided_by, "sources": sources}}}


def test_agreeing_and_contradicting_kernels(tmp_path):
    doc = {"kernels": {"a": {"package_version": "1"}}, "tests": [
        record("t1[a]", "a", "passed"), record("t2[a]", "a", "skipped"),
        record("t1[b]", "b", "passed"), record("t2[b]", "b", "failed"),
        {"nodeid": "unit", "outcome": "passed"}]}
    rows = {row["kernel"]: row for row in table([doc])}
    assert rows["a"]["verdict"] == "agree" and rows["a"]["behaves"] == "with" and rows["a"]["tests"] == 2
    assert sentence(rows["a"]) == "binary says has it; changelog says has it; version says lacks it; behaves with it"
    assert rows["b"]["verdict"] == "CONTRADICTION" and rows["b"]["inconsistent"] == ["t2[b]"]
    assert "contradicted by t2[b]" in render(list(rows.values()))
    # the command: exit 1 on a contradiction, JSON beside the text; a fleet is many files
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"format": FORMAT, "tests": doc["tests"][:2]}))
    second.write_text(json.dumps({"format": FORMAT, "tests": doc["tests"][2:]}))
    (tmp_path / "other.json").write_text(json.dumps({"tests": []}))
    assert main(["verdicts", str(tmp_path / "other.json")]) == 2     # not a results file: named, not judged
    assert main(["verdicts", str(first), "--json", str(tmp_path / "v.json")]) == 0
    assert main(["verdicts", str(first), str(second)]) == 1
    assert json.loads((tmp_path / "v.json").read_text())[0]["verdict"] == "agree"
