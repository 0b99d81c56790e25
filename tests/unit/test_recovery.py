"""What the harness did to keep a kernel going, as the summary and the report header say it
(kregress/report/recovery.py), and kernel log lines no test was running for (kmsg_gaps.py)."""
from kregress.kernel_log import gaps as kmsg_gaps, splats
from kregress.report import recovery
from kregress.run import kernel_record

QEMU_BROKEN_PIPE = "saving the guest failed: Unable to write to command: Broken pipe"


def test_a_save_that_ran_out_of_space_says_so(tmp_path):
    staging = tmp_path / "x"
    staging.mkdir()
    reason = recovery.save_failure(f"{QEMU_BROKEN_PIPE} (cat: write error: No space left on device)", staging)
    assert reason.startswith(f"no space left for the snapshot in {tmp_path}, ")
    assert "MB free after the attempt" in reason and "Broken pipe" in reason


def test_another_save_failure_keeps_qemus_words(tmp_path):
    reason = recovery.save_failure(QEMU_BROKEN_PIPE, tmp_path / "x")
    assert reason.startswith(QEMU_BROKEN_PIPE) and "no space" not in reason


def test_each_kernels_retries_fallbacks_and_boot_problems_get_a_line():
    doc = {"kernels": {
        "debian-6.12": {"boot_retries": ["Oops: int3: 0000 [#1] PREEMPT SMP NOPTI (debian-6.12.boot1.log)"],
                        "snapshot_events": [recovery.event("save-failed", "no space left for the snapshot in /s")],
                        "boot_problems": [{"rule": "WARN", "line": "WARNING: CPU: 0 PID: 1 at x", "source": "kmsg"}],
                        "boot_log": {"origin": "snapshot debian-6.12-abc (booted 2026-12-01 21:00 UTC)"}},
        "debian-6.1": {"boot_retries": [], "snapshot_events": [], "boot_problems": []}}}
    assert recovery.run_lines(doc) == [
        "debian-6.12: boot attempt 1 failed and was retried: Oops: int3: 0000 [#1] PREEMPT SMP NOPTI "
        "(debian-6.12.boot1.log)",
        "debian-6.12: snapshot save failed, the run went on booting: no space left for the snapshot in /s",
        "debian-6.12: kernel log of snapshot debian-6.12-abc (booted 2026-12-01 21:00 UTC): 1 problem(s): "
        "WARN: WARNING: CPU: 0 PID: 1 at x"]


def test_events_from_several_workers_add_up(tmp_path):
    """Each process merges its whole lists into the kernel's file at every start and stop: its
    own earlier lists are replaced, another's added to (an item it already has counts once)."""
    fell_back = recovery.event("restore-fell-back", "snapshot not used, booted instead: x")
    kernel_record.merge_into(tmp_path, {"id": "k", "snapshot_events": [fell_back], "boot_retries": []}, "one")
    kernel_record.merge_into(tmp_path, {"id": "k", "snapshot_events": [fell_back, fell_back]}, "one")
    kernel_record.merge_into(tmp_path, {"id": "k", "snapshot_events": [fell_back, recovery.event("discarded", "y")],
                                        "boot_retries": ["qemu exited with -9 before the guest was ready "
                                                         "(k.boot1.log)"]}, "two")
    info = kernel_record.read(tmp_path, "k")
    assert [e["event"] for e in info["snapshot_events"]] == ["restore-fell-back", "restore-fell-back", "discarded"]
    assert len(info["boot_retries"]) == 1


def test_lines_after_a_vms_last_test_reach_the_kernels_record(tmp_path):
    def find(lines):
        return splats.find(lines, "k")
    assert kmsg_gaps.keep(tmp_path, "k", [], find) is None
    kmsg_gaps.keep(tmp_path, "k", ["[ 9.1] bpf: deferred free", "[ 9.2] BUG: unable to handle page fault"], find)
    doc = {"kernels": {"k": {"id": "k"}}}
    kmsg_gaps.merge(doc, tmp_path)
    kmsg_gaps.merge(doc, tmp_path)        # merged once
    info = doc["kernels"]["k"]
    assert info["dmesg_after_last_test"] == ["[ 9.1] bpf: deferred free", "[ 9.2] BUG: unable to handle page fault"]
    assert [p["rule"] for p in info["problems_after_last_test"]] == ["BUG"]
    assert recovery.kernel_lines("k", info) == [
        "k: kernel problem(s) logged after its last test: [ 9.2] BUG: unable to handle page fault"]


def test_the_report_header_shows_them():
    from reportdata import four_kernels
    from kregress.report.matrix import build
    from kregress.report.write import render_html
    doc = four_kernels()
    doc["kernels"]["debian-6.1"]["snapshot_events"] = [
        recovery.event("restore-fell-back", "QEMU refused to load snapshot debian-6.1-x: Not a migration stream")]
    html = render_html(build(doc))
    assert '<ul id="harness-events"' in html
    assert "debian-6.1: restore failed, fell back to a boot: QEMU refused to load snapshot" in html
    assert '<ul id="harness-events"' not in render_html(build(four_kernels()))
