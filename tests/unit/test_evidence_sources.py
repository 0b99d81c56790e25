"""Each source's answer, from a fake kernel tree: a binary holding (or not) a fact's
signature, and a package changelog."""
import gzip

from kregress import evidence


def tree(tmp_path, binary: bytes, changelog: str | None):
    image = tmp_path / "boot" / "vmlinuz-x"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\0" * 64)
    if changelog is not None:
        doc = tmp_path / "usr/share/doc/linux-image-x"
        doc.mkdir(parents=True)
        (doc / "changelog.gz").write_bytes(gzip.compress(changelog.encode()))
    return image, binary


def gather(monkeypatch, image, binary, version):
    monkeypatch.setattr(evidence, "pvh_vmlinux", lambda *a: None)
    monkeypatch.setattr(evidence, "extract", lambda data: binary)
    return evidence.gather(image, version)


def test_binary_changelog_and_version_answer_separately(tmp_path, monkeypatch):
    image, binary = tree(tmp_path, b"...ignoring program buffer with optlen=%d...",
                         "linux (5.10.223-1) bullseye; urgency=high\n\n  * bpf: Don't EFAULT for "
                         "{g,s}setsockopt with wrong optlen\n")
    said = gather(monkeypatch, image, binary, "5.10.223")
    assert said["getsockopt_relief"] == {"binary": "present", "changelog": "present", "version": "absent"}
    # 5.10 lacks lsm_cgroup by its changelog's own base and says nothing of it: absent there
    assert said["lsm_cgroup"] == {"binary": "absent", "changelog": "absent", "version": "absent"}


def test_silence_about_what_the_base_had_is_unknown_and_no_files_are_unknown(tmp_path, monkeypatch):
    image, binary = tree(tmp_path, b"BPF_LSM_CGROUP\0", "linux (6.1.176-1) bookworm; urgency=high\n")
    said = gather(monkeypatch, image, binary, "5.10.0")       # a declared version that lies
    assert said["lsm_cgroup"] == {"binary": "present", "changelog": "unknown", "version": "absent"}
    bare = tmp_path / "bare" / "vmlinuz"
    bare.parent.mkdir()
    bare.write_bytes(b"")
    assert gather(monkeypatch, bare, None, None)["lsm_cgroup"] == \
        {"binary": "unknown", "changelog": "unknown", "version": "unknown"}
