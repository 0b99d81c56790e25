"""kernels.toml `tree` entries: parsed and checked, built once per commit + local changes +
config fragment, the image kept in the cache (a fake vng on PATH builds; no kernel)."""
import json
import os
import subprocess
from pathlib import Path

import pytest
from faketree import make_kernel_tree

from kregress.kernels import kernel as kernels_errors
from kregress.kernels.sources import resolve, tree as tree_source
from kregress.kernels.entries import KernelsFileError, parse_kernels
from kregress.kernels.tree import DEFAULT_FRAGMENT, build_cached, tree_state

FAKE_VNG = r'''#!/bin/sh
echo "fake vng $*" >> "$FAKE_CALLS"
while [ "$1" != --config ]; do shift; done
mkdir -p arch/x86/boot && echo "image of $(git rev-parse HEAD)" > arch/x86/boot/bzImage
grep '^CONFIG_.*=y$' "$2" > .config
echo vmlinux > vmlinux
'''


def entry(**fields):
    return parse_kernels({"kernel": [{"id": "mine", **fields}]}, "kernels.toml")[0]


def test_tree_entry_is_parsed():
    spec = entry(tree="~/src/linux", config="frag.config")
    assert spec.origin.tree == Path("~/src/linux").expanduser() and spec.origin.config_fragment == Path("frag.config")
    assert spec.source == f"tree:{spec.origin.tree}"


@pytest.mark.parametrize("fields, message", [
    ({"tree": "/x", "suite": "bookworm"}, "exactly one source"),
    ({"tree": "/x", "modules": "/m"}, "do not go with tree"),
    ({"suite": "bookworm", "config": "f"}, "belongs to a tree entry"),
])
def test_bad_tree_entries(fields, message):
    with pytest.raises(KernelsFileError, match=message):
        entry(**fields)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    tree = make_kernel_tree(tmp_path / "linux")
    (tree / ".gitignore").write_text("arch/\n.config\nvmlinux\n")
    git = lambda *a: subprocess.run(["git", "-C", str(tree), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vng").write_text(FAKE_VNG)
    (bindir / "vng").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    return tree


def builds(tmp_path) -> int:
    calls = tmp_path / "calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_built_once_per_commit_changes_and_fragment(tree, tmp_path):
    cache, logs = tmp_path / "cache", tmp_path / "logs"
    first = build_cached(tree, DEFAULT_FRAGMENT, cache, logs)
    assert first.version == "6.12.117" and first.record["built_now"] and builds(tmp_path) == 1
    assert first.image.read_text().startswith("image of ") and first.image.parent.parent == cache
    again = build_cached(tree, DEFAULT_FRAGMENT, cache, logs)
    assert not again.record["built_now"] and again.image == first.image and builds(tmp_path) == 1
    (first.image.parent / "build.json").write_text('{"version": ')     # a damaged cache entry
    assert build_cached(tree, DEFAULT_FRAGMENT, cache, logs).record["built_now"] and builds(tmp_path) == 2
    assert not build_cached(tree, DEFAULT_FRAGMENT, cache, logs).record["built_now"]
    # a local change to a tracked file is another kernel
    (tree / "Kconfig").write_text("# changed\n")
    changed = build_cached(tree, DEFAULT_FRAGMENT, cache, logs)
    assert changed.image != first.image and changed.record["local_changes"] and builds(tmp_path) == 3
    # another fragment too
    fragment = tmp_path / "other.config"
    fragment.write_text(DEFAULT_FRAGMENT.read_text() + "CONFIG_KASAN=y\n")
    other = build_cached(tree, fragment, cache, logs)
    assert other.image not in (first.image, changed.image) and builds(tmp_path) == 4
    assert json.loads((other.image.parent / "build.json").read_text())["fragment"] == str(fragment)


def test_a_tree_that_cannot_be_built_or_cached_is_named(tree, tmp_path, monkeypatch):
    (tmp_path / "bin" / "vng").write_text("#!/bin/sh\necho 'error: no compiler' >&2\nexit 2\n")
    with pytest.raises(RuntimeError, match="(?s)build failed: vng exited with 2.*no compiler"):
        build_cached(tree, DEFAULT_FRAGMENT, tmp_path / "cache", tmp_path / "logs")
    plain = make_kernel_tree(tmp_path / "plain")
    assert tree_state(plain) is None
    with pytest.raises(RuntimeError, match="not a git checkout"):
        build_cached(plain, DEFAULT_FRAGMENT, tmp_path / "cache", tmp_path / "logs")
    with pytest.raises(RuntimeError, match="not a kernel source tree"):
        build_cached(tmp_path, DEFAULT_FRAGMENT, tmp_path / "cache", tmp_path / "logs")


def test_resolve_names_the_entry(tree, tmp_path, monkeypatch):
    monkeypatch.setattr(tree_source, "cache_dir", lambda: tmp_path / "kcache")
    kernel = resolve(entry(tree=str(tree)))
    assert kernel.upstream_version == "6.12.117" and kernel.tree_build["commit"] == tree_state(tree)["commit"]
    assert kernel.package_version == kernel.tree_build["commit"][:12]
    assert kernel.describe()["tree_build"]["fragment"] == str(DEFAULT_FRAGMENT)
    with pytest.raises(kernels_errors.KernelFetchError, match="mine: tree .* does not exist; fix 'tree'"):
        resolve(entry(tree=str(tmp_path / "nowhere")))
