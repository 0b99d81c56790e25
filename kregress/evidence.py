"""What each source says about a kernel's facts, before it boots.

A distribution backports fixes without changing the upstream version, and a kernel can
be built from a tree where a fix was reverted, so the version is only one witness:

- binary: the decompressed kernel contains a string only a kernel with the fact has
  (Fact.signature: a message the fix added, or a name in the kernel's BTF);
- changelog: Debian's package changelog lists the stable commit titles it merged;
- version: the upstream version against the releases that carry the fact.

Each answers "present", "absent" or "unknown". A changelog that does not mention a fix
its own upstream base (the version of its newest entry) already had says nothing about
it (unknown); a kernel image with no
readable binary or no changelog is unknown there. The order of trust is kernels.toml's
stated facts, then binary, changelog, version (kregress.facts.KernelFacts applies it).
"""
from __future__ import annotations

import functools
import gzip
import mmap
import re
import zlib
from pathlib import Path

from .facts import FACTS, parse_version
from .vmlinux import extract, pvh_vmlinux

PRESENT, ABSENT, UNKNOWN = "present", "absent", "unknown"
SOURCES = ("binary", "changelog", "version")


@functools.lru_cache(maxsize=32)     # once per kernel per process, however many VMs it starts
def gather(image: Path, version: str | None, digest: str | None = None) -> dict[str, dict[str, str]]:
    """fact name -> {source: answer} for the kernel image at `image`."""
    binary = _binary_answers(image, digest)
    changelog = _changelog_text(image)
    # the changelog's own upstream base (its newest entry's version), not the one the
    # kernels file declares: a wrong declaration must not leak into this witness
    base = _changelog_base(changelog)
    parsed = parse_version(version)
    out = {}
    for name, fact in FACTS.items():
        in_version = fact.in_version(parsed) if parsed else None
        if changelog is None:
            from_changelog = UNKNOWN
        elif fact.title in changelog:
            from_changelog = PRESENT
        elif base is None or fact.in_version(base):
            from_changelog = UNKNOWN    # silence about a fix the base already had says nothing
        else:
            from_changelog = ABSENT
        out[name] = {"binary": binary.get(name, UNKNOWN), "changelog": from_changelog,
                     "version": UNKNOWN if in_version is None else PRESENT if in_version else ABSENT}
    return out


def _changelog_base(changelog: str | None) -> tuple[int, int, int] | None:
    """'linux (6.1.176-1) bookworm-security; ...' -> (6, 1, 176)."""
    match = re.search(r"\((\d+\.\d+[.\d]*)", changelog.split("\n", 1)[0]) if changelog else None
    return parse_version(match.group(1)) if match else None


def _binary_answers(image: Path, digest: str | None) -> dict[str, str]:
    try:
        path = pvh_vmlinux(image, {"CONFIG_PVH": "y"}, digest)     # cached, for Debian's kernels
        if path:
            with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _search(data)
        data = extract(image.read_bytes())
    except (OSError, ValueError, zlib.error, EOFError):
        return {}
    return _search(data) if data else {}


def _search(data) -> dict[str, str]:
    return {name: PRESENT if data.find(fact.signature) >= 0 else ABSENT
            for name, fact in FACTS.items() if fact.signature}


def _changelog_text(image: Path) -> str | None:
    """The package changelog of the tree the image was unpacked into, if there is one."""
    for parent in list(image.parents)[:5]:
        docs = sorted((parent / "usr/share/doc").glob("linux-image-*/changelog*.gz"))
        for path in docs:
            try:
                return gzip.decompress(path.read_bytes()).decode(errors="replace")
            except (OSError, EOFError, zlib.error):
                continue
    return None
