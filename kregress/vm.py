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
        self.boots = 0

    def command(self, port: int) -> list[str]:
        append = " ".join(filter(None, [self.kernel.spec.cmdline, lsm_cmdline(self.kernel)]))
        cmd = vng_base(self.accel, self.cpus, self.memory) + [
            "--run", str(self.kernel.image), "--name", f"kregress-{self.kernel.id}",
            f"--qemu-opts=-netdev user,id=kr0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22 "
            "-device virtio-net-pci,netdev=kr0",
            "--exec", f"sh {Path(__file__).with_name('guest_init.sh')} {self.keys.directory}"]
        if append:
            cmd += ["--append", append]
        return cmd

    def start(self) -> BootInfo:
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
        self.boots += 1
        port = free_port()
        self.console_log = self.run_dir / "console" / f"{self.kernel.id}.boot{self.boots}.log"
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command(port)
        started = time.monotonic()
        with open(self.console_log, "w") as log:
            log.write("# " + shlex.join(cmd) + "\n")
            log.flush()
            self.proc = spawn(cmd, stdout=log, stderr=log, env=vng_env(), cwd="/tmp")
        release, lsm = self._wait_ready(started)
        try:
            self.session = GuestSession(port, self.keys, connect_timeout=60)
            self.session.start_agent()
        except GuestLost as err:
            raise BootError(f"attempt {attempt}: guest booted but SSH/agent failed: {err}\n"
                            + self.console_tail()) from err
        return BootInfo(release=release, lsm=lsm, seconds=round(time.monotonic() - started, 2),
                        attempts=attempt, console_log=self.console_log, cmdline=shlex.join(cmd))

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
                raise BootError(f"{fatal.group(0).strip()}\n" + self.console_tail())
            if self.proc.poll() is not None:
                usage = "vng: error:" in text   # our command line is wrong: retrying cannot help
                raise BootError(f"vng exited with {self.proc.returncode} before the guest was ready"
                                + (" (cannot retry)" if usage else "") + "\n" + self.console_tail())
            time.sleep(0.2)
        raise BootError(f"no ready marker within {self.boot_timeout:.0f}s ({self.accel})\n" + self.console_tail())

    def console_tail(self, lines: int = 25) -> str:
        if not self.console_log or not self.console_log.exists():
            return "(no console log)"
        tail = self.console_log.read_text(errors="replace").splitlines()[-lines:]
        return f"last console lines ({self.console_log}):\n" + "\n".join("  | " + l for l in tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.session:
            self.session.close()
            self.session = None
        if self.proc:
            kill_group(self.proc)
            self.proc = None
