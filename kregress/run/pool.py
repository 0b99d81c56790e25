"""The kernels of one pytest process and its live VM."""
from __future__ import annotations

import time
from pathlib import Path

from kregress.kernel_log import gaps as kmsg_gaps
from kregress.run.accel import AccelChoice, ProbeResult, choose_for_host
from kregress.kernels.entries import load_kernels, select_kernels
from kregress.kernels.facts import FACTS
from kregress.run.guest import RunKeys
from kregress.arch import HOST_ARCH
from kregress.run.hostcpu import config_page_size, kvm_granule
from kregress.files import locked, sha256_file
from kregress.kernels.kernel import KernelFetchError
from kregress.kernels.sources import resolve
from kregress.paths import cache_dir
from kregress.run.boot_inputs import describe, prepare, snapshot_key_of
from kregress.run.kernel_record import KernelRecords
from kregress.run.session import KernelSession, SessionOptions
from kregress.run.snapshot import SnapshotCache
from kregress.provision.image import GuestImage, ImageError, ensure_image, load_spec
from kregress.run.vm import VM, BootError

PROBE_TIMEOUT_S = 60


class KernelPool:
    """One process's kernels and at most one live VM (the current kernel's): a kernel is
    booted when a test first needs it, reused while it is alive, and stopped when the
    tests move on to the next kernel, so memory stays bounded by one VM per worker."""

    def __init__(self, kernels_file: Path, wanted: list[str], run_dir: Path, options: SessionOptions,
                 accel_request: str = "auto", refresh: bool = False, arches: list[str] = ()):
        specs = load_kernels(kernels_file, known_facts=set(FACTS))      # KernelsFileError: bad file
        self.specs = {s.id: s for s in select_kernels(specs, wanted, arches)}
        # absolute: the guest reads its sshd config from here, from its own working directory
        self.run_dir = run_dir.resolve()
        self.options = options
        self.accel_request = accel_request
        self.refresh = refresh
        self.is_controller = True      # the plugin says otherwise in an xdist worker
        self.kernels, self.fetch_errors = {}, {}
        self.accel: AccelChoice | None = None
        self.keys: RunKeys | None = None
        self.images: dict[str, GuestImage] = {}         # one guest image per architecture
        self.live: KernelSession | None = None
        self.live_for = None
        self.boot_errors: dict[str, str] = {}
        self.infos: dict[str, dict] = {}        # a failed start's record (a failure is a kernel's last start)
        self.latest: dict[str, KernelSession] = {}      # each kernel's newest started VM, alive or not
        self.records = KernelRecords(self.run_dir)      # each kernel's file: its fact decision, its VMs
        self.boot_seconds: dict[str, list[dict]] = {}     # every start (boot or restore), after failures too
        # every start's boot retries and snapshot events (recovery.py), not only the live VM's
        self.recoveries: dict[str, dict[str, list]] = {}

    def kernel(self, kernel_id: str):
        if kernel_id not in self.kernels and kernel_id not in self.fetch_errors:
            try:
                self.kernels[kernel_id] = resolve(self.specs[kernel_id], refresh=self.refresh)
                self.records.resolved(self.kernels[kernel_id])
            except KernelFetchError as err:
                self.fetch_errors[kernel_id] = f"{kernel_id}: cannot fetch: {err}"
                self.records.update(self.kernel_info(kernel_id))
        if kernel_id in self.fetch_errors:
            raise KernelFetchError(self.fetch_errors[kernel_id])
        return self.kernels[kernel_id]

    def choose_accel(self) -> AccelChoice:
        if self.accel is None:
            # one probe per host: xdist workers wait for the first one's cached answer
            with locked(cache_dir() / "locks" / "accel.lock"):
                self.accel = choose_for_host(self.accel_request, probe=self._probe_kvm)
        return self.accel

    def accel_for(self, kernel) -> AccelChoice:
        """KVM runs only the host's own architecture (another one is always emulated), and on
        arm64 only kernels whose page size the host CPU is known to have."""
        if kernel.spec.arch != HOST_ARCH:
            return AccelChoice("tcg", f"{kernel.spec.arch} kernel on an {HOST_ARCH} host: emulated")
        choice = self.choose_accel()
        fits, why = kvm_granule(config_page_size(kernel.config), HOST_ARCH)
        if choice.accel == "kvm" and not fits and self.accel_request == "auto":
            return AccelChoice("tcg", f"KVM not used for this kernel: {why}; emulated (TCG, max CPU)")
        return choice

    def guest_image(self, arch: str = HOST_ARCH) -> GuestImage:
        if arch not in self.images:
            self.images[arch] = ensure_image(load_spec(arch=arch))
        return self.images[arch]

    def run_keys(self) -> RunKeys:
        self.keys = self.keys or RunKeys.create(self.run_dir / "ssh")
        return self.keys

    def snapshot_key(self, kernel_id: str, cache: SnapshotCache | None = None) -> str:
        """The key a start of this kernel would look its snapshot up by, without a VM: from its
        guest's description (the per-run values in it, port, QMP socket, keys, do not count)."""
        kernel = self.kernel(kernel_id)
        accel, image = self.accel_for(kernel).accel, self.guest_image(kernel.spec.arch)
        digest = sha256_file(kernel.image)
        machine = describe(kernel, accel, image, prepare(kernel, accel, image, digest), run_dir=self.run_dir,
                           keys_dir=self.run_dir / "ssh", qmp_socket=self.run_dir / "qmp.sock", port=0,
                           cpus=self.options.cpus, memory=self.options.memory)
        return snapshot_key_of(machine, digest, image.digest)

    def _probe_kvm(self) -> ProbeResult:
        """Boot the first host-architecture kernel that can be probed with under KVM; what
        stops a probe without KVM or QEMU saying anything (a fetch, the guest image, this
        kernel) moves on to the next kernel or, with none left, is the probe's error."""
        problems = []
        for kernel_id, spec in self.specs.items():
            if spec.arch != HOST_ARCH:
                continue
            try:
                kernel = self.kernel(kernel_id)
                if not kvm_granule(config_page_size(kernel.config), HOST_ARCH)[0]:
                    continue        # would hang: says nothing about KVM
                result = VM(kernel, "kvm", self.run_dir, self.run_keys(), self.guest_image(), memory="512M",
                            boot_timeout=PROBE_TIMEOUT_S).probe()
            except KernelFetchError as err:
                problems.append(str(err))
                continue
            except ImageError as err:        # the same for every kernel
                return ProbeResult(False, f"the guest image: {str(err).splitlines()[0][:200]}")
            if result.works or result.refused_by:
                return result
            problems.append(result.detail)
        return ProbeResult(False, "; ".join(problems) or f"no {HOST_ARCH} kernel to probe KVM with")

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
            session = KernelSession(kernel, self.accel_for(kernel), self.run_dir, self.run_keys(),
                                    self.guest_image(kernel.spec.arch), self.options)
        except ImageError as err:
            self.boot_errors[kernel_id] = f"{kernel_id}: {err}"
            self.records.update(self.kernel_info(kernel_id))
            raise BootError(self.boot_errors[kernel_id], retryable=False) from None
        try:
            session.start()
        except BootError as err:
            self.boot_errors[kernel_id] = str(err)
            self._note_recoveries(kernel_id, session)
            self.infos[kernel_id] = {**session.info(), **self.recoveries[kernel_id], "error": str(err)}
            self.records.update(self.kernel_info(kernel_id))
            raise
        self._note_recoveries(kernel_id, session)
        self.live, self.live_for = session, fresh_for
        self.latest[kernel_id] = session
        boot = session.vm.boot
        self.boot_seconds.setdefault(kernel_id, []).append({"how": boot.how, "seconds": boot.seconds})
        # the previous VM's stop and this one's start: what a change of VM costs a test
        session.start_seconds = round(time.monotonic() - started, 3)
        self.records.update(self.kernel_info(kernel_id))
        return session

    def _note_recoveries(self, kernel_id: str, session: KernelSession) -> None:
        noted = self.recoveries.setdefault(kernel_id, {"snapshot_events": [], "boot_retries": []})
        noted["snapshot_events"] += session.vm.snapshot_events
        noted["boot_retries"] += list(session.vm.boot.retries) if session.vm.boot else []

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
                                 or self.fetch_errors.get(kernel_id)}
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
