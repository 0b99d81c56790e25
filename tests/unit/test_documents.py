"""Documented rules held against kernels: stale where a kernel behaves otherwise, with the
facts its expectation named and has."""
from kregress.kernels.decision import decide, decisions_json
from kregress.expectation.documents import render, rules

RULE = {"document": "Doc.rst", "rule": "retval only 0 or the kernel's", "says": {"retval": "EFAULT"}}
KERNELS = {kernel: {"id": kernel, "fact_decisions": decisions_json(decide(kernel, version))}
           for kernel, version in (("old", "5.10.223"), ("new", "6.1.176"), ("broken", "6.1.176"))}


def record(kernel, observed, outcome="passed"):
    return {"nodeid": f"tests/test_c.py::test_r[{kernel}]", "kernel": kernel, "outcome": outcome,
            "observed": observed, "documented": [RULE], "expectation_facts": ["getsockopt_retval_in_run_ctx"],
            "facts_used": ["getsockopt_retval_in_run_ctx"]}


def test_stale_rule_names_the_fact_and_the_kernels():
    doc = {"kernels": KERNELS, "tests": [record("old", {"retval": "EFAULT"}), record("new", {"retval": "EINVAL"}),
                                         record("broken", {"retval": "EINVAL"}, outcome="error")]}
    [rule] = rules([doc])
    assert rule["holds_on"] == ["old"] and list(rule["stale_on"]) == ["new"]      # an error judges nothing
    assert rule["facts"] == ["getsockopt_retval_in_run_ctx"]
    text = "\n".join(render([rule]))
    assert "STALE     Doc.rst" in text and "changed by c4dcfdd406aa" in text
    assert "not on new; still on old" in text and "retval: 'EINVAL' (document: 'EFAULT')" in text


def test_a_rule_every_kernel_follows_holds():
    [rule] = rules([{"kernels": KERNELS, "tests": [record("old", {"retval": "EFAULT"}),
                                                   record("broken", {"retval": "EFAULT"})]}])
    assert not rule["stale_on"] and render([rule])[1].startswith("  holds")
