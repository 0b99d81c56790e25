"""Resolving a meta package to its versioned kernel packages is remembered until the
package lists are read again, and a damaged memory is resolved again, not trusted."""
import time

from kregress.kernels.sources.debian import DebianArchive

CONTROL = {
    "linux-image-amd64": {"Package": "linux-image-amd64", "Version": "6.1.1",
                          "Depends": "linux-image-6.1.0-9-amd64 (= 6.1.1)"},
    "linux-image-6.1.0-9-amd64": {"Package": "linux-image-6.1.0-9-amd64", "Version": "6.1.1", "Depends": "kmod"},
}


def archive(tmp_path, monkeypatch, asked):
    apt = DebianArchive("bookworm", root=tmp_path)
    monkeypatch.setattr(apt, "show", lambda name: asked.append(name) or dict(CONTROL[name]))
    return apt


def test_resolution_is_remembered_until_the_lists_change(tmp_path, monkeypatch):
    asked = []
    apt = archive(tmp_path, monkeypatch, asked)
    (apt.root / "lists/.updated").touch()
    first = apt.kernel_parts("linux-image-amd64")
    assert [p["Package"] for p in first] == ["linux-image-6.1.0-9-amd64"] and len(asked) == 2
    assert archive(tmp_path, monkeypatch, asked).kernel_parts("linux-image-amd64") == first
    assert len(asked) == 2                                  # another process: nothing asked
    time.sleep(0.05)
    (apt.root / "lists/.updated").touch()                   # apt-get update ran
    apt.kernel_parts("linux-image-amd64")
    assert len(asked) == 4


def test_a_damaged_memory_is_resolved_again(tmp_path, monkeypatch):
    asked = []
    apt = archive(tmp_path, monkeypatch, asked)
    apt.kernel_parts("linux-image-amd64")
    (apt.root / "resolved-linux-image-amd64.json").write_text('{"lists": nu')
    assert [p["Package"] for p in apt.kernel_parts("linux-image-amd64")] == ["linux-image-6.1.0-9-amd64"]
    assert len(asked) == 4


def test_each_architecture_has_its_own_apt_state(tmp_path):
    amd64, arm64 = DebianArchive("trixie", root=tmp_path), DebianArchive("trixie", root=tmp_path, arch="arm64")
    assert amd64.root == tmp_path / "trixie" and arm64.root == tmp_path / "trixie-arm64"
    assert "APT::Architecture=arm64" in arm64._options() and "APT::Architecture=amd64" in amd64._options()
    # the same signed source for both
    assert (arm64.root / "etc/sources.list").read_text() == (amd64.root / "etc/sources.list").read_text()


def test_an_arm64_entry_is_fetched_from_the_arm64_index(tmp_path, monkeypatch):
    from kregress.kernels.sources import debian
    from kregress.kernels.kernel import KernelFetchError
    from kregress.kernels.sources import resolve
    from kregress.kernels.entries import parse_kernels
    spec = parse_kernels({"kernel": [{"id": "a", "suite": "trixie", "package": "linux-image-arm64-16k",
                                      "arch": "arm64"}]}, "k.toml")[0]
    seen = {}

    class FakeArchive(DebianArchive):
        def __init__(self, suite, refresh=False, arch="amd64"):
            seen["arch"] = arch
            raise KernelFetchError("stop here")
    monkeypatch.setattr(debian, "DebianArchive", FakeArchive)
    monkeypatch.setattr(debian, "cache_dir", lambda: tmp_path)
    try:
        resolve(spec)
    except KernelFetchError:
        pass
    assert seen["arch"] == "arm64"
