"""Child processes that never outlive us.

Each child runs in its own process group (so one signal reaches vng, virtme-run and
qemu together), and a tiny reaper process watches a pipe from us: when we exit for any
reason - even SIGKILL, or an xdist worker torn down mid-test - the pipe closes and the
reaper kills the group. No qemu is left behind. A group's peak memory is read from /proc.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

_live: dict[subprocess.Popen, subprocess.Popen | None] = {}

REAPER = """
import os, signal, sys, time
pgid = int(sys.argv[1])
sys.stdin.buffer.read()          # returns at EOF: our parent closed the pipe or died
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        break
    time.sleep(2)
"""


def spawn(cmd: list[str], reap: bool = True, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kwargs)
    reaper = None
    if reap:
        reaper = subprocess.Popen([sys.executable, "-c", REAPER, str(proc.pid)], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _live[proc] = reaper
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
    _forget(proc)


def _forget(proc: subprocess.Popen) -> None:
    reaper = _live.pop(proc, None)
    if reaper:
        reaper.stdin.close()     # the group is gone: the reaper finds nothing and exits
        try:
            reaper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            reaper.kill()


def run_bounded(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int | None, str]:
    """Run to completion or kill the group at the timeout; returns (exit code or None, output)."""
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
        _forget(proc)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        kill_group(proc, grace=2)
        return None, ""


def kill_all() -> None:
    """For signal handlers and atexit."""
    for proc in list(_live):
        kill_group(proc, grace=2)


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


def group_peak_rss_mb(pgid: int, comm_prefix: str) -> float | None:
    """The peak resident memory (VmHWM) of the first process of group pgid whose name starts
    with comm_prefix, None when there is none."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            comm = fields[0].split("(", 1)[1]
            if int(fields[1].split()[2]) == pgid and comm.startswith(comm_prefix):
                status = (stat.parent / "status").read_text()
                kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
                return round(kb / 1024, 1)
        except (OSError, ValueError, IndexError, StopIteration):
            continue
    return None
