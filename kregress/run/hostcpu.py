"""The machine kregress runs on: its architecture, its CPU (what a guest on `-cpu host`
runs on) and, on arm64, whether a kernel's page size can run on that CPU under KVM."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from kregress.arch import HOST_ARCH

# /proc/cpuinfo fields naming the CPU: x86's model, arm64's MIDR parts (arm64 has no model name)
MODEL_FIELDS = ("vendor_id", "cpu family", "model", "stepping", "model name",
                "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "CPU revision")
FLAG_FIELDS = ("flags", "Features")


@dataclass(frozen=True)
class HostCPU:
    model: str          # x86: "AuthenticAMD 25 1 1 AMD EPYC" (vendor, family, model, stepping, name); arm64: MIDR fields
    flags: str          # the first CPU's feature flags, as the kernel lists them

    @property
    def flags_sha256(self) -> str:
        return hashlib.sha256(self.flags.encode()).hexdigest()[:16]

    @property
    def identity(self) -> str:
        """What a saved -cpu host guest depends on: another model or flag set may refuse its state."""
        return f"{self.model} | flags {self.flags_sha256}"

    def describe(self) -> dict:
        return {"model": self.model, "flags_sha256": self.flags_sha256, "flags_count": len(self.flags.split())}


def host_cpu(cpuinfo: str | None = None) -> HostCPU:
    """The first processor's entry of /proc/cpuinfo (or the text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep:
            if fields:
                break       # the blank line after the first processor
            continue
        fields.setdefault(name, value.strip())
    model = " ".join(fields[name] for name in MODEL_FIELDS if fields.get(name)) or "unknown-cpu"
    flags = next((fields[name] for name in FLAG_FIELDS if name in fields), "")
    return HostCPU(model, flags)


def config_page_size(config: dict) -> int | None:
    """An arm64 kernel's page size in bytes from its .config (x86: always 4K); None: not said."""
    if config.get("CONFIG_PAGE_SHIFT", "").isdigit():
        return 1 << int(config["CONFIG_PAGE_SHIFT"])
    for size in (4, 16, 64):
        if config.get(f"CONFIG_ARM64_{size}K_PAGES") == "y":
            return size << 10
    return 4096 if config.get("CONFIG_X86_64") == "y" else None


def host_page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def kvm_granule(kernel_page_size: int | None, host_arch: str = HOST_ARCH,
                host_pages: int | None = None) -> tuple[bool, str]:
    """Can this kernel's pages run on the host CPU under KVM? (a guest kernel whose granule
    the CPU lacks spins in early boot, printing nothing). x86 has one page size; an arm64
    CPU's granule support is in ID_AA64MMFR0_EL1, which Linux does not show to userspace,
    so the proof here is a host kernel running on that page size itself."""
    if host_arch != "arm64":
        return True, f"{host_arch}: one page size"
    host_pages = host_pages or host_page_size()
    if host_pages == kernel_page_size:
        return True, f"the host kernel itself runs on {kernel_page_size >> 10}K pages"
    if kernel_page_size in (None, 4096):
        return True, "4K pages: assumed (the granule every arm64 server CPU known implements)"
    return False, (f"{kernel_page_size >> 10}K-page kernel on an arm64 host running {host_pages >> 10}K pages: "
                   f"whether this CPU has the {kernel_page_size >> 10}K granule cannot be read from userspace "
                   f"(ID_AA64MMFR0_EL1 is not exposed), and a guest without it hangs silently")
