"""A fleet run's figures, from its results file and the fetch times `kregress fleet` wrote beside
it (fleet.json): per kernel the seconds of fetch, first boot, save and guest work, and kernels a
minute over the whole run (fetching overlaps booting, so the phases add up to more than the wall)."""
from __future__ import annotations

import json
from pathlib import Path

from kregress.report import verdicts

FLEET_FILE = "fleet.json"


def kernel_figures(doc: dict, fetched: dict) -> list[dict]:
    """One row per kernel: its package, arch, how it started and each phase's seconds. The
    start (vm_start_seconds of the tests that waited for one) is the boot to the agent, the save,
    and the host's preparation before them (initramfs, the binary's evidence, keys): prep is the
    start less boot and save. Guest work is the tests' seconds (setup, call, teardown) less the
    start."""
    rows = []
    for kernel_id, info in doc.get("kernels", {}).items():
        tests = [t for t in doc.get("tests", []) if t.get("kernel") == kernel_id]
        spent = sum(t.get(key) or 0.0 for t in tests for key in ("setup_seconds", "seconds", "teardown_seconds"))
        start = sum(t.get("vm_start_seconds") or 0.0 for t in tests)
        boot = info.get("boot_seconds") or 0.0
        save = info.get("save_seconds") or 0.0
        start = max(start, boot + save)
        rows.append({"kernel": kernel_id, "arch": info.get("arch"), "package": info.get("package"),
                     "version": info.get("package_version"), "uname_r": info.get("uname_r"),
                     "how": info.get("boot_how"), "fetch_s": (fetched.get(kernel_id) or {}).get("seconds"),
                     "downloaded_mb": round(((fetched.get(kernel_id) or {}).get("downloaded_bytes") or 0) / 1e6, 1),
                     "boot_s": round(boot, 2), "save_s": round(save, 2), "prep_s": round(start - boot - save, 2),
                     "guest_s": round(max(0.0, spent - start), 2), "tests": len(tests),
                     "outcomes": _count(t.get("outcome") for t in tests)})
    return rows


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def figures(results: Path) -> dict:
    """The run's figures: wall, kernels a minute, per-phase sums and the per-kernel rows."""
    doc = json.loads(Path(results).read_text())
    side = Path(results).with_name(FLEET_FILE)
    fleet = json.loads(side.read_text()) if side.exists() else {}
    rows = kernel_figures(doc, fleet.get("fetched", {}))
    booted = [r for r in rows if r["how"]]
    wall = fleet.get("wall_s")
    return {"wall_s": wall, "kernels": len(rows), "kernels_booted": len(booted),
            "kernels_per_minute": round(len(booted) / (wall / 60), 2) if wall else None,
            "fetch_wall_s": fleet.get("fetch_wall_s"), "tests": sum(r["tests"] for r in rows),
            "totals": {key: round(sum(r[key] or 0.0 for r in rows), 1)
                       for key in ("fetch_s", "prep_s", "boot_s", "save_s", "guest_s")},
            "left_not_judged": fleet.get("leave", []), "rows": rows}


def render(fig: dict) -> list[str]:
    lines = [f"{'kernel':26s} {'arch':7s} {'version':22s} {'fetch':>6s} {'prep':>6s} {'boot':>6s} {'save':>5s} "
             f"{'guest':>6s} tests"]
    for r in fig["rows"]:
        fetch = "-" if r["fetch_s"] is None else f"{r['fetch_s']:.1f}"
        lines.append(f"{r['kernel']:26s} {r['arch'] or '?':7s} {r['version'] or '?':22s} {fetch:>6s} "
                     f"{r['prep_s']:6.1f} {r['boot_s']:6.1f} {r['save_s']:5.1f} {r['guest_s']:6.1f} "
                     f"{r['tests']} {r['outcomes']}")
    t = fig["totals"]
    lines.append(f"fleet: {fig['kernels_booted']} of {fig['kernels']} kernel(s) booted, {fig['tests']} VM test(s) in "
                 f"{fig['wall_s']} s wall: {fig['kernels_per_minute']} kernels/min; summed seconds: fetch "
                 f"{t['fetch_s']} (its wall {fig['fetch_wall_s']}), host preparation {t['prep_s']}, first boot "
                 f"{t['boot_s']}, save {t['save_s']}, guest work {t['guest_s']}"
                 + (f"; left not judged: {', '.join(fig['left_not_judged'])}" if fig["left_not_judged"] else ""))
    return lines


def suite_split(doc: dict) -> dict:
    """A `make test` run's worker-seconds (setup + call + teardown, summed over workers) by the
    folder a test lives in (tests/harness, tests/scenarios, tests/unit) and per harness module."""
    folders: dict[str, float] = {}
    starts: dict[str, float] = {}
    harness: dict[str, float] = {}
    for test in doc.get("tests", []):
        nodeid = test.get("nodeid", "")
        seconds = sum(test.get(key) or 0.0 for key in ("setup_seconds", "seconds", "teardown_seconds"))
        parts = nodeid.split("::")[0].split("/")
        folder = "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "tests" else "other"
        folders[folder] = folders.get(folder, 0.0) + seconds
        starts[folder] = starts.get(folder, 0.0) + (test.get("vm_start_seconds") or 0.0)
        if folder == "tests/harness":
            harness[parts[-1]] = harness.get(parts[-1], 0.0) + seconds
    return {"folders": {k: round(v, 1) for k, v in sorted(folders.items())},
            "vm_starts": {k: round(v, 1) for k, v in sorted(starts.items()) if v},
            "harness": {k: round(v, 1) for k, v in sorted(harness.items(), key=lambda kv: -kv[1])}}


def render_split(split: dict) -> list[str]:
    f = split["folders"]
    lines = ["worker-seconds by folder: " + ", ".join(f"{k} {v}" for k, v in f.items())]
    if split.get("vm_starts"):      # the run's own VM starts (boot or restore), in each VM's first test
        starts = ", ".join(f"{k} {v}" for k, v in split["vm_starts"].items())
        lines.append(f"  of which starting the run's VMs: {starts}")
    harness, scenarios = f.get("tests/harness", 0.0), f.get("tests/scenarios", 0.0)
    lines.append(f"harness / scenarios: {harness} / {scenarios} s"
                 + (f" = {harness / scenarios:.2f}" if scenarios else ""))
    lines += [f"  {name:34s} {seconds:7.1f} s" for name, seconds in split["harness"].items()]
    return lines


def same_packages(fleet_doc: dict, full_doc: dict) -> dict[str, str]:
    """Full-run kernel id -> the fleet's kernel id booting the same package at the same version."""
    key = {(i.get("package"), i.get("package_version")): k for k, i in fleet_doc.get("kernels", {}).items()
           if i.get("package")}
    return {k: key[(i.get("package"), i.get("package_version"))] for k, i in full_doc.get("kernels", {}).items()
            if (i.get("package"), i.get("package_version")) in key}


def compare_verdicts(fleet_doc: dict, full_doc: dict, kernels: dict[str, str]) -> tuple[int, list[str]]:
    """The fleet's verdicts against the full matrix's, per kernel (full id -> fleet id) and fact:
    every pair the full matrix judged has the same state and verdict in the fleet, and every pair it
    left not judged the fleet left not judged (or never consulted). (pairs compared, differences)."""
    by_fleet = {(r["kernel"], r["fact"]): (r["state"], r["verdict"]) for r in verdicts.table([fleet_doc])}
    compared, differences = 0, []
    for row in verdicts.table([full_doc]):
        if row["kernel"] not in kernels:
            continue
        compared += 1
        full = (row["state"], row["verdict"])
        fleet = by_fleet.get((kernels[row["kernel"]], row["fact"]), (row["state"], "not judged"))
        if (full != fleet) if full[1] != "not judged" else fleet[1] != "not judged":
            differences.append(f"{row['kernel']} ({kernels[row['kernel']]}) {row['fact']}: full matrix "
                               f"{full[0]}: {full[1]}, fleet {fleet[0]}: {fleet[1]}")
    return compared, differences
