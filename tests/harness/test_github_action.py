"""The GitHub Action (action.yml) run here as a BPF project's workflow would run it: its own
steps, read from the file, in a project directory of its own with one of our fixture programs,
on a real kernel. The steps that are other actions (setup-python, the cache, the upload) are
GitHub's; what they are given is checked. The project's venv is not on PATH: the action
installs kregress from its own checkout into a venv of its own."""
import json
import os
import shutil
import sys
from pathlib import Path

from ruamel.yaml import YAML

from kregress.paths import SUITE_ROOT
from workflow_steps import expand, run_step


ACTION = SUITE_ROOT / "action.yml"
FIXTURES = SUITE_ROOT / "tests/fixture_progs"
KERNEL = "debian-6.12"


def test_the_actions_steps_run_as_written(tmp_path):
    action = YAML(typ="safe").load(ACTION.read_text())
    steps = action["runs"]["steps"]
    project = tmp_path / "bpf-project"
    (project / "bpf").mkdir(parents=True)
    for name in ("ignores_others.bpf.c", "common_sockopt.h"):      # an object with a finding on every kernel
        shutil.copy(FIXTURES / name, project / "bpf" / name)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    contexts = {"inputs.programs": "bpf/*.bpf.c", "inputs.kernels": KERNEL, "inputs.owns": "", "inputs.maps": "",
                "inputs.fail-on": action["inputs"]["fail-on"]["default"], "github.action_path": str(SUITE_ROOT),
                "github.job": "check", "runner.temp": str(runner_temp), "runner.os": "Linux", "runner.arch": "X64",
                # setup-python's Python stands in as this one: an interpreter with pip (a venv made
                # from it is made from the base interpreter, and sees none of this venv's packages)
                "steps.python.outputs.python-path": sys.executable}
    path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"          # no venv of ours
    outputs = tmp_path / "github_output"
    used = []
    for step in steps:
        if "uses" in step:
            used.append(step["uses"].split("@")[0])
            continue
        if step["name"].startswith("Fail on"):
            final = step
            continue
        written = run_step(step, project, {}, outputs, contexts, path=path)
        for line in written.splitlines():
            key, _, value = line.partition("=")
            contexts[f"steps.{step['id']}.outputs.{key}"] = value
    assert used == ["actions/setup-python", "actions/cache/restore", "actions/cache/save", "actions/upload-artifact"]

    # installed from the action's checkout into its own venv, not the project's
    kregress = Path(contexts["steps.install.outputs.kregress"])
    assert kregress.is_relative_to(runner_temp) and kregress.exists()
    assert contexts["steps.install.outputs.selection"] == f"--kernel {KERNEL}"
    # check-progs ran on the kernel and found what the fixture does everywhere
    assert contexts["steps.check.outputs.exit-code"] == "1"
    run_dir = Path(contexts["steps.check.outputs.run-dir"])
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["summary"]["kernels_booted"] == 1 and doc["summary"]["vm_tests_run"] >= 1
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    for line in upload["with"]["path"].splitlines():
        assert Path(expand(line, contexts)).exists(), line
    summary = (project / ".summary").read_text()
    assert "kregress check-progs (exit 1)" in summary and "efault_longer_than_buffer" in summary
    # the cache key is what was fetched, and the save runs when the restored key differs
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save@"))
    assert save["with"]["key"] == "${{ steps.fetch.outputs.key }}" and "steps.fetch.outputs.key" in save["if"]
    assert contexts["steps.fetch.outputs.key"].startswith("kregress-check-progs-Linux-X64-")

    # fail-on: findings fail the step by default; a project that only gates on unchecked passes
    for fail_on, status in ((contexts["inputs.fail-on"], 1), ("unchecked", 0), ("none", 0), ("bogus", 2)):
        proc = run_step(final, project, {}, outputs, {**contexts, "inputs.fail-on": fail_on}, check=False, path=path)
        assert proc.returncode == status, (fail_on, proc.stdout, proc.stderr)
