"""A fleet run's verdicts equal the full matrix's: on two kernels (one with every fact it knows,
one lacking most), `kregress fleet` runs only the cheapest cases judging each fact, the full
scenario matrix runs every case, and per kernel and fact the state and the verdict are the same;
the fleet ran fewer cases, and its fleet.json has each kernel's fetch seconds."""
import os
import subprocess
import sys

from kregress.paths import SUITE_ROOT, data
from kregress.report import verdicts
from kregress.report.fleet import compare_verdicts, figures
from nested import SCENARIOS, run_pytest

KERNELS = ["debian-5.10", "debian-6.12"]


def test_fleet_verdicts_equal_the_full_matrix(tmp_path):
    kernels_file = data("kernels.toml")
    fleet = subprocess.run([sys.executable, "-m", "kregress.cli", "fleet", str(kernels_file), "--jobs", "0",
                            "--run-dir", str(tmp_path / "fleet"), *[f"--kernel={k}" for k in KERNELS]],
                           cwd=SUITE_ROOT, capture_output=True, text=True, timeout=1800,
                           env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    assert fleet.returncode == 0, fleet.stdout[-4000:] + fleet.stderr[-3000:]
    full = run_pytest(SCENARIOS, tmp_path / "full", kernels_file, "-q", *[f"--kernel={k}" for k in KERNELS])
    assert full.returncode == 0, full.stdout[-4000:]

    fleet_doc, full_doc = verdicts.load([tmp_path / "fleet/results.json", tmp_path / "full/results.json"])
    # every pair the full matrix judged: the same state and verdict; every pair it left not
    # judged: not judged by the fleet either (or never consulted)
    compared, differences = compare_verdicts(fleet_doc, full_doc, {k: k for k in KERNELS})
    assert not differences and compared >= 2 * 15, differences
    assert {r["kernel"] for r in verdicts.table([full_doc]) if r["verdict"] != "not judged"} == set(KERNELS)

    ran_fleet, ran_full = fleet_doc["tests"], full_doc["tests"]
    assert 0 < len(ran_fleet) < len(ran_full) / 2
    fig = figures(tmp_path / "fleet/results.json")
    assert sorted(r["kernel"] for r in fig["rows"]) == sorted(KERNELS)
    assert all(r["fetch_s"] is not None and r["how"] for r in fig["rows"]) and fig["kernels_per_minute"]
