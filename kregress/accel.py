"""Pick the accelerator: KVM only if a probe boot really reaches userspace, else TCG."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .paths import cache_dir



@dataclass(frozen=True)
class AccelChoice:
    accel: str          # "kvm" or "tcg"
    reason: str
    probe_seconds: float = 0.0
    cached: bool = False


def kvm_openable(dev: str = "/dev/kvm") -> tuple[bool, str]:
    try:
        fd = os.open(dev, os.O_RDWR)
    except OSError as err:
        return False, f"{dev} cannot be opened: {err.strerror}"
    os.close(fd)
    return True, f"{dev} opens"


def choose(requested: str, probe, kvm_check=kvm_openable, cache_file: Path | None = None,
           host_key: str | None = None) -> AccelChoice:
    """requested is auto|kvm|tcg; probe() boots a guest under KVM and says if it worked.

    A forced choice is honoured as is (a forced kvm that then fails shows up as a boot
    error). auto trusts neither /dev/kvm's presence nor a stale guess: the probe result is
    cached per host (CPU, host kernel, qemu) because that is what decides whether KVM works.
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
    if host_key and host_key in cache:
        entry = cache[host_key]
        return AccelChoice(entry["accel"], entry["reason"], entry.get("probe_seconds", 0.0), cached=True)
    started = time.monotonic()
    works, detail = probe()
    seconds = round(time.monotonic() - started, 1)
    if works:
        choice = AccelChoice("kvm", f"KVM probe boot reached userspace in {seconds}s", seconds)
    else:
        choice = AccelChoice("tcg", f"KVM unusable: {why}, but a probe guest failed ({detail})", seconds)
    if host_key and cache_file:
        cache[host_key] = asdict(choice)
        cache_file.write_text(json.dumps(cache, indent=1))
    return choice


def _read_cache(cache_file: Path | None) -> dict:
    if not cache_file or not cache_file.exists():
        return {}
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}


def host_key(qemu: str = "qemu-system-x86_64") -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown-cpu")
    try:
        qemu_version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        qemu_version = "no-qemu"
    return f"{cpu} | host {platform.release()} | {qemu_version}"


def choose_for_host(requested: str, probe) -> AccelChoice:
    """probe() boots the guest under KVM once and says whether it reached userspace."""
    return choose(requested, probe=probe, cache_file=cache_dir() / "accel-probe.json", host_key=host_key())
