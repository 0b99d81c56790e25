"""The harness under real failures: each test runs a pytest of its own against real
kernels and checks what that run reported. Not parametrized per kernel: debian-6.12
stands in for all (debian-5.10 where a test's cost is its own boots), with
debian-6.12-arm64-16k beside it for panics and hangs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kregress.paths import SUITE_ROOT
from kregress.report.results import FORMAT


ROOT = SUITE_ROOT
CASES = Path(__file__).resolve().parent / "resilience"
KERNEL = "debian-6.12"
# the tests whose cost is their own boots (no snapshot, or a private one) boot the quickest
# default kernel to boot under TCG (to its agent in about 60% of debian-6.12's time)
BOOTS = "debian-5.10"


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
    assert "still running after 3" in hang and "hrtimer_nanosleep" in hang and "Show Blocked State" in hang
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
suite = "bullseye"
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
    from kregress.kernels.entries import load_kernels
    from kregress.kernels.sources import resolve
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
    proc = inner_pytest(run_dir, ROOT / "tests/scenarios/test_getsockopt_efault.py", "--kernel", KERNEL,
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
    deadline = time.monotonic() + 5         # reapers act within two seconds of their parent's exit
    while (leftovers := our_processes(run_dir.name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leftovers, "processes left after SIGTERM:\n" + "\n".join(leftovers) + output[-2000:]
    doc = results_of(run_dir)      # still valid JSON, with whatever finished
    assert doc["format"] == FORMAT and isinstance(doc["tests"], list)


# -- every kernel problem seen, and what the harness did to keep going (issue 22)

def private_snapshots(tmp_path: Path, snapshots: Path | None = None) -> dict:
    """An environment whose kregress cache is the shared one (kernels, images, builds, locks)
    except for its snapshots: the inner runs' saves, failures and restores are theirs alone."""
    from kregress.paths import cache_dir
    private = tmp_path / "cache"
    private.mkdir()
    for entry in cache_dir().iterdir():
        if entry.name != "snapshots":
            (private / entry.name).symlink_to(entry)
    (private / "snapshots").symlink_to(snapshots or (tmp_path / "snapshots"))
    (snapshots or (tmp_path / "snapshots")).mkdir(exist_ok=True)
    return dict(os.environ, KREGRESS_CACHE=str(private))


def run_inner(run_dir: Path, *args, env=None, timeout=1200) -> tuple[subprocess.Popen, str]:
    proc = inner_pytest(run_dir, *args, env=env)
    output, _ = proc.communicate(timeout=timeout)
    return proc, output


def test_a_boot_time_warning_fails_the_kernel_on_its_boot_and_on_every_restore(tmp_path):
    """Our init writes a WARN line to /dev/kmsg at boot when the kernel command line has the
    test-only flag kregress.test_boot_warning: a stand-in for a real boot-time WARN, since
    Debian's kernels lack LKDTM. The kernel's own result (tests/harness/test_kernel_log.py) fails
    on the boot, again on a restore of the snapshot that boot made, and passes only when
    an allowlist entry names the line, the kernel and why."""
    kernel = "debian-5.10-boot-warning"
    kernels = tmp_path / "kernels.toml"
    kernels.write_text(f'[[kernel]]\nid = "{kernel}"\nsuite = "bullseye"\ncmdline = "kregress.test_boot_warning"\n')
    env = private_snapshots(tmp_path)
    stand_in = "stand-in boot warning (test-only flag kregress.test_boot_warning)"
    for run, how in (("first", "booted+saved"), ("again", "restored")):
        proc, output = run_inner(tmp_path / run, ROOT / "tests/harness/test_kernel_log.py", CASES / "case_boot.py",
                                 "--kernels-file", kernels, env=env)
        assert proc.returncode == 1, output[-3000:]
        doc = results_of(tmp_path / run)
        tests = outcomes(doc)
        assert tests["test_boots"]["outcome"] == "passed", output[-3000:]     # the other tests go on
        judged = tests["test_boot_log_has_no_kernel_problems"]
        assert judged["outcome"] == "failed" and stand_in in judged["longrepr"], judged
        info = doc["kernels"][kernel]
        assert info["boot_how"] == how, info
        assert [(p["rule"], p["source"]) for p in info["boot_problems"]] == [("WARN", "kmsg")], info
        assert info["boot_log"]["starts_at_first_line"] and info["boot_log"]["origin"].startswith(
            "boot " if run == "first" else "snapshot "), info["boot_log"]
        assert f"{kernel}: kernel log of " in output and "1 problem(s): WARN:" in output, output[-3000:]
    allow = tmp_path / "allow.toml"
    allow.write_text(f'[[allow]]\nkernels = ["{kernel}"]\nline = "stand-in boot warning"\n'
                     f'why = "written on purpose by our init under the test-only flag"\n')
    proc, output = run_inner(tmp_path / "allowed", ROOT / "tests/harness/test_kernel_log.py", "--kernels-file", kernels,
                             "--kernel-log-allowlist", allow, env=env)
    assert proc.returncode == 0, output[-3000:]
    info = results_of(tmp_path / "allowed")["kernels"][kernel]
    assert info["boot_problems"] == [] and info["boot_splats_allowed"][0]["allowed"].startswith("written on purpose")


def test_a_line_logged_between_two_tests_lands_on_the_second(tmp_path):
    proc, output = run_inner(tmp_path, CASES / "case_between_tests.py", "--kernel", KERNEL)
    assert proc.returncode == 1, output[-3000:]
    tests = outcomes(results_of(tmp_path))
    assert {name: t["outcome"] for name, t in tests.items()} == {
        "test_first_leaves_a_line_behind": "passed", "test_second_gets_it": "passed",
        "test_third_leaves_a_warning_behind": "passed", "test_fourth_fails_for_it": "error"}, output[-3000:]

    def logged(test: str, key: str, text: str) -> bool:
        return any(text in line for line in tests[test].get(key, []))
    assert logged("test_second_gets_it", "dmesg_before", "kregress-between-tests: logged after the first")
    assert not logged("test_first_leaves_a_line_behind", "dmesg", "kregress-between-tests")
    assert not logged("test_second_gets_it", "dmesg", "kregress-between-tests")
    fourth = tests["test_fourth_fails_for_it"]
    assert logged("test_fourth_fails_for_it", "dmesg_before", "stand-in warning after a test ended")
    assert "WARN before this test began" in fourth["longrepr"], fourth["longrepr"]


def qemu_of(run_dir: Path) -> list[int]:
    return [int(line.split(":")[0]) for line in our_processes(f"kr-{run_dir.name}"[:20])
            if "qemu-system" in line]


def test_a_boot_retry_is_shown_with_its_reason(tmp_path):
    """QEMU killed during the first boot (from outside, as a crash would): the harness
    boots again, and the summary says which attempt failed and why."""
    run_dir = tmp_path / f"retry-{os.getpid()}"
    proc = inner_pytest(run_dir, CASES / "case_boot.py", "--kernel", BOOTS, "--no-snapshots")
    first = run_dir / "console" / f"{BOOTS}.boot1.log"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (first.exists() and qemu_of(run_dir)):
        time.sleep(0.05)
    assert "KREGRESS: READY" not in first.read_text(errors="replace"), "the boot was ready before the kill"
    for pid in qemu_of(run_dir):
        os.kill(pid, signal.SIGKILL)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    info = results_of(run_dir)["kernels"][BOOTS]
    assert info["boot_attempts"] == 2 and len(info["boot_retries"]) == 1, info
    assert info["boot_retries"][0].startswith("qemu exited with -9 before the guest was ready"), info
    assert f"{BOOTS}: boot attempt 1 failed and was retried: qemu exited with -9" in output, output[-3000:]


def test_a_snapshot_save_without_space_says_so_and_the_run_goes_on(tmp_path):
    """The snapshot directory on a 40 MB tmpfs: the state (about 120 MB) does not fit."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "kregress-test", str(small)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        proc, output = run_inner(tmp_path / "run", CASES / "case_boot.py", "--kernel", BOOTS,
                                 env=private_snapshots(tmp_path, small))
    finally:
        subprocess.run(["umount", str(small)], check=False)
    assert proc.returncode == 0, output[-3000:]
    info = results_of(tmp_path / "run")["kernels"][BOOTS]
    [failed] = info["snapshot_events"]
    assert failed["event"] == "save-failed" and "no space left for the snapshot" in failed["reason"], failed
    assert info["boot_how"] == "booted", info
    assert f"{BOOTS}: snapshot save failed, the run went on booting: " in output, output[-3000:]
    assert "no space left for the snapshot" in output


def test_a_restore_qemu_refuses_falls_back_to_a_boot_and_says_why(tmp_path):
    """A state file QEMU cannot load (its recorded checksum made to match, so only QEMU can tell)."""
    import hashlib
    env = private_snapshots(tmp_path)
    proc, output = run_inner(tmp_path / "save", CASES / "case_boot.py", "--kernel", BOOTS, env=env)
    assert proc.returncode == 0, output[-3000:]
    [manifest_path] = (tmp_path / "snapshots").glob(f"{BOOTS}-*/manifest.json")
    state = manifest_path.parent / "state"
    garbage = os.urandom(4 << 20)
    state.write_bytes(garbage)
    manifest = json.loads(manifest_path.read_text())
    manifest.update(state_bytes=len(garbage), state_sha256=hashlib.sha256(garbage).hexdigest())
    manifest_path.write_text(json.dumps(manifest))
    proc, output = run_inner(tmp_path / "restore", CASES / "case_boot.py", "--kernel", BOOTS, env=env)
    assert proc.returncode == 0, output[-3000:]
    info = results_of(tmp_path / "restore")["kernels"][BOOTS]
    fell_back = [e for e in info["snapshot_events"] if e["event"] == "restore-fell-back"]
    assert fell_back and "QEMU refused to load snapshot" in fell_back[0]["reason"], info["snapshot_events"]
    assert f"{BOOTS}: restore failed, fell back to a boot: QEMU refused to load snapshot" in output, output[-3000:]
