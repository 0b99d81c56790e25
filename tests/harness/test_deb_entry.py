"""A kernel given as .deb files, as a user would download a vendor's package: here
Debian's trixie 6.12 image package copied out of the cache, entered with deb = [...].
It is checked, unpacked once into the cache by content, booted, and runs the scenarios."""
import json
import shutil

import pytest
from nested import SCENARIOS, run_pytest

from kregress.paths import cache_dir


def test_a_deb_entry_runs_the_scenario_matrix(tmp_path):
    cached = sorted((cache_dir() / "debs").glob("linux-image-6.12.*+deb13-amd64_*_amd64.deb"))
    if not cached:
        pytest.skip("debian-6.12's package is not in the cache (run `make kernels`)")
    deb = shutil.copy(cached[-1], tmp_path / cached[-1].name)       # the user's own download
    kernels = tmp_path / "kernels.toml"
    kernels.write_text(f'[[kernel]]\nid = "my-vendor-6.12"\ndeb = ["{deb}"]\n')
    run_dir = tmp_path / "run"
    proc = run_pytest(SCENARIOS, run_dir, kernels)
    assert proc.returncode == 0, proc.stdout[-4000:]
    doc = json.loads((run_dir / "results.json").read_text())
    info = doc["kernels"]["my-vendor-6.12"]
    assert info["source"] == f"deb:{cached[-1].name}" and info["package"].startswith("linux-image-6.12.")
    assert info["upstream_version"].startswith("6.12.") and info["boot_seconds"]
    assert doc["summary"]["vm_tests_run"] >= 20 and not doc["summary"]["outcomes"].get("failed")
