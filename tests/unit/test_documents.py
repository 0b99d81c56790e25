"""Documented rules held against kernels: stale where a kernel behaves otherwise, with the
facts its expectation named and has."""
from kregress.verdict.documents import render, rules

RULE = {"document": "Doc.rst", "rule": "retval only 0 or the kernel's", "says": {"retval": "EFAULT"}}


def record(kernel, observed, has_fact, outcome="passed"):
    return {"nodeid": f"tests/test_c.py::test_r[{kernel}]", "kernel": kernel, "outcome": outcome,
            "observed": observed, "documented": [RULE], "expectation_facts": ["getsockopt_retval_in_run_ctx"],
            "facts_used": {"getsockopt_retval_in_run_ctx": {"expected": has_fact}}}


def test_stale_rule_names_the_fact_and_the_kernels():
    doc = {"tests": [record("old", {"retval": "EFAULT"}, False), record("new", {"retval": "EINVAL"}, True),
                     record("broken", {"retval": "EINVAL"}, True, outcome="error")]}
    [rule] = rules([doc])
    assert rule["holds_on"] == ["old"] and list(rule["stale_on"]) == ["new"]      # an error judges nothing
    assert rule["facts"] == ["getsockopt_retval_in_run_ctx"]
    text = "\n".join(render([rule]))
    assert "STALE     Doc.rst" in text and "changed by c4dcfdd406aa" in text
    assert "not on new; still on old" in text and "retval: 'EINVAL' (document: 'EFAULT')" in text


def test_a_rule_every_kernel_follows_holds():
    [rule] = rules([{"tests": [record("a", {"retval": "EFAULT"}, False), record("b", {"retval": "EFAULT"}, False)]}])
    assert not rule["stale_on"] and render([rule])[1].startswith("  holds")
