"""What each source says about a kernel's facts, before it boots.

A distribution backports fixes without changing the upstream version, and a kernel can
be built from a tree where a fix was reverted, so the version is only one witness:

- binary: the decompressed kernel contains a string only a kernel with the fact has
  (Fact.signature: a message the fix added, or a name in the kernel's BTF);
- changelog: Debian's package changelog lists the stable commit titles it merged;
- version: the upstream version against the releases that carry the fact (read by
  kregress.kernels.decision alone, where the decision is made).

Each answers "present", "absent" or "unknown" (kregress.kernels.decision.ANSWERS). The binary is searched in the decompressed
payload, ELF or raw, whatever the image format (kregress.kernels.vmlinux); a signature that is a
name in the BTF says nothing in a kernel without BTF. A changelog that does not mention a fix
its own upstream base (the version of its newest entry) already had says nothing about
it (unknown); a kernel image with no
readable binary or no changelog is unknown there. The order of trust is kernels.toml's
stated facts, then binary, changelog, version (kregress.kernels.decision applies it).
The kernel's config is a witness too: of whether a fact it has is usable here (Fact.needs).

Which witnesses answered, and why one could not, is recorded per kernel (coverage()).
"""
from __future__ import annotations

import functools
import gzip
import mmap
import re
import zlib
from pathlib import Path

from kregress.kernels.decision import ABSENT, PRESENT, UNKNOWN
from kregress.kernels.facts import FACTS, parse_version
from kregress.kernels.vmlinux import UnknownImage, bzimage_stream, payload, pvh_vmlinux

SOURCES = ("binary", "changelog")
ANSWERED = "answered"
BTF_HEADER = b"\x9f\xeb\x01\x00\x18\x00\x00\x00"    # struct btf_header: magic 0xeB9F, version 1, hdr_len 24


@functools.lru_cache(maxsize=32)     # once per kernel per process, however many VMs it starts
def gather(image: Path, digest: str | None = None) -> dict[str, dict[str, str]]:
    """fact name -> {witness: answer} for the kernel image at `image`: its binary and changelog."""
    binary, _, _ = binary_witness(image, digest)
    changelog = _changelog_text(image)
    # the changelog's own upstream base (its newest entry's version), not the one the
    # kernels file declares: a wrong declaration must not leak into this witness
    base = _changelog_base(changelog)
    out = {}
    for name, fact in FACTS.items():
        if changelog is None:
            from_changelog = UNKNOWN
        elif fact.title in changelog:
            from_changelog = PRESENT
        elif base is None or fact.in_version(base):
            from_changelog = UNKNOWN    # silence about a fix the base already had says nothing
        else:
            from_changelog = ABSENT
        out[name] = {"binary": binary.get(name, UNKNOWN), "changelog": from_changelog}
    return out


def _changelog_base(changelog: str | None) -> tuple[int, int, int] | None:
    """'linux (6.1.176-1) bookworm-security; ...' -> (6, 1, 176)."""
    match = re.search(r"\((\d+\.\d+[.\d]*)", changelog.split("\n", 1)[0]) if changelog else None
    return parse_version(match.group(1)) if match else None


@functools.lru_cache(maxsize=32)
def binary_witness(image: Path, digest: str | None = None) -> tuple[dict[str, str], str, str | None]:
    """(fact name -> answer, "answered" or why the binary could not answer, the image's format)."""
    try:
        path = pvh_vmlinux(image, {"CONFIG_PVH": "y"}, digest)     # cached, for Debian's x86 kernels
        if path:
            with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return (*_search(data), _bzimage_format(image))
        found = payload(image.read_bytes())
    except UnknownImage as err:
        return {}, f"binary: {err}", None
    except OSError as err:
        return {}, f"binary: cannot read {image}: {err}", None
    return (*_search(found.data), found.format)


def _bzimage_format(image: Path) -> str:
    found = bzimage_stream(image.read_bytes())      # no decompressing: the stream's magic names it
    return f"x86 bzImage, {found[1]}" if found and found[1] else "x86 bzImage"


def _search(data) -> tuple[dict[str, str], str]:
    btf = data.find(BTF_HEADER) >= 0
    answers = {name: UNKNOWN if fact.signature_in_btf and not btf else PRESENT if data.find(fact.signature) >= 0
               else ABSENT for name, fact in FACTS.items() if fact.signature}
    silent = sorted(name for name, answer in answers.items() if answer == UNKNOWN)
    return answers, (f"binary: no BTF in the image, so it cannot say about {', '.join(silent)}" if silent
                     else ANSWERED)


def coverage(kernel, digest: str | None = None) -> dict[str, str]:
    """Which witnesses can answer for this kernel (kregress.kernels.kernel.Kernel), and why one cannot."""
    _, binary, _ = binary_witness(kernel.image, digest)
    return {"binary": binary,
            "config": ANSWERED if kernel.config else "config: no config found (no config file beside the image, "
                                                     "no IKCONFIG in it)",
            "changelog": ANSWERED if _changelog_text(kernel.image) is not None else
                         "changelog: no package changelog beside the image"}


def missing_witnesses(kernels: dict[str, dict]) -> str | None:
    """The terminal summary's line: how many kernels ran without a binary or a config witness."""
    covered = {kid: info["evidence_coverage"] for kid, info in kernels.items() if info.get("evidence_coverage")}
    if not covered:
        return None
    parts = []
    for witness in ("binary", "config"):
        without = sorted(kid for kid, said in covered.items() if said.get(witness, ANSWERED) != ANSWERED)
        parts.append(f"{witness} witness missing on {len(without)} of {len(covered)} kernel(s)"
                     + (f" ({', '.join(without)})" if without else ""))
    return "evidence: " + "; ".join(parts)


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
