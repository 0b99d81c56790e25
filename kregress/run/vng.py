"""Ask virtme-ng how it would run QEMU for a guest: its arguments, and its dry run, cached.

`vng --dry-run` prints the QEMU command vng would run; it is cached by vng's version and
the arguments it was given, and checked to be for the accelerator asked for (vng decides on
KVM itself: it uses KVM when it can open /dev/kvm).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import version as package_version
from pathlib import Path

from kregress.files import write_whole
from kregress.arch import arch
from kregress.paths import cache_dir
from kregress.run.accel import kvm_openable
from kregress.run.errors import BootError
from kregress.run.qemu_command import GuestMachine, machine_accel


def venv_bin() -> Path:
    return Path(sys.executable).parent


def vng_base(accel: str, cpus: int, memory: str) -> list[str]:
    # --force-9p: vng would otherwise try to start virtiofsd for exports we drop anyway
    cmd = [str(venv_bin() / "vng"), "--verbose", "--force-9p", "--cpus", str(cpus), "--memory", memory]
    if accel == "tcg":
        cmd.append("--disable-kvm")
    return cmd


def vng_env() -> dict:
    """virtme-ng needs virtme-run (our venv), depmod (/usr/sbin), qemu on PATH."""
    path = os.pathsep.join([str(venv_bin()), "/usr/sbin", "/sbin", os.environ.get("PATH", "/usr/bin:/bin")])
    return dict(os.environ, PATH=path)


def vng_arguments(machine: GuestMachine) -> list[str]:
    """What vng is asked for: only what decides its command (no per-run value, so the dry
    run is cached across runs)."""
    return vng_base(machine.accel, machine.cpus, machine.memory) + [
        # always: without it vng boots the host's architecture (an x86 kernel on an arm64
        # host went to qemu-system-aarch64 with -cpu host)
        "--arch", arch(machine.arch).debian,     # vng's --arch takes Debian's names
        "--run", str(machine.kernel_image),
        "--root-disk", str(machine.root_disk), "--busybox", str(machine.busybox),
        # vng's non-interactive mode: serial console into a file, no monitor on stdio.
        # The script would run under vng's init, which we replace; it is dropped.
        "--exec", "true"]


def check_accel(argv: list[str], accel: str) -> None:
    """vng decides on KVM itself (it opens /dev/kvm): its command must be the one asked for."""
    got = machine_accel(argv)
    if got == accel:
        return
    if accel == "kvm":
        raise BootError(f"--accel kvm cannot be honoured: vng gave a command without KVM (it uses KVM only when "
                        f"it can open /dev/kvm: {kvm_openable()[1]}). Give this user read-write access to /dev/kvm "
                        f"(the kvm group), or run with --accel auto or --accel tcg", retryable=False)
    raise BootError(f"vng gave a KVM command although --disable-kvm was passed: {shlex.join(argv)[:300]}",
                    retryable=False)


def vng_qemu_command(vng_args: list[str], accel: str | None = None) -> list[str]:
    """QEMU's argv as vng would run it (`vng --dry-run`), cached by vng's version and arguments.
    Given accel, the command is checked to be for it, in the cache and from vng, before it is used or kept."""
    key = hashlib.sha256(json.dumps([package_version("virtme-ng"), vng_args]).encode()).hexdigest()[:20]
    cached = cache_dir() / "vng-dry-run" / f"{key}.json"
    if cached.exists():
        try:
            argv = json.loads(cached.read_text())
            if accel is None or machine_accel(argv) == accel:
                return argv
        except ValueError:
            pass        # a torn write: ask vng again
    proc = subprocess.run([vng_args[0], "--dry-run", *vng_args[1:]], capture_output=True, text=True,
                          env=vng_env(), cwd="/tmp", timeout=120)
    found = re.findall(r"^.*?(\S*qemu-system-\S+ .*)$", proc.stdout + "\n" + proc.stderr, re.M)
    if proc.returncode != 0 or not found:
        raise BootError(f"vng --dry-run did not give a QEMU command (exit {proc.returncode}):\n"
                        f"$ {shlex.join(vng_args)} --dry-run\n{(proc.stderr or proc.stdout)[-2000:]}", retryable=False)
    argv = shlex.split(found[-1])
    if accel is not None:
        check_accel(argv, accel)        # never cached under the wrong accelerator
    write_whole(cached, json.dumps(argv))
    return argv
