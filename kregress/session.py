"""One booted kernel and everything a test needs from it: drivers pushed, commands run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import build
from .accel import AccelChoice
from .guest import CommandResult, RunKeys
from .kernels import Kernel
from .vm import VM

GUEST_BIN = "/tmp/kregress/bin"


@dataclass
class SessionOptions:
    cpus: int = 1
    memory: str = "1G"
    boot_timeout: float | None = None


class KernelSession:
    def __init__(self, kernel: Kernel, accel: AccelChoice, run_dir: Path, keys: RunKeys,
                 options: SessionOptions | None = None):
        self.kernel, self.accel, self.run_dir = kernel, accel, run_dir
        options = options or SessionOptions()
        self.vm = VM(kernel, accel.accel, run_dir, keys, cpus=options.cpus, memory=options.memory,
                     boot_timeout=options.boot_timeout)
        self._pushed: dict[str, str] = {}

    def start(self) -> "KernelSession":
        self.vm.start()
        return self

    @property
    def release(self) -> str:
        return self.vm.boot.release if self.vm.boot else ""

    @property
    def active_lsms(self) -> list[str]:
        return self.vm.boot.lsm.split(",") if self.vm.boot else []

    def driver_path(self, name: str) -> str:
        """Build (cached by content) and push a scenario driver once per VM."""
        if name not in self._pushed:
            program = build.build(name)
            remote = f"{GUEST_BIN}/{name}"
            self.vm.session.put(program.driver, remote)
            self._pushed[name] = remote
        return self._pushed[name]

    def run_driver(self, name: str, *args, timeout: float = 60) -> CommandResult:
        return self.run([self.driver_path(name), *map(str, args)], timeout=timeout)

    def run(self, argv: list[str], timeout: float = 60) -> CommandResult:
        return self.vm.session.run(argv, timeout=timeout)

    def info(self) -> dict:
        boot = self.vm.boot
        return {**self.kernel.describe(), "uname_r": self.release, "accel": self.accel.accel,
                "accel_reason": self.accel.reason, "boot_seconds": boot.seconds if boot else None,
                "boot_attempts": boot.attempts if boot else None, "lsm": boot.lsm if boot else None,
                "console_log": str(boot.console_log) if boot else None}

    def stop(self) -> None:
        self.vm.stop()
