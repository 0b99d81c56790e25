"""The accelerator choice and the KVM probe's cache: only KVM's or QEMU's own refusal is kept."""
import json
from importlib.metadata import version

import pytest

from kregress.run import accel
from kregress.run.accel import PROBE_CACHE_SECONDS, ProbeResult, choose, host_key

KVM_OPENS = lambda: (True, "/dev/kvm opens")      # noqa: E731
MSR = ("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000e1 / qemu-system-x86_64: "
       "../../target/i386/kvm/kvm.c:3070: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.")
ARM64_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
Features\t: fp
"""


def never_probe():
    raise AssertionError("must not probe")


class Probe:
    def __init__(self, result: ProbeResult):
        self.result, self.calls = result, 0

    def __call__(self) -> ProbeResult:
        self.calls += 1
        return self.result


def test_forced_choices_do_not_probe():
    assert choose("tcg", probe=never_probe).accel == "tcg"
    assert choose("kvm", probe=never_probe).accel == "kvm"
    with pytest.raises(ValueError, match="use auto, kvm or tcg"):
        choose("hvf", probe=never_probe)


def test_no_kvm_device_means_tcg_without_probe():
    choice = choose("auto", probe=never_probe, kvm_check=lambda: (False, "/dev/kvm cannot be opened: No such file"))
    assert choice.accel == "tcg" and "No such file" in choice.reason


def test_a_failure_qemu_reports_is_cached_with_its_message(tmp_path):
    cache = tmp_path / "probe.json"
    probe = Probe(ProbeResult(False, MSR, refused_by="qemu"))
    first = choose("auto", probe=probe, kvm_check=KVM_OPENS, cache_file=cache, host_key="hostA", now=lambda: 1000.0)
    second = choose("auto", probe=probe, kvm_check=KVM_OPENS, cache_file=cache, host_key="hostA", now=lambda: 2000.0)
    assert (first.accel, second.accel) == ("tcg", "tcg") and probe.calls == 1 and second.cached
    assert "qemu refused a probe guest: qemu-system-x86_64: error: failed to set MSR 0x10a" in first.reason
    entry = json.loads(cache.read_text())["hostA"]
    assert entry["accel"] == "tcg" and entry["message"] == MSR and entry["at"] == 1000.0


def test_the_cached_refusal_expires(tmp_path):
    cache = tmp_path / "probe.json"
    probe = Probe(ProbeResult(False, "KVM internal error. Suberror: 1", refused_by="kvm"))
    choose("auto", probe=probe, kvm_check=KVM_OPENS, cache_file=cache, host_key="A", now=lambda: 0.0)
    later = choose("auto", probe=Probe(ProbeResult(True, "ok")), kvm_check=KVM_OPENS, cache_file=cache,
                   host_key="A", now=lambda: PROBE_CACHE_SECONDS + 1.0)
    assert later.accel == "kvm" and not later.cached


@pytest.mark.parametrize("detail", ["k1: no ready marker within 60s (kvm)",
                                    "k1: initramfs: busybox missing from the guest image",
                                    "the guest image: mmdebstrap failed"])
def test_a_probe_that_could_not_run_decides_nothing_and_is_not_cached(tmp_path, detail):
    """A timeout on a busy runner, an initramfs or image error: this run is TCG, saying so; the next run probes."""
    cache = tmp_path / "probe.json"
    probe = Probe(ProbeResult(False, detail))
    first = choose("auto", probe=probe, kvm_check=KVM_OPENS, cache_file=cache, host_key="A")
    second = choose("auto", probe=probe, kvm_check=KVM_OPENS, cache_file=cache, host_key="A")
    assert first.accel == "tcg" and first.probe_error == detail and "probe could not run" in first.reason
    assert "nothing cached" in first.reason and not second.cached and probe.calls == 2
    assert not cache.exists()


def test_working_kvm_is_used_and_not_cached(tmp_path):
    cache = tmp_path / "probe.json"
    probe = Probe(ProbeResult(True, "ok"))
    for _ in range(2):
        choice = choose("auto", probe=probe, kvm_check=KVM_OPENS, cache_file=cache, host_key="A")
        assert choice.accel == "kvm" and "reached userspace" in choice.reason
    assert probe.calls == 2 and not cache.exists()


def test_probe_is_per_host(tmp_path):
    cache = tmp_path / "probe.json"
    choose("auto", probe=Probe(ProbeResult(False, "x", "qemu")), kvm_check=KVM_OPENS, cache_file=cache, host_key="A")
    other = choose("auto", probe=Probe(ProbeResult(True, "ok")), kvm_check=KVM_OPENS, cache_file=cache, host_key="B")
    assert other.accel == "kvm" and not other.cached


def test_host_key_names_cpu_host_kernel_qemu_and_both_versions():
    key = host_key(qemu="qemu-system-x86_64")
    assert f"kregress {version('kregress')}" in key and f"virtme-ng {version('virtme-ng')}" in key
    assert "QEMU emulator version" in key and " | host " in key and "flags " in key


def test_host_key_on_arm64_names_the_cpu_and_the_arm64_qemu(monkeypatch):
    """/proc/cpuinfo on arm64 has no "model name": the MIDR fields name the CPU, and the
    probe's QEMU is the host architecture's."""
    key = host_key(qemu="qemu-system-aarch64", cpuinfo=ARM64_CPUINFO)
    assert key.startswith("0x41 8 0x3 0xd0c 1 | flags ") and "unknown-cpu" not in key
    assert accel.ARCHES["arm64"].qemu_system == "qemu-system-aarch64"
    seen = []
    monkeypatch.setattr(accel.subprocess, "run", lambda cmd, **kw: seen.append(cmd[0]) or
                        accel.subprocess.CompletedProcess(cmd, 0, "QEMU emulator version 7.2\n", ""))
    monkeypatch.setattr(accel, "HOST_ARCH", "arm64")
    host_key(cpuinfo=ARM64_CPUINFO)
    assert seen == ["qemu-system-aarch64"]
