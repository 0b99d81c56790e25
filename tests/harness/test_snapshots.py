"""Saved guests on a real kernel: restored when whole, rebuilt when damaged, and never
loaded into another command line. These VMs use memory sizes of their own, so their
snapshots are theirs alone (the key covers the command line): the matrix running in
another worker never reads a file this test damages."""
import json
import shutil


from kregress.paths import SUITE_ROOT
from kregress.run.boot_inputs import snapshot_key_for
from kregress.run.pool import KernelPool
from kregress.run.session import VMOptions
from kregress.run.snapshot import SnapshotCache

KERNEL = "debian-5.10"       # these tests boot and save: the quickest default kernel to boot


def start(tmp_path, memory: str):
    """Start the kernel once and stop it; returns (how it came up, its record, the VM)."""
    pool = KernelPool(SUITE_ROOT / "kernels.toml", [KERNEL], tmp_path / "run", VMOptions(memory=memory))
    try:
        session = pool.session(KERNEL)
        assert session.run(["true"]).rc == 0
        return session.boot.how, session.info(), session.vm
    finally:
        pool.stop_live()


def snapshot_of(vm):
    return SnapshotCache().find(KERNEL, vm.snapshot_key())


def test_damaged_state_is_detected_and_rebuilt_never_loaded(tmp_path):
    how, _, vm = start(tmp_path, "736M")
    snapshot = snapshot_of(vm)
    assert how in ("booted+saved", "restored") and snapshot
    if how == "booted+saved":       # a snapshot saved now restores (one from an earlier run just did)
        assert start(tmp_path, "736M")[0] == "restored"

    with open(snapshot.state, "r+b") as state:      # flip bytes in the middle
        state.seek(snapshot.manifest["state_bytes"] // 2)
        chunk = state.read(64)
        state.seek(-64, 1)
        state.write(bytes(b ^ 0xFF for b in chunk))
    how, info, _ = start(tmp_path, "736M")
    assert how == "booted+saved" and "SHA-256 does not match" in info["snapshot_note"], info

    snapshot = snapshot_of(vm)
    with open(snapshot.state, "r+b") as state:      # cut it short
        state.truncate(snapshot.manifest["state_bytes"] // 3)
    how, info, _ = start(tmp_path, "736M")
    assert how == "booted+saved" and "(truncated?)" in info["snapshot_note"], info
    assert start(tmp_path, "736M")[0] == "restored"


def key_of(tmp_path, memory: str) -> str:
    """The snapshot key a VM with this memory size would use, without starting it (as
    kregress snapshots key computes it)."""
    pool = KernelPool(SUITE_ROOT / "kernels.toml", [KERNEL], tmp_path / "keys", VMOptions(memory=memory))
    kernel = pool.kernel(KERNEL)
    return snapshot_key_for(kernel, pool.accels.for_kernel(kernel).accel, pool.catalog.guest_image(kernel.spec.arch),
                            memory=memory)


def test_state_from_another_command_line_is_never_loaded(tmp_path):
    _, _, vm = start(tmp_path, "704M")
    saved = snapshot_of(vm)
    other = SnapshotCache().directory(KERNEL, key_of(tmp_path, "720M"))
    assert saved and other != saved.directory
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(saved.directory, other)          # 704M's state where 720M's would be
    how, info, bigger = start(tmp_path, "720M")
    assert how == "booted+saved", info               # not loaded: booted, and saved its own
    assert json.loads((other / "manifest.json").read_text())["key"] == bigger.snapshot_key() != saved.key
