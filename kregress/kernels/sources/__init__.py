"""Where a kernel comes from: one module per kind of source, each with

- KIND: its name in records and reports ("debian", "deb", "local", "tree"),
- KEY: the kernels.toml key that selects it (exactly one per entry), WHAT: that key in words,
  ENTRY: such an entry in words (for errors),
- KEYS: what else it accepts (key -> (types, what to write)), beyond the keys every entry has,
- parse(entry, where, base) -> its origin: a frozen record, validated, relative paths resolved,
- resolve(spec, refresh) -> a Kernel complete when built (nothing is patched afterwards), whose
  provenance (kind, and the checkout and build a report names) the reports read.

Adding a source is a module with those names, listed in SOURCES; docs/kernels.md says what
each must provide.
"""
from __future__ import annotations

from pathlib import Path

from kregress.kernels.sources import debian, debs, image, tree

SOURCES = {module.KIND: module for module in (debian, debs, tree, image)}


def keys() -> dict[str, tuple]:
    """Every source's keys, for the kernels file's check of unknown keys and types."""
    return {key: hint for module in SOURCES.values() for key, hint in module.KEYS.items()}


def parse_origin(entry: dict, where: str, base: Path | None, error: type[Exception]):
    """The entry's one source, validated by its own module; error: the kernels file's error type."""
    chosen = [module for module in SOURCES.values() if module.KEY in entry]
    if len(chosen) != 1:
        raise error(f"{where}: give exactly one source: " + ", ".join(m.WHAT for m in SOURCES.values()))
    module = chosen[0]
    foreign = sorted(k for k in entry if k in keys() and k not in module.KEYS)
    if foreign:
        owners = "; ".join(f"{k!r} belongs to " + " or ".join(f"{m.ENTRY} ({m.KEYS[k][1]})" for m in SOURCES.values()
                                                              if k in m.KEYS) for k in foreign)
        raise error(f"{where}: {', '.join(repr(k) for k in foreign)} do not go with {module.KEY}: {owners}")
    return module.parse(entry, where, base, error)


def resolve(spec, refresh: bool = False):
    """A kernels.toml entry to a bootable Kernel, by its source's module."""
    return SOURCES[spec.origin.kind].resolve(spec, refresh)
