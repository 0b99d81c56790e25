"""A kernel's record is its own file in the run directory (RUN_DIR/kernels/<id>.json), written
where the kernel is resolved, with its fact decision made there once; tests record the names of
the facts they used, and the controller builds results.json's kernels from the files, a kernel
whose worker died included. Real pytest runs (under xdist and without), with the boundary faked:
kernels that resolve to a stand-in image and a kernel_session that boots nothing."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from kregress.kernels.facts import FACTS

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ("k0", "k1", "k2")
TESTS_PER_KERNEL = 4

# Loaded with -p in the controller and in every worker: stands in for fetching, counts calls.
PROBE = '''
import os
from pathlib import Path

from kregress.kernels import decision
from kregress.kernels.kernel import Kernel
from kregress.report.results import ResultsFile
from kregress.run import catalog

LOG = Path(os.environ["PROBE_LOG"])


def note(what, kernel_id):
    with LOG.open("a") as log:
        log.write(f"{what} {kernel_id} {os.getpid()}\\n")


def counted(what, function):
    def wrapper(*args, **kwargs):
        note(what, args[1] if what != "decide" else args[0])
        return function(*args, **kwargs)
    return wrapper


def fake_resolve(spec, refresh=False):
    note("resolve", spec.id)
    image = LOG.parent / f"{spec.id}.img"
    image.write_bytes(b"not a kernel")
    return Kernel(spec, image, "6.12.0-probe", "6.12.0")


decision.decide = counted("decide", decision.decide)
catalog.resolve = fake_resolve
ResultsFile.set_kernel = (lambda set_: lambda self, info: (note("set_kernel", info["id"]), set_(self, info))[1])(
    ResultsFile.set_kernel)
'''

TESTS = '''
import os
from types import SimpleNamespace

import pytest

from kregress.plugin.state import POOL


@pytest.fixture
def kernel_session(request, kernel_id):
    return SimpleNamespace(kernel=request.config.stash[POOL].kernel(kernel_id))


@pytest.mark.parametrize("n", range(%d))
def test_reads_the_facts(kernel_facts, kernel_id, n):
    if f"{kernel_id}-{n}" == os.environ.get("PROBE_CRASH"):
        os._exit(1)         # the worker dies mid-test, its kernel's record unsent
    if str(n) == os.environ.get("PROBE_INTERRUPT_AT"):
        raise KeyboardInterrupt("the run is cut short")
    assert kernel_facts.has("getsockopt_relief") is True
''' % TESTS_PER_KERNEL


def run(tmp_path: Path, name: str, *xdist: str, interrupt_at: int | None = None, crash: str = "",
        returncode: int | None = None) -> tuple[dict, Counter]:
    work = tmp_path / name
    work.mkdir()
    (work / "kregress_probe.py").write_text(PROBE)
    (work / "test_probe.py").write_text(TESTS)
    kernels = work / "kernels.toml"
    kernels.write_text("".join(f'[[kernel]]\nid = "{k}"\nimage = "/nonexistent/{k}"\nversion = "6.1.0"\n\n'
                               for k in KERNELS))
    env = {**os.environ, "PROBE_LOG": str(work / "calls.log"), "PYTHONPATH": str(work),
           "PROBE_INTERRUPT_AT": "" if interrupt_at is None else str(interrupt_at), "PROBE_CRASH": crash}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *xdist,
                           "--kernels-file", str(kernels), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                           "--confcutdir", str(ROOT), "-p", "kregress_probe", "-p", "kregress.plugin",
                           "--run-dir", str(work / "run"), str(work / "test_probe.py")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    expected = returncode if returncode is not None else (0 if interrupt_at is None else 2)
    assert proc.returncode == expected, proc.stdout[-3000:] + proc.stderr[-2000:]
    calls = Counter(" ".join(line.split()[:2]) for line in (work / "calls.log").read_text().splitlines())
    return json.loads((work / "run/results.json").read_text()), calls


def kernel_file(tmp_path: Path, name: str, kernel_id: str) -> dict:
    return json.loads((tmp_path / name / "run" / "kernels" / f"{kernel_id}.json").read_text())


def test_a_kernel_has_its_own_file_and_its_facts_are_decided_once(tmp_path):
    doc, calls = run(tmp_path, "xdist", "-n", "2", "--dist", "loadgroup")
    assert len(doc["tests"]) == len(KERNELS) * TESTS_PER_KERNEL
    for kernel_id in KERNELS:
        # several tests on the kernel, one resolve, one decision, in the kernel's file
        assert calls[f"resolve {kernel_id}"] == 1 and calls[f"decide {kernel_id}"] == 1, calls
        record = kernel_file(tmp_path, "xdist", kernel_id)
        assert doc["kernels"][kernel_id] == record
        assert set(record["fact_decisions"]) == set(FACTS)
        assert record["fact_decisions"]["getsockopt_relief"]["state"] == "has"
        for test in (t for t in doc["tests"] if t["kernel"] == kernel_id):
            assert test["facts_used"] == ["getsockopt_relief"]        # the names; the decision is the kernel's
            assert "kernel_info" not in test and "kernel_identity" not in test
    # the controller ends up with what one process running every test records
    alone, _ = run(tmp_path, "one-process", "-p", "no:xdist")
    assert alone["kernels"] == doc["kernels"]


def test_a_run_cut_short_still_records_the_kernel(tmp_path):
    """Interrupted before a kernel's last test: its file was written when it was resolved."""
    doc, calls = run(tmp_path, "interrupted", "-p", "no:xdist", interrupt_at=2)
    ran = {t["kernel"] for t in doc["tests"]}
    assert ran and set(doc["kernels"]) == ran
    for kernel_id in ran:
        assert calls[f"decide {kernel_id}"] == 1 and "fact_decisions" in doc["kernels"][kernel_id]


def test_a_kernel_whose_worker_dies_is_recorded_from_its_file(tmp_path):
    """The worker dies in a kernel's last test: the kernel is in the results file as its own file
    says (its whole decision, written when it was resolved), said to have lost its worker, and
    the summary says so."""
    last = f"k1-{TESTS_PER_KERNEL - 1}"
    # no --max-worker-restart: the plugin's default ends the run at a crash, where
    # pytest-xdist 3.8's loadgroup would wait forever for a replacement worker's work
    doc, calls = run(tmp_path, "crashed", "-n", "2", "--dist", "loadgroup", crash=last, returncode=1)
    died = doc["kernels"]["k1"]
    assert "worker_died" in died and calls["decide k1"] == 1
    assert died["fact_decisions"] == kernel_file(tmp_path, "crashed", "k1")["fact_decisions"]
    assert set(died["fact_decisions"]) == set(FACTS)       # the facts no test asked about too
    assert died["fact_decisions"]["getsockopt_relief"]["expected"] is True
    # the others that ran (the dead worker may have had one queued) are recorded as ever
    others = {t["kernel"] for t in doc["tests"]} - {"k1"}
    assert others and all("worker_died" not in doc["kernels"][k] for k in others)
    from kregress.report import recovery
    assert any(line.startswith("k1: its worker died during one of its tests") for line in recovery.run_lines(doc))
    # the test the worker died in is in the file too, as the harness's error
    crashed = [t for t in doc["tests"] if t["nodeid"].endswith(f"[{last}]")]
    assert [(t["outcome"], t["kernel"], t["harness_error"]) for t in crashed] == [("error", "k1", "worker-crashed")]
