"""The plugin's command-line options, and what they set up: the kernel pool, the results file,
and what xdist workers are told."""
from __future__ import annotations

import atexit
import signal
from pathlib import Path

import pytest

from kregress import procs
from kregress.kernel_log import splats
from kregress.kernels.entries import KernelsFileError
from kregress.paths import data, new_run_dir
from kregress.plugin.fixtures import known_durations, known_kernel_costs
from kregress.plugin.state import POOL, RESULTS, unit_only
from kregress.report.results import ResultsFile
from kregress.run.pool import KernelPool
from kregress.run.session import VMOptions


def pytest_addoption(parser):
    group = parser.getgroup("kregress", "kernel matrix")
    group.addoption("--kernels-file", type=Path, default=data("kernels.toml"),
                    help="kernel matrix (default: kernels.toml)")
    group.addoption("--kernel", action="append", default=[], metavar="ID",
                    help="run only this kernel id (repeatable); default: entries with default = true")
    group.addoption("--arch", action="append", default=[], metavar="ARCH",
                    help="only kernels of this architecture (x86_64, arm64; repeatable), of the default "
                         "matrix or of the --kernel ids")
    group.addoption("--accel", default="auto", choices=["auto", "kvm", "tcg"],
                    help="auto probes KVM with a real boot and falls back to TCG")
    group.addoption("--results", type=Path, default=None, help="results JSON (default: RUN_DIR/results.json)")
    group.addoption("--run-dir", type=Path, default=None, help="where console logs and results go")
    group.addoption("--vm-cpus", type=int, default=1)
    group.addoption("--vm-memory", default="1G")
    group.addoption("--boot-timeout", type=float, default=None, help="seconds (default: 90 KVM, 300 TCG)")
    group.addoption("--refresh-kernels", action="store_true", help="re-read Debian indexes now")
    group.addoption("--kernel-log-allowlist", type=Path, default=None, metavar="TOML",
                    help="known-benign kernel log lines, each naming its kernels and why "
                         "(default: kernel-log-allowlist.toml)")
    group.addoption("--no-snapshots", action="store_true",
                    help="boot every kernel instead of restoring its saved guest (and save none)")
    group.addoption("--fresh-vm", default="kernel", choices=["kernel", "module", "test"],
                    help="a fresh guest (restored from the kernel's snapshot) for each kernel (default: "
                         "tests share it), each test module, or each test")
    group.addoption("--spread", default="kernel", choices=["kernel", "module"],
                    help="what one pytest-xdist worker takes at a time: all of a kernel's tests (default: "
                         "its guest starts once per run), or one test module of one kernel (a kernel's "
                         "modules may run on several workers at once, each restoring its guest)")


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: runs inside a booted kernel")
    config.addinivalue_line("markers", "scenario(facts=[...]): a scenario on every kernel of the matrix; facts: "
                                       "the kregress/kernels/facts.py names its expectations may depend on")
    opt = config.option
    worker = getattr(config, "workerinput", None)
    run_dir = Path(worker["kregress_run_dir"]) if worker else (opt.run_dir or new_run_dir())
    try:
        pool = KernelPool(opt.kernels_file, opt.kernel, run_dir,
                          VMOptions(cpus=opt.vm_cpus, memory=opt.vm_memory, boot_timeout=opt.boot_timeout,
                                            snapshots=not opt.no_snapshots,
                                            allowlist=splats.load_allowlist(opt.kernel_log_allowlist)),
                             accel_request=opt.accel, refresh=opt.refresh_kernels, arches=opt.arch)
    except (KernelsFileError, splats.AllowlistError) as err:
        raise pytest.UsageError(str(err)) from None
    pool.is_controller = worker is None
    config.stash[POOL] = pool
    if pool.is_controller and not config.option.collectonly and not unit_only(config):
        config.stash[RESULTS] = ResultsFile(config.option.results or pool.run_dir / "results.json",
                                            pool.run_dir, config.option.kernels_file)
        config.stash[RESULTS].doc.update({"fresh_vm": opt.fresh_vm, "snapshots": not opt.no_snapshots,
                                          "spread": opt.spread, "workers": _workers(config)})
        pool.run_keys()      # once, before any xdist worker starts and needs them
    if worker is None and getattr(opt, "dist", None) == "loadgroup" and getattr(opt, "maxworkerrestart", "") is None:
        # pytest-xdist 3.8's loadgroup waits forever for a worker that replaces a crashed one
        # (pytest-dev/pytest-xdist#1323, #1327): unless told otherwise, a crash ends the run,
        # which records the crashed test and the kernel record it lost (plugin/records.py)
        opt.maxworkerrestart = "0"
    atexit.register(procs.kill_all)
    # SIGTERM (CI cancelling the job) must shut the VMs down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)


def _workers(config) -> int:
    """How many processes run the tests: pytest-xdist's workers (-n, resolved), else this one."""
    return max(1, int(getattr(config.option, "numprocesses", None) or 0))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: workers share the controller's run directory."""
    node.workerinput["kregress_run_dir"] = str(node.config.stash[POOL].run_dir)
    node.workerinput["kregress_durations"] = known_durations(node.config)
    node.workerinput["kregress_kernel_costs"] = known_kernel_costs(node.config)
