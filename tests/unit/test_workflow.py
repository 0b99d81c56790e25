"""The shipped CI workflow and GitHub Action, checked as CI would see them: zizmor's audits
(pinned actions, no persisted credentials, no template expansion in scripts, least
permissions) and the workflow's and action's schemas. Both run offline."""
import subprocess
import sys
from pathlib import Path

from kregress.paths import SUITE_ROOT

WORKFLOWS = sorted((SUITE_ROOT / ".github/workflows").glob("*.yml"))
ACTION = SUITE_ROOT / "action.yml"
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=SUITE_ROOT, timeout=120)


def test_there_is_a_workflow():
    assert WORKFLOWS


def test_zizmor_finds_nothing():
    proc = run(str(BIN / "zizmor"), "--offline", "--format", "plain", *map(str, WORKFLOWS), str(ACTION))
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr


def test_workflows_match_the_schema():
    proc = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_action_matches_the_schema():
    proc = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_action_puts_no_expression_in_a_script():
    """Inputs reach the scripts through env: only (a program path is the user's text)."""
    from ruamel.yaml import YAML
    for step in YAML(typ="safe").load(ACTION.read_text())["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]


def test_every_action_is_pinned_to_a_commit():
    """Pinned to the commit of a release (named in the comment), each one that runs on
    node24: node20 actions stopped running on GitHub's runners on 2026-09-23. The commits
    were read from the actions' own repositories."""
    for workflow in [*WORKFLOWS, ACTION]:
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:", 1)[1].split("#")[0].strip()
                assert len(ref.split("@", 1)[1]) == 40, f"{workflow.name}: {line.strip()} is not pinned to a commit"


def jobs() -> dict:
    from ruamel.yaml import YAML
    return YAML(typ="safe").load((SUITE_ROOT / ".github/workflows/matrix.yml").read_text())["jobs"]


def test_a_job_runs_the_unit_tests():
    """Where the expectation rules and the gate are enforced: tests/unit, on every push."""
    unit = [job for job in jobs().values() if any("make unit" in step.get("run", "") for step in job["steps"])]
    assert unit, "no job of matrix.yml runs `make unit`"
    for job in unit:
        assert not job.get("continue-on-error") and not job.get("if")
        assert not any(step.get("continue-on-error") for step in job["steps"])


def verdicts_step() -> dict:
    [step] = [s for s in jobs()["report"]["steps"] if "kregress verdicts" in s.get("run", "")]
    return step


def test_the_report_job_fails_on_a_contradiction_and_passes_on_agreement(tmp_path):
    """The report job's verdicts step, run as written (bash -e, as GitHub runs it), on a merged
    results file whose one kernel agrees with its fact, then on one that contradicts it."""
    import json
    from kregress.report.results import FORMAT

    step = verdicts_step()
    assert "merged/results.json" in step["run"] and not step.get("continue-on-error")
    (tmp_path / "merged").mkdir()
    (tmp_path / "step.sh").write_text(step["run"])
    used = {"getsockopt_relief": {"expected": True, "decided_by": "binary", "sources": {"binary": "present"}}}
    statuses = {}
    for outcome in ("passed", "failed"):
        doc = {"format": FORMAT, "kernels": {"k": {"package_version": "1"}}, "tests": [
            {"nodeid": "t[k]", "kernel": "k", "outcome": outcome, "expectation_facts": ["getsockopt_relief"],
             "facts_used": used}]}
        (tmp_path / "merged/results.json").write_text(json.dumps(doc))
        summary = tmp_path / f"summary-{outcome}"
        proc = subprocess.run(["bash", "-e", str(tmp_path / "step.sh")], cwd=tmp_path, capture_output=True, text=True,
                              env={"PATH": f"{BIN}:/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary)}, timeout=60)
        statuses[outcome] = proc.returncode
        assert "getsockopt_relief" in summary.read_text() and (tmp_path / "merged/verdicts.json").exists()
    assert statuses == {"passed": 0, "failed": 1}


def shard_step(step_id: str) -> dict:
    [step] = [s for s in jobs()["shard"]["steps"] if s.get("id") == step_id]
    return step


def test_a_snapshot_is_saved_under_a_key_of_its_own_only_when_the_run_saved_a_new_state(tmp_path):
    """A refused state is replaced under the same snapshot key; a cache entry whose key hit is
    never overwritten, so the save step needs its own key and must run only for a new state.
    The two shell steps that decide it, run as written."""
    shard = jobs()["shard"]["steps"]
    restore = next(s for s in shard if s.get("uses", "").startswith("actions/cache/restore@"))
    save = next(s for s in shard if s.get("uses", "").startswith("actions/cache/save@"))
    assert save["with"]["key"] == restore["with"]["key"] and "github.run_id" in save["with"]["key"]
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"])
    assert "steps.state-after.outputs.saved == 'true'" in save["if"]

    snapshot = tmp_path / "snap"
    env = {"PATH": "/usr/bin:/bin", "SNAPSHOT_DIR": str(snapshot)}

    def step(step_id: str, **extra) -> dict:
        out = tmp_path / f"{step_id}.out"
        out.write_text("")
        subprocess.run(["bash", "-e", "-c", shard_step(step_id)["run"]], check=True, timeout=30,
                       env={**env, **extra, "GITHUB_OUTPUT": str(out)})
        return dict(line.split("=", 1) for line in out.read_text().splitlines())

    def saved(before: str) -> bool:
        return step("state-after", BEFORE=before).get("saved") == "true"

    assert step("state-before")["state"] == "none" and not saved("none")    # nothing restored, nothing saved
    snapshot.mkdir()
    (snapshot / "state").write_bytes(b"first")
    assert saved("none")                                                    # first boot saved one
    restored = step("state-before")["state"]
    (snapshot / "manifest.json").write_text("{}")                          # a restore only touches the manifest
    assert not saved(restored)
    replacement = tmp_path / "state.new"
    replacement.write_bytes(b"second state")
    replacement.replace(snapshot / "state")                                 # refused, removed, saved anew
    assert saved(restored)
