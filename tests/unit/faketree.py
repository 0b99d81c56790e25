"""A kernel source tree as the builder sees it (Makefile version, Kconfig), and nothing else."""
from pathlib import Path


def make_kernel_tree(path: Path, version: str = "6.12.117") -> Path:
    major, minor, sub = version.split(".")
    path.mkdir(parents=True, exist_ok=True)
    (path / "Makefile").write_text(f"VERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {sub}\nEXTRAVERSION =\n")
    (path / "Kconfig").write_text("")
    return path
