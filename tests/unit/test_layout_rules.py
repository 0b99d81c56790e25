"""The layout's two rules, checked on the code as it is: no file in kregress/ or guest/ over
400 lines, and every import runs down the wings' layers (docs/layout.md), never up or across."""
import ast

import pytest

from kregress.paths import SUITE_ROOT

MAX_LINES = 400
# Lowest first; a wing imports only from its own package and from lower layers.
LAYERS = [
    {"paths", "procs", "files", "arch"},
    {"kernels", "kernel_log"},
    {"provision", "expectation"},
    {"check_progs"},
    {"report"},
    {"run"},
    {"bisect"},
    {"plugin", "cli"},
]
LAYER_OF = {wing: depth for depth, wings in enumerate(LAYERS) for wing in wings}
PACKAGE = SUITE_ROOT / "kregress"


def source_files():
    for top in (PACKAGE, SUITE_ROOT / "guest"):
        for path in sorted(top.rglob("*")):
            if path.is_file() and path.suffix in {".py", ".c", ".h", ".sh"} and "__pycache__" not in path.parts:
                yield path


def wing_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


@pytest.mark.parametrize("path", list(source_files()), ids=lambda p: str(p.relative_to(SUITE_ROOT)))
def test_no_file_over_the_limit(path):
    lines = len(path.read_text(errors="replace").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SUITE_ROOT)}: {lines} lines; split it by job"


def test_every_wing_has_a_layer():
    wings = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert wings == set(LAYER_OF), "a new wing or root module: give it a layer here and in docs/layout.md"


def test_imports_run_down_the_layers():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(SUITE_ROOT).with_suffix("").parts)
        mine = wing_of(module)
        for line, imported in imports_of(path):
            if not imported.startswith("kregress.") or wing_of(imported) == mine:
                continue
            if LAYER_OF[wing_of(imported)] >= LAYER_OF[mine]:
                upward.append(f"{path.relative_to(SUITE_ROOT)}:{line} imports {imported}")
    assert not upward, "imports that run up or across a layer:\n" + "\n".join(upward)


def test_relative_imports_are_not_used():
    # Absolute imports keep every module's place readable where it is used.
    relative = [f"{p.relative_to(SUITE_ROOT)}:{n.lineno}" for p in PACKAGE.rglob("*.py")
                for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
    assert not relative
