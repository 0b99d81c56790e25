"""Longest kernels first, from the tests' seconds last time, kept in the cache per test."""
from kregress.plugin import durations


def test_kernels_ordered_by_their_tests_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    assert durations.load() == {}
    durations.record({"tests": [
        {"nodeid": "t1[a]", "kernel": "a", "setup_seconds": 1.0, "seconds": 2.0, "teardown_seconds": 0.1},
        {"nodeid": "t1[b]", "kernel": "b", "seconds": 9.0}, {"nodeid": "unit"}]})
    durations.record({"tests": [{"nodeid": "t2[a]", "kernel": "a", "seconds": 1.0}]})   # partial run: merged
    known = durations.load()
    assert known == {"t1[a]": 3.1, "t1[b]": 9.0, "t2[a]": 1.0}
    tests = {"a": ["t1[a]", "t2[a]"], "b": ["t1[b]"], "new": ["t1[new]"] * 5, "c": []}
    assert durations.longest_first(tests, known) == ["b", "new", "a", "c"]


def test_a_damaged_file_counts_as_no_history(tmp_path, monkeypatch):
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path))
    (tmp_path / "durations.json").write_text('{"a": ')
    assert durations.load() == {}
    durations.record({"tests": [{"nodeid": "t[a]", "kernel": "a", "seconds": 1.0}]})
    assert durations.load() == {"t[a]": 1.0}
