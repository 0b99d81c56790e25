"""The kernels a run selected from kernels.toml: their entries, each resolved (fetched) once,
the fetch errors, and one guest image per architecture. It boots nothing."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from kregress.arch import HOST_ARCH
from kregress.kernels.entries import KernelSpec, load_kernels, select_kernels
from kregress.kernels.facts import FACTS
from kregress.kernels.kernel import Kernel, KernelFetchError
from kregress.kernels.sources import resolve
from kregress.provision.image import GuestImage, ensure_image, load_spec


class KernelCatalog:
    def __init__(self, kernels_file: Path, wanted: list[str], arches: list[str] = (), refresh: bool = False,
                 on_resolved: Callable[[Kernel], object] | None = None, on_failed: Callable[[str], object] | None = None):
        specs = load_kernels(kernels_file, known_facts=set(FACTS))      # KernelsFileError: bad file
        self.specs: dict[str, KernelSpec] = {s.id: s for s in select_kernels(specs, wanted, arches)}
        self.refresh = refresh
        self.kernels: dict[str, Kernel] = {}
        self.fetch_errors: dict[str, str] = {}
        self.images: dict[str, GuestImage] = {}         # one guest image per architecture
        self.on_resolved, self.on_failed = on_resolved, on_failed      # told once per kernel

    def kernel(self, kernel_id: str) -> Kernel:
        """The kernel resolved (fetched once); KernelFetchError, the same one each time, when it cannot be."""
        if kernel_id not in self.kernels and kernel_id not in self.fetch_errors:
            try:
                self.kernels[kernel_id] = resolve(self.specs[kernel_id], refresh=self.refresh)
            except KernelFetchError as err:
                self.fetch_errors[kernel_id] = f"{kernel_id}: cannot fetch: {err}"
                if self.on_failed:
                    self.on_failed(kernel_id)
            else:
                if self.on_resolved:
                    self.on_resolved(self.kernels[kernel_id])
        if kernel_id in self.fetch_errors:
            raise KernelFetchError(self.fetch_errors[kernel_id])
        return self.kernels[kernel_id]

    def guest_image(self, arch: str = HOST_ARCH) -> GuestImage:
        """The guest image of an architecture, built (or found cached) once; ImageError when it cannot be."""
        if arch not in self.images:
            self.images[arch] = ensure_image(load_spec(arch=arch))
        return self.images[arch]
