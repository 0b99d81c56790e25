"""Each kernel is one xdist group: under -n 2 --dist loadgroup all of a kernel's tests
land on one worker, so it boots once. (pytest 9 with xdist 3.8 silently broke this.)"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_all_tests_of_a_kernel_run_on_one_worker(tmp_path):
    kernels = tmp_path / "kernels.toml"
    kernels.write_text("".join(f'[[kernel]]\nid = "k{i}"\nimage = "/nonexistent/{i}"\nversion = "6.1.0"\n\n'
                               for i in range(4)))
    tests = tmp_path / "test_grouping_probe.py"
    tests.write_text("".join(f"def test_{n}(kernel_id):\n    pass\n\n" for n in "abcdef"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-n", "2",
                           "--dist", "loadgroup", "--kernels-file", str(kernels), "--rootdir", str(ROOT),
                           "-c", str(ROOT / "pyproject.toml"), "--confcutdir", str(ROOT),
                           "-p", "kregress.plugin", "--run-dir", str(tmp_path / "run"), str(tests)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    workers: dict[str, set] = {}
    for worker, kernel in re.findall(r"\[(gw\d+)\] .*PASSED .*\[(k\d)\]", proc.stdout):
        workers.setdefault(kernel, set()).add(worker)
    assert sorted(workers) == ["k0", "k1", "k2", "k3"], proc.stdout[-3000:]
    assert all(len(w) == 1 for w in workers.values()), f"a kernel's tests went to several workers: {workers}"
