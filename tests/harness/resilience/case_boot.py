"""Run by tests/harness/test_resilience.py against a matrix with kernels that cannot boot."""


def test_boots(kernel_session):
    assert kernel_session.run(["true"]).rc == 0
