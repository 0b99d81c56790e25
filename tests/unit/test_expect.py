"""The expectation vocabulary: declared facts, the facts a test consulted and the facts its
expect() named must agree; the failure message has one shape; and every scenario module
in tests/ names only facts it declares (read from the source, no VM)."""
import ast
import importlib.util
from pathlib import Path

import pytest

from kregress.expectation.declared import UnreadableDeclaration, fact_names, scenario_facts, string_constants
from kregress.expectation.expect import DocumentRule, declared_facts, facts_mismatch, failure_message
from kregress.kernels.decision import KernelFacts, UndeclaredFact
from kregress.kernels.facts import FACTS
from kregress.paths import SUITE_ROOT

SCENARIO_MODULES = sorted((SUITE_ROOT / "tests/scenarios").glob("test_*.py"))


def test_recorded_facts_and_expectation_must_agree():
    assert facts_mismatch({"getsockopt_relief"}, {"getsockopt_relief"}) == ""
    assert facts_mismatch(set(), set()) == ""                               # a rule that holds everywhere
    assert facts_mismatch({"getsockopt_relief"}, None) == ""                # skipped before expect()
    # consulted but not named: the expectation hides what it depends on
    assert "does not name them" in facts_mismatch({"getsockopt_relief", "getsockopt_retval_in_run_ctx"},
                                                  {"getsockopt_relief"})
    # named but never consulted: the record would claim a dependence that is not there
    assert "never consulted" in facts_mismatch(set(), {"getsockopt_relief"})


def test_a_scenario_cannot_consult_an_undeclared_fact():
    facts = KernelFacts("k", "6.1.176", declared=("getsockopt_relief",))
    assert facts.has("getsockopt_relief") is True
    with pytest.raises(UndeclaredFact, match="lsm_cgroup.*pytest.mark.scenario"):
        facts.has("lsm_cgroup")
    assert facts.used == {"getsockopt_relief"}


def test_declared_facts_must_exist():
    marker = type("Mark", (), {"kwargs": {"facts": ["no_such_fact"]}})()
    with pytest.raises(UndeclaredFact, match="no_such_fact"):
        declared_facts([marker])
    assert declared_facts([]) is None


def test_failure_message_shape():
    facts = KernelFacts("debian-5.10", "5.10.223", evidence={"getsockopt_relief": {"binary": "absent"}})
    text = failure_message(facts, {"errno": "OK", "tos": 16}, {"errno": "EFAULT", "tos": 16}, ["getsockopt_relief"],
                           note="extra words")
    lines = text.splitlines()
    assert lines[0] == "debian-5.10 (5.10.223): 1 of 2 observation(s) differ from the expectation"
    assert lines[1] == "  errno: observed 'OK', expected 'EFAULT'"
    assert lines[2].startswith("expected because: its binary says it lacks 29ebbba7d461")
    assert "extra words" in text and text.endswith("observed: {'errno': 'OK', 'tos': 16}")
    plain = failure_message(facts, {"a": 1}, {"a": 2}, [])
    assert "no fact in kregress/kernels/facts.py changes it" in plain


def test_document_rule_record():
    rule = DocumentRule("Doc.rst", "a rule")
    assert rule.as_record({"k": "EFAULT"}) == {"document": "Doc.rst", "rule": "a rule", "says": {"k": "EFAULT"}}


@pytest.mark.parametrize("path", SCENARIO_MODULES, ids=lambda p: p.name)
def test_scenario_modules_use_only_declared_facts(path: Path):
    """Every fact a scenario module asks about (.has(X)) or names in expect(facts=[...]) is
    one its scenario marker declares, and every declared fact is used somewhere."""
    declared = set(scenario_facts([str(path)], SUITE_ROOT))
    tree = ast.parse(path.read_text())
    constants = string_constants(tree)
    consulted, named = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr == "has":
            consulted |= set(fact_names(node.args, constants))
        for keyword in node.keywords:
            if keyword.arg == "facts" and isinstance(keyword.value, (ast.List, ast.Tuple)):
                named |= set(fact_names(keyword.value.elts, constants))
    assert consulted <= declared, f"{path.name} consults undeclared {consulted - declared}"
    assert named - set(FACTS) <= set() and named <= declared, f"{path.name} names undeclared {named - declared}"
    assert declared <= consulted | named, f"{path.name} declares facts it never uses: {declared - consulted - named}"


def test_declared_facts_are_read_without_running_the_module(tmp_path):
    module = tmp_path / "test_scenario_probe.py"
    module.write_text('raise SystemExit("the module was executed")\n'
                      'import pytest\nRELIEF = "getsockopt_relief"\n'
                      'pytestmark = [pytest.mark.vm, pytest.mark.scenario(facts=[RELIEF, "lsm_cgroup"])]\n')
    assert scenario_facts([f"{module}::test_x", "-k", "tos"], SUITE_ROOT) == ["getsockopt_relief", "lsm_cgroup"]
    computed = tmp_path / "test_computed.py"
    computed.write_text('import pytest\npytestmark = pytest.mark.scenario(facts=sorted(["lsm_cgroup"]))\n')
    with pytest.raises(UnreadableDeclaration, match="string literals"):
        scenario_facts([str(computed)], SUITE_ROOT)
    unknown = tmp_path / "test_unknown.py"
    unknown.write_text('import pytest\npytestmark = pytest.mark.scenario(facts=["no_such_fact"])\n')
    with pytest.raises(UndeclaredFact, match="no_such_fact"):
        scenario_facts([str(unknown)], SUITE_ROOT)


def test_relative_selections_are_read_from_the_given_root(tmp_path, monkeypatch):
    """`git bisect run` runs in the kernel tree: a relative selection is the project's, not the cwd's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_getsockopt_efault.py").write_text("import pytest\n")   # a decoy in the cwd
    assert scenario_facts(["tests/scenarios/test_sockops_flags.py", "-k", "alone"], SUITE_ROOT) == ["sockops_hdr_opt"]
    assert scenario_facts(["tests/scenarios/test_getsockopt_efault.py"], SUITE_ROOT) == \
        ["getsockopt_relief", "getsockopt_retval_in_run_ctx"]


@pytest.mark.parametrize("path", SCENARIO_MODULES, ids=lambda p: p.name)
def test_source_reading_matches_the_markers_at_run_time(path: Path):
    """What bisect reads from the source is what pytest sees once the module runs."""
    spec = importlib.util.spec_from_file_location(f"_probe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    marks = module.pytestmark if isinstance(module.pytestmark, list) else [module.pytestmark]
    at_run_time = declared_facts(m.mark for m in marks if m.name == "scenario")
    assert scenario_facts([str(path)], SUITE_ROOT) == [name for name in FACTS if name in at_run_time]


# What a scenario module may not contain: every test ends in expect() or a named skip from the
# precondition helper (kregress.plugin), nothing else (the plugin checks the same at run time).
FORBIDDEN_CALLS = {"xfail": "pytest.xfail", "skip": "pytest.skip", "fail": "pytest.fail", "importorskip":
                   "pytest.importorskip", "observe_until": "a retry helper", "record_behaviour": "record_behaviour"}


def _endings(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            found.append(f"line {node.lineno}: a bare assert")
        elif isinstance(node, ast.While):
            found.append(f"line {node.lineno}: a while loop (retry until it passes?)")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {FORBIDDEN_CALLS[name]}")
        elif isinstance(node, ast.arg) and node.arg == "record_behaviour":
            found.append(f"line {node.lineno}: the record_behaviour fixture (end with expect())")
        elif isinstance(node, ast.Attribute) and node.attr in ("xfail", "skipif") and \
                isinstance(node.value, ast.Attribute) and node.value.attr == "mark":
            found.append(f"line {node.lineno}: pytest.mark.{node.attr}")
    return found


@pytest.mark.parametrize("path", SCENARIO_MODULES, ids=lambda p: p.name)
def test_scenario_modules_end_one_way(path: Path):
    """expect() or the precondition helper: no xfail, no skip or fail of its own, no bare
    assert, no retry loop, no record_behaviour; and every test function reaches expect()."""
    tree = ast.parse(path.read_text())
    assert not _endings(tree), f"{path.name} ends a scenario test another way: " + "; ".join(_endings(tree))
    tests = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    calls_expect = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                    and any(isinstance(arg, ast.arg) and arg.arg == "expect" for arg in ast.walk(node))}
    for test in tests:
        assert test.name in calls_expect, f"{path.name}::{test.name} never takes the expect fixture"


def test_the_source_check_sees_every_other_ending():
    source = ("import pytest\n@pytest.mark.xfail\ndef test_a(record_behaviour):\n    assert 1\n"
              "    while True:\n        pytest.skip('x')\n    pytest.xfail('y')\n    observe_until(1)\n")
    found = " ".join(_endings(ast.parse(source)))
    for what in ("bare assert", "while loop", "pytest.skip", "pytest.xfail", "retry helper", "record_behaviour",
                 "pytest.mark.xfail"):
        assert what in found, what


def test_every_scenario_is_found():
    names = {p.stem for p in SCENARIO_MODULES}
    assert {"test_getsockopt_efault", "test_sockops_flags", "test_lsm_priority", "test_sockopt_contract",
            "test_findings", "test_net_policy"} <= names


def marked_scenario(path) -> bool:
    """The module's own pytestmark names pytest.mark.scenario (not a string that mentions it)."""
    import ast
    source = path.read_text()
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
               and "mark.scenario(" in ast.get_source_segment(source, node.value)
               for node in ast.parse(source).body)


def test_the_folders_say_what_a_test_needs():
    """tests/scenarios: every module a scenario (pytest.mark.scenario with its facts);
    tests/harness and tests/unit: none; nothing else holds test modules."""
    for path in SCENARIO_MODULES:
        assert marked_scenario(path), f"{path}: a scenario module declares its facts"
    for folder in ("harness", "unit"):
        for path in (SUITE_ROOT / "tests" / folder).rglob("test_*.py"):
            assert not marked_scenario(path), f"{path}: a scenario belongs in tests/scenarios"
    assert not list((SUITE_ROOT / "tests").glob("test_*.py")), "test modules live in scenarios/, harness/ or unit/"
