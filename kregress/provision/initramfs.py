"""A small initramfs per kernel: the guest image's busybox, our init, and exactly the
kernel modules the guest needs to reach its image and the network.

Debian kernels build virtio_blk, virtio_net, erofs and fw_cfg as modules, so something
has to load them before the image can be mounted; that is all this does. Modules come
from the kernel's own tree (decompressed here: busybox insmod takes plain .ko files),
with their dependencies read from each module's .modinfo, in load order. Cached by
content: the module files, the image's busybox and the guest-side scripts.
"""
from __future__ import annotations

import fcntl
import functools
import gzip
import hashlib
import lzma
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kregress.arch import arch as arch_of
from kregress.provision.image import GuestImage
from kregress.kernels.modules import module_files, read_module
from kregress.paths import cache_dir

IN_GUEST = Path(__file__).with_name("in_guest")
GUEST_FILES = ["guest_init.sh", "start_sshd.sh"]     # copied into the image's /run/kregress, with the agent
# What the guest needs from the kernel, as config symbol -> module name (None: must be built in).
BOOT_NEEDS = {
    "CONFIG_VIRTIO_PCI": ("virtio_pci", "virtio PCI transport"),
    "CONFIG_VIRTIO_BLK": ("virtio_blk", "virtio block device (the guest image)"),
    "CONFIG_EROFS_FS": ("erofs", "erofs filesystem (the guest image)"),
    "CONFIG_VIRTIO_NET": ("virtio_net", "virtio network (the SSH port forward)"),
    "CONFIG_FW_CFG_SYSFS": ("qemu_fw_cfg", "QEMU fw_cfg in sysfs (the run's SSH keys)"),
    "CONFIG_BLK_DEV_INITRD": (None, "initramfs support"),
    "CONFIG_DEVTMPFS": (None, "devtmpfs"),
}
# s390x's virtio is on channel I/O: virtio_ccw, built in with CONFIG_S390_GUEST in Debian's kernels
CCW_TRANSPORT = {"CONFIG_S390_GUEST": ("virtio_ccw", "virtio over channel I/O (CCW)")}


def boot_needs(arch: str = "x86_64") -> dict[str, tuple[str | None, str]]:
    """BOOT_NEEDS for one architecture: its virtio transport, and fw_cfg only where the
    machine has it (elsewhere the keys come on a disk of their own, virtio_blk)."""
    record = arch_of(arch)
    needs = dict(BOOT_NEEDS)
    if record.virtio == "ccw":
        del needs["CONFIG_VIRTIO_PCI"]
        needs = {**CCW_TRANSPORT, **needs}
    if not record.fw_cfg:
        del needs["CONFIG_FW_CFG_SYSFS"]
    return needs


class InitramfsError(RuntimeError):
    """The kernel lacks something the guest needs; the message names it."""


@dataclass(frozen=True)
class Initramfs:
    path: Path
    modules: tuple[str, ...]       # load order


def missing_config(config: dict[str, str], arch: str = "x86_64") -> list[str]:
    """Config symbols the guest needs that this kernel lacks, with what each is for."""
    missing = []
    for symbol, (module, why) in boot_needs(arch).items():
        allowed = ("y",) if module is None else ("y", "m")
        if config.get(symbol) not in allowed:
            built = " built in" if module is None else ""
            missing.append(f"{symbol}{built} ({why})")
    return missing


def modinfo(ko: bytes, key: str) -> list[str]:
    """Values of one key in a module's .modinfo strings (key=value, NUL-terminated)."""
    return [value.decode() for value in re.findall(rb"(?:^|\0)" + key.encode() + rb"=([^\0]*)\0", ko)]


def module_depends(ko: bytes) -> list[str]:
    """What must be loaded first: 'depends=' (symbols) and 'softdep=pre:' (modules the
    module asks for at init, e.g. libcrc32c's crc32c, which no modprobe would load here)."""
    names = [n for value in modinfo(ko, "depends") for n in value.split(",") if n]
    for value in modinfo(ko, "softdep"):
        pre = re.search(r"pre:\s*([^:]*?)(?:\s+post:|$)", value)
        names += pre.group(1).split() if pre else []
    return [name.replace("-", "_") for name in names]


BUILTIN = "(built in)"


def builtin_names(modules_dir: Path | None) -> set[str]:
    """Modules built into the kernel and their aliases (modules.builtin.modinfo: NUL-separated
    "module.key=value" strings), so a soft dependency they satisfy is not loaded again."""
    names: set[str] = set()
    path = modules_dir / "modules.builtin.modinfo" if modules_dir else None
    if path and path.exists():
        for entry in path.read_bytes().split(b"\0"):
            module, _, rest = entry.decode(errors="replace").partition(".")
            key, _, value = rest.partition("=")
            if key == "alias":
                names.add(value)
            if module:
                names.add(module.replace("-", "_"))
    return names


def provider(name: str, files: dict[str, Path], builtin: set[str] = frozenset()) -> str | None:
    """The module called name, or one whose name starts with it and declares it as an
    alias (crc32c -> crc32c_generic); generic implementations first, as they need no
    particular CPU. BUILTIN when the kernel has it built in."""
    if name in builtin or f"crypto-{name}" in builtin:
        return BUILTIN
    if name in files:
        return name
    candidates = sorted((m for m in files if m.startswith(name)), key=lambda m: (not m.endswith("_generic"), m))
    for candidate in candidates:
        aliases = modinfo(read_module(files[candidate]), "alias")
        if name in aliases or f"crypto-{name}" in aliases:
            return candidate
    return None


def load_order(wanted: list[str], files: dict[str, Path], builtin: set[str] = frozenset()) -> list[tuple[str, bytes]]:
    """Each wanted module after its dependencies, each once; built-in ones are skipped."""
    order: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(wanted_name: str, chain: tuple[str, ...]) -> None:
        name = provider(wanted_name, files, builtin)
        if name == BUILTIN:
            return
        if name is None:
            raise InitramfsError(f"module {wanted_name} (needed by {chain[-1] if chain else 'the guest'}) "
                                 f"is not in the kernel's modules")
        if name in done:
            return
        if name in chain:
            raise InitramfsError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        ko = read_module(files[name])
        for dep in module_depends(ko):
            visit(dep, chain + (name,))
        done.add(name)
        order.append((name, ko))

    for name in wanted:
        visit(name, ())
    return order


def modules_to_load(config: dict[str, str], arch: str = "x86_64") -> list[str]:
    """The needed modules this kernel builds as modules (built-in ones need no loading)."""
    return [module for symbol, (module, _) in boot_needs(arch).items() if module and config.get(symbol) == "m"]


def ensure_initramfs(modules_dir: Path | None, config: dict[str, str], image: GuestImage,
                     release: str, agent: Path) -> Initramfs:
    """agent: the guest agent's binary (build.build_agent)."""
    needs = boot_needs(image.arch)
    wanted = modules_to_load(config, image.arch) if config else [m for m, _ in needs.values() if m]
    if wanted and (modules_dir is None or not modules_dir.is_dir()):
        raise InitramfsError(f"the guest needs the modules {', '.join(wanted)} but this kernel has no modules "
                             f"directory ({modules_dir}); give 'modules' in kernels.toml or build them in")
    files = module_files(modules_dir) if wanted else {}
    if not config:      # a local build without its .config: load what is there
        wanted = [m for m in wanted if m in files]
    key = _key(wanted, files, image, agent)
    out = cache_dir() / "initramfs" / f"{release}-{key}.cpio"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not out.exists():
                _write(out, load_order(wanted, files, builtin_names(modules_dir)), image, agent)
    return Initramfs(out, tuple(_order_names(out)))


def sshd_keys_mode(image: GuestImage) -> str:
    """How the image's dropbear finds the authorized key: "dir" (-D, dropbear 2024.84 on, as
    in trixie) or "home" (older, as in bookworm: root's ~/.ssh, a tmpfs the initramfs links
    to the run's keys). From the image's package list: nothing to try in the guest."""
    version = str(image.packages.get("dropbear-bin", "")).split(":")[-1]
    year = re.match(r"(\d{4})\.(\d+)", version)
    return "home" if year and (int(year.group(1)), int(year.group(2))) < (2024, 84) else "dir"


def _key(wanted: list[str], files: dict[str, Path], image: GuestImage, agent: Path) -> str:
    digest = hashlib.sha256(image.busybox.read_bytes())
    digest.update(sshd_keys_mode(image).encode())
    digest.update(agent.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(str(sorted(files)).encode())
    for name in ["initramfs_init.sh", *GUEST_FILES]:
        digest.update((IN_GUEST / name).read_bytes())
    for name in wanted:
        path = files.get(name)
        stat = path.stat() if path else None
        digest.update(f"{name}:{path}:{stat and stat.st_size}:{stat and stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _order_names(path: Path) -> list[str]:
    text = CpioReader(path.read_bytes()).file("etc/kregress/modules") or b""
    return text.decode().split()


def _write(out: Path, modules: list[tuple[str, bytes]], image: GuestImage, agent: Path) -> None:
    cpio = CpioWriter()
    for directory in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules", "etc", "etc/kregress",
                      "kregress"]:
        cpio.directory(directory)
    cpio.file("bin/busybox", image.busybox.read_bytes(), 0o755)
    cpio.file("init", (IN_GUEST / "initramfs_init.sh").read_bytes(), 0o755)
    for name, ko in modules:
        cpio.file(f"lib/modules/{name}.ko", ko, 0o644)
    cpio.file("etc/kregress/modules", "".join(f"{name}\n" for name, _ in modules).encode(), 0o644)
    for name in GUEST_FILES:
        cpio.file(f"kregress/{name}", (IN_GUEST / name).read_bytes(), 0o755)
    cpio.file("kregress/agent", agent.read_bytes(), 0o755)
    cpio.file("kregress/sshd_keys", f"{sshd_keys_mode(image)}\n".encode(), 0o644)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(cpio.finish())
    os.replace(partial, out)


class CpioWriter:
    """The kernel's initramfs format: cpio "newc" (070701), uncompressed (nothing to
    decompress under TCG)."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.inode = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        encoded = name.encode() + b"\0"
        fields = [self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.parts += [header, encoded, b"\0" * (-(len(header) + len(encoded)) % 4), data, b"\0" * (-len(data) % 4)]
        self.inode += 1

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, perm: int) -> None:
        self._entry(name, 0o100000 | perm, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


class CpioReader:
    """Enough of newc to read a file back (for tests and the cached module order)."""

    def __init__(self, data: bytes):
        self.data = data

    def entries(self):
        offset = 0
        while offset + 110 <= len(self.data):
            header = self.data[offset:offset + 110]
            if header[:6] != b"070701":
                raise ValueError(f"not a newc cpio entry at offset {offset}")
            size, namesize = int(header[54:62], 16), int(header[94:102], 16)
            name_end = offset + 110 + namesize
            name = self.data[offset + 110:name_end - 1].decode()
            start = name_end + (-(110 + namesize) % 4)
            if name == "TRAILER!!!":
                return
            mode = int(header[14:22], 16)
            yield name, mode, self.data[start:start + size]
            offset = start + size + (-size % 4)

    def file(self, name: str) -> bytes | None:
        return next((data for entry, _, data in self.entries() if entry == name), None)
