"""Everything a run needs, into the cache: the selected kernels, their guest images (only
the architectures selected: a run narrowed to one kernel builds one image) and the build
root the guest programs are compiled in. The three go side by side: the kernels are mostly
download and decompression, a foreign image mostly emulated maintainer scripts, and on a
fresh machine each would otherwise wait for the others."""
from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from kregress.kernels.entries import KernelSpec
from kregress.kernels.kernel import KernelFetchError
from kregress.kernels.sources import resolve
from kregress.provision import buildroot
from kregress.provision.image import ImageError, ensure_image, load_spec

_printing = threading.Lock()


def _say(line: str, stream=None) -> None:
    with _printing:
        print(line, file=stream or sys.stdout, flush=True)


def fetch_everything(specs: list[KernelSpec], refresh: bool = False) -> int:
    """0 when everything is in the cache; 1 when something could not be had (each said on stderr)."""
    arches = sorted({spec.arch for spec in specs} or {"x86_64"})       # one guest image per architecture
    with ThreadPoolExecutor(max_workers=2 + len(arches)) as lanes:
        done = [lanes.submit(_kernels, specs, refresh), lanes.submit(_build_root)]
        done += [lanes.submit(_image, arch) for arch in arches]
        return max(job.result() for job in done)


def _kernels(specs: list[KernelSpec], refresh: bool) -> int:
    status = 0
    for spec in specs:      # one after another: kernels of a suite share its apt state and lock
        try:
            kernel = resolve(spec, refresh=refresh)
            _say(json.dumps({**kernel.describe(), "downloaded_bytes": kernel.downloaded_bytes}))
        except KernelFetchError as err:
            _say(f"{spec.id}: {err}", sys.stderr)
            status = 1
    return status


def _image(arch: str) -> int:
    try:
        built = ensure_image(load_spec(arch=arch))
    except ImageError as err:
        _say(f"kregress: {err}", sys.stderr)
        return 1
    _say(json.dumps({"guest_image": built.digest, "suite": built.suite, "arch": built.arch,
                     "packages": len(built.packages), "path": str(built.root)}))
    return 0


def _build_root() -> int:
    try:
        root = buildroot.ensure()
    except buildroot.BuildRootError as err:
        _say(f"kregress: {err}", sys.stderr)
        return 1
    _say(json.dumps({"build_root": {**root.describe(), "path": str(root.path)}}))
    return 0
