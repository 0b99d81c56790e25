"""A pytest of its own, run by a harness test against real kernels: the way a user runs the
suite, with a kernels file of the test's making."""
import os
import subprocess
import sys
from pathlib import Path

from kregress.paths import SUITE_ROOT

# every scenario module (pytest.mark.scenario), whichever exist
SCENARIOS = ["tests/scenarios"]


def without_pytest_vars() -> dict[str, str]:
    """This process's environment without the outer run's PYTEST_* variables (its xdist worker
    id, its current test): what a command started from a harness test gets."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def run_kregress(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`kregress ARGS` from the checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "kregress.cli", *args], cwd=SUITE_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=without_pytest_vars())


def run_pytest(tests: list[str], run_dir: Path, kernels_file: Path, *options: str,
               timeout: float = 1800) -> subprocess.CompletedProcess:
    # the test files first: xdist workers find the project's conftest (and its options) from them;
    # no PYTEST_* variable of the outer run (its xdist worker id, its current test) leaks in
    return subprocess.run([sys.executable, "-m", "pytest", *tests, "-p", "no:cacheprovider", *options,
                           "--run-dir", str(run_dir), "--kernels-file", str(kernels_file)],
                          cwd=SUITE_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=without_pytest_vars())
