"""The shipped CI workflow's own commands, run here as its jobs run them: the kernels job
picks the default kernels, the unit job runs the unit tests, two shard jobs run their steps
for one kernel each (on separate machines there, in separate directories here), and the
report job merges the two shards' results, reports them, judges the verdicts (failing on a
contradiction) and checks them. The commands are read from
.github/workflows/matrix.yml, not copied: the workflow cannot drift from the CLI."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kregress.paths import SUITE_ROOT

pytestmark = [pytest.mark.vm, pytest.mark.harness]

WORKFLOW = SUITE_ROOT / ".github/workflows/matrix.yml"
SHARDS = 2


def workspace(tmp_path: Path, name: str) -> Path:
    """A checkout of its own for one job: the repository's entries linked, runs/ its own."""
    work = tmp_path / name
    work.mkdir()
    for entry in SUITE_ROOT.iterdir():
        if entry.name not in ("runs", ".git"):
            (work / entry.name).symlink_to(entry)
    return work


def run_step(step: dict, work: Path, env: dict, outputs: Path) -> str:
    """One `run:` step under the shell GitHub Actions would use, with its env: and a
    GITHUB_OUTPUT / GITHUB_STEP_SUMMARY of its own; returns what it wrote to GITHUB_OUTPUT."""
    outputs.write_text("")
    shell = step.get("shell", "bash")
    script = work / ".step"
    script.write_text(step["run"])
    cmd = [sys.executable, str(script)] if shell.startswith("python") else ["bash", "-eo", "pipefail", str(script)]
    outer = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}   # not this pytest's worker
    full_env = {**outer, **env, **{k: str(v) for k, v in (step.get("env") or {}).items()},
                "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(work / ".summary"),
                "PATH": f"{SUITE_ROOT / '.venv/bin'}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=work, env=full_env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, (f"workflow step {step.get('name') or step['run'][:60]!r} failed "
                                  f"({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return outputs.read_text()


def output_of(text: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}="))


def test_the_workflows_shard_and_report_jobs_run_as_written(tmp_path):
    jobs = YAML(typ="safe").load(WORKFLOW.read_text())["jobs"]
    outputs = tmp_path / "github_output"

    # kernels job: its one script, reading kernels.toml
    kernels_job = workspace(tmp_path, "kernels")
    listed = run_step(next(s for s in jobs["kernels"]["steps"] if "run" in s), kernels_job, {}, outputs)
    ids = json.loads(output_of(listed, "ids"))
    assert len(ids) >= SHARDS and int(output_of(listed, "count")) == len(ids)

    # unit job: its steps after the checkout (make unit: setup.sh, then tests/unit)
    unit_job = workspace(tmp_path, "unit")
    for step in jobs["unit"]["steps"]:
        if "run" in step and "apt-get" not in step["run"]:
            run_step(step, unit_job, {}, outputs)

    # shard jobs: every run: step after the checkout (apt-get for git and make is the
    # container's business here), for the first two kernels
    shards = tmp_path / "report" / "shards"
    shards.mkdir(parents=True)
    for kernel in ids[:SHARDS]:
        work = workspace(tmp_path, f"shard-{kernel}")
        env = {"KERNEL": kernel}
        for step in jobs["shard"]["steps"]:
            if "run" in step and "apt-get" not in step["run"]:
                run_step(step, work, env, outputs)
        # upload-artifact results-<kernel> (runs/shard/ without ssh/) -> download into shards/
        shutil.copytree(work / "runs/shard", shards / f"results-{kernel}", ignore=shutil.ignore_patterns("ssh"))

    # report job: its kregress steps, on the two shards (pip install -e . is the venv here)
    report = tmp_path / "report"
    env = {"KERNELS": str(SHARDS)}
    for step in jobs["report"]["steps"]:
        if "run" in step and "kregress" in step["run"]:
            step = {**step, "env": {k: (str(SHARDS) if "needs.kernels.outputs.count" in str(v) else v)
                                    for k, v in (step.get("env") or {}).items()}}
            run_step(step, report, env, outputs)
    merged = json.loads((report / "merged/results.json").read_text())
    assert sorted(merged["kernels"]) == sorted(ids[:SHARDS])
    assert merged["summary"]["vm_tests_run"] > 0 and not merged["summary"]["kernels_failed"]
    assert (report / "merged/report.html").exists() and (report / ".summary").read_text().startswith("```")
    # the verdicts step ran on the merged results (exit 0: no contradiction) and left its table
    verdicts = json.loads((report / "merged/verdicts.json").read_text())
    assert {row["kernel"] for row in verdicts} == set(ids[:SHARDS])
    assert all(row["verdict"] not in ("CONTRADICTION", "IN QUESTION") for row in verdicts)
    assert "verdicts: " in (report / ".summary").read_text()
