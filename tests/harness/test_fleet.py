"""A fleet run's verdicts equal the full matrix's: on two kernels (one with every fact it knows,
one lacking most), `kregress fleet` runs only the cheapest cases judging each fact, the full
scenario matrix runs every case, and per kernel and fact the state and the verdict are the same;
the fleet ran fewer cases, and its fleet.json has each kernel's fetch seconds."""
import json
import os
import subprocess
import sys

from kregress.paths import SUITE_ROOT, data
from kregress.report import verdicts
from kregress.report.fleet import figures
from nested import SCENARIOS, run_pytest

KERNELS = ["debian-5.10", "debian-6.12"]


def verdict_of(results) -> dict:
    return {(r["kernel"], r["fact"]): (r["state"], r["verdict"]) for r in verdicts.table(verdicts.load([results]))}


def test_fleet_verdicts_equal_the_full_matrix(tmp_path):
    kernels_file = data("kernels.toml")
    fleet = subprocess.run([sys.executable, "-m", "kregress.cli", "fleet", str(kernels_file), "--jobs", "0",
                            "--run-dir", str(tmp_path / "fleet"), *[f"--kernel={k}" for k in KERNELS]],
                           cwd=SUITE_ROOT, capture_output=True, text=True, timeout=1800,
                           env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    assert fleet.returncode == 0, fleet.stdout[-4000:] + fleet.stderr[-3000:]
    full = run_pytest(SCENARIOS, tmp_path / "full", kernels_file, "-q", *[f"--kernel={k}" for k in KERNELS])
    assert full.returncode == 0, full.stdout[-4000:]

    by_fleet, by_matrix = verdict_of(tmp_path / "fleet/results.json"), verdict_of(tmp_path / "full/results.json")
    judged = {pair for pair, (_, verdict) in by_matrix.items() if verdict != "not judged"}
    assert {pair: by_fleet.get(pair) for pair in judged} == {pair: by_matrix[pair] for pair in judged}
    # what the full matrix left not judged the fleet does not judge either (or never consulted)
    assert all(by_fleet.get(pair, ("", "not judged"))[1] == "not judged" for pair in set(by_matrix) - judged)
    assert {kernel for kernel, _ in judged} == set(KERNELS)

    ran_fleet = json.loads((tmp_path / "fleet/results.json").read_text())["tests"]
    ran_full = json.loads((tmp_path / "full/results.json").read_text())["tests"]
    assert 0 < len(ran_fleet) < len(ran_full) / 2
    fig = figures(tmp_path / "fleet/results.json")
    assert sorted(r["kernel"] for r in fig["rows"]) == sorted(KERNELS)
    assert all(r["fetch_s"] is not None and r["how"] for r in fig["rows"]) and fig["kernels_per_minute"]
