"""kregress as a BPF project gets it: a wheel built from this checkout, installed into a fresh
venv of the system's python, run from an empty directory with nothing of the checkout on any
path. check-progs runs one of our fixture objects on a real kernel there, its run directory is
./runs in that directory, nothing is written into the installed package, and the commands that
read a results file and the host check work from there too."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from kregress.paths import SUITE_ROOT


KERNEL = "debian-6.12"
FIXTURES = SUITE_ROOT / "tests/fixture_progs"
SOURCES = ["kregress", "guest", "progs", "configs", "pyproject.toml", "setup.py", "kernels.toml",
           "kernel-log-allowlist.toml", "known-differences.toml", "README.md"]


def run(argv: list, cwd: Path, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    # the system's PATH and HOME only: no venv, no PYTHONPATH, no PYTEST_* of this run
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": os.environ["HOME"], **env}
    if "KREGRESS_CACHE" in os.environ:
        clean["KREGRESS_CACHE"] = os.environ["KREGRESS_CACHE"]
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout)


def installed_files(site: Path) -> dict[str, float]:
    return {str(p.relative_to(site)): p.stat().st_mtime for p in (site / "kregress").rglob("*")}


def test_a_wheel_installed_in_a_fresh_venv_checks_programs_from_any_directory(tmp_path):
    # the wheel, built from a copy of the working tree (an in-tree build would leave build/ behind)
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        item = SUITE_ROOT / name
        (shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "_data"))
         if item.is_dir() else shutil.copy(item, source / name))
    python = Path(sys.base_prefix) / "bin/python3"      # the system's, not this venv's
    wheels = tmp_path / "wheels"
    # a venv without pip of its own (ensurepip costs seconds; Debian's python3 has no pip outside
    # a venv): this checkout's pip builds the wheel and installs it into that venv
    proc = run([python, "-m", "venv", "--without-pip", tmp_path / "venv"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    pip = [SUITE_ROOT / ".venv/bin/python", "-m", "pip"]
    proc = run([*pip, "wheel", "-q", "--no-deps", "-w", wheels, source], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [wheel] = wheels.glob("kregress-*.whl")
    proc = run([*pip, "--python", tmp_path / "venv/bin/python", "install", "-q", wheel], tmp_path)
    assert proc.returncode == 0, proc.stderr
    kregress = tmp_path / "venv/bin/kregress"

    project = tmp_path / "project"                      # an empty directory of the BPF project's
    project.mkdir()
    for name in ("ignores_others.bpf.c", "common_sockopt.h"):
        shutil.copy(FIXTURES / name, project / name)
    where = run([tmp_path / "venv/bin/python", "-c", "import kregress; print(kregress.__file__)"], project)
    site = Path(where.stdout.strip()).parent.parent
    assert site.is_relative_to(tmp_path / "venv") and not site.is_relative_to(SUITE_ROOT)
    before = installed_files(site)

    proc = run([kregress, "check-progs", "--kernel", KERNEL, "ignores_others.bpf.c"], project)
    # the fixture answers EFAULT on a call it does not own on every kernel: exit 1, findings
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "efault_longer_than_buffer" in proc.stdout and f"--kernel {KERNEL}" in proc.stdout
    [run_dir] = (project / "runs").iterdir()
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["summary"]["kernels_booted"] == 1 and doc["summary"]["vm_tests_run"] == 1
    assert all((run_dir / name).exists() for name in ("report.html", "junit.xml", "kcidb.json"))
    assert installed_files(site) == before, "check-progs wrote into the installed package"

    # the commands that read a results file, from the same directory
    results = run_dir / "results.json"
    verdicts = run([kregress, "verdicts", results], project)
    assert KERNEL in verdicts.stdout and verdicts.returncode == 0, verdicts.stdout + verdicts.stderr
    report = run([kregress, "report", results, "--out-dir", project / "out"], project)
    assert report.returncode == 0 and (project / "out/report.html").exists(), report.stderr
    # the host check for that kernel: this host has what it needs
    doctor = run([kregress, "doctor", "--kernel", KERNEL], project)
    assert doctor.returncode == 0 and "doctor: ready" in doctor.stdout, doctor.stdout + doctor.stderr
