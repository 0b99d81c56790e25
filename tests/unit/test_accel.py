import json

import pytest

from kregress.accel import choose


def never_probe():
    raise AssertionError("must not probe")


def test_forced_choices_do_not_probe():
    assert choose("tcg", probe=never_probe).accel == "tcg"
    assert choose("kvm", probe=never_probe).accel == "kvm"
    with pytest.raises(ValueError, match="use auto, kvm or tcg"):
        choose("hvf", probe=never_probe)


def test_no_kvm_device_means_tcg_without_probe():
    choice = choose("auto", probe=never_probe, kvm_check=lambda: (False, "/dev/kvm cannot be opened: No such file"))
    assert choice.accel == "tcg" and "No such file" in choice.reason


def test_kvm_present_but_broken_falls_back_and_is_cached(tmp_path):
    cache = tmp_path / "probe.json"
    calls = []

    def broken_probe():
        calls.append(1)
        return False, "exit 134: kvm_buf_set_msrs: Assertion failed"

    first = choose("auto", probe=broken_probe, kvm_check=lambda: (True, "/dev/kvm opens"),
                   cache_file=cache, host_key="hostA")
    second = choose("auto", probe=broken_probe, kvm_check=lambda: (True, "/dev/kvm opens"),
                    cache_file=cache, host_key="hostA")
    assert (first.accel, second.accel) == ("tcg", "tcg")
    assert "probe guest failed" in first.reason and second.cached and len(calls) == 1
    assert json.loads(cache.read_text())["hostA"]["accel"] == "tcg"


def test_working_kvm_is_used():
    choice = choose("auto", probe=lambda: (True, "ok"), kvm_check=lambda: (True, "/dev/kvm opens"))
    assert choice.accel == "kvm"


def test_probe_is_per_host(tmp_path):
    cache = tmp_path / "probe.json"
    choose("auto", probe=lambda: (False, "x"), kvm_check=lambda: (True, ""), cache_file=cache, host_key="A")
    other = choose("auto", probe=lambda: (True, "ok"), kvm_check=lambda: (True, ""), cache_file=cache, host_key="B")
    assert other.accel == "kvm" and not other.cached
