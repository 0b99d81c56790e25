"""Pick the accelerator: KVM only if a probe boot really reaches userspace, else TCG.

Only a failure KVM or QEMU itself reports (QEMU's error line, "KVM internal error") says
KVM is unusable on this host; that answer is cached, with QEMU's message, per host CPU,
host kernel, QEMU, kregress and virtme-ng version, for PROBE_CACHE_SECONDS. A probe that
could not run (the guest image or initramfs did not build, the kernel did not come up
for its own reasons, a timeout on a busy machine) decides nothing: this run uses TCG,
says why, and the next run probes again.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path

from kregress.arch import ARCHES, HOST_ARCH
from kregress.run.hostcpu import host_cpu
from kregress.paths import cache_dir
from kregress.files import write_whole

PROBE_CACHE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class AccelChoice:
    accel: str          # "kvm" or "tcg"
    reason: str
    probe_seconds: float = 0.0
    cached: bool = False
    probe_error: str | None = None      # the probe could not run (not a KVM answer): why


@dataclass(frozen=True)
class ProbeResult:
    works: bool
    detail: str
    # "kvm" or "qemu" when they reported the failure themselves (then it is cached); None when
    # the harness or the guest failed (then it decides nothing)
    refused_by: str | None = None


def kvm_openable(dev: str = "/dev/kvm") -> tuple[bool, str]:
    try:
        fd = os.open(dev, os.O_RDWR)
    except OSError as err:
        return False, f"{dev} cannot be opened: {err.strerror}"
    os.close(fd)
    return True, f"{dev} opens"


def choose(requested: str, probe, kvm_check=kvm_openable, cache_file: Path | None = None,
           host_key: str | None = None, now=time.time) -> AccelChoice:
    """requested is auto|kvm|tcg; probe() boots a guest under KVM and returns a ProbeResult.

    A forced choice is honoured as is (a forced kvm that vng cannot honour is refused
    when vng's command is asked for, kregress/run/vng.py). auto trusts neither /dev/kvm's presence
    nor a stale guess (see the module's docstring).
    """
    if requested == "tcg":
        return AccelChoice("tcg", "requested with --accel tcg")
    if requested == "kvm":
        return AccelChoice("kvm", "requested with --accel kvm")
    if requested != "auto":
        raise ValueError(f"--accel {requested!r}: use auto, kvm or tcg")
    ok, why = kvm_check()
    if not ok:
        return AccelChoice("tcg", f"KVM unusable: {why}")
    cache = _read_cache(cache_file)
    entry = cache.get(host_key) if host_key else None
    if entry and entry.get("accel") == "tcg" and now() - entry.get("at", 0) < PROBE_CACHE_SECONDS:
        return AccelChoice("tcg", entry["reason"], entry.get("probe_seconds", 0.0), cached=True)
    started = time.monotonic()
    result = probe()
    seconds = round(time.monotonic() - started, 1)
    if result.works:
        return AccelChoice("kvm", f"KVM probe boot reached userspace in {seconds}s", seconds)
    if result.refused_by is None:
        return AccelChoice("tcg", f"KVM not decided: the probe could not run ({result.detail}); TCG for this "
                                  f"run, nothing cached", seconds, probe_error=result.detail)
    choice = AccelChoice("tcg", f"KVM unusable: {why}, but {result.refused_by} refused a probe guest: "
                                f"{result.detail}", seconds)
    if host_key and cache_file:
        # expired answers go; entries without a time are older kregress versions' (other keys), left alone
        cache = {key: value for key, value in cache.items()
                 if not isinstance(value, dict) or now() - value.get("at", now()) < PROBE_CACHE_SECONDS}
        cache[host_key] = {**asdict(choice), "message": result.detail, "at": now()}
        write_whole(cache_file, json.dumps(cache, indent=1))
    return choice


def _read_cache(cache_file: Path | None) -> dict:
    if not cache_file or not cache_file.exists():
        return {}
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _version(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"


def host_key(qemu: str | None = None, cpuinfo: str | None = None) -> str:
    """What decides whether KVM works here: the CPU, the host kernel, the host
    architecture's QEMU, and the versions of the programs building the command."""
    qemu = qemu or (ARCHES[HOST_ARCH].qemu_system if HOST_ARCH in ARCHES else f"qemu-system-{platform.machine()}")
    try:
        qemu_version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        qemu_version = f"no {qemu}"
    return (f"{host_cpu(cpuinfo).identity} | host {platform.release()} | {qemu_version} | "
            f"kregress {_version('kregress')} | virtme-ng {_version('virtme-ng')}")


def choose_for_host(requested: str, probe) -> AccelChoice:
    """probe() boots a guest under KVM once and says whether it reached userspace."""
    return choose(requested, probe=probe, cache_file=cache_dir() / "accel-probe.json", host_key=host_key())
