"""The kernel source interface (kregress/kernels/sources): every source module provides it, and
a source added as one module (a toy: kernels "from a lab's build server") is accepted by the
kernels file, validated by itself, resolved to a whole Kernel and named by the reports."""
import types
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from kregress.kernels import sources
from kregress.kernels.entries import KernelsFileError, parse_kernels
from kregress.kernels.kernel import Kernel, Provenance
from kregress.report.kcidb import _id, _source_ids

INTERFACE = ("KIND", "KEY", "WHAT", "ENTRY", "KEYS", "parse", "resolve")


@pytest.mark.parametrize("kind", sorted(sources.SOURCES))
def test_every_source_module_provides_the_interface(kind):
    module = sources.SOURCES[kind]
    assert all(hasattr(module, name) for name in INTERFACE) and module.KEY in module.KEYS


@dataclass(frozen=True)
class LabBuild:
    server: str
    build: int
    kind: ClassVar[str] = "lab"

    @property
    def text(self) -> str:
        return f"lab:{self.server}#{self.build}"


def lab_source(tmp_path: Path) -> types.ModuleType:
    lab = types.ModuleType("lab")
    lab.KIND, lab.KEY, lab.WHAT, lab.ENTRY = "lab", "lab_build", 'lab_build = N (a lab build)', "a lab entry"
    lab.KEYS = {"lab_build": (int, "a build number"), "server": (str, "the build server's name")}

    def parse(entry, where, base, error):
        if entry["lab_build"] <= 0:
            raise error(f"{where}: lab_build = {entry['lab_build']}; write a build number")
        return LabBuild(entry.get("server", "lab1"), entry["lab_build"])

    def resolve(spec, refresh=False):
        image = tmp_path / f"bzImage-{spec.origin.build}"
        image.write_bytes(b"")
        return Kernel(spec=spec, image=image, release="6.12.0-lab", upstream_version="6.12.0",
                      package_version=str(spec.origin.build),
                      provenance=Provenance("lab", checkout=f"lab:{spec.origin.server}",
                                            build=f"lab:{spec.origin.server}#{spec.origin.build}"))
    lab.parse, lab.resolve = parse, resolve
    return lab


def test_a_toy_source_is_one_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.SOURCES, "lab", lab_source(tmp_path))
    spec, = parse_kernels({"kernel": [{"id": "lab-42", "lab_build": 42, "server": "rack7"}]}, "kernels.toml")
    assert spec.origin == LabBuild("rack7", 42) and spec.source == "lab:rack7#42"
    kernel = sources.resolve(spec)
    record = kernel.describe()
    assert record["source"] == "lab:rack7#42" and record["provenance"]["kind"] == "lab"
    assert _source_ids("lab-42", record) == (_id("lab:rack7"), _id("lab:rack7#42"))
    # its own validation, its keys refused beside another source's, and one source per entry
    with pytest.raises(KernelsFileError, match="kernel #1 \\(bad\\): lab_build = 0; write a build number"):
        parse_kernels({"kernel": [{"id": "bad", "lab_build": 0}]}, "kernels.toml")
    with pytest.raises(KernelsFileError, match="'server' do not go with suite: 'server' belongs to a lab entry"):
        parse_kernels({"kernel": [{"id": "mix", "suite": "trixie", "server": "rack7"}]}, "kernels.toml")
    with pytest.raises(KernelsFileError, match="give exactly one source: .*lab_build = N"):
        parse_kernels({"kernel": [{"id": "two", "suite": "trixie", "lab_build": 1}]}, "kernels.toml")


def test_a_kernel_is_whole_when_made():
    kernel = Kernel(spec=None, image=Path("/x"), release="r", upstream_version=None)
    with pytest.raises(AttributeError):
        kernel.package_version = "patched later"
