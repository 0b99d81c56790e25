"""A fleet's verdicts equal the full matrix's, on two kernels: debian-5.10 (lacking most
facts) and a kernel given as .deb files, as a user would download a vendor's package (Debian's
trixie 6.12 image package copied out of the cache, entered with deb = [...]). A fleet runs only
the cheapest cases judging each fact, the full scenario matrix runs every case; per kernel and
fact the state and the verdict are the same. The fleet's cases are the ones `pytest --fleet`
(what `kregress fleet` runs) chooses for these kernels, collected without running, and their
results are cut from the one full run: the same observations, so a difference can only come
from the choice. A real `kregress fleet` run is tests/harness/test_evidence.py's. The full run
is also the .deb entry's own test: checked, unpacked once into the cache by content, booted,
every scenario run. Both tests share the run (one module, one xdist group)."""
import shutil

import pytest
from nested import SCENARIOS, run_pytest

from kregress.paths import cache_dir
from kregress.report import verdicts
from kregress.report.fleet import compare_verdicts

pytestmark = pytest.mark.xdist_group("harness-fleet-and-deb")
DEB_KERNEL = "my-vendor-6.12"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(the .deb file or None, kernels, the full run, the fleet's collection, the full run's results)."""
    tmp = tmp_path_factory.mktemp("fleet")
    cached = sorted((cache_dir() / "debs").glob("linux-image-6.12.*+deb13-amd64_*_amd64.deb"))
    entries = '[[kernel]]\nid = "debian-5.10"\nsuite = "bullseye"\n\n'
    if cached:
        deb = shutil.copy(cached[-1], tmp / cached[-1].name)       # the user's own download
        entries += f'[[kernel]]\nid = "{DEB_KERNEL}"\ndeb = ["{deb}"]\n'
        kernels = ["debian-5.10", DEB_KERNEL]
    else:       # `make kernels` not run yet: the suite's own entry stands in for the fleet test
        entries += '[[kernel]]\nid = "debian-6.12"\nsuite = "trixie"\n'
        kernels = ["debian-5.10", "debian-6.12"]
    kernels_file = tmp / "kernels.toml"
    kernels_file.write_text(entries)
    full = run_pytest(SCENARIOS, tmp / "full", kernels_file, "-q")
    chosen = run_pytest(SCENARIOS, tmp / "chosen", kernels_file, "-q", "--fleet", "--collect-only")
    return {"deb": cached[-1] if cached else None, "kernels": kernels, "full": full, "chosen": chosen,
            "full_results": tmp / "full/results.json"}


def fleet_view(full_doc: dict, collected: str) -> dict:
    """The full run's results as a fleet run of the same kernels would have them: its tests
    only those `pytest --fleet --collect-only` listed."""
    chosen = {line.strip() for line in collected.splitlines() if "::" in line}
    return {**full_doc, "tests": [t for t in full_doc["tests"] if t["nodeid"] in chosen]}


def test_fleet_verdicts_equal_the_full_matrix(runs):
    assert runs["full"].returncode == 0, runs["full"].stdout[-4000:]
    assert runs["chosen"].returncode == 0, runs["chosen"].stdout[-4000:] + runs["chosen"].stderr[-3000:]
    [full_doc] = verdicts.load([runs["full_results"]])
    fleet_doc = fleet_view(full_doc, runs["chosen"].stdout)
    # every pair the full matrix judged: the same state and verdict; every pair it left not
    # judged: not judged by the fleet either (or never consulted)
    compared, differences = compare_verdicts(fleet_doc, full_doc, {k: k for k in runs["kernels"]})
    assert not differences and compared >= 2 * 15, differences
    assert {r["kernel"] for r in verdicts.table([full_doc]) if r["verdict"] != "not judged"} == set(runs["kernels"])

    ran_fleet, ran_full = fleet_doc["tests"], full_doc["tests"]
    assert 0 < len(ran_fleet) < len(ran_full) / 2
    assert {t["kernel"] for t in ran_fleet} == set(runs["kernels"])


def test_a_deb_entry_runs_the_scenario_matrix(runs):
    if runs["deb"] is None:
        pytest.skip("debian-6.12's package is not in the cache (run `make kernels`)")
    assert runs["full"].returncode == 0, runs["full"].stdout[-4000:]
    doc = verdicts.load([runs["full_results"]])[0]
    info = doc["kernels"][DEB_KERNEL]
    assert info["source"] == f"deb:{runs['deb'].name}" and info["package"].startswith("linux-image-6.12.")
    assert info["upstream_version"].startswith("6.12.") and info["boot_seconds"]
    own = [t for t in doc["tests"] if t.get("kernel") == DEB_KERNEL]
    assert sum(t["outcome"] in ("passed", "failed", "error") for t in own) >= 20
    assert not [t["nodeid"] for t in own if t["outcome"] == "failed"]
