"""Evidence beyond the version, on real kernels: Debian's 6.1 image entered as a local
kernel that claims to be 5.10.0, and Debian's 5.10 image claiming 6.5.0. The binary's
word decides where the binary has one, and the scenarios those facts decide pass; a fact
only the (lying) version speaks for shows as a contradiction, never as a pass; the verdict
table says which source said what. The run is `kregress fleet`'s, as a fleet runs it: per kernel
the cheapest cases that judge every fact, which is all the verdicts need (tests/harness/test_fleet.py
shows they equal the full matrix's), the kernels fetched beside the boots, its figures and the
verdict grid's exit status."""
import json
import subprocess

from nested import run_kregress

from kregress.kernels.entries import load_kernels
from kregress.kernels.sources import resolve
from kregress.paths import SUITE_ROOT
from kregress.report.fleet import FLEET_FILE, figures


LEFT = "lsm_cgroup_shim_not_revived"


def debian(kernel_id: str):
    return resolve(next(s for s in load_kernels(SUITE_ROOT / "kernels.toml") if s.id == kernel_id))



def test_a_kernel_whose_version_lies_is_judged_by_its_binary(tmp_path):
    entries = []
    for kernel_id, real, claimed in [("deb61-claims-5.10", "debian-6.1", "5.10.0"),
                                     ("deb510-claims-6.5", "debian-5.10", "6.5.0")]:
        kernel = debian(real)
        entries.append(f'[[kernel]]\nid = "{kernel_id}"\nimage = "{kernel.image}"\n'
                       f'modules = "{kernel.modules_dir}"\nversion = "{claimed}"\n')
    kernels = tmp_path / "kernels.toml"
    kernels.write_text("\n".join(entries))
    run_dir = tmp_path / "run"
    # --leave: the documented way to leave a costly fact not judged (its one case, the shim's
    # lifetime, is a third of a 6.1 kernel's guest work); nothing below asks about it
    proc = run_kregress("fleet", str(kernels), "--jobs", "2", "--leave", LEFT, "--run-dir", str(run_dir))

    table = tmp_path / "verdicts.json"
    out = subprocess.run([str(SUITE_ROOT / ".venv/bin/kregress"), "verdicts", str(run_dir / "results.json"),
                          "--json", str(table)], capture_output=True, text=True)
    rows = {(r["kernel"], r["fact"]): r for r in json.loads(table.read_text())}
    # where the binary cannot say (no signature), the lie decides and the kernel contradicts it
    disagreeing = [r for r in rows.values() if r["verdict"] in ("CONTRADICTION", "IN QUESTION")]
    assert all(r["decided_by"] == "version" and r["sources"].get("binary", "unknown") == "unknown"
               for r in disagreeing), [(r["kernel"], r["fact"], r["decided_by"]) for r in disagreeing]
    doc = json.loads((run_dir / "results.json").read_text())
    lied_about = {(r["kernel"], r["fact"]) for r in disagreeing}
    failed = [t for t in doc["tests"] if t["outcome"] == "failed"]
    assert all(any((t["kernel"], f) in lied_about for f in t.get("expectation_facts") or []) for t in failed), \
        proc.stdout[-4000:]
    fleet = json.loads((run_dir / FLEET_FILE).read_text())
    # the fleet's pytest fails only the lied-about cases; the fleet and verdicts fail on the lies alone
    assert fleet["pytest_exit"] == (1 if failed else 0), proc.stdout[-4000:]
    assert proc.returncode == out.returncode == (1 if disagreeing else 0), proc.stdout[-4000:] + out.stdout
    fig = figures(run_dir / "results.json")       # each kernel's fetch, start and guest work, kernels a minute
    assert sorted(r["kernel"] for r in fig["rows"]) == ["deb510-claims-6.5", "deb61-claims-5.10"]
    assert all(r["fetch_s"] is not None and r["how"] for r in fig["rows"]) and fig["kernels_per_minute"]
    assert fig["left_not_judged"] == [LEFT]     # no case ran for it: no verdict, or "not judged"
    assert rows.get(("deb61-claims-5.10", LEFT), {"verdict": "not judged"})["verdict"] == "not judged"
    assert not [t["nodeid"] for t in doc["tests"] if "test_shim_outlives_last_link" in t["nodeid"]]
    relief = rows[("deb61-claims-5.10", "getsockopt_relief")]
    assert (relief["decided_by"], relief["expected"], relief["behaves"], relief["verdict"]) == \
        ("binary", True, "with", "agree")
    assert relief["sources"]["version"] == "absent" and relief["sources"]["binary"] == "present"
    assert "version says lacks it" in out.stdout and "binary says has it" in out.stdout
    reverse = rows[("deb510-claims-6.5", "getsockopt_relief")]
    assert (reverse["decided_by"], reverse["expected"], reverse["behaves"], reverse["verdict"]) == \
        ("binary", False, "without", "agree")
    assert reverse["sources"]["version"] == "present"
    lsm = rows[("deb510-claims-6.5", "lsm_cgroup")]          # 6.5 would have it; the binary has not
    assert (lsm["expected"], lsm["verdict"]) == (False, "agree")
    assert {fact for kernel, fact in rows} >= {"getsockopt_relief", "sockops_hdr_opt", "lsm_cgroup"}
    assert 'id="verdicts"' in (run_dir / "report.html").read_text()       # first thing in the report too
    assert "version says lacks it" in proc.stdout                          # and in the terminal summary
