"""Test modules need unique basenames: tests/ and tests/unit/ have no __init__.py, so two
files of one name make pytest refuse to collect the second (seen twice in CI runs)."""
from collections import Counter

from kregress.paths import SUITE_ROOT


def test_test_module_names_are_unique():
    names = Counter(path.name for path in (SUITE_ROOT / "tests").rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]
