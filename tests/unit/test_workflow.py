"""The shipped CI workflow, checked as CI would see it: zizmor's audits (pinned actions,
no persisted credentials, no template expansion in scripts, least permissions) and the
workflow schema. Both run offline."""
import subprocess
import sys
from pathlib import Path

from kregress.paths import PROJECT_ROOT

WORKFLOWS = sorted((PROJECT_ROOT / ".github/workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)


def test_there_is_a_workflow():
    assert WORKFLOWS


def test_zizmor_finds_nothing():
    proc = run(str(BIN / "zizmor"), "--offline", "--format", "plain", *map(str, WORKFLOWS))
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr


def test_workflows_match_the_schema():
    proc = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_action_is_pinned_to_a_commit():
    """Pinned to the commit of a release (named in the comment), each one that runs on
    node24: node20 actions stopped running on GitHub's runners on 2026-09-23. The commits
    were read from the actions' own repositories."""
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:", 1)[1].split("#")[0].strip()
                assert len(ref.split("@", 1)[1]) == 40, f"{workflow.name}: {line.strip()} is not pinned to a commit"
