"""A real `git bisect run` with kregress bisect-run on a kernel tree (slow: kernel builds).

Opt-in: KREGRESS_SLOW=1 .venv/bin/pytest tests/harness/test_bisect_git.py
The tree comes from scripts/bisect-demo-tree.sh (Debian linux-source-6.12 + a history with
one commit, tagged demo-regression, that brings back the pre-relief EFAULT). Override with
KREGRESS_BISECT_TREE, KREGRESS_BISECT_GOOD, KREGRESS_BISECT_BAD, KREGRESS_BISECT_CULPRIT.
A first build takes tens of minutes on a small machine; each step after it is an
incremental build plus one TCG boot. See docs/bisect.md.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from kregress.paths import SUITE_ROOT

TREE = Path(os.environ.get("KREGRESS_BISECT_TREE", "/work/ksrc/linux-source-6.12"))
GOOD = os.environ.get("KREGRESS_BISECT_GOOD", "import-6.12")
BAD = os.environ.get("KREGRESS_BISECT_BAD", "main")
CULPRIT = os.environ.get("KREGRESS_BISECT_CULPRIT", "demo-regression")
SELECTION = ["tests/scenarios/test_getsockopt_efault.py", "-k", "tos or longer_than_page"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KREGRESS_SLOW") != "1",
                       reason="slow (builds a kernel): set KREGRESS_SLOW=1 to run"),
]


def git(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(TREE), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def test_git_bisect_run_names_the_culprit():
    if not (TREE / ".git").exists():
        pytest.skip(f"no kernel git tree at {TREE}: run scripts/bisect-demo-tree.sh first")
    assert not git("status", "--porcelain", "--untracked-files=no"), f"{TREE} has local changes"
    culprit = git("rev-parse", f"{CULPRIT}^{{commit}}")
    wrapper = str(SUITE_ROOT / "scripts" / "bisect-run")
    git("bisect", "reset", check=False)
    git("bisect", "start", BAD, GOOD)
    try:
        proc = subprocess.run(["git", "-C", str(TREE), "bisect", "run", wrapper,
                               "--expect", "fixed", "--fact", "getsockopt_relief", "--nice", "10", "--",
                               *SELECTION],
                              capture_output=True, text=True, cwd=TREE)
        bisect_log = git("bisect", "log", check=False)
    finally:
        git("bisect", "reset", check=False)
    output = proc.stdout + proc.stderr
    (SUITE_ROOT / "runs").mkdir(exist_ok=True)
    (SUITE_ROOT / "runs" / "slow-git-bisect.txt").write_text(output + "\n" + bisect_log)
    assert proc.returncode == 0, output[-4000:]
    found = re.search(r"^([0-9a-f]{40}) is the first bad commit", output, re.MULTILINE)
    assert found, output[-4000:]
    assert found.group(1) == culprit, f"bisect named {found.group(1)}, expected {CULPRIT} ({culprit})"
