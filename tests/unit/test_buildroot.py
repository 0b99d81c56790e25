"""The build root (guest/buildroot.toml): its list, its cache key, how commands enter it,
and the property it exists for: the same sources give the same bytes wherever they are."""
import shutil

import pytest

from kregress.arch import ARCHES
from kregress.provision import programs as build, buildroot
from kregress.provision.buildroot import BuildRootError, BuildRootSpec, cache_key, enter_command, load_spec
from kregress.paths import SUITE_ROOT


def test_the_projects_list_parses_and_names_a_suite_whose_static_libraries_link():
    spec = load_spec()
    assert spec.suite == "bookworm"         # trixie's libelf.a does not link statically (guest/buildroot.toml)
    assert {"clang", "bpftool", "libbpf-dev", "libelf-dev:arm64"} <= set(spec.packages)
    assert spec.architectures == ["amd64", "arm64", "ppc64el", "s390x"]


@pytest.mark.parametrize("text, message", [
    ('suite = "bookworm"\npackages = ["gcc"]\nmirror = 1\n', r"unknown key\(s\) \['mirror'\]"),
    ('packages = ["gcc"]\n', "suite = None; write a Debian suite whose static libraries link"),
    ('suite = "bookworm"\npackages = []\n', "packages must be a list of Debian package names"),
    ('suite = "bookworm"\npackages = ["gcc:ARM"]\n', r"\(NAME or NAME:ARCH\)"),
    ('suite = "bookworm\n', "not valid TOML"),
])
def test_bad_lists_name_the_problem_and_the_file(tmp_path, text, message):
    path = tmp_path / "buildroot.toml"
    path.write_text(text)
    with pytest.raises(BuildRootError, match=message) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_cache_key_follows_suite_and_list_not_where_the_list_is():
    base = BuildRootSpec("bookworm", ("gcc",))
    assert cache_key(base) == cache_key(BuildRootSpec("bookworm", ("gcc",), source="elsewhere.toml"))
    assert len({cache_key(base), cache_key(BuildRootSpec("trixie", ("gcc",))),
                cache_key(BuildRootSpec("bookworm", ("gcc", "gcc:arm64")))}) == 3


def test_commands_enter_with_fixed_paths_and_nothing_of_the_hosts_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CFLAGS", "-DHOST")
    cmd = enter_command(tmp_path / "root", ["gcc", "x.c"], {"src": tmp_path / "a b", "out": tmp_path / "o"})
    assert cmd[:1] == ["unshare"] and "--mount" in cmd
    script = cmd[-1]
    assert f"mount --bind '{tmp_path / 'a b'}' {tmp_path / 'root/src'}" in script
    assert "env -i" in script and "SOURCE_DATE_EPOCH=0" in script and "HOST" not in script
    with pytest.raises(BuildRootError, match=r"no mount point \['home'\]"):
        enter_command(tmp_path, ["true"], {"home": tmp_path})


def test_a_failing_command_reports_its_own_output():
    with pytest.raises(BuildRootError, match="No such file|not found"):
        buildroot.run(buildroot.ensure().path, ["cat", "/src/nothing-here"], {"src": SUITE_ROOT}, "reading")


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_the_same_sources_elsewhere_give_the_same_bytes(tmp_path, arch):
    """A copy of progs/ and guest/ at another path, built into another directory: the
    driver and the BPF object are the same bytes, and neither path is in them."""
    copy = tmp_path / "elsewhere" / "checkout"
    for part in ("progs", "guest"):
        shutil.copytree(SUITE_ROOT / part, copy / part)
    ours = build.build("getsockopt_efault", arch=arch)
    theirs = build.build("getsockopt_efault", root=copy, out_root=tmp_path / "out", arch=arch)
    for mine, other in ((ours.driver, theirs.driver), (ours.bpf_object, theirs.bpf_object)):
        data = other.read_bytes()
        assert data == mine.read_bytes(), f"{other.name} differs when built from {copy}"
        assert str(tmp_path).encode() not in data and str(SUITE_ROOT).encode() not in data
        assert b"/src/" not in data and b"/out/" not in data


def test_the_build_root_is_what_results_record():
    described = buildroot.ensure().describe()
    assert described["suite"] == "bookworm" and described["digest"]
    assert {"clang", "gcc", "libbpf-dev", "libelf-dev", "bpftool"} <= set(described["versions"])
    assert any(name.startswith("clang-") for name in described["versions"])
