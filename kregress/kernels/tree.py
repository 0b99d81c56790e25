"""Kernel source trees: built with virtme-ng and a config fragment (configs/bisect.config by
default), incrementally. bisect-run builds the checked-out commit; a kernels.toml `tree`
entry builds once per commit + local changes + config fragment and keeps the image in the cache."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kregress.paths import data
from kregress.procs import run_logged, tail, tool_env

DEFAULT_FRAGMENT = data("configs/bisect.config")
IMAGE = Path("arch/x86/boot/bzImage")


@dataclass
class BuildResult:
    ok: bool
    reason: str
    seconds: float = 0.0
    image: Path | None = None
    version: str | None = None
    incremental: bool = False
    command: list[str] = field(default_factory=list)
    log: Path | None = None
    missing: list[str] = field(default_factory=list)
    every_commit: bool = False      # the failure is not this commit's (no tree, no vng): would repeat at all


def required_configs(fragment: Path) -> list[str]:
    """Every CONFIG_X=y line of the fragment is required in the built .config."""
    return [line.split("=", 1)[0] for line in fragment.read_text().splitlines()
            if re.match(r"^CONFIG_\w+=y\s*$", line)]


def missing_configs(dot_config: Path, required: list[str]) -> list[str]:
    try:
        have = {line.split("=", 1)[0] for line in dot_config.read_text(errors="replace").splitlines()
                if line.startswith("CONFIG_") and line.rstrip().endswith("=y")}
    except OSError:
        return list(required)
    return [name for name in required if name not in have]


def kernel_version(tree: Path) -> str | None:
    """VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile (what `make kernelversion` prints,
    without EXTRAVERSION: the facts table matches numbers)."""
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except OSError:
        return None
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        match = re.search(rf"^{key}\s*=\s*(\d+)\s*$", text, re.MULTILINE)
        if not match:
            return None
        fields[key] = match.group(1)
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"


def build_command(fragment: Path, jobs: int, use_ccache: bool, nice: int, env: dict) -> list[str]:
    vng = shutil.which("vng", path=env["PATH"])
    if not vng:
        raise FileNotFoundError("vng (virtme-ng) not found on PATH or in the venv")
    cmd = [vng, "--build", "--verbose", "--config", str(fragment), "--jobs", str(jobs)]
    if use_ccache:
        cmd.append("CC=ccache gcc")
    if nice > 0:
        cmd = ["nice", "-n", str(nice), *cmd]
    return cmd


def build_tree(tree: Path, fragment: Path, jobs: int, ccache: str, nice: int, timeout: float,
               log_path: Path) -> BuildResult:
    """`vng --build` in the tree: an incremental make when the tree was built before."""
    if not (tree / "Makefile").exists() or not (tree / "Kconfig").exists():
        return BuildResult(False, f"{tree} is not a kernel source tree (no Makefile/Kconfig)", every_commit=True)
    env = tool_env()
    use_ccache = ccache == "yes" or (ccache == "auto" and shutil.which("ccache", path=env["PATH"]) is not None)
    try:
        cmd = build_command(fragment, jobs, use_ccache, nice, env)
    except FileNotFoundError as err:
        return BuildResult(False, str(err), every_commit=True)
    incremental = (tree / "vmlinux").exists()
    rc, seconds = run_logged(cmd, log_path, timeout, cwd=tree, env=env)
    result = BuildResult(False, "", seconds=seconds, incremental=incremental, command=cmd, log=log_path,
                         version=kernel_version(tree))
    if rc is None:
        result.reason = f"build timed out after {timeout:.0f}s"
    elif rc != 0:
        result.reason = f"build failed: {Path(cmd[0]).name if cmd[0] != 'nice' else 'vng'} exited with {rc}\n" + \
            "\n".join("  | " + line for line in tail(log_path).splitlines())
    elif not (tree / IMAGE).is_file():
        result.reason = f"build said it succeeded but {IMAGE} is missing"
    else:
        result.missing = missing_configs(tree / ".config", required_configs(fragment))
        if result.missing:
            result.reason = (f"required CONFIG missing from the built .config: {', '.join(result.missing)} "
                             f"(this commit's Kconfig cannot give them, or an old .config without the "
                             f"fragment is in the way: remove it once or run vng --kconfig --config {fragment})")
        elif not result.version:
            result.reason = "cannot read VERSION/PATCHLEVEL/SUBLEVEL from the Makefile"
        else:
            result.ok, result.image = True, tree / IMAGE
            result.reason = f"built {result.version} in {seconds:.0f}s" + (" (incremental)" if incremental else " (fresh tree)")
    return result


def git_info(tree: Path) -> dict:
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None
    info = {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s")}
    git_dir = git("rev-parse", "--absolute-git-dir")
    info["git_dir"] = git_dir
    terms = Path(git_dir) / "BISECT_TERMS" if git_dir else None
    if terms and terms.exists() and (terms.parent / "BISECT_START").exists():    # a bisection is on
        lines = terms.read_text().split()
        if len(lines) >= 2:
            info["terms"] = {"new": lines[0], "old": lines[1]}
    return info


def tree_state(tree: Path) -> dict | None:
    """What the tree holds, for the cache key: HEAD and a digest of the tracked files'
    uncommitted changes. None when the tree is not a git checkout."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None
    head = git("rev-parse", "HEAD")
    if head is None:
        return None
    diff = git("diff", "HEAD", "--binary") or ""
    return {"commit": head.strip(), "subject": (git("log", "-1", "--format=%s") or "").strip(),
            "local_changes": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None}


def cache_key(state: dict, fragment: Path) -> str:
    digest = hashlib.sha256(json.dumps({"commit": state["commit"], "local_changes": state["local_changes"],
                                        "fragment": fragment.read_text()}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass
class BuiltTree:
    image: Path
    config: Path
    version: str
    record: dict            # commit, local changes, fragment, build seconds, whether it was built now


def build_cached(tree: Path, fragment: Path, cache: Path, log_dir: Path, jobs: int | None = None,
                 nice: int = 10, timeout: float = 4 * 3600) -> BuiltTree:
    """The tree's kernel image, from the cache when this commit (plus local changes) was
    built with this fragment before; else an incremental vng --build, copied into the cache.
    Raises RuntimeError with the reason and the build log's tail."""
    if not (tree / "Makefile").exists() or not (tree / "Kconfig").exists():
        raise RuntimeError(f"{tree} is not a kernel source tree (no Makefile/Kconfig)")
    if not fragment.is_file():
        raise RuntimeError(f"config fragment {fragment} does not exist")
    state = tree_state(tree)
    if state is None:
        raise RuntimeError(f"{tree} is not a git checkout: the built kernel is cached by its commit; "
                           f"run git init and commit, or use image = \"{tree / IMAGE}\" after building it yourself")
    out = cache / cache_key(state, fragment)
    try:
        record = json.loads((out / "build.json").read_text())
        if (out / "bzImage").is_file() and (out / "config").is_file():
            return BuiltTree(out / "bzImage", out / "config", record["version"], {**record, "built_now": False})
    except (OSError, ValueError, KeyError, TypeError):
        pass        # not built yet, or a damaged entry: build again and replace it
    log = log_dir / f"build-{out.name}.log"
    result = build_tree(tree, fragment, jobs or os.cpu_count() or 1, "auto", nice, timeout, log)
    if not result.ok:
        raise RuntimeError(f"{result.reason} (build log {log})")
    if tree_state(tree) != state:
        raise RuntimeError(f"{tree} changed while it was being built; build again")
    staging = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(tree / IMAGE, staging / "bzImage")
    shutil.copy2(tree / ".config", staging / "config")
    record = {**state, "tree": str(tree), "fragment": str(fragment), "version": result.version,
              "build_seconds": result.seconds, "incremental": result.incremental, "command": result.command}
    (staging / "build.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return BuiltTree(out / "bzImage", out / "config", result.version, {**record, "built_now": True})
