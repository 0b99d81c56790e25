"""Building the guest image fails clearly and harmlessly: each case runs the real
mmdebstrap against the real archive (or a loopback address with nothing behind it),
and the image cached before it must still be there, unchanged, afterwards."""
import json
import subprocess

import pytest

from kregress.provision import image
from kregress.provision.image import ImageError, ImageSpec, cached, ensure_image, image_dir, load_spec


def stand_in_image(good: ImageSpec):
    """A (small, stand-in) cached image for the project's own list."""
    directory = image_dir(good)
    directory.mkdir(parents=True)
    (directory / "root.erofs").write_bytes(b"erofs image stand-in")
    (directory / "busybox").write_bytes(b"busybox stand-in")
    (directory / "manifest.json").write_text(json.dumps(
        {"digest": "a" * 64, "suite": good.suite, "arch": good.arch, "packages": {"dropbear-bin": "1"}}))
    return good, cached(good)


@pytest.fixture
def cache_with_an_image(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    return stand_in_image(load_spec())


def build_fails(spec: ImageSpec, good, before) -> str:
    progress = []
    with pytest.raises(ImageError) as err:
        ensure_image(spec, progress=progress.append)
    assert progress and progress[0].startswith("building x86_64")      # it said what it was doing
    kept = before.root.parent       # looked up by path: a patched mirror or keyring changes cache keys
    assert json.loads((kept / "manifest.json").read_text())["digest"] == before.digest
    assert before.root.read_bytes() == b"erofs image stand-in"
    assert not list(before.root.parent.parent.glob("*.partial")), "staging left behind"
    assert "the cached images are untouched" in str(err.value)
    return str(err.value)


def test_unknown_package_is_named(cache_with_an_image, tmp_path):
    good, before = cache_with_an_image
    listing = tmp_path / "image.toml"
    listing.write_text('suite = "trixie"\npackages = ["dropbear-bin", "kregress-no-such-package"]\n')
    message = build_fails(load_spec(listing), good, before)
    assert f"package 'kregress-no-such-package' is not in Debian trixie (amd64): fix the packages list in {listing}" \
        in message


def test_unknown_suite_is_named(cache_with_an_image, tmp_path):
    good, before = cache_with_an_image
    message = build_fails(ImageSpec("kregress-no-such-suite", ("dropbear-bin",), source="list.toml"), good, before)
    assert "suite 'kregress-no-such-suite' was not found in the archive: fix suite in list.toml" in message


def test_unreachable_archive(cache_with_an_image, monkeypatch):
    good, before = cache_with_an_image
    monkeypatch.setattr(image, "DEBIAN_MIRROR", "http://127.0.0.1:9/debian")    # nothing listens there
    message = build_fails(ImageSpec("trixie", ("dropbear-bin",)), good, before)
    assert "the Debian archive could not be reached (http://127.0.0.1:9/debian)" in message


def test_signature_that_does_not_verify(cache_with_an_image, monkeypatch):
    good, before = cache_with_an_image
    # Debian's keyring of retired keys: a real keyring that does not sign today's archive
    monkeypatch.setattr(image, "DEBIAN_KEYRING", "/usr/share/keyrings/debian-archive-removed-keys.gpg")
    message = build_fails(ImageSpec("trixie", ("dropbear-bin",)), good, before)
    assert "signature did not verify against /usr/share/keyrings/debian-archive-removed-keys.gpg" in message


def test_disk_full(tmp_path, monkeypatch):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "kregress-test-full", str(small)], check=True)
    try:
        monkeypatch.setenv("KREGRESS_CACHE", str(small))
        good, before = stand_in_image(load_spec())
        message = build_fails(ImageSpec("trixie", ("dropbear-bin",)), good, before)
        assert f"the disk is full while building in {small}" in message
    finally:
        subprocess.run(["umount", str(small)], check=True)
