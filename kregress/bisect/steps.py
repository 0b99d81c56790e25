"""The step log (append-only JSON lines) and subprocesses run with their output to a log."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..procs import kill_group


# --------------------------------------------------------------------------- step log

class StepLog:
    """Append-only JSON lines, flushed and fsynced per record: a crash loses nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict) -> dict:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, default=str, sort_keys=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue        # a line cut short by a crash: ignore it
        return out


# --------------------------------------------------------------------------- subprocesses

def run_logged(cmd: list[str], log_path: Path, timeout: float, cwd: Path | None = None,
               env: dict | None = None) -> tuple[int | None, float]:
    """Run in its own process group with output to log_path; (exit code or None on timeout, s)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"# {shlex.join(cmd)}\n# cwd {cwd or os.getcwd()}\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            log.write(f"# cannot start: {err}\n")
            return 127, 0.0
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc, grace=20)   # pytest shuts its VM down on SIGTERM
            log.write(f"\n# killed after {timeout:.0f}s\n")
            return None, round(time.monotonic() - started, 2)
        except BaseException:
            kill_group(proc, grace=20)   # pytest shuts its VM down on SIGTERM
            raise
    return rc, round(time.monotonic() - started, 2)


def tool_env() -> dict:
    """The caller's PATH first (so a wrapper or fake wins), then our venv (vng,
    virtme-configkernel, virtme-run) and sbin (depmod)."""
    extra = [str(Path(sys.executable).parent), "/usr/sbin", "/sbin"]
    path = os.pathsep.join([os.environ.get("PATH", "/usr/bin:/bin"), *extra])
    return dict(os.environ, PATH=path)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
