"""Each kernel's own result: the log of its boot, kmsg from the kernel's first line and the
serial console, holds no kernel problem (kregress/kernel_log/splats.py: WARN, BUG, Oops, KASAN, UBSAN,
lockdep, hung task, RCU stall, panic) that kernel-log-allowlist.toml does not allow.

A kernel boots once and is restored from its snapshot ever after; the boot's log is stored
with the snapshot, so this test judges the same boot again on every restore."""
import pytest

from kregress.expectation.record import add_extras


def test_boot_log_has_no_kernel_problems(kernel_session):
    log = kernel_session.kernel_log
    add_extras(kernel_session.test_record, {"boot_log": log.summary(), "boot_splats": log.splats})
    assert log.starts_at_first_line(), (
        f"{kernel_session.kernel.id}: the boot's kmsg does not begin with the kernel's banner, so part of the "
        f"boot was not checked (ring buffer overwritten?); first lines: {log.kmsg[:3]}")
    if log.problems:
        pytest.fail(f"{kernel_session.kernel.id}: the kernel log of {log.origin} shows {len(log.problems)} "
                    f"problem(s):\n" + "\n".join(f"{p['rule']} ({p['source']}): {p['line']}" for p in log.problems)
                    + "\nIf a line is benign on this kernel, add it to kernel-log-allowlist.toml with why.",
                    pytrace=False)
