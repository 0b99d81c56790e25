"""Running mmdebstrap for a root directory of ours (the guest image's, the build root),
as root or as an ordinary user, and removing what a failed or killed run left.

As a user mmdebstrap runs in its unshare mode, where the root's files belong to the
user's subordinate ids: the user could neither fix them up nor remove them. So a user
gets mmdebstrap's tarball, unpacked as the user's own files. Owners do not matter to
either root: the guest image is packed --all-root and the build root is only read.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
PACKAGE_WITH_ARCH = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?")
SUITE = re.compile(r"[a-z][a-z0-9-]*")


def read_list(path: Path, what: str, error: type[Exception], suite_hint: str,
              package: re.Pattern = PACKAGE, package_hint: str = "", allow_empty: bool = True,
              extra_keys: tuple[str, ...] = ()) -> tuple[str, tuple, dict]:
    """A package list file (suite = "...", packages = [...], and extra_keys the caller checks):
    (suite, packages, {extra key: its value}), or error naming the file, the key and what to write."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such file: the {what}'s package list is missing") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path}: not valid TOML: {err}") from None
    allowed = {"suite", "packages", *extra_keys}
    unknown = set(data) - allowed
    if unknown:
        raise error(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    suite, packages = data.get("suite"), data.get("packages")
    if not isinstance(suite, str) or not SUITE.fullmatch(suite):
        raise error(f"{path}: suite = {suite!r}; write {suite_hint}")
    if not isinstance(packages, list) or not (packages or allow_empty) or not all(
            isinstance(p, str) and package.fullmatch(p) for p in packages):
        raise error(f"{path}: packages must be a list of Debian package names{package_hint}, got {packages!r}")
    return suite, tuple(packages), {key: data[key] for key in extra_keys if key in data}


def is_root() -> bool:
    return os.geteuid() == 0


def checking_includes(cmd: list[str], packages) -> list[str]:
    """cmd (ending in suite, target, source) with a setup hook in which apt, on mmdebstrap's own
    configuration, reads the index and simulates installing the listed packages before anything
    is downloaded: a name the suite lacks fails there, in seconds, rather than once the essential
    set is unpacked and installed (about 25 s here). mmdebstrap's own update then finds the index
    current. The tree is the same, so the cache keys leave the hook out."""
    apt = 'APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get'
    hook = (f"{apt} update -qq --error-on=any && {apt} --simulate --no-install-recommends install "
            + " ".join(shlex.quote(p) for p in packages) + " > /dev/null")
    return cmd[:-3] + [f"--setup-hook={hook}"] + cmd[-3:]


def run_mmdebstrap(cmd: list[str], target: Path, progress, started: float) -> tuple[int, list[str]]:
    """cmd names `target` (a directory) as its output. Streams mmdebstrap's own steps to
    progress; returns its exit status and output lines. FileNotFoundError when absent."""
    tarball = target.with_name(target.name + ".tar")
    if not is_root():
        cmd = [str(tarball) if arg == str(target) else arg for arg in cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("I: "):       # mmdebstrap's own steps: enough to show it is moving
            progress(f"{time.monotonic() - started:5.1f}s {line[3:].rstrip()}")
    status = proc.wait()
    if status == 0 and not is_root():
        target.mkdir()
        # device nodes cannot be made by a user; /dev stays, as an empty mount point
        unpack = subprocess.run(["tar", "-C", str(target), "-xpf", str(tarball), "--exclude=./dev/*"],
                                capture_output=True, text=True)
        lines += unpack.stderr.splitlines()
        status = unpack.returncode
    tarball.unlink(missing_ok=True)
    return status, lines


def remove(staging: Path) -> bool:
    """Remove a build directory, first unmounting what a killed mmdebstrap left mounted
    in it (its chroot's /proc, /dev ...): rmtree alone would fail, or walk into /proc.
    A user's leftover of mmdebstrap's unshare mode (subordinate ids) is removed through
    mmdebstrap's own --unshare-helper. Returns whether it is gone."""
    prefix = str(staging) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)
    shutil.rmtree(staging, ignore_errors=True)
    if staging.exists() and not is_root():
        # inside, the subordinate ids are root and may empty the directories they own;
        # the emptied directories are then the user's to remove
        for child in staging.iterdir():
            subprocess.run(["mmdebstrap", "--unshare-helper", "rm", "-rf", "--one-file-system", str(child)],
                           capture_output=True)
        shutil.rmtree(staging, ignore_errors=True)
    return not staging.exists()
