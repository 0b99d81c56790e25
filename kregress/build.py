"""Compile the scenario programs (progs/<name>.bpf.c -> skeleton -> guest/<name>.c driver)
and the guest agent.

Built once per content: the cache key covers every source and header, the flags and
the tool versions, so a second run rebuilds nothing and a changed header rebuilds all.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from .hostcpu import HOST_ARCH
from .paths import PROJECT_ROOT, cache_dir

BPF_CFLAGS = ["-g", "-O2", "-target", "bpf", "-Wall"]
CFLAGS = ["-O2", "-g", "-Wall", "-Wno-unused-function"]


@dataclass(frozen=True)
class Toolchain:
    cc: str                 # the C compiler for drivers and the agent
    bpf_arch: str           # __TARGET_ARCH_<this> for the BPF side
    multiarch: str          # Debian's multiarch triplet: asm/ headers and the static libraries

    @property
    def bpf_flags(self) -> list[str]:
        return [*BPF_CFLAGS, f"-D__TARGET_ARCH_{self.bpf_arch}", f"-I/usr/include/{self.multiarch}"]


# Per guest architecture, cross-built (against the multiarch -dev packages) on another
# host: toolchain() uses plain gcc for the host's own architecture.
TOOLCHAINS = {
    "x86_64": Toolchain("x86_64-linux-gnu-gcc", "x86", "x86_64-linux-gnu"),
    "arm64": Toolchain("aarch64-linux-gnu-gcc", "arm64", "aarch64-linux-gnu"),
}
# Fully static: a driver runs on the guest image's userspace whatever the host's is.
LDLIBS = ["-static", "-l:libbpf.a", "-lelf", "-lz"]


class BuildError(RuntimeError):
    """A program did not compile; the message carries the compiler's own output."""


@dataclass(frozen=True)
class Program:
    name: str
    driver: Path          # guest binary
    bpf_object: Path | None
    rebuilt: bool


def toolchain(arch: str) -> Toolchain:
    if arch not in TOOLCHAINS:
        raise BuildError(f"no toolchain for architecture {arch!r}; known: {', '.join(TOOLCHAINS)}")
    return replace(TOOLCHAINS[arch], cc="gcc") if arch == HOST_ARCH else TOOLCHAINS[arch]


@functools.cache
def _tool_versions(cc: str = "gcc") -> str:
    out = []
    for tool in (["clang", "--version"], [cc, "--version"], ["bpftool", "version"]):
        try:
            out.append(subprocess.run(tool, capture_output=True, text=True).stdout.split("\n")[0])
        except OSError:
            out.append(f"{tool[0]} missing")
    return "\n".join(out)


def _run(cmd: list[str], what: str, stdout=None) -> None:
    try:
        proc = subprocess.run(cmd, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise BuildError(f"{what}: {cmd[0]} is not installed (run `make setup`)") from None
    if proc.returncode != 0:
        raise BuildError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stderr.strip()}")


def content_key(name: str, root: Path, arch: str = "x86_64") -> str:
    tools = toolchain(arch)
    digest = hashlib.sha256()
    digest.update(" ".join(tools.bpf_flags + CFLAGS + LDLIBS).encode())
    digest.update(_tool_versions(tools.cc).encode())
    sources = [root / "progs" / f"{name}.bpf.c", root / "guest" / f"{name}.c"]
    sources += sorted((root / "progs").glob("*.h")) + sorted((root / "guest").glob("*.h"))
    for path in sources:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def _cached(out: Path, lock_name: str, make) -> bool:
    """Make `out` (a directory) once: under a lock (xdist workers build the same thing),
    in a staging directory renamed into place. Returns whether it was built now."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{lock_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return False
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        make(staging)
        staging.rename(out)
    return True


def _cache_name(base: str, arch: str) -> str:
    """x86_64 builds keep their old cache names; other architectures' are apart."""
    return base if arch == "x86_64" else f"{base}-{arch}"


def build(name: str, root: Path | None = None, out_root: Path | None = None, arch: str = "x86_64") -> Program:
    """root: where progs/ and guest/ are (default: the project's own)."""
    root = root or PROJECT_ROOT
    out_root = out_root or cache_dir() / "build"
    tools = toolchain(arch)
    bpf_source = root / "progs" / f"{name}.bpf.c"
    driver_source = root / "guest" / f"{name}.c"
    if not driver_source.exists():
        raise BuildError(f"no guest driver {driver_source}")
    prefix = _cache_name(name, arch)
    out = out_root / f"{prefix}-{content_key(name, root, arch)}"
    bpf_object = out / f"{name}.bpf.o" if bpf_source.exists() else None

    def make(staging: Path) -> None:
        includes = ["-I", str(staging), "-I", str(root / "guest")]
        if bpf_object:
            obj = staging / bpf_object.name
            _run(["clang", *tools.bpf_flags, "-I", str(root / "progs"), "-c", str(bpf_source), "-o", str(obj)],
                 f"compiling {bpf_source.relative_to(root)}")
            with open(staging / f"{name}.skel.h", "w") as skel:
                _run(["bpftool", "gen", "skeleton", str(obj), "name", name], f"skeleton for {name}", stdout=skel)
        _run([tools.cc, *CFLAGS, *includes, str(driver_source), "-o", str(staging / name), *LDLIBS],
             f"compiling {driver_source.relative_to(root)} for {arch}")

    rebuilt = _cached(out, prefix, make)
    return Program(name, out / name, bpf_object, rebuilt=rebuilt)


AGENT_SOURCE = Path(__file__).with_name("in_guest") / "agent.c"


def build_agent(out_root: Path | None = None, arch: str = "x86_64") -> Path:
    """The guest agent (in_guest/agent.c), static like the drivers, cached by content."""
    out_root = out_root or cache_dir() / "build"
    tools = toolchain(arch)
    flags = [*CFLAGS, "-static"]
    digest = hashlib.sha256(" ".join(flags).encode() + _tool_versions(tools.cc).encode() + AGENT_SOURCE.read_bytes())
    prefix = _cache_name("agent", arch)
    out = out_root / f"{prefix}-{digest.hexdigest()[:20]}"
    _cached(out, prefix, lambda staging: _run([tools.cc, *flags, str(AGENT_SOURCE), "-o", str(staging / "agent"), "-lz"],
                                               f"compiling the guest agent (kregress/in_guest/agent.c) for {arch}"))
    return out / "agent"


def scenario_names(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(p.stem for p in (root / "guest").glob("*.c"))
