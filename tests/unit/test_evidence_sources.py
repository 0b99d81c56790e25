"""Each source's answer, from a fake kernel tree: a binary holding (or not) a fact's
signature, and a package changelog."""
import gzip
from types import SimpleNamespace

from kernelimages import COMPRESS, bzimage

from kregress.kernels import evidence
from kregress.kernels.vmlinux import Payload, UnknownImage

BTF = evidence.BTF_HEADER       # a kernel built with BTF: its names can be searched


def tree(tmp_path, binary: bytes, changelog: str | None):
    image = tmp_path / "boot" / "vmlinuz-x"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\0" * 64)
    if changelog is not None:
        doc = tmp_path / "usr/share/doc/linux-image-x"
        doc.mkdir(parents=True)
        (doc / "changelog.gz").write_bytes(gzip.compress(changelog.encode()))
    return image, binary


def gather(monkeypatch, image, binary):
    def payload(data):
        if binary is None:
            raise UnknownImage("payload format not recognised")
        return Payload(binary, "test")
    monkeypatch.setattr(evidence, "pvh_vmlinux", lambda *a: None)
    monkeypatch.setattr(evidence, "payload", payload)
    evidence.binary_witness.cache_clear()
    evidence.gather.cache_clear()
    return evidence.gather(image)


def test_binary_and_changelog_answer_separately(tmp_path, monkeypatch):
    image, binary = tree(tmp_path, BTF + b"...ignoring program buffer with optlen=%d...",
                         "linux (5.10.223-1) bullseye; urgency=high\n\n  * bpf: Don't EFAULT for "
                         "{g,s}setsockopt with wrong optlen\n")
    said = gather(monkeypatch, image, binary)
    assert said["getsockopt_relief"] == {"binary": "present", "changelog": "present"}
    # 5.10 lacks lsm_cgroup by its changelog's own base and says nothing of it: absent there
    assert said["lsm_cgroup"] == {"binary": "absent", "changelog": "absent"}


def test_silence_about_what_the_base_had_is_unknown_and_no_files_are_unknown(tmp_path, monkeypatch):
    image, binary = tree(tmp_path, BTF + b"BPF_LSM_CGROUP\0", "linux (6.1.176-1) bookworm; urgency=high\n")
    said = gather(monkeypatch, image, binary)       # whatever version the kernels file declares
    assert said["lsm_cgroup"] == {"binary": "present", "changelog": "unknown"}
    bare = tmp_path / "bare" / "vmlinuz"
    bare.parent.mkdir()
    bare.write_bytes(b"")
    assert gather(monkeypatch, bare, None)["lsm_cgroup"] == \
        {"binary": "unknown", "changelog": "unknown"}


def test_btf_names_say_nothing_without_btf(tmp_path, monkeypatch):
    """Debian's s390x 6.1 has no BTF: its lacking BPF_LSM_CGROUP's name is no sign of lacking the commit."""
    image, binary = tree(tmp_path, b"...ignoring program buffer with optlen=%d...", None)
    said = gather(monkeypatch, image, binary)
    assert said["lsm_cgroup"]["binary"] == "unknown" and said["getsockopt_relief"]["binary"] == "present"
    assert evidence.binary_witness(image)[1] == ("binary: no BTF in the image, so it cannot say about "
                                                 "cgroup_set_retval, getsockopt_retval_in_run_ctx, io_uring_getsockopt, "
                                                 "lsm_cgroup, "
                                                 "lsm_cgroup_current_task_shim, sk_bpf_cb_flags, "
                                                 "sockops_cb_flags_setsockopt, sockops_hdr_opt")


def test_coverage_from_a_real_layout_and_the_summary_count(tmp_path):
    """No fakes below the file: an lz4 bzImage (bookworm's cloud kernel's format) with its changelog."""
    evidence.binary_witness.cache_clear()
    image, _ = tree(tmp_path, b"", "linux (6.1.176-1) bookworm; urgency=high\n")
    image.write_bytes(bzimage(COMPRESS["lz4"](b"\x7fELF" + b"\0" * 60 + BTF + b"BPF_LSM_CGROUP\0")))
    kernel = SimpleNamespace(image=image, config={"CONFIG_BPF_LSM": "y"})
    assert evidence.coverage(kernel) == {"binary": "answered", "config": "answered", "changelog": "answered"}
    assert evidence.binary_witness(image)[0]["lsm_cgroup"] == "present"
    assert evidence.binary_witness(image)[2] == "x86 bzImage, lz4"

    unknown = tmp_path / "own/build/arch/x86/boot/vmlinuz"       # beyond the changelog's reach
    unknown.parent.mkdir(parents=True)
    unknown.write_bytes(b"not a kernel" * 100)
    bare = evidence.coverage(SimpleNamespace(image=unknown, config={}))
    assert bare["binary"].startswith("binary: payload format not recognised")
    assert bare["config"].startswith("config: no config found")
    assert bare["changelog"] == "changelog: no package changelog beside the image"

    kernels = {"a": {"evidence_coverage": evidence.coverage(kernel)}, "b": {"evidence_coverage": bare},
               "never-booted": {"error": "fetch failed"}}
    assert evidence.missing_witnesses(kernels) == ("evidence: binary witness missing on 1 of 2 kernel(s) (b); "
                                                   "config witness missing on 1 of 2 kernel(s) (b)")
    assert evidence.missing_witnesses({"x": {"error": "boom"}}) is None
