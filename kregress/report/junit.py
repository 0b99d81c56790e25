"""JUnit XML from a results file, one <testsuite> per kernel, for CI test-report viewers.

Each <testcase> carries the kernel as <properties> (id, exact package version, upstream
version, uname -r, accelerator) and the observed behaviour, the same names the plugin
gives pytest's own --junitxml (see junit_properties).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from kregress.expectation.deviations import label
from kregress.report.matrix import build
from kregress.report.results import case_of
from kregress.report.results import report_status

# Characters XML 1.0 cannot carry (a stray control byte in a guest log, say).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value) -> str:
    return _INVALID_XML.sub("?", str(value))


def junit_properties(kernel_id: str, info: dict) -> list[tuple[str, str]]:
    """The per-testcase kernel properties, also used for pytest's --junitxml."""
    return [("kernel", kernel_id),
            ("kernel_package", info.get("package") or info.get("image") or ""),
            ("kernel_version", info.get("package_version") or info.get("upstream_version") or ""),
            ("kernel_upstream_version", info.get("upstream_version") or ""),
            ("kernel_uname_r", info.get("uname_r") or ""),
            ("kernel_arch", info.get("arch") or ""),
            ("kernel_source", info.get("source") or ""),
            ("accel", info.get("accel") or "")]


def _judging_properties(test: dict) -> list[tuple[str, str]]:
    """The stated rules the kernel breaks ("deviates from ...") and a precondition it ended on."""
    found = [("deviation", label(d)) for d in test.get("deviations") or ()]
    if test.get("precondition"):
        found.append(("precondition", json.dumps(test["precondition"], sort_keys=True)))
    return found


def from_results(doc: dict, matrix=None) -> str:
    """JUnit XML, one testsuite per kernel; give the Matrix when the caller has built it."""
    matrix = matrix or build(doc)
    root = ET.Element("testsuites", name="kregress")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for col in matrix.columns:
        cases = [(row, row.cells[col.id]) for row in matrix.rows if col.id in row.cells]
        suite = ET.SubElement(root, "testsuite", name=f"kregress[{col.id}]")
        counts = dict.fromkeys(totals, 0)
        seconds = 0.0
        props = ET.SubElement(suite, "properties")
        for name, value in junit_properties(col.id, col.info):
            ET.SubElement(props, "property", name=name, value=_text(value))
        for row, cell in cases:
            test = cell.test
            module, _, name = test["nodeid"].partition("::")
            case = ET.SubElement(suite, "testcase", classname=module.removesuffix(".py").replace("/", "."),
                                 name=_text(name), time=f"{float(test.get('seconds') or 0):.3f}")
            seconds += float(test.get("seconds") or 0)
            props = ET.SubElement(case, "properties")
            for key, value in junit_properties(col.id, col.info) + [
                    ("case", case_of(test["nodeid"], col.id)),
                    ("observed", json.dumps(cell.observed, sort_keys=True)),
                    ("expected", json.dumps(cell.expected, sort_keys=True))] + _judging_properties(test):
                ET.SubElement(props, "property", name=key, value=_text(value))
            counts["tests"] += 1
            longrepr = _text(test.get("longrepr") or "")
            first = longrepr.strip().splitlines()[-1] if longrepr.strip() else test.get("outcome", "")
            kind = report_status(test.get("outcome"))
            if kind == "fail":
                counts["failures"] += 1
                ET.SubElement(case, "failure", message=first[:500]).text = longrepr
            elif kind == "error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=first[:500]).text = longrepr
            elif kind == "skip":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=longrepr.strip()[:500])
            if test.get("dmesg"):
                ET.SubElement(case, "system-out").text = _text("\n".join(test["dmesg"]))
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{seconds:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
