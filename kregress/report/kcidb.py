"""KCIDB (KernelCI's common reporting database) JSON from a results file.

One checkout per kernel source (a Debian source version, or a local image), one build per
binary kernel (the Debian package we booted; nothing is compiled here), and per kernel a
"boot" test plus one test per scenario case. Ids of checkouts and builds are stable across
runs, so submissions from many runs of the same kernel join up; test ids carry the run.
The output is validated in the unit tests with kcidb-io, the KCIDB project's own library.
"""
from __future__ import annotations

import re

from kregress.kernels.decision import recorded
from kregress.kernels.facts import FACTS
from kregress.expectation.behaviour import behaviour_text
from kregress.expectation.deviations import label
from kregress.report.results import case_of, report_status, source_of, source_text
from kregress.check_progs.findings import users_check
from kregress.expectation.record import extra
from kregress.arch import ARCHES
from kregress.kernels.sources import debian as debian_source, debs as debs_source, image as image_source, \
    tree as tree_source

ORIGIN = "kregress"
SCHEMA_VERSION = {"major": 5, "minor": 3}
STATUS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}
EXCERPT_MAX = 16384                 # the schema's limit for log_excerpt


def _decision_json(test: dict, info: dict, name: str) -> dict:
    """The kernel's decision about a fact the test used, as its record has it."""
    decided = recorded(info, name) if name in (test.get("facts_used") or ()) else None
    return decided.to_json() if decided else {}


def _id(*parts: str) -> str:
    return f"{ORIGIN}:" + ":".join(parts)


def _clean(text: str) -> str:
    return text.replace("\0", "")


def _excerpt(text: str) -> str:
    text = _clean(text)
    return text if len(text) <= EXCERPT_MAX else "...\n" + text[-(EXCERPT_MAX - 4):]


def _segment(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text) or "_"


def test_path(case: str) -> str:
    """tests/test_x.py::test_y[a_first] -> kregress.x.y.a_first (KCIDB paths are dotted)."""
    module, _, test = case.partition("::")
    stem = module.rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    name, _, params = test.partition("[")
    segments = [ORIGIN, stem, name.removeprefix("test_")]
    segments += [p for p in params.rstrip("]").split("-") if p] if params else []
    return ".".join(_segment(s) for s in segments)


def _source_ids(kernel_id: str, info: dict) -> tuple[str, str]:
    """Checkout and build ids from the provenance the kernel's source recorded
    (kregress.kernels.sources: a Debian package joins across runs and users by its version, a
    user's .deb by its package and version, a tree by its commit); a record without one (older
    kregress) is the run's own."""
    provenance = info.get("provenance") or {}
    if provenance.get("checkout") and provenance.get("build"):
        return _id(provenance["checkout"]), _id(provenance["build"])
    return _recorded_before_provenance(kernel_id, info)


def _recorded_before_provenance(kernel_id: str, info: dict) -> tuple[str, str]:
    """The same ids for a results file of a kregress before provenance, from its source line,
    by the sources' own rules."""
    kind, _ = source_of(info)
    package, version = info.get("package"), info.get("package_version")
    commit = (info.get("tree_build") or {}).get("commit")
    if kind == "debian" and package and version:
        made = debian_source.provenance(package, version)
    elif kind == "deb" and package and version:
        made = debs_source.provenance(package, version)
    elif kind == "tree" and commit:
        made = tree_source.provenance(commit, info.get("uname_r") or "unknown")
    else:
        made = image_source.provenance(kernel_id, info.get("upstream_version"),
                                       info.get("uname_r") or info.get("image") or "unknown")
    return _id(made.checkout), _id(made.build)


def _status(test: dict) -> str:
    """A user's object (check-progs) that was not wholly checked, with nothing found in what was, is MISS:
    the harness did not run the check, so nothing is known; never PASS, and not a FAIL of the code."""
    checked = extra(test, "check_progs") or {}
    if users_check(test) and checked.get("status") == "not checked":
        return "MISS"
    return STATUS[report_status(test.get("outcome"))]


def _environment(info: dict, host: dict) -> dict:
    accel = info.get("accel") or "unknown"
    return {"comment": f"QEMU ({accel}) via virtme-ng on {host.get('machine', '?')}",
            "misc": {"accel": accel, "accel_reason": info.get("accel_reason", ""),
                     "host_kernel": host.get("kernel", ""), "lsm": info.get("lsm") or ""}}


def from_results(doc: dict) -> dict:
    host = doc.get("host") or {}
    run = re.sub(r"[^0-9TZ]", "", doc.get("started") or "") or "unknown"
    started = doc.get("started")
    checkouts, builds, tests = {}, {}, []
    kernel_ids = list(doc.get("kernels", {}))
    kernel_ids += [t["kernel"] for t in doc.get("tests", []) if t.get("kernel") and t["kernel"] not in kernel_ids]
    build_of = {}
    for kernel_id in kernel_ids:
        info = doc.get("kernels", {}).get(kernel_id, {"id": kernel_id})
        checkout_id, build_id = _source_ids(kernel_id, info)
        build_of[kernel_id] = build_id
        checkout = {"id": checkout_id, "origin": ORIGIN, "valid": True,
                    "tree_name": info.get("source", "").split("/")[0] or "local",
                    "comment": f"{info.get('source', 'local image')} {info.get('package_version') or ''}".strip(),
                    "misc": {k: info[k] for k in ("source", "package_version", "upstream_version") if info.get(k)}}
        if started:
            checkout["start_time"] = started
        checkouts[checkout_id] = checkout
        builds[build_id] = {"id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
                            "status": "PASS", "comment": f"{info.get('package') or info.get('image') or kernel_id} "
                            f"({source_text(info)}; uname -r {info.get('uname_r') or '?'})",
                            "misc": {k: info[k] for k in ("package", "uname_r", "image", "source", "page_size")
                                     if info.get(k)}}
        if info.get("arch"):        # the kernel record's; an old record without it says nothing
            known = ARCHES.get(info["arch"])
            builds[build_id]["architecture"] = known.kcidb if known else info["arch"]
        if info.get("boot_seconds") or info.get("error"):
            boot = {"id": _id(run, kernel_id, "boot"), "build_id": build_id, "origin": ORIGIN,
                    "path": f"{ORIGIN}.boot", "status": "FAIL" if info.get("error") else "PASS",
                    "environment": _environment(info, host), "misc": {"kernel": kernel_id}}
            if info.get("boot_seconds"):
                boot["duration"] = float(info["boot_seconds"])
            if info.get("error"):
                boot["log_excerpt"] = _excerpt(info["error"])
            tests.append(boot)
    for test in doc.get("tests", []):
        kernel_id = test.get("kernel")
        if not kernel_id:
            continue
        info = doc.get("kernels", {}).get(kernel_id, {})
        case = case_of(test["nodeid"], kernel_id)
        entry = {"id": _id(run, kernel_id, case), "build_id": build_of[kernel_id], "origin": ORIGIN,
                 "path": test_path(case), "status": _status(test),
                 "environment": _environment(info, host),
                 "comment": _clean(behaviour_text(test.get("observed") or {}) or test.get("outcome", "")),
                 "misc": {"kernel": kernel_id, "nodeid": test["nodeid"], "observed": test.get("observed") or {},
                          "expected": test.get("expected") or {},
                          # the facts the expectation came from, and what decided each one
                          "facts": {name: {"commit": FACTS[name].commit, **_decision_json(test, info, name)}
                                    for name in test.get("expectation_facts") or () if name in FACTS}}}
        if test.get("deviations"):      # stated rules this kernel breaks, by name
            entry["misc"]["deviations"] = [{**d, "label": label(d)} for d in test["deviations"]]
            entry["comment"] = _clean("; ".join(label(d) for d in test["deviations"]) + ". " + entry["comment"])
        if test.get("precondition"):
            entry["misc"]["precondition"] = test["precondition"]
        if test.get("seconds") is not None:
            entry["duration"] = float(test["seconds"])
        log = list(test.get("dmesg") or [])
        if test.get("outcome") != "passed" and test.get("longrepr"):
            log += ["", test["longrepr"]]
        if log:
            entry["log_excerpt"] = _excerpt("\n".join(log))
        tests.append(entry)
    # Sorted, so that merged shards give the same file as one run of all their kernels.
    by_id = lambda objects: sorted(objects, key=lambda o: o["id"])  # noqa: E731
    return {"version": dict(SCHEMA_VERSION), "checkouts": by_id(checkouts.values()),
            "builds": by_id(builds.values()), "tests": by_id(tests)}
