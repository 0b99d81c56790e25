"""The benchmark's overhead measure from a hand-made results file: wall, floor, ratio and
parts that add up to the gap between them."""
import json

import pytest

from kregress.report import overhead
from kregress.run.session import KernelSession


def results(tmp_path, tests, **doc):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"tests": tests, **doc}))
    return json.loads(path.read_text())


def vm_test(name, worker, start, stop, guest, **extra):
    return {"nodeid": f"tests/test_x.py::{name}[k]", "kernel": "k", "worker": worker, "started_at": start,
            "stopped_at": stop, "guest_seconds": guest, **extra}


HAND_MADE = [
    # gw0: a restore and a push in its first test, 0.5 s between its tests
    vm_test("a", "gw0", 100.0, 104.0, 2.0, vm_start_seconds=1.0, push_seconds=0.5),
    vm_test("b", "gw0", 104.5, 107.0, 2.0),
    # gw1: done at 103, then idle until gw0's last test ends at 107
    vm_test("c", "gw1", 101.0, 103.0, 1.0, vm_start_seconds=0.8),
    {"nodeid": "tests/unit/test_y.py::test_z", "outcome": "passed", "seconds": 50.0},   # not a VM test
]


def test_wall_floor_ratio_and_parts_of_a_hand_made_run(tmp_path):
    measured = overhead.measure(results(tmp_path, HAND_MADE, workers=2))
    assert (measured.workers, measured.tests, measured.restores) == (2, 3, 2)
    assert measured.wall == pytest.approx(7.0)                  # 107 - 100
    assert measured.floor == pytest.approx(2.5)                 # (2 + 2 + 1) / 2
    assert measured.ratio == pytest.approx(2.8)
    assert measured.gap == pytest.approx(4.5)
    seconds = {part: measured.wall_seconds(part) for part in overhead.PARTS}
    assert seconds == pytest.approx({"restores": 0.9, "pushes": 0.25, "per_test": 0.6, "between": 0.25,
                                     "imbalance": 2.5})
    # per test: a 4.0 - 2 - 1 - 0.5, b 2.5 - 2, c 2 - 1 - 0.8; imbalance: gw1 idle 7 - 2
    assert sum(seconds.values()) == pytest.approx(measured.gap)
    assert sum(measured.share(part) for part in overhead.PARTS) == pytest.approx(1.0)
    assert measured.busy == pytest.approx({"gw0": 7.0, "gw1": 2.0})
    record = measured.as_record()
    assert record["ratio"] == 2.8 and record["parts"]["imbalance"] == {"wall_s": 2.5, "share": 0.556}
    text = "\n".join(overhead.render(measured))
    assert "ratio 2.80x" in text and "longest 7.0 s against a mean of 4.5 s" in text


def test_workers_default_to_those_named_and_an_idle_worker_is_imbalance(tmp_path):
    doc = results(tmp_path, HAND_MADE)          # no recorded count: the two workers named
    assert overhead.measure(doc).workers == 2
    three = overhead.measure(doc, workers=3)    # a third worker ran no VM test: idle the whole wall
    assert three.floor == pytest.approx(5 / 3)
    assert three.wall_seconds("imbalance") == pytest.approx((5.0 + 7.0) / 3)
    assert sum(three.wall_seconds(p) for p in overhead.PARTS) == pytest.approx(three.gap)
    with pytest.raises(overhead.NotMeasurable, match="more than the 1 given"):
        overhead.measure(doc, workers=1)


def test_results_without_what_the_measure_needs_say_so(tmp_path):
    with pytest.raises(overhead.NotMeasurable, match="no VM test"):
        overhead.measure(results(tmp_path, HAND_MADE[3:]))
    untimed = [{**HAND_MADE[0], "stopped_at": None}]
    with pytest.raises(overhead.NotMeasurable, match="without started_at/stopped_at"):
        overhead.measure(results(tmp_path, untimed))


class AskedForLines:
    def __init__(self):
        self.asked = []

    def collect_dmesg_soon(self, into):
        self.asked.append(into)


def test_a_vm_start_goes_to_the_first_test_on_it_only():
    session = KernelSession.__new__(KernelSession)      # no VM: only the record hand-over
    session.vm = type("FakeVM", (), {"connection": AskedForLines()})()
    session.start_seconds = 0.7
    first, second = {}, {}
    session.begin_test(first)
    session.begin_test(second)
    assert first == {"vm_start_seconds": 0.7, "dmesg_before": []} and second == {"dmesg_before": []}
    assert session.test_record is second
    assert [id(lines) for lines in session.vm.connection.asked] == [id(first["dmesg_before"]), id(second["dmesg_before"])]


def test_the_results_file_is_rewritten_spaced_and_always_at_the_end(tmp_path, monkeypatch):
    from pathlib import Path
    from kregress.report import results as results_module
    clock = [1000.0]
    monkeypatch.setattr(results_module.time, "monotonic", lambda: clock[0])
    path = tmp_path / "results.json"
    results = results_module.ResultsFile(path, tmp_path, Path("kernels.toml"))
    written = lambda: len(json.loads(path.read_text())["tests"])       # noqa: E731
    assert written() == 0                   # valid from the start
    results.add_test({"nodeid": "t1"})
    results.add_test({"nodeid": "t2"})
    assert written() == 0                   # no time passed since the last write: waits
    clock[0] += results_module.WRITE_EVERY_S
    results.add_test({"nodeid": "t3"})
    assert written() == 3
    results.add_test({"nodeid": "t4"})
    results.flush()
    assert written() == 4
    results.add_test({"nodeid": "t5"})
    assert results.finish()["tests"] == 5 and written() == 5


def test_a_pushed_file_is_compressed_once_and_kept_on_disk(tmp_path, monkeypatch):
    import zlib
    from kregress.run import guest
    monkeypatch.setenv("KREGRESS_CACHE", str(tmp_path / "cache"))
    driver = tmp_path / "driver"
    driver.write_bytes(b"static driver " * 1000)
    guest._compressed_at.cache_clear()
    assert zlib.decompress(guest._compressed(driver)) == driver.read_bytes()
    [kept] = (tmp_path / "cache" / "compressed").iterdir()
    kept.write_bytes(zlib.compress(b"what the disk kept"))     # a new process reads it, not the file
    guest._compressed_at.cache_clear()
    assert zlib.decompress(guest._compressed(driver)) == b"what the disk kept"
    driver.write_bytes(b"rebuilt")                  # another version: another stream
    assert zlib.decompress(guest._compressed(driver)) == b"rebuilt"
    guest._compressed_at.cache_clear()
