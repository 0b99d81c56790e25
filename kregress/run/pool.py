"""A process's one live VM: a kernel's guest started when a test first needs it, reused while
it lives, stopped when the tests move on; and what each start came to, per kernel.

The kernels themselves are the catalog's (kregress/run/catalog.py), the accelerator each
gets is the picker's (kregress/run/kvm_probe.py)."""
from __future__ import annotations

import time
from pathlib import Path

from kregress.kernel_log import gaps as kmsg_gaps
from kregress.kernels.entries import KernelSpec
from kregress.kernels.kernel import Kernel
from kregress.run.catalog import KernelCatalog
from kregress.run.guest import RunKeys
from kregress.run.kernel_record import KernelRecords
from kregress.run.kvm_probe import AccelPicker
from kregress.run.session import KernelSession, VMOptions
from kregress.provision.image import ImageError
from kregress.run.vm import BootError


class KernelPool:
    """At most one live VM (the current kernel's) per process, so memory stays bounded by one
    VM per worker; the run's keys, which every VM of the process is started with."""

    def __init__(self, kernels_file: Path, wanted: list[str], run_dir: Path, options: VMOptions,
                 accel_request: str = "auto", refresh: bool = False, arches: list[str] = ()):
        # absolute: the guest reads its sshd config from here, from its own working directory
        self.run_dir = run_dir.resolve()
        self.records = KernelRecords(self.run_dir)      # each kernel's file: its fact decision, its VMs
        # a kernel's file is written when it is resolved (or fails to be), whoever asked for it first
        self.catalog = KernelCatalog(kernels_file, wanted, arches, refresh,     # KernelsFileError: bad file
                                     on_resolved=self.records.resolved,
                                     on_failed=lambda kernel_id: self.records.update(self.kernel_info(kernel_id)))
        self.accels = AccelPicker(accel_request, self.catalog, self.run_dir, self.run_keys)
        self.options = options
        self.is_controller = True      # the plugin says otherwise in an xdist worker
        self.keys: RunKeys | None = None
        self.live: KernelSession | None = None
        self.live_for = None
        self.boot_errors: dict[str, str] = {}
        self.infos: dict[str, dict] = {}        # a failed start's record (a failure is a kernel's last start)
        self.latest: dict[str, KernelSession] = {}      # each kernel's newest started VM, alive or not
        self.boot_seconds: dict[str, list[dict]] = {}     # every start (boot or restore), after failures too
        # every start's boot retries and snapshot events (recovery.py), not only the live VM's
        self.recoveries: dict[str, dict[str, list]] = {}

    @property
    def specs(self) -> dict[str, KernelSpec]:
        """The selected kernels (the catalog's)."""
        return self.catalog.specs

    def kernel(self, kernel_id: str) -> Kernel:
        return self.catalog.kernel(kernel_id)

    def run_keys(self) -> RunKeys:
        self.keys = self.keys or RunKeys.create(self.run_dir / "ssh")
        return self.keys

    def session(self, kernel_id: str, fresh_for=None) -> KernelSession:
        """The kernel's live VM; a new one (restored from its snapshot) when there is none
        yet, it died, or fresh_for (a test module, a test) differs from the one it served."""
        if self.live and self.live.kernel.id == kernel_id and self.live.vm.alive() and \
                (fresh_for is None or fresh_for == self.live_for):
            return self.live
        if kernel_id in self.boot_errors:
            raise BootError(self.boot_errors[kernel_id])
        started = time.monotonic()
        self.stop_live()
        kernel = self.kernel(kernel_id)
        try:
            session = KernelSession(kernel, self.accels.for_kernel(kernel), self.run_dir, self.run_keys(),
                                    self.catalog.guest_image(kernel.spec.arch), self.options)
        except ImageError as err:
            self.boot_errors[kernel_id] = f"{kernel_id}: {err}"
            self.records.update(self.kernel_info(kernel_id))
            raise BootError(self.boot_errors[kernel_id], retryable=False) from None
        try:
            session.start(since=started)    # the previous VM's stop and this one's start: what a change costs
        except BootError as err:
            self.boot_errors[kernel_id] = str(err)
            self._note_recoveries(kernel_id, session)
            self.infos[kernel_id] = {**session.info(), **self.recoveries[kernel_id], "error": str(err)}
            self.records.update(self.kernel_info(kernel_id))
            raise
        self._note_recoveries(kernel_id, session)
        self.live, self.live_for = session, fresh_for
        self.latest[kernel_id] = session
        boot = session.boot
        self.boot_seconds.setdefault(kernel_id, []).append({"how": boot.how, "seconds": boot.seconds})
        self.records.update(self.kernel_info(kernel_id))
        return session

    def _note_recoveries(self, kernel_id: str, session: KernelSession) -> None:
        noted = self.recoveries.setdefault(kernel_id, {"snapshot_events": [], "boot_retries": []})
        if session.started:
            noted["snapshot_events"] += session.started.events
            noted["boot_retries"] += session.started.retries

    def kernel_info(self, kernel_id: str) -> dict:
        """What this process's VMs of the kernel went through, merged into the kernel's file
        (kregress.run.kernel_record) at each start and stop: its newest VM's state, every start's
        boots and recoveries, a failed start's error, kernels.toml's stated facts (reports flag the
        stale ones, offline too)."""
        parts = []
        if kernel_id in self.latest:
            parts.append({**self.latest[kernel_id].info(), "boots": self.boot_seconds.get(kernel_id, []),
                          **self.recoveries.get(kernel_id, {})})
        if kernel_id in self.infos:
            parts.append(self.infos[kernel_id])
        info = {} if parts else {"id": kernel_id, "error": self.boot_errors.get(kernel_id)
                                 or self.catalog.fetch_errors.get(kernel_id)}
        for part in parts:      # what a failed start could not say, its earlier start did
            info.update({key: value for key, value in part.items() if value is not None})
        if kernel_id in self.specs:
            info["facts"] = dict(self.specs[kernel_id].facts)
        return info

    def identity(self, kernel_id: str) -> dict:
        """What each test's report names its kernel by (package, versions, uname -r, accelerator):
        read off the kernel and its VM, no scan."""
        if kernel_id in self.infos:
            known = self.infos[kernel_id]
        elif kernel_id in self.latest:
            session = self.latest[kernel_id]
            known = {**session.kernel.describe(), "uname_r": session.release, "accel": session.accel.accel}
        else:
            return {}
        return {key: known.get(key) for key in ("package", "image", "package_version", "upstream_version",
                                                "uname_r", "accel")}

    def stop_live(self) -> None:
        if self.live:
            # lines logged after the VM's last test: no test follows on this VM to take them
            kmsg_gaps.keep(self.run_dir, self.live.kernel.id, self.live.trailing_dmesg(), self.live.splats)
            self.records.update(self.kernel_info(self.live.kernel.id))
            self.live.stop()
            self.live = None
