"""The harness under real failures: each test runs a pytest of its own against real
kernels and checks what that run reported. Not parametrized per kernel: debian-6.12
stands in for all, with debian-6.12-arm64-16k beside it for panics and hangs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kregress.results import FORMAT

pytestmark = [pytest.mark.vm, pytest.mark.harness]

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "resilience"
KERNEL = "debian-6.12"


def inner_pytest(run_dir: Path, *args, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--run-dir", str(run_dir), *map(str, args)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def outcomes(doc: dict) -> dict:
    return {t["nodeid"].split("::")[1].split("[")[0]: t for t in doc["tests"]}


# arm64 too: its panics, hangs and console come through qemu-system-aarch64 and ttyAMA0
@pytest.mark.parametrize("kernel", [KERNEL, "debian-6.12-arm64-16k"])
def test_panic_hang_and_warning_stay_in_their_test(tmp_path, kernel):
    proc = inner_pytest(tmp_path, CASES / "case_guest_failures.py", "--kernel", kernel)
    output, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 1, output[-3000:]
    tests = outcomes(results_of(tmp_path))
    assert {name: t["outcome"] for name, t in tests.items()} == {
        "test_before": "passed",
        "test_panic": "error", "test_after_panic": "passed",
        "test_hang": "error", "test_after_hang": "passed",
        "test_warning_in_kernel_log": "error", "test_after_warning": "passed"}, output[-3000:]
    assert "Kernel panic - not syncing: sysrq triggered crash" in tests["test_panic"]["longrepr"]
    assert tests["test_panic"]["harness_error"] == "guest-panic"
    hang = tests["test_hang"]["longrepr"]
    assert "still running after 5" in hang and "hrtimer_nanosleep" in hang and "Show Blocked State" in hang
    assert "kregress-injected-warning" in tests["test_warning_in_kernel_log"]["longrepr"]
    # the warning belongs to its own test only
    assert not any("kregress-injected" in line for line in tests["test_after_warning"]["dmesg"])
    # the first start (a boot, or a restore when the kernel's snapshot exists), then one
    # restore after each of panic and hang: the VM is replaced from its snapshot, not rebooted
    assert "the next test gets one restored from the kernel's snapshot" in tests["test_panic"]["longrepr"]
    assert "the next test gets one restored from the kernel's snapshot" in hang
    hows = [start["how"] for start in results_of(tmp_path)["kernels"][kernel]["boots"]]
    assert len(hows) == 3 and hows[0] in ("booted+saved", "restored") and hows[1:] == ["restored", "restored"], hows


def test_unbootable_kernels_fail_clearly_and_alone(tmp_path):
    garbage = tmp_path / "vmlinuz-corrupt"
    garbage.write_bytes(os.urandom(2 << 20))
    lacking = tmp_path / "lacking"     # a real kernel whose .config says it has no virtio-blk
    lacking.mkdir()
    real = debian_612()
    (lacking / "vmlinuz").symlink_to(real.image)
    (lacking / ".config").write_text("\n".join(f"{k}={v}" for k, v in real.config.items()
                                               if k != "CONFIG_VIRTIO_BLK") + "\n")
    kernels = tmp_path / "kernels.toml"
    kernels.write_text(f"""
[[kernel]]
id = "corrupt-image"
image = "{garbage}"
version = "6.1.0"

[[kernel]]
id = "panics-at-boot"
suite = "trixie"
cmdline = "rdinit=/kregress-no-such-init"

[[kernel]]
id = "no-virtio-blk"
image = "{lacking / 'vmlinuz'}"
version = "6.12.0"

[[kernel]]
id = "{KERNEL}"
suite = "trixie"
""")
    started = time.monotonic()
    proc = inner_pytest(tmp_path, CASES / "case_boot.py", "--kernels-file", kernels, "--boot-timeout", 120)
    output, _ = proc.communicate(timeout=1200)
    elapsed = time.monotonic() - started
    tests = {t["kernel"]: t for t in results_of(tmp_path)["tests"]}
    assert tests[KERNEL]["outcome"] == "passed", output[-3000:]
    corrupt = tests["corrupt-image"]     # refused before booting: qemu would spin silently
    assert corrupt["outcome"] == "error" and "corrupt-image" in corrupt["longrepr"], corrupt
    assert "is not an x86 bzImage" in corrupt["longrepr"], corrupt
    panics = tests["panics-at-boot"]
    assert panics["outcome"] == "error" and "panics-at-boot" in panics["longrepr"], panics
    assert "Kernel panic" in panics["longrepr"] and "console lines around it" in panics["longrepr"], panics
    lacking = tests["no-virtio-blk"]      # refused before booting, naming what is missing
    assert lacking["outcome"] == "error" and "CONFIG_VIRTIO_BLK (virtio block device" in lacking["longrepr"], lacking
    assert "Enable these options" in lacking["longrepr"]     # ... and the fix
    assert elapsed < 600, f"bounded boot timeouts, but the run took {elapsed:.0f}s"


def debian_612():
    from kregress.config import load_kernels
    from kregress.kernels import resolve
    return resolve(next(s for s in load_kernels(ROOT / "kernels.toml") if s.id == KERNEL))


def test_workers_starting_together_share_one_set_of_keys(tmp_path):
    """Three local-image kernels (nothing to download) on three workers: every worker
    reaches the run's SSH keys at the same moment; each first test must pass."""
    real = debian_612()
    kernels = tmp_path / "kernels.toml"
    kernels.write_text("".join(f"""
[[kernel]]
id = "local-{n}"
image = "{real.image}"
modules = "{real.modules_dir}"
version = "{real.upstream_version}"
""" for n in range(3)))
    proc = inner_pytest(tmp_path / "run", CASES / "case_boot.py", "--kernels-file", kernels, "-n", "3",
                        "--dist", "loadgroup")
    output, _ = proc.communicate(timeout=900)
    tests = results_of(tmp_path / "run")["tests"]
    assert sorted((t["kernel"], t["outcome"]) for t in tests) == [
        ("local-0", "passed"), ("local-1", "passed"), ("local-2", "passed")], output[-3000:]
    assert len({t.get("worker") for t in tests}) == 3, "expected one worker per kernel"


def our_processes(tag: str) -> list[str]:
    found = []
    for proc_dir in Path("/proc").iterdir():
        try:
            argv = (proc_dir / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        cmdline = " ".join(argv)
        is_pytest = "pytest" in argv[:3] or argv[0].endswith("pytest")     # the inner run and this one
        if tag in cmdline and not is_pytest:
            found.append(f"{proc_dir.name}: {cmdline[:150]}")
    return found


def test_sigterm_mid_run_leaves_nothing_behind(tmp_path):
    run_dir = tmp_path / f"sigterm-{os.getpid()}-{int(time.time())}"   # unique: it names the VMs
    proc = inner_pytest(run_dir, ROOT / "tests/test_getsockopt_efault.py", "--kernel", KERNEL,
                        "--kernel", "debian-6.1", "-n", "2", "--dist", "loadgroup")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:     # wait until the first VM is up and a test is running
        if run_dir.exists() and any(marker in p.read_text(errors="replace")
                                    for p in (run_dir / "console").glob("*.log")
                                    for marker in ("KREGRESS: READY", "kregress: RESTORED")):
            break
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail("no VM became ready within 600s")
    assert our_processes(run_dir.name), "expected this run's qemu to be running before SIGTERM"
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    time.sleep(3)       # reapers act within two seconds of their parent's exit
    leftovers = our_processes(run_dir.name)
    assert not leftovers, "processes left after SIGTERM:\n" + "\n".join(leftovers) + output[-2000:]
    doc = results_of(run_dir)      # still valid JSON, with whatever finished
    assert doc["format"] == FORMAT and isinstance(doc["tests"], list)
