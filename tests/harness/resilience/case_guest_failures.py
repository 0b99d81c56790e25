"""Run by tests/harness/test_resilience.py in a pytest of its own: each failure must stay
confined to its test, and the VM must come back for the next one."""


def test_before(kernel_session):
    assert kernel_session.run(["true"]).rc == 0


def test_panic(kernel_session):
    kernel_session.run(["sh", "-c", "echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger"], timeout=60)


def test_after_panic(kernel_session):
    assert kernel_session.run(["true"]).rc == 0


def test_hang(kernel_session):
    kernel_session.run(["sleep", "600"], timeout=3)


def test_after_hang(kernel_session):
    assert kernel_session.run(["true"]).rc == 0


def test_warning_in_kernel_log(kernel_session):
    # Injected through /dev/kmsg: a stand-in for a real WARN, which no Debian kernel
    # lets userspace trigger on purpose. The test's own assertion passes.
    line = "<4>WARNING: CPU: 0 PID: 1 at kregress-injected-warning"
    assert kernel_session.run(["sh", "-c", f"echo '{line}' > /dev/kmsg"]).rc == 0


def test_after_warning(kernel_session):
    assert kernel_session.run(["true"]).rc == 0
