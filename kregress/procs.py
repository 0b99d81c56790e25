"""Child processes that never outlive us: each runs in its own process group."""
from __future__ import annotations

import os
import signal
import subprocess

_live: set[subprocess.Popen] = set()


def spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kwargs)
    _live.add(proc)
    return proc


def kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the whole group (vng, qemu, helpers), then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            # the leader is gone; make sure no member of its group lingers
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    _live.discard(proc)


def run_bounded(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int | None, str]:
    """Run to completion or kill the group at the timeout; returns (exit code or None, output)."""
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
        _live.discard(proc)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        kill_group(proc, grace=2)
        return None, ""


def kill_all() -> None:
    """For signal handlers and atexit: no qemu is left behind."""
    for proc in list(_live):
        kill_group(proc, grace=2)
