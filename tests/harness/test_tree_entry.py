"""A kernels.toml `tree` entry: a kernel source tree, built with virtme-ng and
configs/bisect.config, booted, and run through the scenario matrix (slow: a first build
takes tens of minutes on 2 cores; then the image comes from the cache, keyed by commit,
local changes and fragment).

Opt-in: KREGRESS_SLOW=1 .venv/bin/pytest tests/harness/test_tree_entry.py
The tree is scripts/bisect-demo-tree.sh's (Debian linux-source-6.12 with the relief fix
taken out again on its main branch, tag demo-regression), or KREGRESS_TREE. On that tree
the version says the kernel has 29ebbba7d461 and the binary says it does not: the binary
decides, and the kernel must behave without it.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
from nested import SCENARIOS, run_pytest

from kregress.paths import SUITE_ROOT

TREE = Path(os.environ.get("KREGRESS_TREE", "/work/ksrc/linux-source-6.12"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KREGRESS_SLOW") != "1",
                       reason="slow (builds a kernel): set KREGRESS_SLOW=1 to run"),
]


def test_a_tree_entry_runs_the_scenario_matrix(tmp_path):
    if not (TREE / ".git").exists():
        pytest.skip(f"no kernel git tree at {TREE}: run scripts/bisect-demo-tree.sh first")
    kernels = tmp_path / "kernels.toml"
    kernels.write_text(f'[[kernel]]\nid = "my-tree"\ntree = "{TREE}"\n')
    run_dir = tmp_path / "run"
    proc = run_pytest(SCENARIOS, run_dir, kernels, timeout=4 * 3600)
    (SUITE_ROOT / "runs").mkdir(exist_ok=True)
    (SUITE_ROOT / "runs" / "slow-tree-entry.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:]
    doc = json.loads((run_dir / "results.json").read_text())
    info = doc["kernels"]["my-tree"]
    build = info["tree_build"]
    assert info["source"] == f"tree:{TREE}" and info["boot_seconds"] and build["commit"]
    assert info["upstream_version"] == build["version"]
    assert doc["summary"]["vm_tests_run"] >= 20 and not doc["summary"]["outcomes"].get("failed")
    assert any("getsockopt_relief" in t["facts_used"] for t in doc["tests"])
    relief = info["fact_decisions"]["getsockopt_relief"]        # the kernel's one decision
    if is_ancestor("demo-regression") and not is_ancestor("demo-fix"):
        # the demo tree's main branch: the relief is gone although the version carries it
        assert relief["sources"]["version"] == "present" and relief["sources"]["binary"] == "absent", relief
        assert relief["decided_by"] == "binary" and relief["expected"] is False, relief


def is_ancestor(tag: str) -> bool:
    return subprocess.run(["git", "-C", str(TREE), "merge-base", "--is-ancestor", tag, "HEAD"],
                          capture_output=True).returncode == 0
