"""The VM's operations (boot, save, restore, stop, probe) and the snapshot policy composing
them, against a fake QEMU at the VM's boundaries: the process it spawns, its QMP socket and
the guest's SSH connection. No private method is patched."""
import shlex
from pathlib import Path

import pytest

from kregress.kernel_log.boot import BootLog
from kregress.provision.image import GuestImage
from kregress.provision.initramfs import Initramfs
from kregress.run import boot_inputs, snapshot_start, vm
from kregress.run.boot_record import StartFailed
from kregress.run.errors import BootError
from kregress.run.guest import CommandResult, RunKeys
from kregress.run.hostcpu import HostCPU
from kregress.run.qmp import QMPError
from kregress.run.snapshot import SnapshotCache, SnapshotError, SnapshotRefused
from kregress.run.vm import VM
from test_vm_command import kernel

DRY_RUN = Path(__file__).parent / "data" / "vng-1.42-dry-run.txt"
READY = "KREGRESS: READY release=6.12.117 lsm=bpf page_kb=4 iface=eth0 t=2.5\n"
TOPOEXT = ("qemu-system-x86_64: warning: host doesn't support requested feature: "
           "CPUID.80000001H:ECX.topoext [bit 22]")
REFUSAL = ("qemu-system-x86_64: Unknown savevm section or instance 'cpu' 0. Make sure that your current VM "
           "setup matches your saved VM setup, including any hotplugged devices\n"
           "qemu-system-x86_64: load of migration failed: Invalid argument\n")


class FakeProc:
    def __init__(self, returncode=None):
        self.returncode, self.pid = returncode, 0

    def poll(self):
        return self.returncode


class World:
    """What the fake QEMU does at each start: boots print `consoles` in turn (READY by
    default), restores print `restore_console` and exit with `restore_exit` (None: run)."""

    def __init__(self):
        self.consoles: list[str] = []
        self.restore_console, self.restore_exit = "", None
        self.qmp_fails: str | None = None           # the QMP connection breaks
        self.save_fails: str | None = None          # migrate fails
        self.commands: list[list[str]] = []
        self.guests: list = []

    def spawn(self, cmd, stdout, stderr, cwd):
        self.commands.append(cmd)
        restoring = "-incoming" in cmd
        stdout.write(self.restore_console if restoring else (self.consoles.pop(0) if self.consoles else READY))
        stdout.flush()
        return FakeProc(self.restore_exit if restoring else None)


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    world = World()
    monkeypatch.setattr(boot_inputs, "vng_qemu_command", lambda args, accel: shlex.split(DRY_RUN.read_text()))
    monkeypatch.setattr(boot_inputs, "ensure_initramfs", lambda *a: Initramfs(tmp_path / "k.cpio", ("virtio_blk",)))
    monkeypatch.setattr(boot_inputs, "build_agent", lambda arch="x86_64": tmp_path / "agent")
    monkeypatch.setattr(boot_inputs, "pvh_vmlinux", lambda *a: tmp_path / "vmlinux")
    monkeypatch.setattr(boot_inputs, "qemu_version", lambda binary: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(boot_inputs, "host_cpu", lambda: HostCPU("AuthenticAMD 25 1 1 AMD EPYC", "fpu"))
    monkeypatch.setattr(vm, "spawn", world.spawn)
    monkeypatch.setattr(vm, "kill_group", lambda proc: setattr(proc, "returncode", -9))
    monkeypatch.setattr(vm, "LOAD_REFUSAL_WAIT_S", 0.2)

    class FakeGuest:
        def __init__(self, port, keys, connect_timeout=60):
            self.keys, self.calls, self.closed = keys, [], False
            world.guests.append(self)

        def start_agent(self, port, timeout=60):
            self.calls.append("start_agent")

        def collect_dmesg(self, timeout=30):
            return ["[    0.000000] Linux version 6.12.117"]

        def say_goodbye(self, timeout=30):
            self.calls.append("goodbye")

        def put_bytes(self, data, remote, mode=0o644, compressed=False):
            self.calls.append(remote)

        def set_clock(self, seconds):
            self.calls.append("clock")

        def run(self, argv, timeout=60):
            self.calls.append("restart sshd")
            return CommandResult(argv, 0, "", "")

        def close(self):
            self.closed = True

    class FakeQMP:
        def __init__(self, path, timeout=30):
            pass

        def wait_status(self, wanted, timeout):
            if world.qmp_fails:
                raise QMPError(world.qmp_fails)
            return 0.1

        def migrate_to_file(self, path, timeout=120, errors=None):
            if world.save_fails:
                raise QMPError(world.save_fails)
            Path(path).write_bytes(b"the guest's state")

        def close(self):
            pass
    monkeypatch.setattr(vm, "GuestConnection", FakeGuest)
    monkeypatch.setattr(vm, "QMP", FakeQMP)
    return world


def new_vm(tmp_path, accel="tcg") -> VM:
    image = GuestImage(root=tmp_path / "root.erofs", busybox=tmp_path / "busybox", digest="d" * 64,
                       suite="trixie", arch="x86_64", packages={})
    return VM(kernel(tmp_path), accel, tmp_path / "run", RunKeys.create(tmp_path / "ssh"), image)


# -- the VM's operations

def test_boot_returns_what_happened_and_stop_ends_it(tmp_path, world):
    machine = new_vm(tmp_path)
    boot = machine.boot()
    assert (boot.how, boot.release, boot.page_size, boot.attempts, boot.retries) == ("booted", "6.12.117", 4096, 1, ())
    assert boot.entry == "pvh" and boot.kernel_log.kmsg and boot.console_log.name == "k1.boot1.log"
    assert machine.alive() and machine.connection is world.guests[0] and machine.guest_keys == machine.keys
    assert f"127.0.0.1:{machine.port}-:22" in " ".join(world.commands[0]) and "-incoming" not in world.commands[0]
    machine.stop()
    assert not machine.alive() and machine.connection is None and world.guests[0].closed and machine.qmp_dir is None


def test_boot_tries_once_more_after_a_retryable_failure_and_says_why(tmp_path, world):
    world.consoles = ["[    2.1] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n", READY]
    boot = new_vm(tmp_path).boot()
    assert boot.attempts == 2 and len(boot.retries) == 1
    assert boot.retries[0].startswith("Oops: int3") and boot.retries[0].endswith("(k1.boot1.log)")


def test_boot_stops_at_a_failure_a_retry_cannot_help(tmp_path, world):
    world.consoles = ["KREGRESS: FAIL no erofs module\n", READY]
    machine = new_vm(tmp_path)
    with pytest.raises(BootError, match=r"boot failed after 1 attempt\(s\):\nguest set-up failed: no erofs") as err:
        machine.boot()
    assert not err.value.retryable and not machine.alive()


def test_save_leaves_no_connection_in_the_state_and_says_what_it_wrote(tmp_path, world):
    machine = new_vm(tmp_path)
    machine.boot(keys=RunKeys.create(tmp_path / "staging" / "ssh"))
    guest = machine.connection
    saved = machine.save(tmp_path / "staging")
    assert saved.files == (tmp_path / "staging" / "state",) and saved.files[0].read_bytes() == b"the guest's state"
    assert saved.seconds >= 0 and guest.calls[-1] == "goodbye" and guest.closed and machine.connection is None
    world.save_fails = "saving the guest failed: failed (No space left on device)"
    machine.stop()
    machine.boot()
    with pytest.raises(QMPError, match="No space left"):
        machine.save(tmp_path / "staging")


def saved_snapshot(tmp_path, cache: SnapshotCache, key: str, boot_log: bool = True):
    staging = cache.staging("k1", key)
    (staging / "state").write_bytes(b"state")
    RunKeys.create(staging / "ssh")
    if boot_log:
        BootLog(["[    0.000000] Linux version 6.12.117"], [], "boot boot1.log").save(staging)
    return cache.commit(staging, "k1", key, {"release": "6.12.117", "lsm": "bpf", "entry": "pvh"})


def test_restore_gives_the_guest_this_runs_keys(tmp_path, world):
    machine = new_vm(tmp_path)
    snapshot = saved_snapshot(tmp_path, SnapshotCache(tmp_path / "snapshots"), "key1")
    boot = machine.restore(snapshot)
    assert (boot.how, boot.snapshot, boot.release) == ("restored", snapshot.directory.name, "6.12.117")
    assert world.commands[0][-2:] == ["-incoming", f"exec:cat '{snapshot.state}'"]
    assert machine.guest_keys.directory == snapshot.keys_dir        # what the saved guest's sshd knows
    assert machine.connection.calls == ["start_agent", "/run/kregress/ssh/authorized_keys", "/run/kregress/ssh/host_key",
                                     "clock", "restart sshd"]
    assert "RESTORED from" in boot.console_log.read_text() and boot.kernel_log.origin.startswith("snapshot ")


def test_restore_of_a_state_qemu_will_not_load_is_a_refusal_naming_why(tmp_path, world):
    world.qmp_fails, world.restore_exit, world.restore_console = "QEMU closed the QMP connection", 1, TOPOEXT + "\n" + REFUSAL
    snapshot = saved_snapshot(tmp_path, SnapshotCache(tmp_path / "snapshots"), "key1")
    with pytest.raises(SnapshotRefused, match="Unknown savevm section") as err:
        new_vm(tmp_path).restore(snapshot)
    assert err.value.snapshot == snapshot and "topoext" not in str(err.value)
    world.restore_exit = None       # QEMU still runs: not the state's fault
    with pytest.raises(QMPError):
        new_vm(tmp_path).restore(snapshot)
    with pytest.raises(SnapshotError, match="boot"):
        new_vm(tmp_path).restore(saved_snapshot(tmp_path, SnapshotCache(tmp_path / "s2"), "key2", boot_log=False))


def test_the_probe_names_what_qemu_said_and_owns_a_timeout(tmp_path, world):
    world.consoles = [TOPOEXT + "\nqemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000e1\n"]
    result = new_vm(tmp_path, "kvm").probe()
    assert (result.works, result.refused_by) == (False, "qemu")
    assert result.detail == "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000e1"   # not the warning
    world.consoles = ["KVM internal error. Suberror: 1\nemulation failure\n"]
    assert new_vm(tmp_path, "kvm").probe().refused_by == "kvm"
    world.consoles = ["KREGRESS: FAIL no erofs module\n"]
    own = new_vm(tmp_path, "kvm").probe()
    assert (own.works, own.refused_by) == (False, None) and own.detail.startswith("k1: guest set-up failed")


# -- the snapshot policy

def test_a_first_start_boots_saves_and_goes_on_restored_the_next_restores(tmp_path, world):
    cache = SnapshotCache(tmp_path / "snapshots")
    first = snapshot_start.start(new_vm(tmp_path), cache)
    assert (first.note, first.events) == (None, ())
    assert first.boot.how == "booted+saved" and first.boot.save_seconds is not None
    assert "then_agent_ready" in first.boot.phases and first.boot.kernel_log.origin.startswith("boot ")
    assert [("-incoming" in cmd) for cmd in world.commands] == [False, True]
    machine = new_vm(tmp_path)
    second = snapshot_start.start(machine, cache)
    assert second.boot.how == "restored" and second.note is None
    assert cache.find("k1", machine.snapshot_key()).manifest["restores"] == 2


def test_a_state_qemu_refused_is_removed_the_reason_shown_and_saved_anew(tmp_path, world):
    cache = SnapshotCache(tmp_path / "snapshots")
    machine = new_vm(tmp_path)
    refused = saved_snapshot(tmp_path, cache, machine.snapshot_key())
    world.qmp_fails, world.restore_exit, world.restore_console = "QEMU closed the QMP connection", 1, REFUSAL
    with pytest.raises(StartFailed) as failed:     # the new save's restore is refused too: then it boots
        world.consoles = [READY, "KREGRESS: FAIL gone\n"]
        snapshot_start.start(machine, cache)
    note = failed.value.report.note
    assert note.startswith(f"QEMU refused to load snapshot {refused.directory.name}: qemu-system-x86_64: Unknown "
                           "savevm section") and "load of migration failed: Invalid argument: removed" in note
    assert [e["event"] for e in failed.value.report.events] == ["restore-fell-back", "restore-fell-back"]
    assert not refused.directory.exists()


def test_a_restore_that_fails_while_qemu_runs_keeps_the_snapshot_and_boots(tmp_path, world):
    cache = SnapshotCache(tmp_path / "snapshots")
    machine = new_vm(tmp_path)
    kept = saved_snapshot(tmp_path, cache, machine.snapshot_key())
    world.qmp_fails = "QEMU closed the QMP connection"
    report = snapshot_start.start(machine, cache)
    assert report.boot.how == "booted" and kept.directory.exists()
    assert report.note.startswith("snapshot not used, booted instead: QEMU closed the QMP connection")
    assert [e["event"] for e in report.events] == ["restore-fell-back"]
    assert machine.guest_keys == machine.keys       # booted on the run's keys, not the snapshot's


def test_a_snapshot_without_its_boot_log_is_discarded_and_rebuilt(tmp_path, world):
    """Its boot could not be judged again on restore (issue 22): saved anew, and said so."""
    cache = SnapshotCache(tmp_path / "snapshots")
    machine = new_vm(tmp_path)
    saved_snapshot(tmp_path, cache, machine.snapshot_key(), boot_log=False)
    report = snapshot_start.start(machine, cache)
    assert report.boot.how == "booted+saved" and "no boot log stored with it" in report.note
    assert [e["event"] for e in report.events] == ["discarded"]


def test_a_save_that_fails_boots_anew_and_leaves_nothing_half_made(tmp_path, world):
    cache = SnapshotCache(tmp_path / "snapshots")
    world.save_fails = "saving the guest failed: failed (No space left on device)"
    machine = new_vm(tmp_path)
    report = snapshot_start.start(machine, cache)
    assert report.boot.how == "booted" and report.note.startswith("snapshot not saved, booted instead: no space left")
    assert [e["event"] for e in report.events] == ["save-failed"] and not list(cache.root.glob("*"))[1:]
    assert not list(cache.root.glob("*.partial")) and machine.guest_keys == machine.keys


def test_a_start_with_no_cache_boots_and_a_failed_one_carries_its_report(tmp_path, world):
    assert snapshot_start.start(new_vm(tmp_path), None).boot.how == "booted"
    world.consoles = ["KREGRESS: FAIL no erofs module\n"]
    with pytest.raises(StartFailed, match="guest set-up failed") as failed:
        snapshot_start.start(new_vm(tmp_path), None)
    assert failed.value.report.boot is None and not failed.value.retryable


def test_the_session_reads_the_report_not_the_vm(tmp_path, world):
    from kregress.run.accel import AccelChoice
    from kregress.run.session import KernelSession, VMOptions

    def session():
        return KernelSession(kernel(tmp_path), AccelChoice("tcg", "test"), tmp_path / "run",
                             RunKeys.create(tmp_path / "ssh"), new_vm(tmp_path).image, VMOptions(snapshots=False))
    started = session().start(since=0.0)
    assert started.boot is started.started.boot and started.release == "6.12.117" and started.start_seconds > 0
    assert started.boot.how == "booted" and started.started.note is None
    failed = session()
    world.consoles = ["KREGRESS: FAIL no erofs module\n"]
    with pytest.raises(BootError):
        failed.start()
    assert failed.started.boot is None and failed.boot is None and failed.release == ""
    assert failed.start_seconds is None
