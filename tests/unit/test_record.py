"""The typed test record: extras cannot overwrite the harness's fields; a scenario test's
ending is checked; deviations are shown as "deviates from <source>"."""
import pytest

from kregress.expectation import deviations
from kregress.report import known
from kregress.report import junit, kcidb, write as report
from kregress.plugin import records as plugin_records
from kregress.plugin.state import PROPERTY
from kregress.report.matrix import build
from kregress.expectation.expect import StatedRule
from kregress.expectation.record import RecordError, add_extras, ending_problem, extra, new_record
from reportdata import four_kernels


def test_extras_go_beside_the_harness_fields():
    record = new_record()
    record["observed"]["errno"] = "OK"
    add_extras(record, {"attempts": 6, "sizes": {"a": 1}})
    assert record["observed"] == {"errno": "OK"} and record["extras"] == {"attempts": 6, "sizes": {"a": 1}}
    for owned in ("observed", "outcome", "dmesg", "harness_error"):
        with pytest.raises(RecordError, match=owned):
            add_extras(record, {owned: "x"})
    assert record["observed"] == {"errno": "OK"}


def test_extra_reads_extras_then_the_top_level():
    assert extra({"extras": {"race": 1}, "race": 2}, "race") == 1
    assert extra({"race": 2}, "race") == 2 and extra({}, "race", "-") == "-"


@pytest.mark.parametrize("record, outcome, xfailed, allowed", [
    ({"ended_by": "expect"}, "passed", False, True),
    ({"ended_by": "expect"}, "failed", False, True),
    ({"ended_by": "precondition"}, "skipped", False, True),
    ({"ended_by": "precondition"}, "failed", False, True),
    ({}, "passed", False, False),                       # a bare assert that held, a return before judging
    ({}, "failed", False, False),                       # pytest.fail or a bare assert
    ({}, "skipped", False, False),                      # a skip of its own
    ({"ended_by": "expect"}, "skipped", False, False),  # judged, then skipped anyway
    ({}, "skipped", True, False),                       # xfail
    ({"harness_error": "guest-lost"}, "failed", False, True),   # the harness's fault, not the test's ending
])
def test_ending_problem(record, outcome, xfailed, allowed):
    assert (ending_problem(record, outcome, xfailed) == "") is allowed


RULE = StatedRule("69fd337a975c's stated intent", "socket hooks run the socket's cgroup's programs")


def test_stated_rule_records_what_breaks_it():
    broken = RULE.broken({"a": "OK", "b": 7}, {"a": "EPERM", "b": 7})
    assert broken == {"a": {"observed": "OK", "stated": "EPERM"}}
    assert RULE.as_record(broken) == {"rule": RULE.rule, "source": RULE.source, "observed": broken}
    assert RULE.broken({"a": "EPERM"}, {"a": "EPERM"}) == {}
    assert "CHANGED" in RULE.followed_note() and RULE.source in RULE.followed_note()


def test_deviations_in_summary_junit_and_kcidb():
    doc = four_kernels()
    test = next(t for t in doc["tests"] if t.get("kernel"))
    test["deviations"] = [RULE.as_record({"a": {"observed": "OK", "stated": "EPERM"}})]
    lines = deviations.render(deviations.rules([doc]))
    assert lines and "deviates from 69fd337a975c's stated intent" in lines[0]
    assert "deviates from 69fd337a975c's stated intent" in junit.from_results(doc)
    entry = next(e for e in kcidb.from_results(doc)["tests"] if e.get("misc", {}).get("deviations"))
    assert entry["misc"]["deviations"][0]["label"].startswith("deviates from 69fd337a975c's stated intent")
    assert entry["comment"].startswith("deviates from")
    html = report.render_html(build(doc), deviation_rules=deviations.rules([doc]), known_differences=known.load())
    assert "deviates from 69fd337a975c&#x27;s stated intent" in html and "known, unexplained" in html


def test_known_differences_file_is_complete_and_shown_unexplained(tmp_path):
    entries = known.load()
    assert entries, "known-differences.toml lists at least one difference"
    case = entries[0]["case"]
    kernel = entries[0]["kernels"][0]
    assert known.covering(entries, case, kernel) is entries[0] and known.covering(entries, case, "other") is None
    text = "\n".join(known.render(entries, {case: [kernel]}))
    assert text.startswith(f"known, unexplained: {case}") and f"not passed on {kernel}" in text
    bad = tmp_path / "k.toml"
    bad.write_text('[[difference]]\ncase = "t::x"\nkernels = ["k"]\nobserved = "o"\n')
    with pytest.raises(known.KnownDifferencesError, match=r"#1 \(t::x\) lacks rate, tried"):
        known.load(bad)


class _Report:
    def __init__(self, outcome, longrepr="AssertionError: assert 1 == 2", wasxfail=None):
        self.outcome, self.longrepr = outcome, longrepr
        if wasxfail is not None:
            self.wasxfail = wasxfail

    @property
    def skipped(self):
        return self.outcome == "skipped"


class _Item:
    nodeid = "tests/test_x.py::test_y[k]"

    def __init__(self, record):
        self.user_properties = [(PROPERTY, record)]


@pytest.mark.parametrize("record, report, failed", [
    ({"ended_by": "expect"}, _Report("passed"), False),
    ({}, _Report("passed"), True),                          # ended without judging
    ({}, _Report("failed"), True),                          # a bare assert
    ({}, _Report("skipped", wasxfail="known"), True),       # xfail
    ({"ended_by": "precondition"}, _Report("skipped"), False),
])
def test_runtime_check_fails_other_endings(record, report, failed):
    plugin_records._check_ending(_Item({**new_record(), **record}), report)
    assert (report.outcome == "failed") is failed
    if failed:
        assert "expect()" in report.longrepr and not hasattr(report, "wasxfail")


def test_known_differences_shown_only_for_cases_the_run_ran():
    entries = known.load()
    assert known.ran(entries, []) == []
    assert known.ran(entries, [entries[0]["case"]]) == [entries[0]]


def test_a_kernels_vm_stops_after_its_last_test_in_the_process():
    """Not while the next test is on the same kernel; at once when it is on another kernel,
    on none (a harness test), or when there is no next test."""
    from types import SimpleNamespace
    from kregress.plugin.state import POOL

    stops = []
    config = SimpleNamespace(stash={POOL: SimpleNamespace(stop_live=lambda: stops.append(1))})

    def item(kernel):
        return SimpleNamespace(config=config, callspec=SimpleNamespace(params={"kernel_id": kernel} if kernel else {}))
    for this, following, stopped in [("k1", "k1", 0), ("k1", "k2", 1), ("k1", None, 1), (None, "k1", 0)]:
        stops.clear()
        plugin_records.pytest_runtest_teardown(item(this), item(following) if following else None)
        assert len(stops) == stopped, (this, following)
    stops.clear()
    plugin_records.pytest_runtest_teardown(item("k1"), None)
    assert stops == [1]
