"""Run by tests/harness/test_resilience.py in a pytest of its own: kernel log lines logged after
one test ended and before the next began belong to the next one."""
import time

import pytest

LATE_LINE = "kregress-between-tests: logged after the first test ended"
# a stand-in for a real WARN (no Debian kernel lets userspace trigger one on purpose)
LATE_WARNING = "WARNING: CPU: 0 PID: 1 at kregress-between-tests:0 stand-in warning after a test ended"


def leave_behind(kernel_session, line: str) -> None:
    """A guest process this test leaves running logs the line a second later, after the test's end."""
    script = f"(sleep 1; echo '{line}' > /dev/kmsg) > /dev/null 2>&1 &"
    assert kernel_session.run(["sh", "-c", script]).rc == 0


@pytest.fixture
def line_logged_meanwhile():
    time.sleep(4)       # before kernel_session's set-up: the guest logs the line meanwhile (3 s of margin)


def test_first_leaves_a_line_behind(kernel_session):
    leave_behind(kernel_session, f"<6>{LATE_LINE}")


def test_second_gets_it(line_logged_meanwhile, kernel_session):
    assert kernel_session.run(["true"]).rc == 0


def test_third_leaves_a_warning_behind(kernel_session):
    leave_behind(kernel_session, f"<4>{LATE_WARNING}")


def test_fourth_fails_for_it(line_logged_meanwhile, kernel_session):
    assert kernel_session.run(["true"]).rc == 0
