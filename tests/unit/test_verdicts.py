"""The verdict table from results records: only what a test's expect() judged counts."""
import copy
import json
import re

from kregress.cli import main
from kregress.report.results import FORMAT, normalise
from kregress.report.verdicts import render, render_grid, sentence, table as table_of

from reportdata import four_kernels, record_of, shard

SOURCES_61_AS_510 = {"binary": "present", "changelog": "present", "version": "absent"}
RELIEF = "getsockopt_relief"
LSM = "lsm_cgroup"
BIG = "unknown_option_big_optlen"


def record(nodeid, kernel, outcome, expected=True, decided_by="binary", sources=SOURCES_61_AS_510,
           named=(RELIEF,), **extra):
    return {"nodeid": nodeid, "kernel": kernel, "outcome": outcome, "expectation_facts": list(named),
            "facts_used": {RELIEF: {"expected": expected, "decided_by": decided_by, "sources": sources}}, **extra}


def lsm_record(nodeid, kernel, outcome, state="has", precondition=None, named=(), **extra):
    used = {"expected": state == "has", "decided_by": "version", "sources": {"version": "present"}}
    if state != "has":
        used["state"] = state
    if state == "unusable":
        used["reason"] = "arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"
    entry = {"nodeid": nodeid, "kernel": kernel, "outcome": outcome, "expectation_facts": list(named),
             "facts_used": {LSM: used}, **extra}
    if precondition:
        entry["precondition"] = precondition
    return entry


def table(docs: list[dict]) -> list[dict]:
    """The table of documents written as older runs did (each test a copy of the decisions it
    used), read as `kregress verdicts` reads them."""
    return table_of([normalise({"format": FORMAT, **copy.deepcopy(doc)}) for doc in docs])


def rows_of(*tests) -> dict:
    return {(row["kernel"], row["fact"]): row for row in table([{"kernels": {}, "tests": list(tests)}])}


def test_agreeing_and_contradicting_kernels(tmp_path):
    doc = {"kernels": {"a": {"package_version": "1"}}, "tests": [
        record("t1[a]", "a", "passed"), record("t2[a]", "a", "passed"),
        record("t1[b]", "b", "passed"), record("t2[b]", "b", "failed"),
        {"nodeid": "unit", "outcome": "passed"}]}
    rows = {row["kernel"]: row for row in table([doc])}
    assert rows["a"]["verdict"] == "agree" and rows["a"]["behaves"] == "with" and rows["a"]["tests"] == 2
    assert sentence(rows["a"]) == "binary says has it; changelog says has it; version says lacks it; behaves with it"
    assert rows["b"]["verdict"] == "CONTRADICTION" and rows["b"]["against"] == ["t2[b]"]
    assert rows["b"]["behaves"] == "without"
    text = render(list(rows.values()))
    assert "contradicted by t2[b]" in text
    assert text.splitlines()[-1] == ("verdicts: 2 kernel/fact pair(s) over 2 kernel(s): 1 agree, 1 CONTRADICTION, "
                                     "0 IN QUESTION, 0 precondition failed, 0 not judged")
    # the command: exit 1 on a contradiction, JSON beside the text; a fleet is many files
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"format": FORMAT, "tests": doc["tests"][:2]}))
    second.write_text(json.dumps({"format": FORMAT, "tests": doc["tests"][2:]}))
    (tmp_path / "other.json").write_text(json.dumps({"tests": []}))
    assert main(["verdicts", str(tmp_path / "other.json")]) == 2     # not a results file: named, not judged
    assert main(["verdicts", str(first), "--json", str(tmp_path / "v.json")]) == 0
    assert main(["verdicts", str(first), str(second)]) == 1
    assert json.loads((tmp_path / "v.json").read_text())[0]["verdict"] == "agree"


def test_only_tests_whose_expectation_named_the_fact_and_ended_in_pass_or_fail_count():
    rows = rows_of(
        record("ok[a]", "a", "passed"),
        record("skip[a]", "a", "skipped", named=()),                        # an unrelated skip
        record("early[a]", "a", "failed", named=()),                        # failed before expect()
        record("lost[a]", "a", "error", harness_error="guest-lost"),        # the harness's fault
        record("splat[a]", "a", "error"),                                   # teardown: not the expectation
        record("other[a]", "a", "failed", named=("lsm_cgroup",)))           # judged another fact
    row = rows[("a", RELIEF)]
    assert (row["verdict"], row["tests"], row["agree"]) == ("agree", 1, ["ok[a]"])
    assert {e["nodeid"]: e["why"] for e in row["not_counted"]} == {
        "skip[a]": "skipped before its expectation", "early[a]": "failed before its expectation",
        "lost[a]": "harness error (guest-lost)", "splat[a]": "error",
        "other[a]": "failed, its expectation does not name it"}
    assert "not counted: 1 skipped before its expectation, 1 failed before its expectation, " \
           "1 harness error (guest-lost), 1 error, 1 failed, its expectation does not name it" in render([row])
    # nothing judged at all: said so, never "agree"
    lone = rows_of(record("lost[b]", "b", "error", harness_error="guest-panic"))[("b", RELIEF)]
    assert (lone["verdict"], lone["behaves"], lone["tests"]) == ("not judged", None, 0)
    assert sentence(lone).endswith("no test judged it")


def test_a_failure_naming_two_facts_puts_both_in_question():
    """The real run's debian-6.12 record of test_unknown_option_big_optlen, made to fail: its
    expectation came from the relief fix and the retval rework together."""
    doc = shard(four_kernels(), "debian-6.12")
    record_of(doc, BIG, "debian-6.12").update(outcome="failed", expected={"errno": "EFAULT"})
    rows = {(r["kernel"], r["fact"]): r for r in table([doc])}
    relief, retval = rows[("debian-6.12", RELIEF)], rows[("debian-6.12", "getsockopt_retval_in_run_ctx")]
    assert relief["verdict"] == retval["verdict"] == "IN QUESTION"
    assert not relief["against"] and not retval["against"]
    assert relief["in_question"] == [{"nodeid": f"tests/test_getsockopt_efault.py::test_{BIG}[debian-6.12]",
                                      "facts": [RELIEF, "getsockopt_retval_in_run_ctx"]}]
    assert relief["agree"]          # the cases that named the relief alone still passed
    assert sentence(relief).endswith("fails expectations that also depend on getsockopt_retval_in_run_ctx: "
                                     "facts in question")
    text = render(list(rows.values()))
    assert (f"in question (getsockopt_relief, getsockopt_retval_in_run_ctx): failed "
            f"tests/test_getsockopt_efault.py::test_{BIG}[debian-6.12]") in text
    assert "CONTRADICTION" not in text.replace("0 CONTRADICTION", "")
    grid = render_grid(list(rows.values()))
    assert "has: IN QUESTION (with getsockopt_retval_in_run_ctx)" in grid
    assert "has: IN QUESTION (with getsockopt_relief)" in grid


def test_a_failed_precondition_is_its_own_state_never_behaves_without(tmp_path):
    """debian-6.12-nobpflsm: the facts say lsm_cgroup is there, the bpf LSM is not active, the
    tests fail on purpose; the table says so instead of contradicting the fact."""
    inactive = {"name": "bpf LSM active", "met": False, "facts": [LSM],
                "reason": "active LSMs: capability,yama; boot with lsm=capability,yama,bpf"}
    refused = {"name": "lsm_cgroup supported", "met": False, "facts": [LSM], "reason": "attach refused: EINVAL"}
    rows = rows_of(
        lsm_record("prio[nobpflsm]", "nobpflsm", "failed", precondition=inactive),
        lsm_record("deny[nobpflsm]", "nobpflsm", "failed", precondition=inactive),
        lsm_record("prio[old]", "old", "skipped", state="lacks", precondition=refused),
        lsm_record("prio[arm]", "arm", "skipped", state="unusable", precondition=refused),
        lsm_record("prio[new]", "new", "passed", named=(LSM,)))
    nobpf = rows[("nobpflsm", LSM)]
    assert nobpf["verdict"] == "precondition failed: bpf LSM active" and nobpf["behaves"] is None
    assert not nobpf["against"] and [p["nodeid"] for p in nobpf["precondition"]] == ["prio[nobpflsm]", "deny[nobpflsm]"]
    assert sentence(nobpf).endswith("active LSMs: capability,yama; boot with lsm=capability,yama,bpf")
    # a named skip where the facts say lacking or unusable: the kernel refused what it lacks
    assert (rows[("old", LSM)]["verdict"], rows[("old", LSM)]["behaves"]) == ("agree", "without")
    arm = rows[("arm", LSM)]
    assert (arm["verdict"], arm["state"]) == ("agree", "unusable")
    assert sentence(arm).endswith("unusable here (arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)")
    assert rows[("new", LSM)]["verdict"] == "agree"
    grid = render_grid(list(rows.values())).splitlines()
    assert grid[0].split() == ["kernel", LSM]
    assert [line.split(None, 1) for line in grid[1:5]] == [
        ["arm", "unusable: agree"], ["new", "has: agree"],
        ["nobpflsm", "has: precondition failed: bpf LSM active"], ["old", "lacks: agree"]]
    assert "unusable: arm lsm_cgroup: arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS" in grid
    # a precondition failure is not a contradiction: the command exits 0 (the tests failed already)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"format": FORMAT, "tests": [lsm_record("p[n]", "n", "failed", precondition=inactive)]}))
    assert main(["verdicts", str(path), "--grid"]) == 0
    # a fact the test consulted beside the precondition's: not judged, and why
    shim = lsm_record("prio[n]", "n", "failed", precondition=inactive)
    shim["facts_used"]["lsm_cgroup_current_task_shim"] = shim["facts_used"][LSM]
    row = rows_of(shim)[("n", "lsm_cgroup_current_task_shim")]
    assert (row["verdict"], row["not_counted"][0]["why"]) == ("not judged", "failed on precondition 'bpf LSM active'")
    # a skip on a precondition the facts say should hold is not counted, nor agreeing
    odd = rows_of(lsm_record("p[x]", "x", "skipped", precondition=inactive))[("x", LSM)]
    assert odd["verdict"] == "not judged"
    assert odd["not_counted"][0]["why"] == "skipped on precondition 'bpf LSM active'"


def test_a_precondition_that_holds_where_the_facts_say_lacks_contradicts_them():
    accepted = {"name": "lsm_cgroup programs load and attach", "met": True, "facts": [LSM], "reason": "attached"}
    row = rows_of(lsm_record("p[old]", "old", "failed", state="lacks", precondition=accepted))[("old", LSM)]
    assert (row["verdict"], row["against"], row["behaves"]) == ("CONTRADICTION", ["p[old]"], "with")
    # a precondition not calibrated (a configuration no rule was calibrated for) judges nothing
    race = {"name": "race rule calibrated for tcg with 2 vCPU(s)", "met": False, "calibrated": False,
            "facts": [LSM], "reason": "0 EFAULTs in 900 calls"}
    row = rows_of(lsm_record("r[old]", "old", "skipped", state="lacks", precondition=race))[("old", LSM)]
    assert row["verdict"] == "not judged"
    older = rows_of(lsm_record("r[old]", "old", "skipped", state="lacks",         # as older files said it
                               precondition={**{k: v for k, v in race.items() if k != "calibrated"}, "optional": True}))
    assert older[("old", LSM)]["not_counted"] == row["not_counted"]
    assert row["not_counted"] == [{"nodeid": "r[old]", "why": "skipped: no verdict on precondition "
                                                             "'race rule calibrated for tcg with 2 vCPU(s)'"}]


def test_grid_over_a_real_run_and_the_command(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(four_kernels()))
    assert main(["verdicts", str(path), "--grid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kernel", RELIEF, "getsockopt_retval_in_run_ctx"]
    assert re.split(r"\s\s+", lines[1]) == ["debian-5.10 (5.10.223-1)", "lacks: agree", "lacks: agree"]
    assert re.split(r"\s\s+", lines[2]) == ["debian-6.1 (6.1.176-1)", "has: agree", "has: agree"]
    assert [line.split()[0] for line in lines[1:5]] == ["debian-5.10", "debian-6.1", "debian-6.12", "debian-backports"]
    assert lines[-1] == ("verdicts: 8 kernel/fact pair(s) over 4 kernel(s): 8 agree, 0 CONTRADICTION, "
                         "0 IN QUESTION, 0 precondition failed, 0 not judged")


def test_report_html_shows_the_grid_before_the_line_table():
    from html.parser import HTMLParser
    from kregress.report.matrix import build
    from kregress.report.write import render_html

    doc = four_kernels()
    record_of(doc, "setsockopt_ip_tos_optlen_4097", "debian-6.1").update(outcome="failed")
    rows = table([doc])
    page = render_html(build(doc), verdict_rows=rows)

    class Cells(HTMLParser):
        cells, titles, inside = {}, {}, None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "td" and "data-fact" in attrs:
                self.inside = (attrs["data-verdict-kernel"], attrs["data-fact"], attrs["class"],
                               f'{attrs.get("data-state")}: {attrs.get("data-verdict")}')
                self.titles[self.inside[:2]] = attrs.get("title", "")

        def handle_data(self, data):
            if self.inside:
                self.cells[self.inside] = data
                self.inside = None

    parser = Cells()
    parser.feed(page)
    # compact cells: the state by symbol, the verdict by colour (class) and mark; both in words
    # as attributes, the reason as the title
    assert parser.cells[("debian-6.1", RELIEF, "v contradiction", "has: CONTRADICTION")] == "●!"
    assert parser.cells[("debian-5.10", RELIEF, "v agree", "lacks: agree")] == "○"
    assert "CONTRADICTION" in parser.titles[("debian-6.1", RELIEF)]
    assert "behaves without it" in parser.titles[("debian-6.1", RELIEF)]
    assert len(parser.cells) == 8
    assert page.index('id="run-header"') < page.index('id="verdict-grid"') < page.index('id="verdicts"') \
        < page.index('id="matrix"')
    assert page.index('<details id="verdict-pairs">') < page.index('id="verdicts"')     # the per-pair list, folded


def test_verdict_lines_say_which_witness_could_not_answer():
    doc = {"kernels": {"own-arm64": {"evidence_coverage": {
        "binary": "binary: payload format not recognised (not ELF, x86 bzImage, ...)", "config": "answered",
        "changelog": "changelog: no package changelog beside the image"}}},
        "tests": [record("t::a", "own-arm64", "passed", decided_by="version", sources={"version": "present"})]}
    row, = table([doc])
    assert sentence(row) == ("version says has it; binary: payload format not recognised (not ELF, x86 bzImage, "
                             "...); changelog: no package changelog beside the image; behaves with it")


def test_verdicts_lists_unchecked_programs_and_exits_non_zero(tmp_path, capsys):
    doc = four_kernels()
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(doc))
    assert main(["verdicts", str(clean)]) == 0
    doc["tests"].append({"nodeid": "tests/test_your_programs.py::test_programs[debian-6.12]", "kernel": "debian-6.12",
                         "outcome": "failed", "extras": {"check_progs": {
                             "object": "router.bpf.o", "kernel": "debian-6.12", "status": "not checked",
                             "programs": [], "not_checked": [{"program": "router", "section": "sockops",
                                                              "why": "not loaded"}]}}})
    unchecked = tmp_path / "unchecked.json"
    unchecked.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["verdicts", str(unchecked)]) == 1
    assert "not checked: router (sockops) of router.bpf.o on debian-6.12: not loaded" in capsys.readouterr().out


def test_kernels_that_carry_a_known_defect_are_marked():
    def row(kernel, fact, state):
        return {"kernel": kernel, "fact": fact, "state": state}
    rows = [row("debian-6.1", "lsm_cgroup", "has"), row("debian-6.1", "bpf_link_put_deferred", "lacks"),
            row("debian-6.1", "lsm_cgroup_shim_not_revived", "has"),
            row("debian-6.12", "lsm_cgroup", "has"), row("debian-6.12", "bpf_link_put_deferred", "has"),
            row("debian-6.12", "lsm_cgroup_shim_not_revived", "has"),
            row("debian-6.1-arm64", "lsm_cgroup", "unusable"), row("debian-6.1-arm64", "bpf_link_put_deferred", "has"),
            row("debian-6.1-arm64", "lsm_cgroup_shim_not_revived", "has")]
    from kregress.report.verdicts import defect_lines, known_defects
    assert known_defects(rows) == [("debian-6.12", "bpf_link_put_deferred")]
    assert defect_lines(rows)[0].startswith("known defect: debian-6.12 carries bpf_link_put_deferred's: with "
                                            "lsm_cgroup_shim_not_revived")


def test_a_users_program_with_findings_puts_no_fact_in_question():
    """check-progs on a user's object fails for the program's findings; the facts it names
    explain them and are not judged by it (a fixture of ours, judged by the facts, still counts)."""
    used = {"getsockopt_relief": {"expected": True, "decided_by": "binary", "sources": {"binary": "present"}},
            "sockopt_page_cap": {"expected": True, "decided_by": "binary", "sources": {"binary": "present"}}}
    users = {"nodeid": "your_programs.py::test_programs[prog.bpf.o-k]", "kernel": "k", "outcome": "failed",
             "expectation_facts": list(used), "facts_used": used}
    ours = {**users, "nodeid": "tests/test_check_progs_fixtures.py::test_fixture[k]"}
    [first, second] = table([{"kernels": {"k": {}}, "tests": [users]}])
    assert (first["verdict"], second["verdict"]) == ("not judged", "not judged")
    assert "judges the program" in first["not_counted"][0]["why"]
    assert {row["verdict"] for row in table([{"kernels": {"k": {}}, "tests": [users, ours]}])} == {"IN QUESTION"}
