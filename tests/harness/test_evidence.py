"""Evidence beyond the version, on real kernels: Debian's 6.1 image entered as a local
kernel that claims to be 5.10.0, and Debian's 5.10 image claiming 6.5.0. The binary's
word decides, the scenarios pass, and the verdict table says which source said what. The run is
a fleet's (--fleet): per kernel the cheapest cases that judge every fact, which is all the
verdicts need (tests/harness/test_fleet.py shows they equal the full matrix's)."""
import json
import subprocess

from nested import SCENARIOS, run_pytest

from kregress.files import sha256_file
from kregress.kernels import decision, evidence
from kregress.kernels.entries import load_kernels
from kregress.kernels.facts import FACTS
from kregress.kernels.sources import resolve
from kregress.paths import SUITE_ROOT


def debian(kernel_id: str):
    return resolve(next(s for s in load_kernels(SUITE_ROOT / "kernels.toml") if s.id == kernel_id))


def unwitnessed(kernel) -> str:
    """The facts no binary signature can witness (a #define, a verifier range), stated as the real
    Debian kernel's own decision has them (its version and changelog): what a user states for a
    kernel whose version lies, since a local image has no changelog and the version is the lie."""
    said = evidence.gather(kernel.image, kernel.upstream_version, sha256_file(kernel.image))
    decided = decision.decide(kernel.id, kernel.upstream_version, dict(kernel.spec.facts), said,
                              arch=kernel.spec.arch, config=kernel.config)
    stated = {name: bool(decided[name]["expected"]) for name, fact in FACTS.items() if not fact.signature}
    return "facts = { " + ", ".join(f"{name} = {str(has).lower()}" for name, has in stated.items()) + " }\n"


def test_a_kernel_whose_version_lies_is_judged_by_its_binary(tmp_path):
    entries = []
    for kernel_id, real, claimed in [("deb61-claims-5.10", "debian-6.1", "5.10.0"),
                                     ("deb510-claims-6.5", "debian-5.10", "6.5.0")]:
        kernel = debian(real)
        entries.append(f'[[kernel]]\nid = "{kernel_id}"\nimage = "{kernel.image}"\n'
                       f'modules = "{kernel.modules_dir}"\nversion = "{claimed}"\n'
                       + unwitnessed(kernel))
    kernels = tmp_path / "kernels.toml"
    kernels.write_text("\n".join(entries))
    run_dir = tmp_path / "run"
    proc = run_pytest(SCENARIOS, run_dir, kernels, "-n", "2", "--dist", "loadgroup", "--fleet")
    assert proc.returncode == 0, proc.stdout[-4000:]

    table = tmp_path / "verdicts.json"
    out = subprocess.run([str(SUITE_ROOT / ".venv/bin/kregress"), "verdicts", str(run_dir / "results.json"),
                          "--json", str(table)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {(r["kernel"], r["fact"]): r for r in json.loads(table.read_text())}
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
