"""The shipped CI workflow's own commands, run here as its jobs run them: the kernels job
picks the default kernels, the unit job runs the unit tests, two shard jobs run their steps
for one kernel each (on separate machines there, in separate directories here), and the
report job merges the two shards' results, reports them, judges the verdicts (failing on a
contradiction) and checks them. The commands are read from
.github/workflows/matrix.yml, not copied: the workflow cannot drift from the CLI."""
import json
import shutil

from ruamel.yaml import YAML

from kregress.paths import SUITE_ROOT
from workflow_steps import output_of, run_step, workspace


WORKFLOW = SUITE_ROOT / ".github/workflows/matrix.yml"
SHARDS = 2
SHARD_MODULE = "tests/scenarios/test_getsockopt_efault.py"
SHARD_CASE = "test_unknown_option_big_optlen"        # a case judging a fact on every kernel


def test_the_workflows_shard_and_report_jobs_run_as_written(tmp_path):
    jobs = YAML(typ="safe").load(WORKFLOW.read_text())["jobs"]
    outputs = tmp_path / "github_output"

    # kernels job: its one script, reading kernels.toml
    kernels_job = workspace(tmp_path, "kernels")
    listed = run_step(next(s for s in jobs["kernels"]["steps"] if "run" in s), kernels_job, {}, outputs)
    ids = json.loads(output_of(listed, "ids"))
    assert len(ids) >= SHARDS and int(output_of(listed, "count")) == len(ids)

    # unit job: its steps after the checkout (make unit: setup.sh, then tests/unit), narrowed to one
    # unit module: `make test` runs the whole unit suite already; this proves the step's command
    # (set-up, then pytest on tests/unit) works as the workflow writes it
    unit_job = workspace(tmp_path, "unit")
    unit_steps = [step for step in jobs["unit"]["steps"] if "run" in step and "apt-get" not in step["run"]]
    assert [step["run"].strip() for step in unit_steps] == ["make unit"]
    ran = run_step(unit_steps[0], unit_job, {"PYTEST_ARGS": "-k test_durations"}, outputs, check=False)
    assert ran.returncode == 0 and "setup: ok" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "pytest -q -p no:cacheprovider tests/unit -k test_durations" in ran.stdout
    summary = [line for line in ran.stdout.splitlines() if " passed" in line and " in " in line]
    assert summary and "failed" not in summary[-1] and "error" not in summary[-1], ran.stdout[-2000:]

    # shard jobs: every run: step after the checkout (apt-get for git and make is the
    # container's business here), for the first two kernels. Their pytest is narrowed to one
    # scenario case through PYTEST_ADDOPTS, which pytest reads and the steps leave alone:
    # `make test` runs every scenario on these kernels already; this proves the steps, the
    # shards' results and the report job on them
    shards = tmp_path / "report" / "shards"
    shards.mkdir(parents=True)
    for kernel in ids[:SHARDS]:
        work = workspace(tmp_path, f"shard-{kernel}")
        env = {"KERNEL": kernel, "PYTEST_ADDOPTS": f"-k {SHARD_CASE}"}
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
    assert {t["nodeid"].split("[")[0] for t in merged["tests"]} == {f"{SHARD_MODULE}::{SHARD_CASE}"}
    assert all(row["verdict"] not in ("CONTRADICTION", "IN QUESTION") for row in verdicts)
    assert "verdicts: " in (report / ".summary").read_text()
