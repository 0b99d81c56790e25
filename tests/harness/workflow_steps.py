"""Running a GitHub Actions step here as the runner would: its shell, its env: (with the few
expressions our workflow and action use filled in), and GITHUB_OUTPUT / GITHUB_STEP_SUMMARY
files of its own. Used by the tests that run the shipped workflow's and action's steps."""
import os
import re
import subprocess
import sys
from pathlib import Path

from nested import without_pytest_vars

from kregress.paths import SUITE_ROOT

EXPRESSION = re.compile(r"\$\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def workspace(tmp_path: Path, name: str) -> Path:
    """A checkout of its own for one job: the repository's entries linked, runs/ its own."""
    work = tmp_path / name
    work.mkdir()
    for entry in SUITE_ROOT.iterdir():
        if entry.name not in ("runs", ".git"):
            (work / entry.name).symlink_to(entry)
    return work


def expand(value, contexts: dict[str, str]) -> str:
    """`${{ inputs.x }}`, `${{ steps.s.outputs.o }}`, `${{ runner.temp }}`...: the context
    values given; an expression not given is an error (the test must say what it stands for)."""
    return EXPRESSION.sub(lambda m: contexts[m.group(1)], str(value))


def run_step(step: dict, work: Path, env: dict, outputs: Path, contexts: dict[str, str] | None = None,
             check: bool = True, path: str | None = None) -> str | subprocess.CompletedProcess:
    """One `run:` step under the shell GitHub Actions would use, with its env: and a
    GITHUB_OUTPUT / GITHUB_STEP_SUMMARY of its own; returns what it wrote to GITHUB_OUTPUT
    (check=False: the finished process, for a step that is meant to fail). PATH: the project's
    venv first, as after `make setup`, unless given."""
    outputs.write_text("")
    shell = step.get("shell", "bash")
    script = work / ".step"
    script.write_text(step["run"])
    cmd = [sys.executable, str(script)] if shell.startswith("python") else ["bash", "-eo", "pipefail", str(script)]
    outer = without_pytest_vars()
    step_env = {k: expand(v, contexts) if contexts is not None else str(v) for k, v in (step.get("env") or {}).items()}
    full_env = {**outer, **env, **step_env,
                "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(work / ".summary"),
                "PATH": path or f"{SUITE_ROOT / '.venv/bin'}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=work, env=full_env, capture_output=True, text=True, timeout=1800)
    if not check:
        return proc
    assert proc.returncode == 0, (f"workflow step {step.get('name') or step['run'][:60]!r} failed "
                                  f"({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return outputs.read_text()


def output_of(text: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}="))


