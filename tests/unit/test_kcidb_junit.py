"""The machine-readable outputs: KCIDB JSON, checked with KCIDB's own kcidb-io library, and
JUnit XML with the kernel on every testcase (ours, and pytest's --junitxml via the plugin)."""
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import kcidb_io
import pytest

from kregress.report import kcidb, junit
from kregress.plugin.records import _flatten_properties
from kregress.plugin.state import PROPERTY

from reportdata import RELIEF_COMMIT, four_kernels, record_of

SCHEMA = kcidb_io.schema.LATEST


def with_every_outcome() -> dict:
    doc = four_kernels()
    record_of(doc, "workaround_resets_optlen", "debian-6.12").update(
        outcome="failed", observed={"errno": "EFAULT"}, longrepr="AssertionError: expected ENOPROTOOPT, got EFAULT")
    record_of(doc, "private_option_answered_by_program", "debian-6.12").update(
        outcome="error", observed={}, longrepr="HARNESS: guest lost\x00")
    record_of(doc, "unknown_option_optlen_page_size", "debian-6.12").update(
        outcome="skipped", longrepr="no such option here")
    doc["kernels"]["debian-cloud"] = {"id": "debian-cloud", "error": "debian-cloud: no 9p in the kernel"}
    return doc


def test_kcidb_from_the_real_run_is_valid():
    data = kcidb.from_results(four_kernels())
    SCHEMA.validate(data)
    assert SCHEMA.is_valid(data)
    assert len(data["checkouts"]) == 4 and len(data["builds"]) == 4
    assert len(data["tests"]) == 4 + 28                    # a boot test per kernel, then the cases
    tos = next(t for t in data["tests"] if t["path"] == "kregress.getsockopt_efault.setsockopt_ip_tos_optlen_4097"
               and t["misc"]["kernel"] == "debian-6.1")
    assert tos["status"] == "PASS" and tos["comment"] == "OK tos=16"
    assert "bpf setsockopt: ignoring program buffer with optlen=4097" in tos["log_excerpt"]
    assert tos["environment"]["misc"]["accel"] == "tcg"
    relief = tos["misc"]["facts"]["getsockopt_relief"]
    assert relief["commit"] == RELIEF_COMMIT and relief["expected"] is True and relief["decided_by"] == "binary"
    build = next(b for b in data["builds"] if b["id"] == tos["build_id"])
    assert build["id"] == "kregress:debian:linux-image-6.1.0-50-amd64=6.1.176-1"
    assert next(c for c in data["checkouts"] if c["id"] == build["checkout_id"])["misc"]["package_version"] == "6.1.176-1"


def test_kcidb_statuses_and_logs():
    data = kcidb.from_results(with_every_outcome())
    SCHEMA.validate(data)
    status = {(t["misc"]["kernel"], t["path"].rsplit(".", 1)[-1]): t for t in data["tests"]}
    assert status["debian-6.12", "workaround_resets_optlen"]["status"] == "FAIL"
    assert "expected ENOPROTOOPT, got EFAULT" in status["debian-6.12", "workaround_resets_optlen"]["log_excerpt"]
    assert status["debian-6.12", "private_option_answered_by_program"]["status"] == "ERROR"
    assert status["debian-6.12", "unknown_option_optlen_page_size"]["status"] == "SKIP"
    assert status["debian-cloud", "boot"]["status"] == "FAIL"
    assert "no 9p" in status["debian-cloud", "boot"]["log_excerpt"]


def test_kcidb_rejects_what_the_schema_rejects():
    # The check is real: kcidb-io refuses a status outside its enum.
    data = kcidb.from_results(four_kernels())
    data["tests"][0]["status"] = "passed"
    assert not SCHEMA.is_valid(data)


@pytest.mark.parametrize("case, path", [
    ("tests/test_sockops_flags.py::test_prog_b_clear_silences_prog_a[a_first]",
     "kregress.sockops_flags.prog_b_clear_silences_prog_a.a_first"),
    ("tests/test_x.py::test_y[1.5-z]", "kregress.x.y.1_5.z"),
])
def test_kcidb_paths(case, path):
    assert kcidb.test_path(case) == path


def test_junit_has_the_kernel_on_every_testcase():
    root = ET.fromstring(junit.from_results(with_every_outcome()))
    assert root.get("tests") == "28" and root.get("failures") == "1" and root.get("errors") == "1"
    cases = root.findall("testsuite/testcase")
    assert len(cases) == 28
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
        assert {"kernel", "kernel_version", "kernel_uname_r", "accel"} <= set(props)
    props_of = {(c.get("name"), p.get("name")): p.get("value")
                for c in cases for p in c.findall("properties/property")}
    name = "test_setsockopt_ip_tos_optlen_4097[debian-5.10]"
    assert props_of[name, "kernel_version"] == "5.10.223-1"
    assert props_of[name, "kernel_uname_r"] == "5.10.0-32-amd64"
    assert props_of[name, "accel"] == "tcg"
    failed = next(c for c in cases if c.get("name") == "test_workaround_resets_optlen[debian-6.12]")
    assert "got EFAULT" in failed.find("failure").text
    assert next(c for c in cases if "unknown_option_optlen_page_size[debian-6.12]" in c.get("name")).find("skipped") is not None


def test_pytest_junitxml_gets_flat_kernel_properties():
    doc = four_kernels()
    info = doc["kernels"]["debian-6.1"]
    report = SimpleNamespace(user_properties=[("mine", 1), (PROPERTY, {})])
    _flatten_properties(report, {"kernel": "debian-6.1", "observed": {"errno": "OK"}}, info)
    props = dict(report.user_properties)
    assert PROPERTY not in props and props["mine"] == 1
    assert (props["kernel"], props["kernel_version"], props["accel"]) == ("debian-6.1", "6.1.176-1", "tcg")
    assert props["observed"] == '{"errno": "OK"}'


def test_kcidb_architecture_and_source_come_from_the_record():
    """arm64 kernels reach KCIDB as arm64, and a user's .deb or tree is not labelled Debian's."""
    doc = four_kernels()
    doc["kernels"]["debian-6.12"]["arch"] = "arm64"
    doc["kernels"]["debian-6.1"]["arch"] = "x86_64"
    user_deb = doc["kernels"]["debian-5.10"]
    user_deb.update(source="deb:linux-image-6.8.0-31-generic_6.8.0-31.31_amd64.deb", arch="x86_64",
                    package="linux-image-6.8.0-31-generic", package_version="6.8.0-31.31")
    tree = doc["kernels"]["debian-backports"]
    tree.update(source="tree:/src/linux", package=None, package_version=None, arch="x86_64",
                tree_build={"commit": "0123456789abcdef0123"})
    data = kcidb.from_results(doc)
    SCHEMA.validate(data)
    build_of = {b["misc"].get("uname_r"): b for b in data["builds"]}
    arch = {t["misc"]["kernel"]: next(b for b in data["builds"] if b["id"] == t["build_id"]).get("architecture")
            for t in data["tests"]}
    assert arch == {"debian-6.12": "arm64", "debian-6.1": "x86_64", "debian-5.10": "x86_64",
                    "debian-backports": "x86_64"}
    ids = {b["id"] for b in data["builds"]}
    assert "kregress:deb:linux-image-6.8.0-31-generic=6.8.0-31.31" in ids
    assert any(i.startswith("kregress:tree:0123456789abcdef0123:") for i in ids)
    assert not any(i.startswith("kregress:debian:linux-image-6.8") for i in ids)
    assert len(build_of) == 4


def test_kcidb_says_no_architecture_where_the_record_has_none():
    data = kcidb.from_results(four_kernels())        # recorded before kernels carried their arch
    SCHEMA.validate(data)
    assert all("architecture" not in b for b in data["builds"])


def test_junit_carries_the_kernel_arch_and_source():
    doc = four_kernels()
    doc["kernels"]["debian-6.12"]["arch"] = "arm64"
    root = ET.fromstring(junit.from_results(doc))
    props = {(c.get("name"), p.get("name")): p.get("value") for c in root.findall("testsuite/testcase")
             for p in c.findall("properties/property")}
    name = next(n for n, _ in props if n.endswith("[debian-6.12]"))
    assert props[name, "kernel_arch"] == "arm64"
    assert props[name, "kernel_source"] == "debian:trixie/linux-image-amd64"


def test_an_unchecked_program_is_never_pass_in_kcidb_or_junit():
    doc = four_kernels()
    entry = {"nodeid": "tests/test_your_programs.py::test_programs[debian-6.12]", "kernel": "debian-6.12",
             "outcome": "failed", "observed": {"status": "not checked"}, "expected": {"status": "clean"},
             "longrepr": "router (sockops) on debian-6.12: NOT CHECKED",
             "extras": {"check_progs": {"status": "not checked", "object": "o", "kernel": "debian-6.12",
                                        "programs": [], "not_checked": [{"program": "router", "section": "sockops",
                                                                         "why": "w"}]}}}
    doc["tests"].append(entry)
    data = kcidb.from_results(doc)
    SCHEMA.validate(data)
    (test,) = [t for t in data["tests"] if t["misc"].get("nodeid") == entry["nodeid"]]
    assert test["status"] == "MISS"
    root = ET.fromstring(junit.from_results(doc))
    (case,) = [c for c in root.findall("testsuite/testcase") if c.get("name") == "test_programs[debian-6.12]"]
    assert case.find("failure") is not None
    # our fixture test that expects "not checked" and gets it passes, and is a PASS
    fixture = {**entry, "nodeid": "tests/test_check_progs_unchecked.py::test_unchecked_object_is_never_clean"
               "[debian-6.12-sockops]", "outcome": "passed"}
    doc["tests"].append(fixture)
    (test,) = [t for t in kcidb.from_results(doc)["tests"] if t["misc"].get("nodeid") == fixture["nodeid"]]
    assert test["status"] == "PASS"
