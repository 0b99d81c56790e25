"""kregress doctor's decisions (kregress/run/host_check.py) with the host faked: which packages
the selected kernels need, what only root can do, and the one command it prints."""
from pathlib import Path

import pytest

from kregress.run import host_check
from kregress.run.host_check import Needs, check


@pytest.fixture
def host(monkeypatch, tmp_path):
    """A Debian host where nothing is installed, the user has no subordinate ids, binfmt_misc
    knows nothing, user namespaces work and there is no /dev/kvm."""
    state = {"installed": set(), "userns": True}
    monkeypatch.setattr(host_check, "installed", lambda packages, family: state["installed"] & set(packages))
    monkeypatch.setattr(host_check, "userns_works", lambda user: state["userns"])
    monkeypatch.setattr(host_check, "has_subids", lambda user, path: False)
    monkeypatch.setattr(host_check, "BINFMT", tmp_path / "binfmt_misc")
    monkeypatch.setattr(host_check, "APPARMOR_USERNS", tmp_path / "apparmor_restrict_unprivileged_userns")
    monkeypatch.setattr(host_check, "HOST_ARCH", "x86_64")
    monkeypatch.setattr(host_check, "kvm_state", lambda **kw: "/dev/kvm absent")
    monkeypatch.setattr(host_check.shutil, "which", lambda name: f"/usr/bin/{name}")
    return state


def test_packages_follow_the_selected_kernels(host):
    x86 = check(Needs(frozenset({"x86_64"})), "debian", "root")
    assert "qemu-system-x86" in x86.missing_packages and "qemu-system-arm" not in x86.missing_packages
    assert "gcc" not in x86.missing_packages and "chromium" not in x86.missing_packages
    arm = check(Needs(frozenset({"arm64"})), "debian", "root")
    assert {"qemu-system-arm", "qemu-user-static", "arch-test"} <= set(arm.missing_packages)
    assert "binfmt_misc mounted" in arm.root_fixes          # a foreign image's maintainer scripts
    suite = check(Needs(frozenset({"x86_64", "arm64"}), trees=True, suite=True), "debian", "root")
    assert {"gcc", "flex", "chromium"} <= set(suite.missing_packages)



def test_an_unmounted_binfmt_misc_is_mounted_once_then_every_entry_registered(host):
    """A fresh machine with qemu-user-static just installed and nothing to load its entries
    (no systemd-binfmt): one mount, then each foreign arch's registration, in that order."""
    report = check(Needs(frozenset({"x86_64", "arm64", "ppc64le", "s390x"})), "debian", "root")
    binfmt = [fix for fix in report.root_fixes if "binfmt_misc" in fix]
    assert binfmt == ["binfmt_misc mounted", "qemu-aarch64 registered with binfmt_misc",
                      "qemu-ppc64le registered with binfmt_misc", "qemu-s390x registered with binfmt_misc"]

def test_a_ready_host_says_so(host):
    host["installed"] = {p for group in host_check.package_table("debian").values() for p in group}
    report = check(Needs(frozenset({"x86_64"})), "debian", "root")
    assert report.ready and all(not line.startswith("MISSING") for line in report.lines)


def test_a_user_needs_subordinate_ids_and_a_kernel_that_allows_namespaces(host):
    host["installed"] = {p for group in host_check.package_table("debian").values() for p in group}
    host["userns"] = False
    report = check(Needs(frozenset({"x86_64"})), "debian", "alice")
    assert report.root_fixes == ["a /etc/subuid range for alice", "a /etc/subgid range for alice"]
    assert any("unprivileged_userns_clone" in b for b in report.blockers) and not report.ready


def test_ubuntus_apparmor_namespace_switch_is_a_root_fix(host, tmp_path):
    host["installed"] = {p for group in host_check.package_table("debian").values() for p in group}
    host["userns"] = False
    (tmp_path / "apparmor_restrict_unprivileged_userns").write_text("1\n")
    report = check(Needs(frozenset({"x86_64"})), "ubuntu", "runner")
    assert host_check.APPARMOR_FIX in report.root_fixes and not report.blockers


def test_an_unknown_distribution_names_the_packages_to_install_by_hand(host):
    report = check(Needs(frozenset({"x86_64"})), "gentoo", "root")
    [blocker] = report.blockers
    assert "gentoo" in blocker and "qemu-system-x86" in blocker and "mmdebstrap" in blocker


def test_doctor_prints_the_one_command_for_root(host, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(host_check, "distro", lambda: "debian")
    monkeypatch.setattr(host_check, "invoking_user", lambda: "alice")
    monkeypatch.setattr(host_check.os, "getuid", lambda: 1000)
    kernels = tmp_path / "kernels.toml"
    kernels.write_text('[[kernel]]\nid = "k"\nsuite = "trixie"\n')
    assert host_check.main(["--kernels-file", str(kernels), "--kernel", "k"]) == 1
    err = capsys.readouterr().err
    assert "these need root:" in err and "qemu-system-x86" in err
    assert "doctor --fix --kernels-file" in err.splitlines()[-1] and err.splitlines()[-1].lstrip().startswith("sudo ")
    assert host_check.main(["--kernels-file", str(kernels), "--kernel", "k"], sudo_line="sudo scripts/setup.sh") == 1
    assert capsys.readouterr().err.splitlines()[-1].strip() == "sudo scripts/setup.sh"


def test_kvm_state_says_why_not(tmp_path):
    assert "absent" in host_check.kvm_state(str(tmp_path / "kvm"))
    cache = tmp_path / "probe.json"
    cache.write_text('{"host": {"accel": "tcg", "reason": "KVM unusable: internal error", "at": 0}}')
    assert "KVM unusable: internal error" in host_check.kvm_state("/dev/null", probe_cache=cache)
    assert "not probed yet" in host_check.kvm_state("/dev/null", probe_cache=tmp_path / "none.json")
