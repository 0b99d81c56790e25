"""The fact decision is made once per kernel and read everywhere else: the reports, compare and
the verdict table read the decision a kernel's record holds; a results file written before
kernels recorded one gets it, as its tests recorded it, when it is loaded."""
import copy
import json

import pytest

from kregress.kernels import decision
from kregress.report import compare, matrix, results, verdicts
from reportdata import four_kernels_as_written, write


@pytest.fixture
def loaded(tmp_path):
    """The real four-kernel run, written before kernels recorded their decision, loaded."""
    return results.load(write(tmp_path / "old.json", four_kernels_as_written()))


@pytest.fixture
def no_deciding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fact decision was made again")
    monkeypatch.setattr(decision, "decide", refuse)


def test_an_old_file_gets_the_decisions_its_tests_recorded(loaded):
    old = four_kernels_as_written()
    for test, now in zip(old["tests"], loaded["tests"]):
        for name, used in test.get("facts_used", {}).items():
            assert loaded["kernels"][test["kernel"]]["fact_decisions"][name] == used
        assert now["facts_used"] == sorted(test.get("facts_used", {}))      # the names, now
    relief = loaded["kernels"]["debian-5.10"]["fact_decisions"]["getsockopt_relief"]
    assert (relief["expected"], relief["decided_by"]) == (False, "binary")
    # facts no test asked about are decided from what the kernel's record holds
    assert loaded["kernels"]["debian-6.12"]["fact_decisions"]["lsm_cgroup"]["expected"] is True


def test_reports_read_the_recorded_decision(loaded, no_deciding):
    built = matrix.build(loaded)
    assert [c.facts.has("getsockopt_relief") for c in built.columns] == [False, True, True, True]
    assert any(cell.change and cell.change.facts for _, cell in built.changes())
    rows = verdicts.table([loaded])
    assert {(r["kernel"], r["verdict"]) for r in rows if r["fact"] == "getsockopt_relief"} == {
        ("debian-5.10", "agree"), ("debian-6.1", "agree"), ("debian-6.12", "agree"), ("debian-backports", "agree")}
    pairings = compare.compare(loaded, copy.deepcopy(loaded), "debian-6.1", "debian-6.12")
    assert pairings and pairings[0].compared


def test_an_old_file_takes_the_kernel_decision_over_a_test_copy(tmp_path):
    old = four_kernels_as_written()
    relief = next(t["facts_used"]["getsockopt_relief"] for t in old["tests"] if t["kernel"] == "debian-5.10"
                  and "getsockopt_relief" in t["facts_used"])
    old["kernels"]["debian-5.10"]["fact_decisions"] = {"getsockopt_relief": relief}
    for test in old["tests"]:
        if test["kernel"] == "debian-5.10" and "getsockopt_relief" in test["facts_used"]:
            test["facts_used"]["getsockopt_relief"] = {**relief, "expected": True, "state": "has"}
    loaded = results.load(write(tmp_path / "old.json", old))
    row = next(r for r in verdicts.table([loaded]) if (r["kernel"], r["fact"]) == ("debian-5.10", "getsockopt_relief"))
    assert row["state"] == "lacks"


def test_a_kernels_file_restating_facts_is_decided_anew(loaded, tmp_path):
    restated = tmp_path / "kernels.toml"
    restated.write_text('[[kernel]]\nid = "debian-5.10"\nimage = "/nonexistent"\nversion = "5.10.223"\n'
                        'facts = { getsockopt_relief = true }\n')
    column = next(c for c in matrix.build(loaded, restated).columns if c.id == "debian-5.10")
    assert column.facts.has("getsockopt_relief") is True
    assert column.facts.decided_by("getsockopt_relief") == "kernels.toml"


RT_CONFIG = {"CONFIG_PREEMPT_RT": "y", "CONFIG_BPF_LSM": "y", "CONFIG_CGROUP_BPF": "y",
             "CONFIG_DEBUG_INFO_BTF": "y", "CONFIG_BPF_JIT": "y"}


def test_a_build_brings_a_fact_its_version_and_changelog_lack():
    """bookworm's PREEMPT_RT kernel: the 6.1-rt patch set carries ab5d47bd41b1, the config says so."""
    silent_changelog = {"bpf_link_put_deferred": {"changelog": "absent"}}
    rt = decision.KernelFacts("debian-6.1-rt", "6.1.176", evidence=silent_changelog, config=RT_CONFIG)
    assert rt.has("bpf_link_put_deferred") and rt.decided_by("bpf_link_put_deferred") == "config"
    assert rt.has("softirq_inline_under_ksoftirqd")
    assert "CONFIG_PREEMPT_RT=y brings it" in rt.why("bpf_link_put_deferred")
    assert "changelog says lacks it" in rt.why("bpf_link_put_deferred")
    assert rt.unusable_reason("bpf_link_put_deferred") is None
    plain = decision.KernelFacts("debian-6.1", "6.1.176", evidence=silent_changelog,
                                 config={**RT_CONFIG, "CONFIG_PREEMPT_RT": "unset"})
    assert not plain.has("bpf_link_put_deferred") and plain.decided_by("bpf_link_put_deferred") == "changelog"
    assert plain.answers("bpf_link_put_deferred")["config"] == "unknown"
    # only the branches whose patch set was read: an RT 5.10 says nothing from its config
    old_rt = decision.KernelFacts("rt-5.10", "5.10.223", config=RT_CONFIG)
    assert not old_rt.has("bpf_link_put_deferred") and old_rt.decided_by("bpf_link_put_deferred") == "version"


def test_verdicts_say_what_the_build_brought():
    decisions = decision.decide("debian-6.1-rt", "6.1.176", config=RT_CONFIG)
    test = {"kernel": "debian-6.1-rt", "nodeid": "t::x[debian-6.1-rt]", "outcome": "passed",
            "facts_used": ["bpf_link_put_deferred"]}
    doc = results.normalise({"format": results.FORMAT, "tests": [test],
                             "kernels": {"debian-6.1-rt": {"fact_decisions": decision.decisions_json(decisions)}}})
    rows = verdicts.table([doc])
    text = verdicts.render(rows)
    assert "config says has it (CONFIG_PREEMPT_RT=y brings it" in text
    assert "brought by the build: debian-6.1-rt bpf_link_put_deferred: CONFIG_PREEMPT_RT=y" in \
        verdicts.render_grid(rows)


ARM64_CONFIG = {"CONFIG_BPF_LSM": "y", "CONFIG_CGROUP_BPF": "y", "CONFIG_DEBUG_INFO_BTF": "y", "CONFIG_BPF_JIT": "y"}


@pytest.mark.parametrize("name, version, arch, config, overrides", [
    ("debian-6.1-arm64", "6.1.176", "arm64", ARM64_CONFIG, {}),            # unusable (no direct calls)
    ("debian-6.1-rt", "6.1.176", "x86_64", RT_CONFIG, {}),                 # brought by the build
    ("src", "6.1.10", "x86_64", None, {"getsockopt_relief": True}),        # stated; no config found
    ("own", None, "x86_64", None, {}),                                     # undecided
])
def test_a_fact_decision_round_trips_through_json(name, version, arch, config, overrides):
    decisions = decision.decide(name, version, overrides, {"lsm_cgroup": {"binary": "present"}}, arch, config)
    as_json = json.loads(json.dumps(decision.decisions_json(decisions)))
    assert decision.decisions_from_json(as_json) == decisions
    assert decision.decisions_json(decision.decisions_from_json(as_json)) == as_json
    states = {d.state for d in decisions.values()}
    assert states <= set(decision.STATES)
    assert all(answer in decision.ANSWERS for d in decisions.values() for _, answer in d.said)


def test_the_states_each_decision_can_take():
    arm64 = decision.decide("debian-6.1-arm64", "6.1.176", arch="arm64", config=ARM64_CONFIG)["lsm_cgroup"]
    assert (arm64.state, arm64.expected, arm64.decided_by) == ("unusable", True, "version")
    assert arm64.reason == "arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"
    assert dict(arm64.config_needs)["CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"] == "unset"
    old = decision.decide("k", "5.10.223")["getsockopt_relief"]
    assert (old.state, old.expected, old.config_needs) == ("lacks", False, decision.NO_CONFIG)
    nothing = decision.decide("own", None)["getsockopt_relief"]
    assert nothing.state == "undecided" and nothing.decided_by is None and "set version" in nothing.reason
    assert nothing.to_json() == {"sources": {"version": "unknown"}, "undecided": nothing.reason}
    with pytest.raises(LookupError):
        nothing.expected
    with pytest.raises(ValueError, match="not one of"):
        decision.FactDecision("x", "maybe", "version", ())
    with pytest.raises(ValueError, match="a witness answers"):
        decision.FactDecision("x", "has", "version", (("version", "yes"),))


def test_an_older_copy_without_a_state_reads_as_has_or_lacks():
    copy_of = {"expected": True, "decided_by": "binary", "sources": {"binary": "present"}}
    assert decision.FactDecision.from_json("getsockopt_relief", copy_of).state == "has"
    assert decision.FactDecision.from_json("getsockopt_relief", {**copy_of, "expected": False}).state == "lacks"


def test_the_version_witness_is_read_once_where_the_decision_is_made(monkeypatch):
    """evidence.gather answers for the binary and the changelog; the version is the decision's."""
    from kregress.kernels import evidence
    assert "version" not in evidence.SOURCES
    calls = []
    real = decision.parse_version
    monkeypatch.setattr(decision, "parse_version", lambda text: calls.append(text) or real(text))
    decision.decide("k", "6.1.176", evidence={"getsockopt_relief": {"binary": "present", "changelog": "unknown",
                                                                     "version": "absent"}})
    assert calls == ["6.1.176"]
    relief = decision.decide("k", "6.1.176", evidence={"getsockopt_relief": {"version": "absent"}})["getsockopt_relief"]
    assert relief.answers == {"version": "present"}      # an older record's version answer is not trusted
