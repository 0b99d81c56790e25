"""A kernel's module tree: where each module's file is, and its bytes decompressed."""
from __future__ import annotations

import functools
import gzip
import lzma
import re
import subprocess
from pathlib import Path


class ModuleError(RuntimeError):
    """A module file that cannot be read; the message names it."""


@functools.lru_cache(maxsize=16)        # a kernel's tree does not change under a running process
def module_files(modules_dir: Path) -> dict[str, Path]:
    """Module name (dashes as underscores) -> file, for every .ko[.xz|.gz|.zst] in the tree."""
    files = {}
    for path in modules_dir.rglob("*.ko*"):
        name = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", path.name)
        if name != path.name:
            files[name.replace("-", "_")] = path
    return files


def read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        proc = subprocess.run(["zstd", "-dc", str(path)], capture_output=True)
        if proc.returncode != 0:
            raise ModuleError(f"cannot decompress {path}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout
    return data
