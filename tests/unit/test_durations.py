"""Longest kernels first, from the last run's seconds kept in the cache."""
from kregress import durations


def test_unknown_kernels_first_then_longest(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    assert durations.load() == {}
    durations.record({"tests": [
        {"kernel": "a", "setup_seconds": 1.0, "seconds": 2.0, "teardown_seconds": 0.1},
        {"kernel": "b", "seconds": 9.0}, {"kernel": "a", "seconds": 1.0}, {"nodeid": "unit"}]})
    known = durations.load()
    assert known == {"a": 4.1, "b": 9.0}
    assert durations.longest_first(["a", "b", "new", "c"], known) == ["new", "c", "b", "a"]


def test_a_damaged_file_counts_as_no_history(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    (tmp_path / "durations.json").write_text('{"a": ')
    assert durations.load() == {}
    durations.record({"tests": [{"kernel": "a", "seconds": 1.0}]})
    assert durations.load() == {"a": 1.0}
