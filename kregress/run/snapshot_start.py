"""Start a kernel's guest from its snapshot: find and verify it, restore it and give the guest
this run's keys; with none usable, boot, save and go on in the restored guest.

A state QEMU refused to load is removed and saved anew (once): restoring it again would
fail again at every start, and a new save is what a CI cache then keeps. Every fallback is
noted on the VM (snapshot_note, snapshot_events) and the VM then boots. The VM
(kregress/run/vm.py) does the spawning, waiting and stopping; the cache is
kregress/run/snapshot.py.
"""
from __future__ import annotations

import shlex
import shutil
import time

from kregress.kernel_log.boot import BootLog, BootLogMissing
from kregress.report import recovery
from kregress.run.boot_record import BootInfo
from kregress.run.guest import AGENT_PORT, GuestLost, GuestSession, RunKeys, free_port
from kregress.run.qmp import QMP, QMPError
from kregress.run.snapshot import Snapshot, SnapshotError, SnapshotRefused


class SnapshotSaveFailed(SnapshotError):
    """The guest booted but its state could not be saved; the message says why."""


def start(vm) -> BootInfo:
    """The VM's guest restored from its snapshot (made first when missing); booted when no
    snapshot can be used, vm.snapshot_note saying why."""
    notes = []
    for _ in range(2):
        try:
            boot = from_snapshot(vm)
            vm.boot = boot
            vm.snapshot_note = "; ".join(notes) or vm.snapshot_note     # or why it was rebuilt
            return boot
        except SnapshotRefused as err:
            forget_snapshot(vm)
            vm.snapshots.remove_refused(err.snapshot)
            notes.append(f"{err}: removed")
            vm.snapshot_events.append(recovery.event("restore-fell-back", f"{err}: removed, booted anew"))
        except SnapshotSaveFailed as err:
            forget_snapshot(vm)
            notes.append(f"snapshot not saved, booted instead: {err}")
            vm.snapshot_events.append(recovery.event("save-failed", str(err)))
            break
        except (SnapshotError, QMPError, GuestLost) as err:
            qemu = "; ".join(vm.qemu_errors())
            forget_snapshot(vm)
            notes.append(f"snapshot not used, booted instead: {err}" + (f" (QEMU: {qemu})" if qemu else ""))
            vm.snapshot_events.append(recovery.event("restore-fell-back", notes[-1]))
            break
    vm.snapshot_note = "; ".join(notes) or None
    return vm._boot_with_retries()


def forget_snapshot(vm) -> None:
    vm.stop()
    vm.guest_keys = vm.keys


def from_snapshot(vm) -> BootInfo:
    key = vm.snapshot_key()
    # One process boots and saves a kernel; another that needs it meanwhile (a kernel's
    # tests spread over workers) waits here and then restores what the first one saved.
    # Restoring needs no lock: processes restoring one snapshot at once do not wait for each other.
    with vm.snapshots.lock(vm.kernel.id, key):
        found = vm.snapshots.find(vm.kernel.id, key)
        problem = vm.snapshots.verify(found) if found else None
        if found and not problem and not BootLog.stored_in(found.directory):
            problem = "no boot log stored with it (saved by an older kregress)"
            vm.snapshots.remove(found.directory)
        if not found or problem:
            if problem:
                vm.snapshot_note = f"snapshot {found.directory.name} discarded and rebuilt: {problem}"
                vm.snapshot_events.append(recovery.event("discarded", vm.snapshot_note))
            return boot_and_save(vm, key)
    return restore(vm, found)


def restore(vm, snapshot: Snapshot) -> BootInfo:
    manifest = snapshot.manifest
    try:        # the saved boot's log: judged again on every restore
        kernel_log = BootLog.load(snapshot.directory, f"snapshot {snapshot.directory.name} "
                                  f"(booted {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(manifest['saved_at']))})")
    except BootLogMissing as err:
        raise SnapshotError(str(err)) from None
    vm.guest_keys = RunKeys(snapshot.keys_dir)
    vm.port = free_port()
    # the same command line as the save, plus where the state comes from
    cmd, started = vm._spawn(vm.port, label="restore", incoming=snapshot.state)
    try:
        qmp = QMP(vm.qmp_dir / "qmp.sock", timeout=30)
        try:
            qmp.wait_status("running", timeout=120)     # input sent before this would be lost
        finally:
            qmp.close()
    except QMPError as err:
        refusal = load_refusal(vm)
        if refusal:
            raise SnapshotRefused(snapshot, f"QEMU refused to load snapshot {snapshot.directory.name}: "
                                            f"{refusal}") from None
        raise err
    phases = {"restore_running": round(time.monotonic() - started, 2)}
    vm.session = GuestSession(vm.port, vm.guest_keys, connect_timeout=30)
    phases["ssh_connected"] = round(time.monotonic() - started, 2)
    vm.session.start_agent(AGENT_PORT, timeout=30)
    phases["agent_ready"] = round(time.monotonic() - started, 2)
    adopt_run_keys(vm)
    vm.snapshots.touch(snapshot)
    with open(vm.console_log, "a") as log:      # a restored guest prints no ready marker itself
        log.write(f"# kregress: RESTORED from {snapshot.directory.name}: {phases}\n")
    return BootInfo(release=manifest["release"], lsm=manifest["lsm"], page_size=manifest.get("page_size"),
                    seconds=phases["agent_ready"], attempts=1,
                    console_log=vm.console_log, cmdline=shlex.join(cmd), phases=phases,
                    initramfs_modules=vm.initramfs.modules, entry=manifest["entry"], how="restored",
                    snapshot=snapshot.directory.name, kernel_log=kernel_log)


def boot_and_save(vm, key: str) -> BootInfo:
    staging = vm.snapshots.staging(vm.kernel.id, key)
    try:
        vm.guest_keys = RunKeys.create(staging / "ssh")      # the snapshot's own keys
        boot = vm._boot_with_retries()
        started = time.monotonic()
        vm.session.say_goodbye()  # the agent waits for a new connection in the saved state ...
        vm.session.close()        # ... and no connection of this run lives on in it
        vm.session = None
        qmp = QMP(vm.qmp_dir / "qmp.sock", timeout=30)
        try:
            boot.kernel_log.save(staging)
            qmp.migrate_to_file(staging / "state", errors=vm.qmp_dir / "save-errors")
        except (QMPError, OSError) as err:
            raise SnapshotSaveFailed(recovery.save_failure(str(err), staging)) from None
        finally:
            qmp.close()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)      # no half-made snapshot stays behind
        raise
    save_seconds = round(time.monotonic() - started, 2)
    snapshot = vm.snapshots.commit(staging, vm.kernel.id, key, {
        "release": boot.release, "lsm": boot.lsm, "page_size": boot.page_size, "entry": boot.entry,
        "boot_phases": boot.phases,
        "package": vm.kernel.package, "package_version": vm.kernel.package_version,
        "image": vm.image.digest, "save_seconds": save_seconds})
    # This run goes on in a guest restored from the file: the first run is then exactly
    # what every later one will be, and the file has been proven to load.
    vm.stop()
    restored = restore(vm, snapshot)
    restored.how, restored.save_seconds = "booted+saved", save_seconds
    restored.attempts, restored.retries, restored.kernel_log = boot.attempts, boot.retries, boot.kernel_log
    restored.phases = {**boot.phases, **{f"then_{name}": value for name, value in restored.phases.items()}}
    restored.seconds = round(boot.seconds + save_seconds + restored.seconds, 2)
    return restored


def load_refusal(vm, wait: float = 10) -> str | None:
    """Why QEMU would not load a state, when it exited over it (its error lines, else its exit status)."""
    deadline = time.monotonic() + wait
    while vm.proc is not None and vm.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if vm.proc is None or vm.proc.poll() is None:
        return None     # still running: not a refusal of the state
    return " / ".join(vm.qemu_errors()) or f"qemu exited with {vm.proc.returncode} while loading it"


def adopt_run_keys(vm) -> None:
    """From now on the guest answers to this run's keys only, and its clock is the host's
    (a restored guest's clock resumes from the moment it was saved). This connection,
    made with the snapshot's own key, goes on; dropbear reads authorized_keys at each
    login and is restarted on the run's host key in the background, off the test's path."""
    directory = "/run/kregress/ssh"
    try:
        vm.session.put_bytes((vm.keys.directory / "authorized_keys").read_bytes(),
                             f"{directory}/authorized_keys", 0o600)
        vm.session.put_bytes((vm.keys.directory / "host_ed25519.dropbear").read_bytes(),
                             f"{directory}/host_key", 0o600)
        vm.session.set_clock(time.time())
    except GuestLost as err:
        raise SnapshotError(f"could not give the guest this run's keys: {err}") from None
    result = vm.session.run(["sh", "-c", "/run/kregress/start_sshd.sh > /dev/null 2>&1 &"], timeout=30)
    if result.rc != 0:
        raise SnapshotError(f"could not restart the guest's SSH server on this run's keys: {result.stderr.strip()}")
