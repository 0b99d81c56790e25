from pathlib import Path

import pytest

from kregress.kernels.entries import KernelsFileError, load_kernels, parse_kernels, select_kernels
from kregress.kernels.facts import FACTS


def parse(*entries):
    return parse_kernels({"kernel": list(entries)}, "kernels.toml", known_facts=set(FACTS))


def test_debian_and_local_entries():
    specs = parse({"id": "debian-6.1", "suite": "bookworm"},
                  {"id": "mine", "image": "/k/bzImage", "modules": "/k/lib/modules/6.6.0", "version": "6.6.0",
                   "facts": {"getsockopt_relief": False}, "default": False, "cmdline": "quiet",
                   "tcg_cpu_flags": "-cx16"})
    assert specs[0].origin.package == "linux-image-amd64" and specs[0].source == "debian:bookworm/linux-image-amd64"
    assert specs[1].facts == {"getsockopt_relief": False} and not specs[1].default
    assert str(specs[1].origin.modules) == "/k/lib/modules/6.6.0"
    assert (specs[0].tcg_cpu_flags, specs[1].tcg_cpu_flags) == ("", "-cx16")


@pytest.mark.parametrize("entry, message", [
    ({"id": "x", "suite": "bookworm", "suit": "y"}, "kernel #1 (x): unknown key 'suit'"),
    ({"id": "x"}, "kernel #1 (x): give exactly one source"),
    ({"id": "x", "suite": "bookworm", "image": "/b"}, "give exactly one source"),
    ({"suite": "bookworm"}, "kernel #1: missing 'id'"),
    ({"id": "x", "suite": 12}, "kernel #1 (x): suite = 12 has the wrong type"),
    ({"id": "x", "suite": "bookworm", "default": "yes"}, "default = 'yes' has the wrong type; write true or false"),
    ({"id": "bad id", "suite": "bookworm"}, "id 'bad id' may only use"),
    ({"id": "x", "image": "/b", "version": "six"}, "version = 'six' is not like"),
    ({"id": "x", "suite": "bookworm", "facts": {"no_such_fact": True}}, "facts.no_such_fact is not a known fact"),
    ({"id": "x", "suite": "bookworm", "modules": "/m"}, "'modules' belongs to a local image entry"),
])
def test_malformed_entries_name_entry_and_field(entry, message):
    with pytest.raises(KernelsFileError) as err:
        parse(entry)
    assert message in str(err.value)


def test_duplicate_ids_name_both_entries():
    with pytest.raises(KernelsFileError, match=r"kernel #2: duplicate id 'a' \(already used by kernel #1\)"):
        parse({"id": "a", "suite": "bookworm"}, {"id": "a", "suite": "trixie"})


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "k.toml"
    bad.write_text("[[kernel]]\nid = \n")
    with pytest.raises(KernelsFileError, match="not valid TOML"):
        load_kernels(bad)
    with pytest.raises(KernelsFileError, match="no such file"):
        load_kernels(tmp_path / "missing.toml")
    empty = tmp_path / "e.toml"
    empty.write_text("")
    with pytest.raises(KernelsFileError, match=r"no \[\[kernel\]\] entries"):
        load_kernels(empty)


def test_selection_defaults_and_unknown_ids():
    specs = parse({"id": "a", "suite": "bookworm"}, {"id": "b", "suite": "trixie", "default": False})
    assert [s.id for s in select_kernels(specs, [])] == ["a"]
    assert [s.id for s in select_kernels(specs, ["b", "a", "b"])] == ["b", "a"]
    with pytest.raises(KernelsFileError, match="--kernel zz: not in the kernels file; known ids: a, b"):
        select_kernels(specs, ["zz"])


def test_project_kernels_toml_is_valid():
    from kregress.paths import SUITE_ROOT
    specs = load_kernels(SUITE_ROOT / "kernels.toml", known_facts=set(FACTS))
    assert {"debian-5.10", "debian-6.1", "debian-6.12", "debian-backports"} <= {s.id for s in specs if s.default}


def test_deb_entries(tmp_path):
    specs = parse({"id": "vendor", "deb": "/dl/linux-image-6.1.0-9-amd64_6.1.1_amd64.deb", "version": "6.1.1"},
                  {"id": "split", "deb": ["/dl/linux-binary-7.3.deb", "/dl/linux-modules-7.3.deb"]})
    assert [str(d) for d in specs[0].origin.debs] == ["/dl/linux-image-6.1.0-9-amd64_6.1.1_amd64.deb"]
    assert specs[0].source == "deb:linux-image-6.1.0-9-amd64_6.1.1_amd64.deb" and len(specs[1].origin.debs) == 2
    for entry, message in [({"id": "x", "deb": []}, "write the path of a .deb file"),
                           ({"id": "x", "deb": ["k.tar"]}, "write the path of a .deb file"),
                           ({"id": "x", "deb": "k.deb", "suite": "trixie"}, "give exactly one source"),
                           ({"id": "x", "deb": "k.deb", "modules": "/m"}, "do not go with deb")]:
        with pytest.raises(KernelsFileError, match=message):
            parse(entry)


def test_a_broken_deb_is_a_clear_error(tmp_path, monkeypatch):
    from kregress.kernels.kernel import KernelFetchError
    from kregress.kernels.sources import resolve
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    broken = tmp_path / "linux-image-x.deb"
    broken.write_bytes(b"!<arch>\ntruncated")
    [spec] = parse({"id": "vendor", "deb": str(broken)})
    with pytest.raises(KernelFetchError, match=r"vendor: .*linux-image-x.deb is not a readable Debian package"):
        resolve(spec)
    [missing] = parse({"id": "gone", "deb": str(tmp_path / "nope.deb")})
    with pytest.raises(KernelFetchError, match="gone: .*nope.deb does not exist; fix 'deb'"):
        resolve(missing)


def test_arch_is_parsed_and_selects():
    from kregress.kernels.entries import select_kernels
    specs = parse_kernels({"kernel": [{"id": "x", "suite": "trixie"},
                                      {"id": "a", "suite": "trixie", "package": "linux-image-arm64", "arch": "arm64"},
                                      {"id": "b", "suite": "trixie", "arch": "arm64", "default": False}]}, "k.toml")
    assert [s.arch for s in specs] == ["x86_64", "arm64", "arm64"]
    assert [s.id for s in select_kernels(specs, [], ["arm64"])] == ["a"]            # the default matrix's arm64
    assert [s.id for s in select_kernels(specs, ["x", "b"], ["arm64"])] == ["b"]
    with pytest.raises(KernelsFileError, match="--arch riscv"):
        select_kernels(specs, [], ["riscv"])
    with pytest.raises(KernelsFileError, match=r"\(bad\): arch = 'aarch64'; write one of x86_64, arm64, ppc64le, s390x"):
        parse_kernels({"kernel": [{"id": "bad", "suite": "trixie", "arch": "aarch64"}]}, "k.toml")


def test_relative_paths_resolve_from_the_kernels_file(tmp_path, monkeypatch):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "k.toml").write_text('[[kernel]]\nid = "mine"\nimage = "build/bzImage"\nmodules = "/abs/mods"\n'
                                '[[kernel]]\nid = "vendor"\ndeb = ["debs/linux-image.deb"]\n')
    monkeypatch.chdir(tmp_path)                 # started elsewhere: the file's directory still counts
    mine, vendor = load_kernels(Path("lab/k.toml"))
    assert mine.origin.image == lab.resolve() / "build/bzImage"
    assert mine.origin.modules == Path("/abs/mods")
    assert vendor.origin.debs == (lab.resolve() / "debs/linux-image.deb",)


def test_fetch_reads_the_selection_in_pytest_args():
    from kregress.cli import selection_from_pytest_args
    picked = selection_from_pytest_args(["tests", "-k", "relief", "--kernel", "a", "--kernel=b", "--arch", "arm64",
                                         "-x", "--kernels-file", "mine.toml"])
    assert (picked.kernel, picked.arch, picked.kernels_file) == (["a", "b"], ["arm64"], Path("mine.toml"))
    assert selection_from_pytest_args([]).kernel == []
