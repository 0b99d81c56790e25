"""kernels.toml: the kernel matrix, parsed and validated before anything boots."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kregress.arch import ARCHES

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+(\.\d+)?$")

# Keys every entry may have, whatever its source: key -> (accepted types, what to write).
# Each source's own keys are its module's (kregress.kernels.sources).
KEYS = {
    "id": (str, 'a string such as "debian-6.1"'),
    "description": (str, "a string"),
    "version": (str, 'the upstream version the kernel is built from, e.g. "6.1.39"'),
    "cmdline": (str, "extra kernel command line, a string"),
    "tcg_cpu_flags": (str, 'CPU flags added to the TCG CPU model, e.g. "-cx16"'),
    "arch": (str, 'the kernel\'s architecture: "x86_64" (default), "arm64", "ppc64le" or "s390x"'),
    "default": (bool, "true or false"),
    # a named group of default = false entries that `make matrix ARCHES=all` and the
    # workflow's shards run on top of the default matrix: "arches" (the emulated ppc64le
    # and s390x kernels, too slow to set up for every fresh-machine `make test`)
    "group": (str, 'a named group, "arches"'),
    "facts": (dict, "a table of fact name = true/false"),
}


class KernelsFileError(ValueError):
    """kernels.toml is malformed; the message names the entry, the field and the fix."""


@dataclass(frozen=True)
class KernelSpec:
    id: str
    origin: Any                             # where it comes from: one of kregress.kernels.sources' records
    version: str | None = None
    cmdline: str = ""
    tcg_cpu_flags: str = ""
    arch: str = "x86_64"
    default: bool = True
    description: str = ""
    facts: dict[str, bool] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The source in one string, as records show it: debian:trixie/linux-image-amd64, deb:...,
        tree:PATH, local:PATH."""
        return self.origin.text


def load_kernels(path: Path, known_facts: set[str] | None = None) -> list[KernelSpec]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise KernelsFileError(f"{path}: no such file (pass --kernels-file PATH)") from None
    except tomllib.TOMLDecodeError as err:
        raise KernelsFileError(f"{path}: not valid TOML: {err}") from None
    return parse_kernels(data, str(path), known_facts, base=path.resolve().parent)


def parse_kernels(data: dict, where: str, known_facts: set[str] | None = None,
                  base: Path | None = None) -> list[KernelSpec]:
    """base: the kernels file's directory; relative paths in entries resolve from it
    (as vmtest.toml's do), not from wherever the command was started."""
    extra = set(data) - {"kernel"}
    if extra:
        raise KernelsFileError(f"{where}: unknown top-level key(s) {sorted(extra)}; "
                               "entries go in [[kernel]] tables")
    entries = data.get("kernel")
    if not isinstance(entries, list) or not entries:
        raise KernelsFileError(f"{where}: no [[kernel]] entries")
    specs: list[KernelSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        spec = _parse_entry(entry, f"{where}: kernel #{index}", known_facts, base)
        if spec.id in seen:
            raise KernelsFileError(f"{where}: kernel #{index}: duplicate id {spec.id!r} "
                                   f"(already used by kernel #{seen[spec.id]}); ids must be unique")
        seen[spec.id] = index
        specs.append(spec)
    return specs


def entry_path(value: str, base: Path | None) -> Path:
    """A path in an entry: relative ones start at the kernels file's directory."""
    path = Path(value).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def _parse_entry(entry: dict, where: str, known_facts: set[str] | None, base: Path | None) -> KernelSpec:
    from kregress.kernels import sources     # the sources' modules build on KernelSpec
    if not isinstance(entry, dict):
        raise KernelsFileError(f"{where}: must be a [[kernel]] table")
    if "id" in entry and isinstance(entry["id"], str):
        where = f"{where} ({entry['id']})"
    allowed = {**KEYS, **sources.keys()}
    for key, value in entry.items():
        if key not in allowed:
            raise KernelsFileError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
        wanted, hint = allowed[key]
        if not isinstance(value, wanted):
            raise KernelsFileError(f"{where}: {key} = {value!r} has the wrong type; write {hint}")
    if "id" not in entry:
        raise KernelsFileError(f"{where}: missing 'id'")
    if not ID_PATTERN.match(entry["id"]):
        raise KernelsFileError(f"{where}: id {entry['id']!r} may only use letters, digits, '.', '_', '+', '-'")
    origin = sources.parse_origin(entry, where, base, KernelsFileError)
    if entry.get("group", "arches") != "arches":
        raise KernelsFileError(f"{where}: group = {entry['group']!r}; the one group is \"arches\"")
    if entry.get("arch", "x86_64") not in ARCHES:
        raise KernelsFileError(f"{where}: arch = {entry['arch']!r}; write one of {', '.join(ARCHES)}")
    if "version" in entry and not VERSION_PATTERN.match(entry["version"]):
        raise KernelsFileError(f"{where}: version = {entry['version']!r} is not like \"6.1.39\"")
    facts = entry.get("facts", {})
    for name, value in facts.items():
        if known_facts is not None and name not in known_facts:
            raise KernelsFileError(f"{where}: facts.{name} is not a known fact; known: {', '.join(sorted(known_facts))}")
        if not isinstance(value, bool):
            raise KernelsFileError(f"{where}: facts.{name} = {value!r}; write true or false")
    return KernelSpec(id=entry["id"], origin=origin, version=entry.get("version"), cmdline=entry.get("cmdline", ""),
                      tcg_cpu_flags=entry.get("tcg_cpu_flags", ""), arch=entry.get("arch", "x86_64"),
                      default=entry.get("default", True), description=entry.get("description", ""),
                      facts=dict(facts))


def select_kernels(specs: list[KernelSpec], wanted_ids: list[str], arches: list[str] = ()) -> list[KernelSpec]:
    """--kernel ID picks entries (any, default or not); none given means the default matrix.
    --arch narrows either to those architectures."""
    unknown_arches = [a for a in arches if a not in ARCHES]
    if unknown_arches:
        raise KernelsFileError(f"--arch {', '.join(unknown_arches)}: write one of {', '.join(ARCHES)}")
    if arches:
        return [s for s in select_kernels(specs, wanted_ids) if s.arch in arches]
    if not wanted_ids:
        return [s for s in specs if s.default]
    by_id = {s.id: s for s in specs}
    unknown = [w for w in wanted_ids if w not in by_id]
    if unknown:
        raise KernelsFileError(f"--kernel {', '.join(unknown)}: not in the kernels file; "
                               f"known ids: {', '.join(by_id)}")
    return [by_id[w] for w in dict.fromkeys(wanted_ids)]
