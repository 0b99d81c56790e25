"""A kernel's record is built and sent once per kernel (per worker process that ran it), not
with every test's report; its fact decision is made once per kernel and every test reads it.
Real pytest runs (under xdist and without), with the boundary faked: kernels that resolve to a
stand-in image and a kernel_session that boots nothing."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

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
from kregress.run.catalog import KernelCatalog
from kregress.run.pool import KernelPool

LOG = Path(os.environ["PROBE_LOG"])


def note(what, kernel_id):
    with LOG.open("a") as log:
        log.write(f"{what} {kernel_id} {os.getpid()}\\n")


def counted(what, function):
    def wrapper(*args, **kwargs):
        note(what, args[1] if what != "decide" else args[0])
        return function(*args, **kwargs)
    return wrapper


def fake_kernel(self, kernel_id):
    if kernel_id not in self.kernels:
        image = LOG.parent / f"{kernel_id}.img"
        image.write_bytes(b"not a kernel")
        self.kernels[kernel_id] = Kernel(self.specs[kernel_id], image, "6.12.0-probe", "6.12.0")
    return self.kernels[kernel_id]


decision.decide = counted("decide", decision.decide)
KernelCatalog.kernel = fake_kernel
KernelPool.kernel_info = counted("kernel_info", KernelPool.kernel_info)
ResultsFile.add_kernel = (lambda add: lambda self, info: (note("add_kernel", info["id"]), add(self, info))[1])(
    ResultsFile.add_kernel)
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


def test_a_kernel_record_is_sent_once_and_its_facts_decided_once(tmp_path):
    doc, calls = run(tmp_path, "xdist", "-n", "2", "--dist", "loadgroup")
    assert len(doc["tests"]) == len(KERNELS) * TESTS_PER_KERNEL
    for kernel_id in KERNELS:
        # several tests on the kernel, one record built, one sent, one decision
        assert calls[f"kernel_info {kernel_id}"] == 1, calls
        assert calls[f"add_kernel {kernel_id}"] == 1, calls
        assert calls[f"decide {kernel_id}"] == 1, calls
        decisions = doc["kernels"][kernel_id]["fact_decisions"]
        for test in (t for t in doc["tests"] if t["kernel"] == kernel_id):
            assert test["facts_used"] == {"getsockopt_relief": decisions["getsockopt_relief"]}
            assert "kernel_info" not in test and "kernel_identity" not in test
    # the controller ends up with what one process running every test records
    alone, _ = run(tmp_path, "one-process", "-p", "no:xdist")
    assert alone["kernels"] == doc["kernels"]


def test_a_run_cut_short_still_records_the_kernel(tmp_path):
    """Interrupted before a kernel's last test: its record is sent at the process's end."""
    doc, calls = run(tmp_path, "interrupted", "-p", "no:xdist", interrupt_at=2)
    ran = {t["kernel"] for t in doc["tests"]}
    assert ran and set(doc["kernels"]) == ran
    for kernel_id in ran:
        assert calls[f"kernel_info {kernel_id}"] == 1 and "fact_decisions" in doc["kernels"][kernel_id]


def test_a_kernel_whose_record_never_comes_is_recorded_as_lost(tmp_path):
    """The worker dies in a kernel's last test: the kernel is still in the results file, its
    record said to be lost, its decision as its tests copied it, and the summary says so."""
    last = f"k1-{TESTS_PER_KERNEL - 1}"
    # no --max-worker-restart: the plugin's default ends the run at a crash, where
    # pytest-xdist 3.8's loadgroup would wait forever for a replacement worker's work
    doc, calls = run(tmp_path, "crashed", "-n", "2", "--dist", "loadgroup", crash=last, returncode=1)
    lost = doc["kernels"]["k1"]
    assert "record_lost" in lost and calls["kernel_info k1"] == 0
    assert lost["fact_decisions"]["getsockopt_relief"]["expected"] is True
    # the others that ran (the dead worker may have had one queued) sent theirs
    others = {t["kernel"] for t in doc["tests"]} - {"k1"}
    assert others and all("record_lost" not in doc["kernels"][k] for k in others)
    from kregress.report import recovery
    assert any(line.startswith("k1: kernel record lost:") for line in recovery.run_lines(doc))
    # the test the worker died in is in the file too, as the harness's error
    crashed = [t for t in doc["tests"] if t["nodeid"].endswith(f"[{last}]")]
    assert [(t["outcome"], t["kernel"], t["harness_error"]) for t in crashed] == [("error", "k1", "worker-crashed")]
