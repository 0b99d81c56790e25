"""What this host lacks to run the selected kernels, and the one command that installs it.

`kregress doctor` prints it; `kregress doctor --fix` (as root) installs it, and that is what
scripts/setup.sh runs too: one implementation. Standard library only, so setup.sh can run it
with the system's python3 before the venv exists (python3 -m kregress.run.host_check).
"""
from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kregress.arch import ARCHES, HOST_ARCH, arch as arch_of

# Debian's package names (Ubuntu's are the same), by what needs them. The guest programs'
# compilers and libraries are not here: they live in the build root (guest/buildroot.toml).
DEBIAN = {
    "core": ["qemu-utils", "kmod", "file", "binutils",       # virtme-ng: qemu-img, depmod
             "zstd", "lz4", "lzop",                           # kernel payloads: PVH boot and the binary witness
             "busybox-static",                                # vng's own initramfs (the benchmark's plain boots)
             "mmdebstrap", "erofs-utils",                     # the guest image and the build root
             "uidmap", "util-linux", "mount",                 # ... as a user: unshare mode; the build root's mounts
             "openssh-client",                                # ssh-keygen: each run's keys
             "debian-archive-keyring", "apt", "ca-certificates", "dpkg",   # kernels, image, build root, verified
             "python3", "python3-venv"],
    # per architecture: its record's qemu_package
    "foreign": ["qemu-user-static", "binfmt-support", "arch-test"],   # another arch's image: its maintainer scripts
    "tree": ["gcc", "make", "libelf-dev", "libc6-dev", "flex", "bison", "bc", "dwarves", "libssl-dev", "ccache"],
    "suite": ["chromium"],                                    # the suite's own tests: report.html in a headless browser
}
# Fedora (untried): the nearest packages; Debian's archive keyring comes with debian-keyring.
FEDORA = {
    "core": ["qemu-img", "kmod", "file", "binutils", "zstd", "lz4", "lzop", "busybox", "mmdebstrap", "erofs-utils",
             "shadow-utils", "util-linux", "openssh-clients", "debian-keyring", "apt", "dpkg", "python3"],
    "x86_64": ["qemu-system-x86-core"],
    "arm64": ["qemu-system-aarch64-core"],
    "ppc64le": ["qemu-system-ppc-core"],
    "s390x": ["qemu-system-s390x-core"],
    "foreign": ["qemu-user-static-aarch64", "qemu-user-static-ppc", "qemu-user-static-s390x"],
    "tree": ["gcc", "make", "elfutils-libelf-devel", "glibc-devel", "flex", "bison", "bc", "dwarves", "openssl-devel",
             "ccache"],
    "suite": ["chromium"],
}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Ubuntu 24.04 (GitHub's hosted runners) lets AppArmor refuse unprivileged user namespaces
APPARMOR_USERNS = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
APPARMOR_FIX = "kernel.apparmor_restrict_unprivileged_userns=0"


@dataclass(frozen=True)
class Needs:
    """What a run needs of the host: the kernels' architectures, whether any is built from a tree,
    and whether the suite's own tests run here (make test) or only kernels (check-progs)."""
    arches: frozenset[str] = frozenset({"x86_64"})
    trees: bool = False
    suite: bool = False

    def groups(self) -> list[str]:
        foreign = any(arch != HOST_ARCH for arch in self.arches)
        return (["core", *sorted(self.arches)] + (["foreign"] if foreign else []) + (["tree"] if self.trees else [])
                + (["suite"] if self.suite else []))


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)      # one per check: "ok ..." or "MISSING ..."
    missing_packages: list[str] = field(default_factory=list)
    root_fixes: list[str] = field(default_factory=list)     # what only root can do, besides packages
    blockers: list[str] = field(default_factory=list)       # what no command of ours can fix

    def ok(self, text: str) -> None:
        self.lines.append(f"ok       {text}")

    def missing(self, text: str) -> None:
        self.lines.append(f"MISSING  {text}")

    def info(self, text: str) -> None:
        self.lines.append(f"info     {text}")

    @property
    def ready(self) -> bool:
        return not (self.missing_packages or self.root_fixes or self.blockers)


def distro(os_release: str | None = None) -> str:
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            return "unknown"
    for line in os_release.splitlines():
        if line.startswith("ID="):
            return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def package_table(name: str) -> dict[str, list[str]] | None:
    if name in ("debian", "ubuntu"):
        return {**DEBIAN, **{a.name: [a.qemu_package] for a in ARCHES.values()}}
    return FEDORA if name == "fedora" else None


def installed(packages: list[str], family: str) -> set[str]:
    """Which of the packages the system's package manager says are installed."""
    if family == "fedora":
        return {p for p in packages if subprocess.run(["rpm", "-q", p], capture_output=True).returncode == 0}
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *packages], capture_output=True, text=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.endswith("install ok installed")}


def invoking_user() -> str:
    """Who the suite runs as: under sudo, the invoking user."""
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name


def has_subids(user: str, path: Path) -> bool:
    try:
        return any(line.split(":")[0] == user for line in path.read_text().splitlines())
    except OSError:
        return False


def in_group(user: str, group: str) -> bool:
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return False
    return user in entry.gr_mem or pwd.getpwnam(user).pw_gid == entry.gr_gid


def userns_works(user: str) -> bool:
    """Whether `user` may make a user namespace (the build root's way in). Under sudo the check
    runs as that user: root may always, which would hide AppArmor's refusal of the user."""
    probe = ["unshare", "--map-root-user", "--mount", "true"]
    if os.getuid() == 0 and user != "root":
        probe = ["runuser", "-u", user, "--", *probe]
    return subprocess.run(probe, capture_output=True).returncode == 0


def kvm_state(dev: str = "/dev/kvm", probe_cache: Path | None = None) -> str:
    """Whether /dev/kvm is usable, or why not, without booting anything: the device, then the
    last probe boot's answer on this host (runs probe with a real boot and fall back to TCG)."""
    if not os.path.exists(dev):
        return f"{dev} absent: kernels run under TCG (emulation, several times slower)"
    try:
        os.close(os.open(dev, os.O_RDWR))
    except OSError as err:
        group = _owner_group(dev)
        way = f"the group {group}" if group != "root" else "a udev rule giving it group kvm (or mode 0666)"
        return f"{dev} cannot be opened ({err.strerror}): runs use TCG; {invoking_user()} needs {way}"
    answers = []
    if probe_cache and probe_cache.exists():
        try:
            answers = [v for v in json.loads(probe_cache.read_text()).values() if isinstance(v, dict)]
        except (OSError, ValueError):
            answers = []
    if answers:
        last = max(answers, key=lambda v: v.get("at", 0))
        when = time.strftime("%Y-%m-%d", time.gmtime(last.get("at", 0)))
        return f"{dev} opens; the last probe boot here ({when}) said: {last.get('reason')}"
    return f"{dev} opens; not probed yet: the first run boots a probe guest and falls back to TCG if KVM fails"


def _owner_group(dev: str) -> str:
    try:
        return grp.getgrgid(os.stat(dev).st_gid).gr_name
    except (KeyError, OSError):
        return "owning /dev/kvm"


def check(needs: Needs, family: str | None = None, user: str | None = None,
          probe_cache: Path | None = None) -> Report:
    report = Report()
    family = family or distro()
    user = user or invoking_user()
    table = package_table(family)
    if table is None:
        report.blockers.append(f"this host ({family}, from /etc/os-release) is not one kregress knows (Debian 12/13; "
                               f"Ubuntu and Fedora untried): install these (Debian's names) yourself: "
                               f"{' '.join(p for g in needs.groups() for p in package_table('debian')[g])}")
    else:
        wanted = list(dict.fromkeys(p for group in needs.groups() for p in table[group]))
        have = installed(wanted, family)
        for group in needs.groups():
            lacking = [p for p in table[group] if p not in have]
            (report.missing if lacking else report.ok)(f"packages for {group}: "
                                                       f"{' '.join(lacking) if lacking else 'installed'}")
        report.missing_packages = [p for p in wanted if p not in have]
    if user != "root":
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if has_subids(user, path):
                report.ok(f"{path}: a range for {user} (mmdebstrap as a user)")
            else:
                report.missing(f"{path}: no range for {user} (mmdebstrap --mode=unshare needs one)")
                report.root_fixes.append(f"a {path} range for {user}")
        if os.path.exists("/dev/kvm") and not in_group(user, "kvm") and _owner_group("/dev/kvm") == "kvm":
            report.missing(f"{user} is not in the kvm group")
            report.root_fixes.append(f"{user} in the kvm group")
        namespaces = shutil.which("unshare") is None or userns_works(user)
        if not namespaces and _read(APPARMOR_USERNS) == "1":
            report.missing(f"user namespaces: AppArmor refuses them to {user} ({APPARMOR_USERNS.name} = 1)")
            report.root_fixes.append(APPARMOR_FIX)
        elif not namespaces:
            report.missing(f"user namespaces: the kernel refuses them to {user} (unshare -r failed)")
            report.blockers.append(f"this kernel refuses user namespaces to {user}, which the build root needs: as "
                                   f"root, set kernel.unprivileged_userns_clone=1 (or user.max_user_namespaces > 0), "
                                   f"or run kregress as root")
        elif shutil.which("unshare"):
            report.ok(f"user namespaces: {user} may make them (the build root)")
    for arch in sorted(a for a in needs.arches if a != HOST_ARCH):
        entry = arch_of(arch).qemu_user
        mounted = (BINFMT / "register").exists()
        if not mounted and "binfmt_misc mounted" not in report.root_fixes:
            report.missing(f"binfmt_misc is not mounted ({arch} images run their maintainer scripts through it)")
            report.root_fixes.append("binfmt_misc mounted")     # once, before the registrations below
        if not mounted or not (BINFMT / entry).exists():
            report.missing(f"binfmt_misc does not know {entry} ({arch} guest images)")
            report.root_fixes.append(f"{entry} registered with binfmt_misc")
        else:
            report.ok(f"binfmt_misc: {entry} ({arch} guest images)")
    report.info(f"KVM: {kvm_state(probe_cache=probe_cache)}")
    return report


def fix(report: Report, needs: Needs, family: str, user: str) -> list[str]:
    """As root: install the missing packages and give `user` what the report asked for. Returns
    what it could not do."""
    failed = []
    if report.missing_packages:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = ([["dnf", "install", "-y", *report.missing_packages]] if family == "fedora" else
                 [["apt-get", "update", "-q"],
                  ["apt-get", "install", "-y", "-q", "--no-install-recommends", *report.missing_packages]])
        print(f"doctor: installing {' '.join(report.missing_packages)}", flush=True)
        for step in steps:
            if subprocess.run(step, env=env).returncode != 0:
                failed.append(f"{shlex.join(step)} failed")
                break
    for item in report.root_fixes:
        if item.endswith(f"range for {user}"):
            path = Path(item.split()[1])
            start = max([100000] + [int(f[1]) + int(f[2]) for f in (l.split(":") for l in _lines(path)) if len(f) == 3])
            flag = "--add-subgids" if path.name == "subgid" else "--add-subuids"
            run = [["usermod", flag, f"{start}-{start + 65535}", user]]
        elif item.endswith("the kvm group"):
            run = [["usermod", "-aG", "kvm", user]]
        elif item == APPARMOR_FIX:
            run = [["sysctl", "-w", APPARMOR_FIX]]
        elif item == "binfmt_misc mounted":
            run = [["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)]]
        else:       # "<entry> registered with binfmt_misc"
            run = [["update-binfmts", "--enable", item.split()[0]]]
        for step in run:
            if subprocess.run(step).returncode != 0:
                failed.append(f"{item}: {shlex.join(step)} failed")
            else:
                print(f"doctor: {item}: done ({shlex.join(step)})", flush=True)
    return failed


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def needs_of(kernels_file: Path, ids: list[str], arches: list[str], suite: bool) -> Needs:
    """What the selected kernels need (the default matrix when none are named); --suite: everything."""
    if suite:
        return Needs(arches=frozenset(ARCHES), trees=True, suite=True)
    from kregress.kernels.entries import load_kernels, select_kernels
    specs = select_kernels(load_kernels(kernels_file), ids, arches)
    return Needs(arches=frozenset(s.arch for s in specs) or frozenset({HOST_ARCH}),
                 trees=any(s.origin.kind == "tree" for s in specs))


def main(argv: list[str] | None = None, sudo_line: str | None = None) -> int:
    from kregress.paths import cache_dir, data
    parser = argparse.ArgumentParser(prog="kregress doctor",
                                     description="What this host lacks for the selected kernels, and the command "
                                                 "that installs it (--fix, as root, installs it).")
    parser.add_argument("--kernels-file", type=Path, default=data("kernels.toml"))
    parser.add_argument("--kernel", action="append", default=[], help="kernel id (repeatable)")
    parser.add_argument("--arch", action="append", default=[], help="only kernels of this architecture")
    parser.add_argument("--suite", action="store_true", help="everything the scenario suite's own tests need "
                                                              "(make test): both architectures, tree builds, chromium")
    parser.add_argument("--fix", action="store_true", help="as root: install what is missing")
    parser.add_argument("--sudo-line", default=sudo_line, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        needs = needs_of(args.kernels_file, args.kernel, args.arch, args.suite)
    except Exception as err:        # a kernels file's own error names the entry and the fix
        print(f"doctor: {err}", file=sys.stderr)
        return 2
    family, user = distro(), invoking_user()
    report = check(needs, family, user, probe_cache=cache_dir() / "accel-probe.json")
    if args.fix and os.getuid() == 0 and not report.blockers and not report.ready:
        failed = fix(report, needs, family, user)
        report = check(needs, family, user, probe_cache=cache_dir() / "accel-probe.json")
        report.blockers += failed
    print(f"doctor: {family} host ({HOST_ARCH}), for {user}: kernels of {', '.join(sorted(needs.arches))}"
          f"{', tree builds' if needs.trees else ''}{', the suite' if needs.suite else ''}")
    print("\n".join(f"  {line}" for line in report.lines))
    for blocker in report.blockers:
        print(f"doctor: {blocker}", file=sys.stderr)
    if report.ready:
        print("doctor: ready")
        return 0
    if report.missing_packages or report.root_fixes:
        given = [word for word in (sys.argv[1:] if argv is None else argv) if word != "--fix"]
        line = args.sudo_line or shlex.join(["sudo", *_self_command(), "--fix", *given])
        print(f"doctor: these need root: {', '.join(report.missing_packages + report.root_fixes)}", file=sys.stderr)
        print(f"doctor: run this once, then again as {user}:\n  {line}", file=sys.stderr)
    return 1


def _self_command() -> list[str]:
    """This kregress by its full path (sudo's PATH does not have a venv's or pipx's bin)."""
    entry = Path(sys.executable).parent / "kregress"
    return [str(entry), "doctor"] if entry.exists() else [sys.executable, "-m", "kregress.run.host_check"]


if __name__ == "__main__":
    sys.exit(main())
