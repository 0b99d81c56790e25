"""Where the harness keeps downloads, builds and run directories."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Kernels and builds survive between runs here; KREGRESS_CACHE moves it."""
    base = os.environ.get("KREGRESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kregress")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_run_dir(base: Path | None = None) -> Path:
    """runs/<UTC time>-<pid>: console logs, keys and results of one run; nothing else is written."""
    import time
    base = base or PROJECT_ROOT / "runs"
    return base / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"   # made when first written


def kregress_command() -> str:
    """How to call kregress from the project root, as printed in reproduce lines: the
    entry point beside the running interpreter (the project's .venv/bin/kregress after
    `make setup`), relative to the project when it lives inside it."""
    import sys
    entry = Path(sys.executable).parent / "kregress"
    if not entry.exists():
        return "kregress"
    try:
        return str(entry.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(entry)
