"""The behaviour matrix, its text and HTML renderings, and the files `kregress report` writes."""
import re

import pytest

from kregress.cli import main
from kregress.expectation.behaviour import behaviour_text
from kregress.report.matrix import build
from kregress.report.results import case_of
from kregress.report.write import render_html, render_text, write_reports

from reportdata import RELIEF_COMMIT, four_kernels, record_of, write

KERNELS = ["debian-5.10", "debian-6.1", "debian-6.12", "debian-backports"]
TOS = "tests/test_getsockopt_efault.py::test_setsockopt_ip_tos_optlen_4097"
DMESG = "tests/test_getsockopt_efault.py::test_dmesg_line_exactly_with_fix"


@pytest.mark.parametrize("nodeid, kernel, case", [
    ("t.py::test_a[debian-6.1]", "debian-6.1", "t.py::test_a"),
    ("t.py::test_a[debian-6.1-a_first]", "debian-6.1", "t.py::test_a[a_first]"),
    ("t.py::test_a[x-debian-6.1]", "debian-6.1", "t.py::test_a[x]"),
    ("t.py::test_a[x-debian-6.1-y]", "debian-6.1", "t.py::test_a[x-y]"),
    ("t.py::test_a", "debian-6.1", "t.py::test_a"),
])
def test_case_drops_only_the_kernel_parameter(nodeid, kernel, case):
    assert case_of(nodeid, kernel) == case


def test_cell_text_is_short():
    assert behaviour_text({"errno": "EFAULT"}) == "EFAULT"
    assert behaviour_text({"errno": "OK", "tos": 16}) == "OK tos=16"
    assert behaviour_text({"prio": 7, "hdr_opt_writes": 0}) == "prio=7 hdr_opt_writes=0"
    assert behaviour_text({"getsockopt_line": False}) == "getsockopt_line=false"


def test_real_run_matrix():
    matrix = build(four_kernels())
    assert [c.id for c in matrix.columns] == KERNELS
    assert len(matrix.rows) == 7 and all(len(r.cells) == 4 for r in matrix.rows)
    tos = next(r for r in matrix.rows if r.case == TOS)
    assert [tos.cells[k].text for k in KERNELS] == ["EFAULT tos=0", "OK tos=16", "OK tos=16", "OK tos=16"]
    # 5.10 passes while behaving unlike the newest kernel: an expected difference.
    assert [tos.cells[k].status for k in KERNELS] == ["expected-diff", "pass", "pass", "pass"]
    change = tos.cells["debian-6.1"].change
    assert change.since == "debian-5.10" and change.facts == ("getsockopt_relief",)
    assert change.label == f"getsockopt_relief {RELIEF_COMMIT}"
    assert tos.cells["debian-6.12"].change is None
    # No `why` in the dmesg test's record: the test-to-fact table explains it.
    dmesg = next(r for r in matrix.rows if r.case == DMESG)
    assert dmesg.cells["debian-6.1"].change.facts == ("getsockopt_relief",)
    assert matrix.unexplained == 0 and matrix.stale == []
    assert matrix.counts() == {"expected-diff": 4, "pass": 24}


def test_columns_follow_upstream_version_not_file_order():
    doc = four_kernels()
    doc["kernels"] = dict(reversed(list(doc["kernels"].items())))
    doc["kernels"]["debian-5.10"]["upstream_version"] = None     # a local image without version
    assert [c.id for c in build(doc).columns] == KERNELS[1:] + ["debian-5.10"]


def test_change_no_fact_explains_is_unexplained():
    doc = four_kernels()
    for kernel in ("debian-6.12",):
        test = record_of(doc, "workaround_resets_optlen", kernel)
        test.update(outcome="failed", observed={"errno": "EFAULT"}, longrepr="AssertionError: expected ENOPROTOOPT")
    matrix = build(doc)
    row = next(r for r in matrix.rows if r.case.endswith("test_workaround_resets_optlen"))
    assert row.cells["debian-6.12"].status == "fail"
    assert not row.cells["debian-6.12"].change.explained
    assert row.cells["debian-backports"].change.label == "unexplained change"      # and back again
    assert matrix.unexplained == 2
    assert any(line.startswith("  tests/test_getsockopt_efault.py::test_workaround_resets_optlen: "
                               "debian-6.1 -> debian-6.12: ENOPROTOOPT -> EFAULT: unexplained change")
               for line in render_text(matrix))


def test_redundant_kernels_toml_override_is_stale():
    doc = four_kernels()
    doc["kernels"]["debian-6.1"]["facts"] = {"getsockopt_relief": True}
    del doc["kernels"]["debian-6.1"]["fact_decisions"]      # a record with no decision: decided from it
    stale = build(doc).stale
    assert len(stale) == 1
    assert stale[0].startswith("kernels.toml: debian-6.1 facts.getsockopt_relief = true is stale: "
                               "6.1.176 carries 29ebbba7d461")


def test_override_the_kernel_no_longer_needs_is_stale():
    # Someone stated that 6.1 lacks the fix; it behaves like 6.12, as its version says.
    doc = four_kernels()
    doc["kernels"]["debian-6.1"]["facts"] = {"getsockopt_relief": False}
    del doc["kernels"]["debian-6.1"]["fact_decisions"]      # a record with no decision: decided from it
    test = record_of(doc, "setsockopt_ip_tos_optlen_4097", "debian-6.1")
    test.update(outcome="failed", expected={"errno": "EFAULT", "tos": 0})
    stale = build(doc).stale
    assert any("debian-6.1 facts.getsockopt_relief = false looks stale: it behaves as its version 6.1.176 "
               f"predicts (has getsockopt_relief {RELIEF_COMMIT}) in {TOS}" in s for s in stale), stale


def test_expected_difference_that_disappeared_is_stale():
    # 5.10 was expected to EFAULT (no fix) but behaves like the newest kernel: a backport.
    doc = four_kernels()
    test = record_of(doc, "setsockopt_ip_tos_optlen_4097", "debian-5.10")
    test.update(outcome="failed", observed={"errno": "OK", "tos": 16})
    matrix = build(doc)
    cell = next(r for r in matrix.rows if r.case == TOS).cells["debian-5.10"]
    assert cell.stale.startswith("stale expected difference: expected EFAULT tos=0 unlike debian-backports "
                                 f"(getsockopt_relief {RELIEF_COMMIT}), but behaves the same (OK tos=16)")
    assert matrix.stale == [f"{TOS} on debian-5.10: {cell.stale}"]
    assert f"STALE: {TOS} on debian-5.10: stale expected difference" in "\n".join(render_text(matrix))


def test_text_matrix_has_versions_cells_and_changes():
    text = "\n".join(render_text(build(four_kernels())))
    for expected in ("debian-5.10", "5.10.223-1", "7.3.4-1~bpo13+1", "tcg", "~ EFAULT tos=0", "+*OK tos=16",
                     f"{TOS}: debian-5.10 -> debian-6.1: EFAULT tos=0 -> OK tos=16: getsockopt_relief {RELIEF_COMMIT}"):
        assert expected in text, expected


def test_html_is_self_contained_with_a_cell_per_kernel_and_case():
    html = render_html(build(four_kernels()))
    assert not re.search(r"<link|<img|\bsrc=|@import|url\(", html), "the page must open without a network"
    cells = re.findall(r'<td class="cell ([a-z-]+)" data-kernel="([^"]+)" data-case="([^"]+)"', html)
    assert len(cells) == 28
    assert ("expected-diff", "debian-5.10", TOS) in cells
    for header in ("5.10.223-1", "uname -r 6.1.0-50-amd64", "accel tcg", "7.3.4-1~bpo13+1"):
        assert header in html


def test_report_command_writes_the_three_files(tmp_path, capsys):
    results = write(tmp_path / "results.json", four_kernels())
    assert main(["report", str(results)]) == 0
    out = capsys.readouterr().out
    assert f"getsockopt_relief {RELIEF_COMMIT}" in out
    for name in ("report.html", "kcidb.json", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0 and f"wrote {tmp_path / name}" in out


def test_reports_skip_a_file_pytest_writes_itself(tmp_path):
    results = write(tmp_path / "results.json", four_kernels())
    _, written = write_reports(results, skip=("junit.xml",))
    assert set(written) == {"report.html", "kcidb.json"} and not (tmp_path / "junit.xml").exists()


def test_old_results_read_the_overrides_from_kernels_toml(tmp_path):
    doc = four_kernels()
    for info in doc["kernels"].values():
        del info["facts"]                    # written before runs recorded them
    kernels_toml = tmp_path / "kernels.toml"
    kernels_toml.write_text('[[kernel]]\nid = "debian-6.1"\nsuite = "bookworm"\n'
                            'facts = { getsockopt_relief = true }\n')
    doc["kernels_file"] = str(kernels_toml)
    assert [s.split(" is stale")[0] for s in build(doc).stale] == [
        "kernels.toml: debian-6.1 facts.getsockopt_relief = true"]
    doc["kernels_file"] = str(tmp_path / "gone.toml")
    assert build(doc).stale == []


def test_the_build_root_the_kernels_programs_came_from_is_shown_once():
    doc = four_kernels()
    root = {"suite": "bookworm", "digest": "7dd31cac6298c3e397b3",
            "versions": {"clang-14": "1:14.0.6-12", "libbpf-dev": "1:1.1.2-0+deb12u1", "libelf-dev": "0.188-2.1"}}
    for info in doc["kernels"].values():
        info["build_root"] = dict(root)
    html = render_html(build(doc))
    assert html.count('<details class="buildroot">') == 1
    assert "7dd31cac6298c3e397b3" in html and "clang-14 1:14.0.6-12, libbpf-dev 1:1.1.2-0+deb12u1" in html
    assert "kernels: " + ", ".join(sorted(doc["kernels"])) in html
    assert '<details class="buildroot">' not in render_html(build(four_kernels()))    # older results: none
