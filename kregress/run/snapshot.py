"""Saved guests: a kernel is booted once, ever; later needs restore it in about a second.

A snapshot is QEMU's migration stream of a guest whose agent is ready, saved to a file,
with the SSH keys it was booted with. Its key covers everything the state depends on and
nothing a start changes: QEMU's version, the guest's stable command line (kernel,
initramfs, guest image, memory, CPUs, machine: qemu_command.guest_command), the guest side
of our network device and key files, the kernel image's, initramfs's and image's contents. A state file is checked against its recorded SHA-256 before every restore and
a mismatch (truncated, flipped bytes) is deleted and rebuilt, never loaded. The cache is
bounded; the least recently used snapshots go first. A state QEMU refuses to load is
removed too (the VM says why and saves a new one). When the guest runs on the host's CPU
(-cpu host, under KVM) the key covers that CPU's model and flags: a state is never
restored on another CPU.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kregress.files import sha256_file, write_whole
from kregress.paths import cache_dir
from kregress.run.qemu_command import (KEY_FILES, NETDEV, GuestMachine, guest_command, guest_runs_host_cpu, keys_device,
                                       net_device)

FORMAT = "kregress-snapshot/1"
DEFAULT_MAX_BYTES = 4 << 30


class SnapshotError(RuntimeError):
    """A snapshot could not be saved or used; the caller boots instead."""


class SnapshotRefused(SnapshotError):
    """QEMU would not load the saved state (under KVM: saved on another host CPU, say)."""

    def __init__(self, snapshot: "Snapshot", message: str):
        super().__init__(message)
        self.snapshot = snapshot


@dataclass(frozen=True)
class Snapshot:
    directory: Path
    key: str
    manifest: dict

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @property
    def keys_dir(self) -> Path:
        return self.directory / "ssh"


def snapshot_key(command: list[str], parts: dict) -> str:
    """What the saved state depends on: a guest's stable command and the named contents."""
    return hashlib.sha256(json.dumps({"format": FORMAT, "command": command, **parts}, sort_keys=True)
                          .encode()).hexdigest()[:24]


def guest_snapshot_key(vng_argv: list[str], machine: GuestMachine, *, qemu: str, kernel_digest: str,
                       image_digest: str, host_cpu: str) -> str:
    """The key of a guest's saved state, from its stable description and vng's dry run (no
    VM, no process, no run's slots): its stable command line, the guest side of our network
    device and key files, QEMU's version, the kernel image's and guest image's digests, the
    initramfs (named by its content) and, when the guest runs on the host's CPU, that CPU
    (host_cpu's identity): a state saved on one CPU is never restored on another."""
    command = guest_command(vng_argv, machine)
    parts = {"qemu": qemu, "kernel": kernel_digest, "initramfs": machine.initramfs.name, "image": image_digest,
             "ours": [NETDEV, net_device(machine.arch), [name for name, _ in KEY_FILES]]}
    if keys_device(machine.arch):
        parts["keys_device"] = keys_device(machine.arch)
    if guest_runs_host_cpu(command):
        parts["host_cpu"] = host_cpu
    return snapshot_key(command, parts)


def qemu_version(binary: str) -> str:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        return "unknown"


_VERIFIED: set[tuple] = set()      # state files this process has hashed, as they were then


class SnapshotCache:
    def __init__(self, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = root or cache_dir() / "snapshots"
        self.max_bytes = max_bytes

    def directory(self, kernel_id: str, key: str) -> Path:
        return self.root / f"{kernel_id}-{key}"

    def find(self, kernel_id: str, key: str) -> Snapshot | None:
        directory = self.directory(kernel_id, key)
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("format") != FORMAT or manifest.get("key") != key:
            return None
        return Snapshot(directory, key, manifest)

    def verify(self, snapshot: Snapshot) -> str | None:
        """None when the state file is whole; else what is wrong (and the snapshot is gone).
        Its SHA-256 is computed once per process and again whenever the file changes (size,
        mtime, inode): a guest restored for every test would otherwise hash 100+ MB each time."""
        try:
            stat = snapshot.state.stat()
        except OSError as err:
            problem = f"state file unreadable: {err}"
        else:
            seen = (str(snapshot.state), stat.st_size, stat.st_mtime_ns, stat.st_ino, snapshot.manifest["state_sha256"])
            if seen in _VERIFIED:
                return None
            if stat.st_size != snapshot.manifest["state_bytes"]:
                problem = (f"state file has {stat.st_size} bytes, {snapshot.manifest['state_bytes']} were saved "
                           "(truncated?)")
            elif sha256_file(snapshot.state) != snapshot.manifest["state_sha256"]:
                problem = "state file's SHA-256 does not match the one recorded when it was saved (corrupted)"
            else:
                _VERIFIED.add(seen)
                return None
        self.remove(snapshot.directory)
        return problem

    @contextlib.contextmanager
    def lock(self, kernel_id: str, key: str):
        """Held while a process looks for a kernel's snapshot and, missing it, makes it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{kernel_id}-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def staging(self, kernel_id: str, key: str) -> Path:
        """A fresh directory to boot and save into; becomes the snapshot on commit()."""
        directory = self.directory(kernel_id, key).with_name(f"{kernel_id}-{key}.{os.getpid()}.partial")
        for stale in self.root.glob("*.partial"):       # left by a process that died mid-save
            pid = stale.name.rsplit(".", 2)[-2]
            if stale == directory or (pid.isdigit() and not Path(f"/proc/{pid}").exists()):
                shutil.rmtree(stale, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def commit(self, staging: Path, kernel_id: str, key: str, info: dict) -> Snapshot:
        state = staging / "state"
        manifest = {"format": FORMAT, "key": key, "kernel": kernel_id, "state_bytes": state.stat().st_size,
                    "state_sha256": sha256_file(state), "saved_at": time.time(), "last_used": time.time(), **info}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        final = self.directory(kernel_id, key)
        theirs = self.find(kernel_id, key)
        if theirs:          # another worker saved the same one first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)
            return theirs
        shutil.rmtree(final, ignore_errors=True)        # not a snapshot of this key (damaged, misplaced)
        os.replace(staging, final)
        self.evict(keep=final)
        return Snapshot(final, key, manifest)

    def touch(self, snapshot: Snapshot) -> None:
        manifest = {**snapshot.manifest, "last_used": time.time(),
                    "restores": snapshot.manifest.get("restores", 0) + 1}
        write_whole(snapshot.directory / "manifest.json", json.dumps(manifest, indent=1))

    def entries(self) -> list[dict]:
        found = []
        for manifest in sorted(self.root.glob("*/manifest.json")):
            try:
                data = json.loads(manifest.read_text())
            except ValueError:
                data = {}
            size = sum(p.stat().st_size for p in manifest.parent.rglob("*") if p.is_file())
            found.append({"directory": str(manifest.parent), "bytes": size, **data})
        return found

    def evict(self, keep: Path | None = None, max_bytes: int | None = None) -> list[str]:
        """Remove least recently used snapshots until the cache fits its bound."""
        bound = self.max_bytes if max_bytes is None else max_bytes
        entries = sorted(self.entries(), key=lambda e: e.get("last_used", 0))
        total = sum(e["bytes"] for e in entries)
        removed = []
        for entry in entries:
            if total <= bound:
                break
            if keep and Path(entry["directory"]) == keep:
                continue
            self.remove(Path(entry["directory"]))
            total -= entry["bytes"]
            removed.append(entry["directory"])
        return removed

    def remove(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    def remove_refused(self, snapshot: Snapshot) -> None:
        """Remove a state QEMU refused, unless another process has saved a new one there meanwhile."""
        kernel_id = snapshot.manifest.get("kernel", snapshot.directory.name.rsplit("-", 1)[0])
        with self.lock(kernel_id, snapshot.key):
            current = self.find(kernel_id, snapshot.key)
            if current and current.manifest.get("state_sha256") == snapshot.manifest.get("state_sha256"):
                self.remove(current.directory)
