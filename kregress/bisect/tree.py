"""Building a kernel tree with virtme-ng and the project's config fragment (configs/bisect.config)."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import PROJECT_ROOT
from .steps import run_logged, tail, tool_env

DEFAULT_FRAGMENT = PROJECT_ROOT / "configs" / "bisect.config"
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
        return BuildResult(False, f"{tree} is not a kernel source tree (no Makefile/Kconfig)")
    env = tool_env()
    use_ccache = ccache == "yes" or (ccache == "auto" and shutil.which("ccache", path=env["PATH"]) is not None)
    try:
        cmd = build_command(fragment, jobs, use_ccache, nice, env)
    except FileNotFoundError as err:
        return BuildResult(False, str(err))
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
