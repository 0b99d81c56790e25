"""The snapshot cache without QEMU: keys, checksums, eviction."""
import os
import time

from kregress.run import snapshot
from kregress.run.snapshot import SnapshotCache, snapshot_key

COMMAND = ["/usr/bin/qemu-system-x86_64", "-m", "1G", "-kernel", "/cache/vmlinux/abc.elf",
           "-initrd", "/cache/initramfs/6.12-1234.cpio"]
PARTS = {"qemu": "QEMU emulator version 7.2.19", "kernel": "k" * 64, "initramfs": "6.12-1234.cpio", "image": "i" * 64}


def swap(command, old, new):
    return [arg.replace(old, new) for arg in command]


def test_key_covers_every_argument_and_part_and_masks_nothing():
    """Per-run values never reach it (qemu_command.guest_command has none): nothing is masked."""
    key = snapshot_key(COMMAND, PARTS)
    assert snapshot_key(list(COMMAND), dict(PARTS)) == key
    assert snapshot_key(swap(COMMAND, "1G", "2G"), PARTS) != key
    assert snapshot_key(swap(COMMAND, "abc.elf", "def.elf"), PARTS) != key
    assert snapshot_key(COMMAND + ["-name", "kr-run1"], PARTS) != key
    for name in PARTS:
        assert snapshot_key(COMMAND, {**PARTS, name: "other"}) != key, name


def saved(cache: SnapshotCache, kernel: str, key: str, size: int):
    staging = cache.staging(kernel, key)
    (staging / "state").write_bytes(os.urandom(size))
    return cache.commit(staging, kernel, key, {"release": "r", "lsm": "bpf", "entry": "pvh"})


def test_a_whole_state_verifies_a_truncated_or_flipped_one_is_removed(tmp_path):
    cache = SnapshotCache(tmp_path)
    snap = saved(cache, "k", "a" * 24, 4096)
    assert cache.find("k", "a" * 24) == snap and cache.verify(snap) is None
    time.sleep(0.05)        # damage comes after the check: the file's mtime moves on
    with open(snap.state, "r+b") as state:
        state.seek(100)
        byte = state.read(1)
        state.seek(100)
        state.write(bytes([byte[0] ^ 0xFF]))
    assert "SHA-256 does not match" in cache.verify(snap)
    assert cache.find("k", "a" * 24) is None and not snap.directory.exists()
    snap = saved(cache, "k", "a" * 24, 4096)
    os.truncate(snap.state, 1000)
    assert "1000 bytes, 4096 were saved" in cache.verify(snap)
    assert cache.find("k", "a" * 24) is None


def test_least_recently_used_go_first_when_over_the_bound(tmp_path):
    cache = SnapshotCache(tmp_path, max_bytes=10_000)
    old = saved(cache, "old", "1" * 24, 4000)
    used = saved(cache, "used", "2" * 24, 4000)
    time.sleep(0.01)
    cache.touch(cache.find("old", "1" * 24))       # restored since: now the more recent
    newest = saved(cache, "new", "3" * 24, 4000)    # 12 kB > 10 kB: one must go
    assert cache.find("used", "2" * 24) is None
    assert cache.find("old", "1" * 24) and cache.find("new", "3" * 24) == newest
    assert cache.find("old", "1" * 24).manifest["restores"] == 1
    assert len(cache.evict(max_bytes=0)) == 2 and cache.entries() == []
    assert not used.directory.exists() and not old.directory.exists()


def test_a_state_is_hashed_once_per_process_until_it_changes(tmp_path, monkeypatch):
    cache = SnapshotCache(tmp_path)
    snap = saved(cache, "k", "b" * 24, 4096)
    hashed = []
    real = snapshot.sha256_file
    monkeypatch.setattr(snapshot, "sha256_file", lambda path: hashed.append(path) or real(path))
    assert cache.verify(snap) is None and cache.verify(snap) is None
    assert len(hashed) == 1
    time.sleep(0.05)
    snap.state.write_bytes(snap.state.read_bytes())       # rewritten: checked again
    assert cache.verify(snap) is None and len(hashed) == 2


def test_staging_clears_what_dead_processes_left(tmp_path):
    cache = SnapshotCache(tmp_path)
    dead = tmp_path / "k-abc.999999999.partial"          # no such pid
    alive = tmp_path / f"k-abc.{os.getppid()}.partial"   # another live process, saving now
    dead.mkdir()
    alive.mkdir()
    mine = cache.staging("k", "abc")
    assert mine.exists() and not dead.exists() and alive.exists()
