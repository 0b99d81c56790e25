"""kernels.toml: the kernel matrix, parsed and validated before anything boots."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kregress.arch import ARCHES

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+(\.\d+)?$")

# key -> (accepted types, what to write)
KEYS = {
    "id": (str, 'a string such as "debian-6.1"'),
    "description": (str, "a string"),
    "suite": (str, 'a Debian suite such as "bookworm"'),
    "package": (str, 'a Debian package such as "linux-image-amd64"'),
    "image": (str, "a path to a kernel image (bzImage/vmlinuz)"),
    "deb": ((str, list), 'a kernel package file, or a list of them (image and modules where split): '
                         'deb = ["linux-image-....deb", "linux-modules-....deb"]'),
    "tree": (str, 'a kernel source tree (a git checkout) to build with virtme-ng, e.g. "~/src/linux"'),
    "config": (str, "a tree entry's config fragment (default: configs/bisect.config), or a local image's .config"),
    "modules": (str, "a path to the matching lib/modules/<release> directory"),
    "version": (str, 'the upstream version the kernel is built from, e.g. "6.1.39"'),
    "cmdline": (str, "extra kernel command line, a string"),
    "tcg_cpu_flags": (str, 'CPU flags added to the TCG CPU model, e.g. "-cx16"'),
    "arch": (str, 'the kernel\'s architecture: "x86_64" (default) or "arm64"'),
    "default": (bool, "true or false"),
    "facts": (dict, "a table of fact name = true/false"),
}


class KernelsFileError(ValueError):
    """kernels.toml is malformed; the message names the entry, the field and the fix."""


@dataclass(frozen=True)
class KernelSpec:
    id: str
    suite: str | None = None
    package: str | None = None
    image: Path | None = None
    debs: tuple[Path, ...] = ()             # the user's own .deb files (a vendor's, Ubuntu's ...)
    tree: Path | None = None                # a kernel source tree, built with vng --build
    config_fragment: Path | None = None     # a tree entry's
    config_file: Path | None = None         # a local image's own .config
    modules: Path | None = None
    version: str | None = None
    cmdline: str = ""
    tcg_cpu_flags: str = ""
    arch: str = "x86_64"
    default: bool = True
    description: str = ""
    facts: dict[str, bool] = field(default_factory=dict)

    @property
    def source(self) -> str:
        if self.suite:
            return f"debian:{self.suite}/{self.package}"
        if self.debs:
            return "deb:" + ",".join(path.name for path in self.debs)
        if self.tree:
            return f"tree:{self.tree}"
        return f"local:{self.image}"


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


def _entry_path(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def _parse_entry(entry: dict, where: str, known_facts: set[str] | None, base: Path | None) -> KernelSpec:
    if not isinstance(entry, dict):
        raise KernelsFileError(f"{where}: must be a [[kernel]] table")
    if "id" in entry and isinstance(entry["id"], str):
        where = f"{where} ({entry['id']})"
    for key, value in entry.items():
        if key not in KEYS:
            raise KernelsFileError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(KEYS)}")
        wanted, hint = KEYS[key]
        if not isinstance(value, wanted):
            raise KernelsFileError(f"{where}: {key} = {value!r} has the wrong type; write {hint}")
    if "id" not in entry:
        raise KernelsFileError(f"{where}: missing 'id'")
    if not ID_PATTERN.match(entry["id"]):
        raise KernelsFileError(f"{where}: id {entry['id']!r} may only use letters, digits, '.', '_', '+', '-'")
    has_debian, has_image, has_deb, has_tree = "suite" in entry, "image" in entry, "deb" in entry, "tree" in entry
    if has_debian + has_image + has_deb + has_tree != 1:
        raise KernelsFileError(f"{where}: give exactly one source: suite = \"...\" (a Debian package), "
                               "image = \"...\" (a local kernel image), deb = [\"...\"] (package files) or "
                               "tree = \"...\" (a kernel source tree to build)")
    if has_tree and ({"modules", "package"} & set(entry)):
        raise KernelsFileError(f"{where}: 'modules' and 'package' do not go with tree: the build has no modules")
    if "config" in entry and not (has_tree or has_image):
        raise KernelsFileError(f"{where}: 'config' belongs to a tree entry (a config fragment) or a local image "
                               f"(its .config); a Debian package carries its own")
    debs = [entry["deb"]] if isinstance(entry.get("deb"), str) else entry.get("deb", [])
    if has_deb and (not debs or not all(isinstance(d, str) and d.endswith(".deb") for d in debs)):
        raise KernelsFileError(f"{where}: deb = {entry['deb']!r}; write the path of a .deb file or a list of them")
    if has_deb and ("modules" in entry or "package" in entry):
        raise KernelsFileError(f"{where}: 'modules' and 'package' do not go with deb: the packages hold both")
    if has_debian and ("modules" in entry):
        raise KernelsFileError(f"{where}: 'modules' belongs to a local image entry, not a Debian one")
    if has_image and "package" in entry:
        raise KernelsFileError(f"{where}: 'package' belongs to a Debian entry (with 'suite'), not a local image")
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
    return KernelSpec(
        id=entry["id"],
        suite=entry.get("suite"),
        package=entry.get("package", "linux-image-amd64") if has_debian else None,
        image=_entry_path(entry["image"], base) if has_image else None,
        debs=tuple(_entry_path(d, base) for d in debs),
        tree=_entry_path(entry["tree"], base) if has_tree else None,
        config_fragment=_entry_path(entry["config"], base) if "config" in entry and has_tree else None,
        config_file=_entry_path(entry["config"], base) if "config" in entry and has_image else None,
        modules=_entry_path(entry["modules"], base) if "modules" in entry else None,
        version=entry.get("version"),
        cmdline=entry.get("cmdline", ""),
        tcg_cpu_flags=entry.get("tcg_cpu_flags", ""),
        arch=entry.get("arch", "x86_64"),
        default=entry.get("default", True),
        description=entry.get("description", ""),
        facts=dict(facts),
    )


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
