"""guest/image.toml parsing and the image's cache key."""
import os
import subprocess

import pytest

from kregress.provision.image import ImageError, ImageSpec, apply_fixups, cache_key, load_spec, remove_staging


def write(tmp_path, text):
    path = tmp_path / "image.toml"
    path.write_text(text)
    return path


def test_the_projects_list_parses():
    spec = load_spec()
    assert spec.suite and "dropbear-bin" in spec.packages


@pytest.mark.parametrize("text, message", [
    ('suite = "trixie"\npackages = ["dropbear-bin"]\nextra = 1\n', r"unknown key\(s\) \['extra'\]"),
    ('packages = ["dropbear-bin"]\n', "suite = None; write a Debian suite"),
    ('suite = "trixie"\npackages = "dropbear-bin"\n', "packages must be a list of Debian package names"),
    ('suite = "trixie"\npackages = ["Python 3"]\n', "packages must be a list"),
    ('suite = "trixie\n', "not valid TOML"),
])
def test_bad_lists_name_the_problem_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ImageError, match=message) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(ImageError, match="architecture 'mips' is not supported"):
        load_spec(write(tmp_path, 'suite = "trixie"\npackages = []\n'), arch="mips")


def test_cache_key_follows_list_suite_and_architecture():
    base = ImageSpec("trixie", ("dropbear-bin",))
    assert cache_key(base) == cache_key(ImageSpec("trixie", ("dropbear-bin",), source="elsewhere.toml"))
    assert len({cache_key(base), cache_key(ImageSpec("bookworm", ("dropbear-bin",))),
                cache_key(ImageSpec("trixie", ("dropbear-bin", "strace"))),
                cache_key(ImageSpec("trixie", ("dropbear-bin",), arch="arm64"))}) == 4


def test_fixups_make_root_ours_and_drop_host_keys(tmp_path):
    (tmp_path / "etc/ssh").mkdir(parents=True)
    (tmp_path / "etc/shadow").write_text("root:*:20000:0:99999:7:::\ndaemon:*:20000:::::\n")
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n")
    (tmp_path / "etc/ssh/ssh_host_ed25519_key").write_text("secret")
    apply_fixups(tmp_path)
    assert (tmp_path / "etc/shadow").read_text().startswith("root:x:20000:")
    assert (tmp_path / "etc/passwd").read_text().splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    assert "daemon:x:1:1::/:/usr/sbin/nologin" in (tmp_path / "etc/passwd").read_text()
    assert not list((tmp_path / "etc/ssh").iterdir())


def test_without_shadow_the_passwd_field_is_ours(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:*:0:0:root:/root:/bin/bash\n")
    apply_fixups(tmp_path)
    assert (tmp_path / "etc/passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    (tmp_path / "etc/passwd").unlink()
    with pytest.raises(ImageError, match="the image has no etc/passwd"):
        apply_fixups(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_build_directory_with_a_leftover_mount_is_removed(tmp_path):
    """A killed mmdebstrap leaves its chroot's /proc mounted; the next build must cope."""
    staging = tmp_path / "x.partial"
    (staging / "rootdir/proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "leftover", str(staging / "rootdir/proc")], check=True)
    (staging / "rootdir/proc/file").write_text("x")
    remove_staging(staging)
    assert not staging.exists()
    assert str(staging) not in open("/proc/self/mounts").read()
