"""Compile the scenario programs (progs/<name>.bpf.c -> skeleton -> guest/<name>.c driver)
and the guest agent, inside the build root (kregress/provision/buildroot.py): the host's compilers
and libraries never reach a driver, and the same sources give the same bytes on any host.

Built once per content: the cache key covers every source and header, the flags and
the build root's installed packages, so a second run rebuilds nothing and a changed
header rebuilds all.
"""
from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kregress.provision import buildroot
from kregress.arch import UnknownArch, arch as arch_of
from kregress.paths import DATA_ROOT, cache_dir

# Paths inside the build root are the same everywhere (/src, /out); the prefix maps keep
# even those out of the debug info and __FILE__.
REPRODUCIBLE = [f"-f{kind}-prefix-map={point}=." for kind in ("file", "debug") for point in ("/src", "/out")]
BPF_CFLAGS = ["-g", "-O2", "-target", "bpf", "-Wall", *REPRODUCIBLE]
CFLAGS = ["-O2", "-g", "-Wall", "-Wno-unused-function", *REPRODUCIBLE]


@dataclass(frozen=True)
class Toolchain:
    cc: str                 # the C compiler for drivers and the agent (in the build root)
    bpf_arch: str           # __TARGET_ARCH_<this> for the BPF side
    multiarch: str          # Debian's multiarch triplet: asm/ headers and the static libraries
    byte_order: str = "little"

    @property
    def bpf_flags(self) -> list[str]:
        # a big-endian kernel loads big-endian BPF objects only (libbpf: "endianness mismatch")
        flags = [("bpfeb" if self.byte_order == "big" else flag) if flag == "bpf" else flag for flag in BPF_CFLAGS]
        return [*flags, f"-D__TARGET_ARCH_{self.bpf_arch}", f"-I/usr/include/{self.multiarch}"]


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
    """In the build root (amd64 on every host, so the same compilers everywhere); other
    architectures are cross-built against its multiarch -dev packages (the arch record's)."""
    try:
        machine = arch_of(arch)
    except UnknownArch as err:
        raise BuildError(f"no toolchain: {err}") from None
    return Toolchain(machine.cc, machine.bpf_target, machine.multiarch, machine.byte_order)


def _run(root: buildroot.BuildRoot, argv: list[str], binds: dict[str, Path], what: str) -> str:
    try:
        return buildroot.run(root.path, argv, binds, what)
    except buildroot.BuildRootError as err:
        raise BuildError(str(err)) from None


def _key(*parts: bytes) -> str:
    """Cache key: the build root's package set, the flags and the given contents."""
    digest = hashlib.sha256(buildroot.ensure().digest.encode())
    digest.update(" ".join(BPF_CFLAGS + CFLAGS + LDLIBS).encode())
    for part in parts:
        digest.update(part + b"\0")
    return digest.hexdigest()[:20]


def driver_sources(name: str, root: Path) -> list[str]:
    """What a driver is compiled from, relative to root: guest/NAME.c, its own parts
    (guest/NAME/*.c) and the helpers every driver shares (guest/lib/*.c)."""
    guest = root / "guest"
    parts = sorted((guest / name).glob("*.c")) + sorted((guest / "lib").glob("*.c"))
    return [f"guest/{name}.c", *(str(path.relative_to(root)) for path in parts)]


def content_key(name: str, root: Path, arch: str = "x86_64") -> str:
    tools = toolchain(arch)
    guest = root / "guest"
    sources = [root / "progs" / f"{name}.bpf.c", *(root / source for source in driver_sources(name, root))]
    sources += sorted((root / "progs").glob("*.h")) + sorted(guest.glob("*.h"))
    sources += sorted((guest / name).glob("*.h")) + sorted((guest / "lib").glob("*.h"))
    return _key(" ".join(tools.bpf_flags + [tools.cc]).encode(),
                *(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes()
                  for path in sources if path.exists()))


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
    root = root or DATA_ROOT
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
        build_root, binds = buildroot.ensure(), {"src": root, "out": staging}
        if bpf_object:
            _compile_bpf(build_root, tools, f"progs/{name}.bpf.c", binds)
            skeleton_of = f"/out/{name}.bpf.o"
            if tools.byte_order == "big":
                # the build root's bpftool (7.1) opens no object of the other byte order: the
                # skeleton is made from a little-endian twin (the same sections, maps and
                # types) and carries the big-endian object's bytes
                little = Toolchain(tools.cc, tools.bpf_arch, tools.multiarch)
                _compile_bpf(build_root, little, f"progs/{name}.bpf.c", binds, out=f"/out/{name}.le.bpf.o")
                skeleton_of = f"/out/{name}.le.bpf.o"
            skeleton = _run(build_root, ["bpftool", "gen", "skeleton", skeleton_of, "name", name], binds,
                            f"skeleton for {name}")
            if tools.byte_order == "big":
                skeleton = embed_object(skeleton, name, bpf_object_path(staging, name).read_bytes())
                (staging / f"{name}.le.bpf.o").unlink()
            (staging / f"{name}.skel.h").write_text(skeleton)
        _run(build_root, [tools.cc, *CFLAGS, "-I", "/out", "-I", "guest", *driver_sources(name, root),
                          "-o", f"/out/{name}", *LDLIBS], binds, f"compiling guest/{name}.c for {arch}")

    rebuilt = _cached(out, prefix, make)
    return Program(name, out / name, bpf_object, rebuilt=rebuilt)


def _compile_bpf(build_root: buildroot.BuildRoot, tools: Toolchain, source: str, binds: dict[str, Path],
                 shown: str | None = None, out: str | None = None) -> None:
    """source: relative to /src, so nothing of either path is left in the object; its
    directory's headers are on the include path; the object goes to /out."""
    directory, name = (source.rsplit("/", 1) if "/" in source else (".", source))
    _run(build_root, ["clang", *tools.bpf_flags, "-I", directory, "-c", source, "-o", out or f"/out/{name[:-2]}.o"],
         binds, f"compiling {shown or source}")


def bpf_object_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.bpf.o"


ELF_BYTES = re.compile(r'(__elf_bytes\(size_t \*sz\)\n\{\n\t\*sz = )\d+(;\n\treturn \(const void \*\)"\\\n)'
                       r'(.*?)(";\n\})', re.S)


def embed_object(skeleton: str, name: str, data: bytes) -> str:
    """A bpftool skeleton with another object's bytes in NAME__elf_bytes (every byte escaped,
    so no escape runs into the next; 32 a line, as bpftool writes them)."""
    lines = "\\\n".join("".join(f"\\x{b:02x}" for b in data[at:at + 32]) for at in range(0, len(data), 32))
    replaced, count = ELF_BYTES.subn(lambda m: f"{m.group(1)}{len(data)}{m.group(2)}{lines}{m.group(4)}", skeleton)
    if count != 1:
        raise BuildError(f"skeleton for {name}: no {name}__elf_bytes to carry the big-endian object")
    return replaced


def bpf_object(source: Path, arch: str = "x86_64", out_root: Path | None = None) -> Path:
    """Someone's own NAME.bpf.c (check-progs) compiled like the scenarios' BPF side, in the
    build root with the same flags, cached by content (the source and its directory's headers)."""
    source = Path(source).resolve()
    if not source.name.endswith(".bpf.c"):
        raise BuildError(f"{source}: a BPF program's source is named NAME.bpf.c")
    tools = toolchain(arch)
    headers = sorted(source.parent.glob("*.h"))
    name = source.name[:-len(".bpf.c")]
    key = _key(" ".join(tools.bpf_flags).encode(), source.name.encode(), source.read_bytes(),
               *(h.name.encode() + b"\0" + h.read_bytes() for h in headers))
    out = (out_root or cache_dir() / "build") / "user-progs" / f"{name}-{arch}-{key}"
    _cached(out, f"{name}-{arch}", lambda staging: _compile_bpf(buildroot.ensure(), tools, source.name,
                                                                 {"src": source.parent, "out": staging}, str(source)))
    return out / f"{name}.bpf.o"


AGENT_DIR = Path(__file__).with_name("in_guest")


def agent_sources(directory: Path = AGENT_DIR) -> list[Path]:
    """The agent's C sources and headers (in_guest/*.c, *.h): what it is built from."""
    return sorted(directory.glob("*.c")) + sorted(directory.glob("*.h"))


def build_agent(out_root: Path | None = None, arch: str = "x86_64") -> Path:
    """The guest agent (in_guest/*.c), static like the drivers, cached by content."""
    out_root = out_root or cache_dir() / "build"
    tools = toolchain(arch)
    sources = agent_sources(AGENT_DIR)
    argv = [tools.cc, *CFLAGS, "-static", *(path.name for path in sources if path.suffix == ".c"),
            "-o", "/out/agent", "-lz"]
    prefix = _cache_name("agent", arch)
    contents = (path.name.encode() + b"\0" + path.read_bytes() for path in sources)
    out = out_root / f"{prefix}-{_key(' '.join(argv).encode(), *contents)}"
    _cached(out, prefix, lambda staging: _run(buildroot.ensure(), argv, {"src": AGENT_DIR, "out": staging},
                                              f"compiling the guest agent (kregress/provision/in_guest/*.c) for {arch}"))
    return out / "agent"


def scenario_names(root: Path = DATA_ROOT) -> list[str]:
    return sorted(p.stem for p in (root / "guest").glob("*.c"))
