"""Boot one kernel with virtme-ng (host rootfs read-only), wait for the guest's sshd,
hand back a GuestSession. One VM per kernel per pytest session."""
from __future__ import annotations

import os
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .guest import GuestLost, GuestSession, RunKeys
from .kernels import Kernel
from .procs import kill_group, spawn

READY = re.compile(r"KREGRESS: READY release=(\S+) lsm=(\S*)")
GUEST_FAIL = re.compile(r"KREGRESS: FAIL (.*)")
# Console lines that mean the boot is over, whatever the timeout says.
FATAL = re.compile(r"Kernel panic - not syncing.*|VFS: Unable to mount root fs.*|"
                   r"virtme-ng-init: .*[Ff]ailed to mount.*|Oops: .*|BUG: .*|"
                   r"qemu-system-x86_64: .*")
BOOT_TIMEOUT_S = {"kvm": 90, "tcg": 300}
BOOT_ATTEMPTS = 2


class BootError(RuntimeError):
    """The kernel did not come up; the message names it and quotes the console."""


def venv_bin() -> Path:
    return Path(sys.executable).parent


def vng_base(accel: str, cpus: int, memory: str) -> list[str]:
    cmd = [str(venv_bin() / "vng"), "--verbose", "--force-9p", "--cpus", str(cpus), "--memory", memory]
    if accel == "tcg":
        cmd.append("--disable-kvm")
    return cmd


def vng_env() -> dict:
    """virtme-ng needs virtme-run (our venv), depmod (/usr/sbin), qemu on PATH."""
    path = os.pathsep.join([str(venv_bin()), "/usr/sbin", "/sbin", os.environ.get("PATH", "/usr/bin:/bin")])
    return dict(os.environ, PATH=path)


def lsm_cmdline(kernel: Kernel) -> str:
    """Append bpf to the kernel's built-in LSM list when it lacks it, unless the entry chose lsm=."""
    if "lsm=" in kernel.spec.cmdline:
        return ""
    builtin = kernel.config.get("CONFIG_LSM", "")
    if not builtin or "bpf" in builtin.split(","):
        return ""
    return f"lsm={builtin},bpf"


# What virtme-ng needs from a kernel to share the host's root over 9p and reach the
# guest's sshd; a kernel lacking them cannot boot here, however long we wait.
REQUIRED_CONFIG = {
    "CONFIG_9P_FS": "9p filesystem (virtme-ng shares the host's root with it)",
    "CONFIG_NET_9P_VIRTIO": "9p over virtio",
    "CONFIG_VIRTIO_PCI": "virtio PCI devices",
    "CONFIG_VIRTIO_NET": "virtio network (the SSH port forward)",
}


def preflight(kernel: Kernel) -> None:
    """Refuse, before booting, what cannot work: not a kernel image, or a config without what we need.

    A garbage image makes qemu's firmware spin silently until the boot timeout; the x86
    boot protocol's "HdrS" magic at 0x202 tells in microseconds.
    """
    try:
        with open(kernel.image, "rb") as image:
            image.seek(0x202)
            magic = image.read(4)
    except OSError as err:
        raise BootError(f"{kernel.id}: cannot read image {kernel.image}: {err} (cannot retry)") from None
    if magic != b"HdrS":
        raise BootError(f"{kernel.id}: {kernel.image} is not an x86 bzImage (no 'HdrS' boot header at 0x202): "
                        f"corrupt or truncated? Point 'image' in kernels.toml at arch/x86/boot/bzImage "
                        f"or a vmlinuz (cannot retry)")
    if not kernel.config:
        return      # a local build without its .config: let the boot tell
    missing = [f"{key} ({why})" for key, why in REQUIRED_CONFIG.items()
               if kernel.config.get(key) not in ("y", "m")]
    if missing:
        raise BootError(f"{kernel.id}: {kernel.package or kernel.image} cannot boot under virtme-ng here: "
                        f"its config lacks {', '.join(missing)}. For Debian use the generic flavor "
                        f"(package linux-image-amd64), not -cloud-amd64; for a local build enable these options "
                        f"(cannot retry)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BootInfo:
    release: str
    lsm: str
    seconds: float
    attempts: int
    console_log: Path
    cmdline: str
    phases: dict        # seconds from spawn: sshd ready (console marker), SSH connected, agent up


class VM:
    def __init__(self, kernel: Kernel, accel: str, run_dir: Path, keys: RunKeys,
                 cpus: int = 1, memory: str = "1G", boot_timeout: float | None = None):
        self.kernel, self.accel, self.run_dir, self.keys = kernel, accel, run_dir, keys
        self.cpus, self.memory = cpus, memory
        self.boot_timeout = boot_timeout or BOOT_TIMEOUT_S[accel]
        self.proc = None
        self.session: GuestSession | None = None
        self.boot: BootInfo | None = None
        self.console_log: Path | None = None

    def command(self, port: int) -> list[str]:
        append = " ".join(filter(None, [self.kernel.spec.cmdline, lsm_cmdline(self.kernel)]))
        cmd = vng_base(self.accel, self.cpus, self.memory) + [
            # the run directory's name in qemu's -name tells our VMs apart from anyone else's
            "--run", str(self.kernel.image), "--name", f"kr-{self.run_dir.name}-{self.kernel.id}"[:63],
            f"--qemu-opts=-netdev user,id=kr0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22 "
            "-device virtio-net-pci,netdev=kr0",
            "--exec", f"sh {Path(__file__).with_name('guest_init.sh')} {self.keys.directory}"]
        if append:
            cmd += ["--append", append]
        return cmd

    def start(self) -> BootInfo:
        preflight(self.kernel)
        errors = []
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                self.boot = self._boot_once(attempt)
                return self.boot
            except BootError as err:
                errors.append(str(err))
                self.stop()
                if "cannot retry" in str(err):
                    break
        raise BootError(f"{self.kernel.id}: boot failed after {len(errors)} attempt(s):\n" + "\n".join(errors))

    def _boot_once(self, attempt: int) -> BootInfo:
        port = free_port()
        (self.run_dir / "console").mkdir(parents=True, exist_ok=True)
        number = 1      # a kernel rebooted after a panic keeps its earlier logs
        while (self.run_dir / "console" / f"{self.kernel.id}.boot{number}.log").exists():
            number += 1
        self.console_log = self.run_dir / "console" / f"{self.kernel.id}.boot{number}.log"
        cmd = self.command(port)
        started = time.monotonic()
        with open(self.console_log, "w") as log:
            log.write("# " + shlex.join(cmd) + "\n")
            log.flush()
            self.proc = spawn(cmd, stdout=log, stderr=log, env=vng_env(), cwd="/tmp")
        release, lsm = self._wait_ready(started)
        phases = {"sshd_ready": round(time.monotonic() - started, 2)}
        try:
            self.session = GuestSession(port, self.keys, connect_timeout=60)
            phases["ssh_connected"] = round(time.monotonic() - started, 2)
            self.session.start_agent()
        except GuestLost as err:
            raise BootError(f"attempt {attempt}: guest booted but SSH/agent failed: {err}\n"
                            + self.console_tail()) from err
        phases["agent_ready"] = round(time.monotonic() - started, 2)
        return BootInfo(release=release, lsm=lsm, seconds=phases["agent_ready"], attempts=attempt,
                        console_log=self.console_log, cmdline=shlex.join(cmd), phases=phases)

    def _wait_ready(self, started: float) -> tuple[str, str]:
        deadline = started + self.boot_timeout
        while time.monotonic() < deadline:
            text = self.console_log.read_text(errors="replace")
            ready = READY.search(text)
            if ready:
                return ready.group(1), ready.group(2)
            failed = GUEST_FAIL.search(text)
            if failed:
                raise BootError(f"guest set-up failed (cannot retry): {failed.group(1)}\n" + self.console_tail())
            fatal = FATAL.search(text)
            if fatal:
                time.sleep(1)   # let the rest of the panic reach the log
                # an early-boot Oops can be a TCG code-patching flake worth one retry; a panic is not
                retry = "" if fatal.group(0).startswith("Oops") else " (cannot retry)"
                raise BootError(f"{fatal.group(0).strip()}{retry}\n" + self.console_around(fatal.start()))
            if self.proc.poll() is not None:
                usage = "vng: error:" in text   # our command line is wrong: retrying cannot help
                raise BootError(f"vng exited with {self.proc.returncode} before the guest was ready"
                                + (" (cannot retry)" if usage else "") + "\n" + self.console_tail())
            time.sleep(0.2)
        raise BootError(f"no ready marker within {self.boot_timeout:.0f}s ({self.accel})\n" + self.console_tail())

    def console_around(self, offset: int, before: int = 15, after: int = 10) -> str:
        """The console lines leading up to a fatal line: the cause is usually above the trace."""
        text = self.console_log.read_text(errors="replace")
        lines = text.splitlines()
        at = text.count("\n", 0, offset)
        picked = lines[max(0, at - before): at + after]
        return f"console lines around it ({self.console_log}):\n" + "\n".join("  | " + l for l in picked)

    def console_tail(self, lines: int = 25) -> str:
        if not self.console_log or not self.console_log.exists():
            return "(no console log)"
        tail = self.console_log.read_text(errors="replace").splitlines()[-lines:]
        return f"last console lines ({self.console_log}):\n" + "\n".join("  | " + l for l in tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def qemu_peak_rss_mb(self) -> float | None:
        """qemu's peak resident memory so far (VmHWM), found among our process group."""
        if not self.alive():
            return None
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)
                comm = fields[0].split("(", 1)[1]
                pgid = int(fields[1].split()[2])
                if pgid == self.proc.pid and comm.startswith("qemu-system"):
                    status = (stat.parent / "status").read_text()
                    kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
                    return round(kb / 1024, 1)
            except (OSError, ValueError, IndexError, StopIteration):
                continue
        return None

    def stop(self) -> None:
        if self.session:
            self.session.close()
            self.session = None
        if self.proc:
            kill_group(self.proc)
            self.proc = None
