"""Which accelerator each kernel of a run gets: KVM where a probe boot says it works (once per
host: kregress/run/accel.py decides and caches), TCG for another architecture, and on arm64
for kernels whose page size the host CPU cannot run."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from kregress.arch import HOST_ARCH
from kregress.files import locked
from kregress.kernels.kernel import Kernel, KernelFetchError
from kregress.paths import cache_dir
from kregress.provision.image import ImageError
from kregress.run.accel import AccelChoice, ProbeResult, choose_for_host
from kregress.run.catalog import KernelCatalog
from kregress.run.guest import RunKeys
from kregress.run.hostcpu import config_page_size, kvm_granule
from kregress.run.vm import VM

PROBE_TIMEOUT_S = 60


class AccelPicker:
    def __init__(self, request: str, catalog: KernelCatalog, run_dir: Path, keys: Callable[[], RunKeys]):
        self.request = request      # auto, kvm or tcg (--accel)
        self.catalog, self.run_dir, self.keys = catalog, run_dir, keys
        self.choice: AccelChoice | None = None      # the host's answer, asked once

    def choose(self) -> AccelChoice:
        """The host's accelerator for its own architecture, probed at most once."""
        if self.choice is None:
            # one probe per host: xdist workers wait for the first one's cached answer
            with locked(cache_dir() / "locks" / "accel.lock"):
                self.choice = choose_for_host(self.request, probe=self.probe_kvm)
        return self.choice

    def for_kernel(self, kernel: Kernel) -> AccelChoice:
        """KVM runs only the host's own architecture (another one is always emulated), and on
        arm64 only kernels whose page size the host CPU is known to have."""
        if kernel.spec.arch != HOST_ARCH:
            return AccelChoice("tcg", f"{kernel.spec.arch} kernel on an {HOST_ARCH} host: emulated")
        choice = self.choose()
        fits, why = kvm_granule(config_page_size(kernel.config), HOST_ARCH)
        if choice.accel == "kvm" and not fits and self.request == "auto":
            return AccelChoice("tcg", f"KVM not used for this kernel: {why}; emulated (TCG, max CPU)")
        return choice

    def probe_kvm(self) -> ProbeResult:
        """Boot the first host-architecture kernel that can be probed with under KVM; what
        stops a probe without KVM or QEMU saying anything (a fetch, the guest image, this
        kernel) moves on to the next kernel or, with none left, is the probe's error."""
        problems = []
        for kernel_id, spec in self.catalog.specs.items():
            if spec.arch != HOST_ARCH:
                continue
            try:
                kernel = self.catalog.kernel(kernel_id)
                if not kvm_granule(config_page_size(kernel.config), HOST_ARCH)[0]:
                    continue        # would hang: says nothing about KVM
                result = VM(kernel, "kvm", self.run_dir, self.keys(), self.catalog.guest_image(), memory="512M",
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
