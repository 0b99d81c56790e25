"""The snapshot policy: start a kernel's guest from its snapshot; with none usable, boot, save
and go on in the restored guest. It composes the VM's own operations (kregress/run/vm.py:
boot, save, restore, stop) over the cache (kregress/run/snapshot.py) and returns a
StartReport: the boot, and why a snapshot was rebuilt, not used, refused and removed, or
not saved (its note and recovery events). A start that fails raises StartFailed, which
carries the report too.

A state QEMU refused to load is removed and saved anew (once): restoring it again would
fail again at every start, and a new save is what a CI cache then keeps. Every other
fallback is noted and the VM then boots.
"""
from __future__ import annotations

import shutil
from dataclasses import replace

from kregress.kernel_log.boot import BootLog
from kregress.report import recovery
from kregress.run.boot_inputs import preflight
from kregress.run.boot_record import BootInfo, StartFailed, StartReport
from kregress.run.errors import BootError
from kregress.run.guest import GuestLost, RunKeys
from kregress.run.qmp import QMPError
from kregress.run.snapshot import SnapshotCache, SnapshotError, SnapshotRefused
from kregress.run.vm import VM


class SnapshotSaveFailed(SnapshotError):
    """The guest booted but its state could not be saved; the message says why."""


def start(vm: VM, cache: SnapshotCache | None) -> StartReport:
    """The VM's guest restored from its snapshot in cache (made first when missing), or booted
    when there is no cache or no snapshot can be used; the report says why."""
    policy = _Start(vm, cache)
    try:
        preflight(vm.kernel)
        return policy.run()
    except BootError as err:
        raise StartFailed(err, policy.report(None)) from None


class _Start:
    """One start's course: what it noted on the way, owned here alone."""

    def __init__(self, vm: VM, cache: SnapshotCache | None):
        self.vm, self.cache = vm, cache
        self.notes: list[str] = []          # why a snapshot was not used (the last word)
        self.rebuilt: str | None = None     # why a damaged one was discarded and made anew
        self.events: list[dict] = []

    def report(self, boot: BootInfo | None) -> StartReport:
        return StartReport(boot, "; ".join(self.notes) or self.rebuilt, tuple(self.events))

    def run(self) -> StartReport:
        if self.cache is None:
            return self.report(self.vm.boot())
        for _ in range(2):
            try:
                return self.report(self.from_snapshot())
            except SnapshotRefused as err:
                self.vm.stop()
                self.cache.remove_refused(err.snapshot)
                self.notes.append(f"{err}: removed")
                self.events.append(recovery.event("restore-fell-back", f"{err}: removed, booted anew"))
            except SnapshotSaveFailed as err:
                self.vm.stop()
                self.notes.append(f"snapshot not saved, booted instead: {err}")
                self.events.append(recovery.event("save-failed", str(err)))
                break
            except (SnapshotError, QMPError, GuestLost) as err:
                qemu = "; ".join(self.vm.qemu_errors())
                self.vm.stop()
                self.notes.append(f"snapshot not used, booted instead: {err}" + (f" (QEMU: {qemu})" if qemu else ""))
                self.events.append(recovery.event("restore-fell-back", self.notes[-1]))
                break
        return self.report(self.vm.boot())

    def from_snapshot(self) -> BootInfo:
        vm, cache = self.vm, self.cache
        key = vm.snapshot_key()
        # One process boots and saves a kernel; another that needs it meanwhile (a kernel's
        # tests spread over workers) waits here and then restores what the first one saved.
        # Restoring needs no lock: processes restoring one snapshot at once do not wait for each other.
        with cache.lock(vm.kernel.id, key):
            found = cache.find(vm.kernel.id, key)
            problem = cache.verify(found) if found else None
            if found and not problem and not BootLog.stored_in(found.directory):
                problem = "no boot log stored with it (saved by an older kregress)"
                cache.remove(found.directory)
            if not found or problem:
                if problem:
                    self.rebuilt = f"snapshot {found.directory.name} discarded and rebuilt: {problem}"
                    self.events.append(recovery.event("discarded", self.rebuilt))
                return self.boot_and_save(key)
        restored = vm.restore(found)
        cache.touch(found)
        return restored

    def boot_and_save(self, key: str) -> BootInfo:
        vm, cache = self.vm, self.cache
        staging = cache.staging(vm.kernel.id, key)
        try:
            boot = vm.boot(keys=RunKeys.create(staging / "ssh"))       # the snapshot's own keys
            try:
                boot.kernel_log.save(staging)
                saved = vm.save(staging)
            except (QMPError, OSError) as err:
                raise SnapshotSaveFailed(recovery.save_failure(str(err), staging)) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)      # no half-made snapshot stays behind
            raise
        snapshot = cache.commit(staging, vm.kernel.id, key, {
            "release": boot.release, "lsm": boot.lsm, "page_size": boot.page_size, "entry": boot.entry,
            "boot_phases": boot.phases,
            "package": vm.kernel.package, "package_version": vm.kernel.package_version,
            "image": vm.image.digest, "save_seconds": saved.seconds})
        # This run goes on in a guest restored from the file: the first run is then exactly
        # what every later one will be, and the file has been proven to load.
        vm.stop()
        restored = vm.restore(snapshot)
        cache.touch(snapshot)
        return replace(restored, how="booted+saved", save_seconds=saved.seconds, attempts=boot.attempts,
                       retries=boot.retries, kernel_log=boot.kernel_log,
                       phases={**boot.phases, **{f"then_{name}": value for name, value in restored.phases.items()}},
                       seconds=round(boot.seconds + saved.seconds + restored.seconds, 2))
