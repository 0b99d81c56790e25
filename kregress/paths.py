"""Where things are: the files kregress reads (a checkout's own, or the copy its wheel
carries), the cache, and run directories (in the directory it is run from)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
PACKAGED_DATA = PACKAGE_DIR / "_data"       # written into the wheel by setup.py, never in a checkout


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "guest" / "image.toml").is_file()


# guest/, progs/, kernels.toml and the other TOML files: a checkout's (an editable install, or
# running from the tree) or the installed wheel's copy; both hold the same files.
DATA_ROOT = _CHECKOUT if _is_checkout(_CHECKOUT) else PACKAGED_DATA
# The scenario suite (tests/, scripts/): only a checkout has it.
SUITE_ROOT = _CHECKOUT if _is_checkout(_CHECKOUT) and (_CHECKOUT / "tests").is_dir() else None


class NoSuite(RuntimeError):
    """A command of the scenario suite (bisect) run from an installed kregress."""


def data(relative: str) -> Path:
    """One of the files kregress ships: data("kernels.toml"), data("guest/image.toml")."""
    return DATA_ROOT / relative


def suite_root() -> Path:
    if SUITE_ROOT is None:
        raise NoSuite(f"this needs kregress's scenario suite (tests/), which only a checkout has; this kregress is "
                      f"installed at {PACKAGE_DIR}: git clone the kregress repository and run it from there")
    return SUITE_ROOT


def cache_dir() -> Path:
    """Kernels and builds survive between runs here; KREGRESS_CACHE moves it."""
    base = os.environ.get("KREGRESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kregress")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_run_dir(base: Path | None = None) -> Path:
    """./runs/<UTC time>-<pid> in the directory kregress runs from: console logs, keys and
    results of one run; nothing else is written."""
    import time
    base = base or Path.cwd() / "runs"
    return base / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"   # made when first written


def kregress_command() -> str:
    """How to call kregress, as printed in reproduce lines: the entry point beside the running
    interpreter (the project's .venv/bin/kregress after `make setup`, or a pipx/venv install),
    relative to the checkout or the working directory when it lives inside one, as the README
    writes it."""
    import sys
    entry = Path(sys.executable).parent / "kregress"
    if not entry.exists():
        return "kregress"
    for base in (SUITE_ROOT, Path.cwd()):
        if base is not None and entry.is_relative_to(base):
            return str(entry.relative_to(base))
    return str(entry)
