"""The README's commands on a fresh Debian 13 (trixie) host: an mmdebstrap chroot with what a
new user's machine has (make, git, python3 ...), the repository cloned into it, `make test`
for two kernels with no hand step, then the workflow's unit job (the debian:13 container's
commands). The drivers, BPF objects and agents built there must be the bytes this host
builds: the build root, not the host, decides them.

Opt-in (slow: a fresh cache, so kernels are downloaded and the guest images and the build
root built inside the chroot; measured in the README):
    KREGRESS_SLOW=1 .venv/bin/pytest -p no:cacheprovider tests/harness/test_debian13_host.py
As root (the chroot and its mounts). KREGRESS_HOST_KERNELS narrows or widens the kernels
(default "debian-6.12 debian-5.10"); KREGRESS_HOST_CHROOT=DIR builds the chroot there and keeps it.
"""
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kregress.arch import ARCHES
from kregress.provision import programs as build
from kregress.paths import SUITE_ROOT

SUITE = "trixie"
# What the new user had: mmdebstrap --variant=apt plus these
HOST_PACKAGES = ["ca-certificates", "make", "git", "procps", "kmod", "iproute2", "python3"]
KERNELS = os.environ.get("KREGRESS_HOST_KERNELS", "debian-6.12 debian-5.10").split()
CLONE = "/home/kregress"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KREGRESS_SLOW") != "1",
                       reason="slow (a fresh Debian 13 chroot runs make test): set KREGRESS_SLOW=1 to run"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a chroot and its bind mounts need root"),
]


def sh(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """A fresh trixie root with the repository's committed HEAD cloned into it and
    /proc, /sys, /dev bound (in a mount namespace of the test's own, via unshare)."""
    root = Path(os.environ.get("KREGRESS_HOST_CHROOT") or tmp_path_factory.mktemp("debian13") / "root")
    proc = sh(["mmdebstrap", "--variant=apt", f"--include={','.join(HOST_PACKAGES)}", SUITE, str(root)], 1800)
    assert proc.returncode == 0, f"mmdebstrap {SUITE} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    (root / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
    # What any machine on this network carries: the local certificate authorities (a
    # TLS-inspecting egress here; pip fails without them) and pip's configuration
    local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for ca in local_cas:
        shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
    if local_cas:
        proc = sh(["chroot", str(root), "update-ca-certificates"], 300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    if Path("/etc/pip.conf").exists():
        shutil.copy("/etc/pip.conf", root / "etc/pip.conf")
    proc = sh(["git", "clone", "-q", str(SUITE_ROOT), str(root / CLONE.lstrip("/"))], 300)
    assert proc.returncode == 0, proc.stderr
    yield root
    if not os.environ.get("KREGRESS_HOST_CHROOT"):      # a named chroot is kept, to look into
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)])


def in_chroot(root: Path, script: str, timeout: float) -> subprocess.CompletedProcess:
    """script under bash in the chroot, as root, with a login's environment and nothing of ours."""
    # The chroot bound onto itself first: a host's or a container's / is a mount point, a bare
    # chroot's is not, and unshare(1) in it (the build root) could not make / private
    mounts = " && ".join([f"mount --bind {shlex.quote(str(root))} {shlex.quote(str(root))}",
                          *(f"mount --rbind /{d} {shlex.quote(str(root / d))}" for d in ("proc", "sys", "dev"))])
    inner = shlex.join(["chroot", str(root), "/usr/bin/env", "-i", "HOME=/root", "LC_ALL=C.UTF-8",
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "bash", "-eo", "pipefail", "-c", f"cd {CLONE} && {script}"])
    return sh(["unshare", "--mount", "--fork", "--", "sh", "-c", f"{mounts} && exec {inner}"], timeout)


def test_readme_make_test_on_debian13_and_the_same_drivers(host):
    started = time.monotonic()
    args = " ".join(f"--kernel {k}" for k in KERNELS)
    proc = in_chroot(host, f"make test RUN_DIR=runs/host PYTEST_ARGS={shlex.quote(args)}", 6 * 3600)
    seconds = time.monotonic() - started
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " in " in line and "=" in line), "")
    print(f"make test on {SUITE} ({', '.join(KERNELS)}): exit {proc.returncode} in {seconds:.0f}s: {summary}")
    assert proc.returncode == 0, f"make test failed in the {SUITE} chroot:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"

    # The same bytes: every scenario's driver and BPF object, and the agent, for both architectures
    theirs = host / "root/.cache/kregress/build"
    compared = []
    for arch in ARCHES:
        ours = [build.build(name, arch=arch) for name in build.scenario_names()]
        files = [p.driver for p in ours] + [p.bpf_object for p in ours if p.bpf_object] + [build.build_agent(arch=arch)]
        for path in files:
            other = theirs / path.parent.name / path.name
            if arch == "arm64" and not other.exists():
                continue        # the chroot ran x86_64 kernels only: nothing built for arm64 there
            assert other.exists(), (f"{path.parent.name}/{path.name} was not built in the chroot: the cache keys "
                                    f"differ (build root package versions?): {sorted(p.name for p in theirs.iterdir())}")
            assert other.read_bytes() == path.read_bytes(), f"{path.parent.name}/{path.name} differs between hosts"
            compared.append(f"{arch}:{path.name}")
    assert any(c.startswith("x86_64:") for c in compared)
    print(f"byte-identical on Debian 12 and {SUITE}: {len(compared)} files: {', '.join(compared)}")


def test_the_workflows_unit_job_on_debian13(host):
    """The unit job's own commands (read from the workflow), as its debian:13 container runs them."""
    job = YAML(typ="safe").load((SUITE_ROOT / ".github/workflows/matrix.yml").read_text())["jobs"]["unit"]
    assert "debian:13" in job["strategy"]["matrix"]["image"]
    for step in job["steps"]:
        if "run" in step and "apt-get" not in step["run"]:     # the container's own tools: the chroot has them
            proc = in_chroot(host, step["run"], 3600)
            assert proc.returncode == 0, f"{step['run']!r} failed in the {SUITE} chroot:\n{proc.stdout[-4000:]}"
