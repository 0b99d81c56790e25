"""A scenario module's declared facts, read from its source without running it: the names in
its `pytestmark = pytest.mark.scenario(facts=[...])`, each a string or a module-level string
constant (what bisect needs to know which fact a selection is about)."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from kregress.kernels.decision import UndeclaredFact
from kregress.kernels.facts import FACTS


class UnreadableDeclaration(ValueError):
    """A scenario marker whose facts are not written as names the source alone gives."""


def string_constants(module: ast.Module) -> dict[str, str]:
    """Module-level NAME = "string" assignments."""
    return {target.id: node.value.value for node in module.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def fact_names(nodes, constants: dict[str, str]) -> list[str]:
    """The strings among `nodes`: literals, or names of module-level string constants."""
    out = []
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.Name) and node.id in constants:
            out.append(constants[node.id])
    return out


def declared_in(path: Path) -> tuple[str, ...] | None:
    """The facts the module's scenario marker declares (None: no scenario marker)."""
    module = ast.parse(Path(path).read_text(), str(path))
    constants = string_constants(module)
    marks = [node.value for node in module.body if isinstance(node, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)]
    calls = [call for mark in marks for call in ast.walk(mark) if isinstance(call, ast.Call)
             and isinstance(call.func, ast.Attribute) and call.func.attr == "scenario"]
    if not calls:
        return None
    names: list[str] = []
    for call in calls:
        for keyword in call.keywords:
            if keyword.arg != "facts":
                continue
            if not isinstance(keyword.value, (ast.List, ast.Tuple)) or \
                    len(fact_names(keyword.value.elts, constants)) != len(keyword.value.elts):
                raise UnreadableDeclaration(
                    f"{path}:{keyword.value.lineno}: write scenario(facts=[...]) as string literals or module-level "
                    f"string constants, so the facts can be read without running the module")
            names += [name for name in fact_names(keyword.value.elts, constants) if name not in names]
    unknown = [name for name in names if name not in FACTS]
    if unknown:
        raise UndeclaredFact(f"{path}: scenario marker names {unknown[0]!r}, which kregress/kernels/facts.py does "
                             f"not define (known: {', '.join(FACTS)})")
    return tuple(names)


def scenario_facts(selection: list[str], root: Path) -> list[str]:
    """The facts declared by the scenario modules a pytest selection names (its file and
    node-id arguments, relative ones read from `root` as pytest run there reads them), in
    the facts table's order."""
    names: set[str] = set()
    for arg in selection:
        path = root / arg.split("::")[0]       # an absolute path stays as it is
        if arg.startswith("-") or path.suffix != ".py" or not path.is_file():
            continue
        names |= set(declared_in(path) or ())
    return [name for name in FACTS if name in names]


JUDGING_CALLS = ("expect", "precondition")      # the calls whose facts= a verdict counts


@dataclass(frozen=True)
class JudgedFacts:
    """What one test function judges: the facts its calls name outright, and those chosen by a
    parameter through a module-level table (ORDERING = {"preorder": ("cgroup_preorder", ...)},
    `fact, flag = ORDERING[how]`): by the table's key, which is the parameter's value. Of them, the
    facts its precondition() calls name: where the kernel lacks one, the test ends there (a named
    skip that judges that fact) and judges none of the others."""
    named: tuple[str, ...] = ()
    by_parameter: dict = field(default_factory=dict)      # parameter value -> facts
    preconditions: tuple[str, ...] = ()
    parameter_in_precondition: bool = False               # a precondition names the table's fact

    def for_params(self, values) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(facts judged, facts of its preconditions) for one parametrization (every table entry
        when no value is a key)."""
        keyed = [facts for value, facts in self.by_parameter.items() if value in set(map(str, values))]
        picked = {n for facts in (keyed or list(self.by_parameter.values())) for n in facts}
        named = tuple(n for n in FACTS if n in self.named or n in picked)
        gated = tuple(n for n in FACTS if n in self.preconditions or (self.parameter_in_precondition and n in picked))
        return named, gated

    def judges_whatever_the_kernel(self, values) -> tuple[str, ...]:
        """The facts this parametrization judges on every kernel: those no precondition on another
        fact can stop it before (a kernel lacking that other fact ends the test there)."""
        named, gated = self.for_params(values)
        return tuple(n for n in named if set(gated) <= {n})


def fact_tables(module: ast.Module) -> dict[str, dict[str, tuple[str, ...]]]:
    """Module-level NAME = {"key": (... "fact" ...), ...}: per key, the fact names in its value."""
    out = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            table = {key.value: tuple(n.value for n in ast.walk(value) if isinstance(n, ast.Constant)
                                      and isinstance(n.value, str) and n.value in FACTS)
                     for key, value in zip(node.value.keys, node.value.values)
                     if isinstance(key, ast.Constant) and isinstance(key.value, str)}
            if any(table.values()):
                out.update({t.id: table for t in node.targets if isinstance(t, ast.Name)})
    return out


def _named_in(function: ast.AST, constants: dict[str, str]) -> tuple[list[str], list[str], bool, set[str]]:
    """The facts a function's own expect()/precondition() calls name (facts=[...] written as
    literals or constants; anything else, e.g. sorted(kernel_facts.used), names none), those of
    its (not optional) precondition() calls, whether one of those names a fact by a variable, and
    the names it calls, reads or asks for as fixtures (to follow into the module's helpers and tables)."""
    facts: list[str] = []
    gated: list[str] = []
    variable = False
    called: set[str] = {node.id for node in ast.walk(function) if isinstance(node, ast.Name)}
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in JUDGING_CALLS):
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        named = keywords.get("facts")
        if not isinstance(named, (ast.List, ast.Tuple)):
            continue
        found = fact_names(named.elts, constants)
        facts += [n for n in found if n not in facts]
        optional = isinstance(keywords.get("optional"), ast.Constant) and keywords["optional"].value
        if node.func.id == "precondition" and not optional:
            gated += [n for n in found if n not in gated]
            variable = variable or len(found) < len(named.elts)
    if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        called |= {arg.arg for arg in function.args.args}      # fixtures of the module are followed too
    return facts, gated, variable, called


def judged_by_test(path: Path) -> dict[str, JudgedFacts]:
    """Per test function of a module: the facts its expect() and precondition() calls name,
    its own and those of the module's helpers, fixtures and fact tables it reaches (what
    `kregress fleet` chooses cases by: a test judges only the facts it names)."""
    module = ast.parse(Path(path).read_text(), str(path))
    constants = string_constants(module)
    tables = fact_tables(module)
    functions = {node.name: _named_in(node, constants) for node in module.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    out = {}
    for name in functions:
        if not name.startswith("test"):
            continue
        facts: list[str] = []
        gated: list[str] = []
        variable = False
        by_parameter: dict[str, tuple[str, ...]] = {}
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in functions:
                continue
            seen.add(current)
            named, preconditions, by_variable, called = functions[current]
            facts += [n for n in named if n not in facts]
            gated += [n for n in preconditions if n not in gated]
            variable = variable or by_variable
            for table in sorted(called & set(tables)):
                by_parameter.update(tables[table])
            todo += sorted(called)
        out[name] = JudgedFacts(tuple(n for n in FACTS if n in facts), by_parameter,
                                tuple(n for n in FACTS if n in gated), variable)
    return out
