"""A kernel's own file in the run directory (kregress.run.kernel_record): written when the kernel is
resolved, before any test, with its fact decision; what its VMs went through merged in by every
process that runs it; a kernel that cannot be fetched recorded too. (Whole runs, a dead worker
among them: tests/unit/test_kernel_record_once.py.)"""
import json

from kregress.kernels import decision
from kregress.kernels.facts import FACTS
from kregress.kernels.kernel import Kernel, KernelFetchError
from kregress.run import catalog, kernel_record
from kregress.run.pool import KernelPool
from kregress.run.session import VMOptions


def kernels_file(tmp_path, *ids):
    path = tmp_path / "kernels.toml"
    path.write_text("".join(f'[[kernel]]\nid = "{k}"\nimage = "/nonexistent/{k}"\nversion = "6.1.176"\n'
                            f'facts = {{ getsockopt_relief = true }}\n\n' for k in ids))
    return path


def fake_resolve(tmp_path):
    def resolve(spec, refresh=False):
        if spec.id == "gone":
            raise KernelFetchError("no such package")
        image = tmp_path / f"{spec.id}.img"
        image.write_bytes(b"not a kernel")
        return Kernel(spec, image, "6.1.0-probe", "6.1.176", config={"CONFIG_CGROUP_BPF": "y"})
    return resolve


def test_resolving_a_kernel_writes_its_file_with_its_decision(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "resolve", fake_resolve(tmp_path))
    decided = []
    monkeypatch.setattr(decision, "decide", (lambda real: lambda *a, **k: decided.append(a[0]) or real(*a, **k))(
        decision.decide))
    harness = KernelPool(kernels_file(tmp_path, "k", "gone"), [], tmp_path / "run", VMOptions())
    assert not (tmp_path / "run" / "kernels").exists()
    harness.kernel("k")
    harness.kernel("k")
    record = kernel_record.read(harness.run_dir, "k")
    assert kernel_record.path_of(harness.run_dir, "k") == tmp_path / "run" / "kernels" / "k.json"
    assert decided == ["k"] and set(record) == {"id", "facts", "fact_decisions"}
    assert record["facts"] == {"getsockopt_relief": True}
    assert set(record["fact_decisions"]) == set(FACTS)
    relief = decision.FactDecision.from_json("getsockopt_relief", record["fact_decisions"]["getsockopt_relief"])
    assert (relief.state, relief.decided_by) == ("has", "kernels.toml")
    assert harness.records.resolved(harness.kernel("k")) == decision.decisions_from_json(record["fact_decisions"])
    # a kernel that cannot be fetched is recorded too, with why
    try:
        harness.kernel("gone")
    except KernelFetchError:
        pass
    assert kernel_record.read(harness.run_dir, "gone") == {
        "id": "gone", "error": "gone: cannot fetch: no such package", "facts": {"getsockopt_relief": True}}


def test_each_process_merges_what_its_vms_went_through(tmp_path):
    """Two workers ran the kernel's modules (--spread module): its file has both's recoveries,
    the newest values, and its decision after the VM's state, as results.json had it."""
    kernel_record.merge_into(tmp_path, {"id": "k", "facts": {}, "fact_decisions": {"x": {"sources": {},
                                                                                          "undecided": "why"}}})
    kernel_record.merge_into(tmp_path, {"id": "k", "boot_seconds": 9.0, "snapshot_events": [{"event": "a"}],
                                        "facts": {}, "boot_retries": []}, "one")
    kernel_record.merge_into(tmp_path, {"id": "k", "boot_seconds": 2.0, "snapshot_events": [{"event": "b"}],
                                        "facts": {}, "boot_retries": ["oops"], "uname_r": None}, "two")
    kernel_record.merge_into(tmp_path, {"id": "k", "boot_seconds": 9.5, "snapshot_events": [{"event": "a"},
                                                                                            {"event": "c"}],
                                        "facts": {}, "boot_retries": []}, "one")     # its VM's stop
    record = kernel_record.read(tmp_path, "k")
    assert record["boot_seconds"] == 9.5 and "uname_r" not in record
    assert record["snapshot_events"] == [{"event": "a"}, {"event": "c"}, {"event": "b"}]
    assert record["boot_retries"] == ["oops"]
    assert list(record) == ["id", "boot_seconds", "snapshot_events", "facts", "boot_retries", "fact_decisions"]
    assert kernel_record.PARTS in json.loads(kernel_record.path_of(tmp_path, "k").read_text())


def test_a_run_directory_used_again_starts_without_the_old_files(tmp_path):
    kernel_record.merge_into(tmp_path, {"id": "old"})
    kernel_record.clear(tmp_path)
    assert kernel_record.read(tmp_path, "old") is None
    kernel_record.clear(tmp_path / "never-used")
