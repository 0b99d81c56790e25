"""kregress: thin command line over the harness modules."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from kregress.provision.fetch import fetch_everything
from kregress.provision.programs import BuildError
from kregress.kernels.entries import KernelsFileError, load_kernels, select_kernels
from kregress.kernels.kernel import KernelFetchError
from kregress.paths import data, new_run_dir
from kregress.run.boot_inputs import snapshot_key_for
from kregress.run.catalog import KernelCatalog
from kregress.run.guest import RunKeys
from kregress.run.kvm_probe import AccelPicker
from kregress.run.pool import KernelPool
from kregress.run.session import VMOptions
from kregress.run.snapshot import DEFAULT_MAX_BYTES, SnapshotCache
from kregress.run.vm import BootError


def _kernel_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernels-file", type=Path, default=data("kernels.toml"),
                        help="kernel matrix (default: the kernels.toml kregress ships)")
    parser.add_argument("--kernel", action="append", default=[], help="kernel id (repeatable)")
    parser.add_argument("--refresh-kernels", action="store_true", help="re-read the Debian indexes now")


def selection_from_pytest_args(words: list[str]) -> argparse.Namespace:
    """The kernel selection inside a pytest argument list (make's PYTEST_ARGS): --kernel,
    --arch and --kernels-file, in either `--opt V` or `--opt=V` form; the rest is pytest's."""
    picker = argparse.ArgumentParser(add_help=False)
    picker.add_argument("--kernels-file", type=Path, default=None)
    picker.add_argument("--kernel", action="append", default=[])
    picker.add_argument("--arch", action="append", default=[])
    return picker.parse_known_args(words)[0]


def cmd_fetch(args) -> int:
    """Everything a run needs, into the cache (kregress/provision/fetch.py)."""
    picked = selection_from_pytest_args([w for w in args.pytest_args if w != "--"])
    kernels_file = picked.kernels_file or args.kernels_file
    specs = select_kernels(load_kernels(kernels_file), args.kernel + picked.kernel, args.arch + picked.arch)
    return fetch_everything(specs, refresh=args.refresh_kernels)


def cmd_exec(args) -> int:
    """Boot each kernel, run one scenario driver (or a shell command) and print its output."""
    pool = KernelPool(args.kernels_file, args.kernel, new_run_dir(), VMOptions(), accel_request=args.accel,
                      refresh=args.refresh_kernels)
    status = 0
    for kernel_id in pool.specs:
        try:
            session = pool.session(kernel_id)
            boot = session.boot
            print(f"# {kernel_id}: {session.release} under {session.accel.accel}, "
                  f"{boot.how} in {boot.seconds}s {boot.phases}", file=sys.stderr)
            if args.shell:
                result = session.run(["sh", "-c", " ".join(args.command)], timeout=args.timeout)
            else:
                result = session.run_driver(args.command[0], *args.command[1:], timeout=args.timeout,
                                            root=args.programs_from)
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            for line in result.dmesg:
                print(f"# dmesg: {line}", file=sys.stderr)
            status = status or (result.rc if result.rc is not None else 124)
        except (BootError, KernelFetchError, BuildError) as err:
            print(err, file=sys.stderr)
            status = 1
        finally:
            pool.stop_live()
    return status


def cmd_snapshots(args) -> int:
    """List the saved guests, or prune them to a size (least recently used first)."""
    cache = SnapshotCache()
    if args.action == "key":
        return print_snapshot_keys(args, cache)
    if args.action == "prune":
        removed = cache.evict(max_bytes=0 if args.all else int(args.max_gib * (1 << 30)))
        print(f"removed {len(removed)} snapshot(s)")
    entries = cache.entries()
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.get("last_used", 0)))
        print(f"{entry.get('kernel', '?'):22s} {entry['bytes'] / (1 << 20):7.1f} MiB  last used {used}  "
              f"restores {entry.get('restores', 0):3d}  {entry.get('package_version') or ''} {entry['directory']}")
    print(f"{len(entries)} snapshot(s), {sum(e['bytes'] for e in entries) / (1 << 20):.1f} MiB in {cache.root} "
          f"(bound {cache.max_bytes / (1 << 30):.1f} GiB)")
    return 0


def print_snapshot_keys(args, cache: SnapshotCache) -> int:
    """kernel id, snapshot key and directory per kernel, for a CI cache to save and restore:
    computed as a VM computes its own (boot_inputs.snapshot_key_for), with no VM."""
    run_dir = new_run_dir()
    catalog = KernelCatalog(args.kernels_file, args.kernel)
    accels = AccelPicker(args.accel, catalog, run_dir, keys=lambda: RunKeys.create(run_dir / "ssh"))
    for kernel_id in catalog.specs:
        kernel = catalog.kernel(kernel_id)
        key = snapshot_key_for(kernel, accels.for_kernel(kernel).accel, catalog.guest_image(kernel.spec.arch),
                               memory=args.vm_memory)
        print(f"{kernel_id} {key} {cache.directory(kernel_id, key)}")
    return 0


def cmd_check_progs(args) -> int:
    """The user's objects on the selected kernels, through the pytest module
    kregress/check_progs/your_programs.py (so results.json, report.html, JUnit and KCIDB come
    with it); exit 0/1/2 from the findings. Runs from any directory: the run directory is
    ./runs/..., nothing is read from the working directory but the user's files."""
    import subprocess
    from kregress.check_progs import findings as checkprogs, guest as progs_guest
    from kregress.report.results import load as load_results
    try:
        checkprogs.parse_owns(args.owns)
        progs_guest.encode_maps(args.maps)
    except ValueError as err:
        print(f"check-progs: {err}", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.objects if not p.is_file()]
    if missing:
        print(f"check-progs: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    run_dir = (args.run_dir or new_run_dir()).resolve()
    module = Path(checkprogs.__file__).with_name("your_programs.py")
    # -c /dev/null and the module's own directory as rootdir: no pytest.ini, pyproject or
    # conftest.py of the user's project takes part; the plugins are named, not discovered
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
            "--rootdir", str(module.parent), "-p", "kregress.plugin", "-p", "kregress.check_progs.options",
            "--run-dir", str(run_dir), "--kernels-file", str(args.kernels_file.resolve()), str(module),
            "--progs", *[str(p.resolve()) for p in args.objects]]
    argv += [f"--kernel={k}" for k in args.kernel] + [f"--owns={o}" for o in args.owns]
    if args.maps:
        argv += ["--maps", str(args.maps.resolve())]
    # nothing written beside the installed package: no bytecode, no assertion-rewrite cache
    proc = subprocess.run(argv, capture_output=not args.verbose, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    results = run_dir / "results.json"
    if not results.exists():
        print(f"check-progs: the run wrote no results ({results}):\n{(proc.stdout or '')[-3000:]}"
              f"{(proc.stderr or '')[-2000:]}", file=sys.stderr)
        return 2
    lines, code = checkprogs.summarise(load_results(results))
    print("\n".join(lines))
    print(f"results: {results} (report.html, junit.xml, kcidb.json beside it)")
    return code


def cmd_check_results(args) -> int:
    """Fail a run that booted no kernel or ran no VM test: a green run must have tested kernels."""
    from kregress.report.check_results import check
    return check(Path(args.results), args.min_kernels)


def cmd_report(args) -> int:
    """Behaviour matrix (HTML, text), KCIDB and JUnit files from a results file, offline."""
    from kregress.report.write import render_text, write_reports
    try:
        matrix, written = write_reports(args.results, args.out_dir, args.kernels_file)
    except (OSError, ValueError) as err:
        print(f"report: {err}", file=sys.stderr)
        return 2
    if args.markdown:
        from kregress.report.markdown import render_markdown
        args.markdown.write_text(render_markdown(matrix, str(args.results)))
        written = {**written, "markdown": args.markdown}
    if not args.quiet:
        print("\n".join(render_text(matrix)))
    for path in written.values():
        print(f"wrote {path}")
    return 0


def cmd_compare(args) -> int:
    from kregress.report.compare import CompareError, compare, render
    from kregress.report.results import load
    from kregress.kernels.facts import FACTS
    unknown = [name for name in args.accept_defect if name not in FACTS or not FACTS[name].defect]
    if unknown:
        print(f"compare: --accept-defect {', '.join(unknown)}: not a fact with a known defect; those are "
              f"{', '.join(name for name, fact in FACTS.items() if fact.defect)}", file=sys.stderr)
        return 2
    try:
        pairings = compare(load(args.old), load(args.new), args.old_kernel, args.new_kernel, args.kernels_file,
                           tuple(args.accept_defect))
    except (CompareError, OSError, ValueError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    lines, status = render(pairings)
    print("\n".join(lines))
    return status


def cmd_verdicts(args) -> int:
    """Per kernel and fact: expected by which source, what each source said, how it behaves."""
    from kregress.report import verdicts
    try:
        docs = verdicts.load(args.results)
        rows = verdicts.table(docs)
    except (OSError, ValueError) as err:
        print(f"verdicts: {err}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    lines, status = verdicts.verdict_lines(docs, args.grid, rows)
    print("\n".join(lines))
    return status


def cmd_fleet(args) -> int:
    """A fleet's kernels, each booted once, only the cases that judge every fact (docs/run.md: fleet)."""
    from kregress.run import fleet
    from kregress.paths import NoSuite, suite_root
    try:
        root = suite_root()
    except NoSuite as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 2
    run_dir = (args.run_dir or new_run_dir()).resolve()
    return fleet.run(args.kernels_file.resolve(), args.kernel, run_dir, root, workers=args.jobs,
                     leave=args.leave, refresh=args.refresh_kernels)


def cmd_merge(args) -> int:
    from kregress.report.results import MergeError, load, merge
    try:
        merged = merge([(str(path), load(path)) for path in args.shards])
    except (MergeError, OSError, ValueError) as err:
        print(f"merge: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged, indent=1))
    print(f"merge: {len(args.shards)} shard(s), kernels {', '.join(merged['kernels'])}, "
          f"{len(merged['tests'])} test(s) -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "doctor":
        from kregress.run import host_check
        return host_check.main(argv[1:])
    if argv and argv[0] in ("bisect-run", "bisect-kernels"):
        try:
            from kregress.bisect import main as bisect_main     # own parsers: bisect-run answers 0/1/125/128
        except BaseException as err:    # a broken install: not "bad" (exit 1), and the same at every commit
            print(f"kregress: cannot load kregress.bisect: {err!r}", file=sys.stderr)
            return 128 if argv[0] == "bisect-run" else 2
        return bisect_main(argv)
    parser = argparse.ArgumentParser(prog="kregress", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    sub.add_parser("doctor", help="what this host lacks for the selected kernels, and the one command that "
                   "installs it (--fix as root)")
    sub.add_parser("bisect-run", help="one `git bisect run` step in a kernel tree: build, boot, test; "
                   "exit 0/1/125, or 128 to abort (see docs/bisect.md)")
    sub.add_parser("bisect-kernels", help="coarse bisection over prebuilt kernels from a kernels file")
    fetch = sub.add_parser("fetch", help="resolve and download kernels into the cache: fetch [--kernel ID]... "
                           "[--arch A]... [-- PYTEST_ARGS] (the selection in a pytest argument list counts too)")
    _kernel_args(fetch)
    fetch.add_argument("--arch", action="append", default=[], help="only kernels of this architecture")
    fetch.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: a pytest argument list")
    fetch.set_defaults(func=cmd_fetch)
    execp = sub.add_parser("exec", help="boot kernels and run a scenario driver: exec --kernel ID -- NAME ARGS")
    _kernel_args(execp)
    execp.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    execp.add_argument("--timeout", type=float, default=120)
    execp.add_argument("--shell", action="store_true", help="run the words as a shell command instead")
    execp.add_argument("--from", dest="programs_from", type=Path, default=None, metavar="DIR",
                       help="build NAME from DIR/progs/NAME.bpf.c and DIR/guest/NAME.c (a reproducer's own "
                            "directory) instead of the project's progs/ and guest/")
    execp.add_argument("command", nargs="+")
    execp.set_defaults(func=cmd_exec)
    verd = sub.add_parser("verdicts", help="one line per kernel and fact: has it, behaves like it, which source "
                          "said so; over one or many results files; exit 1 on a contradiction or facts in question")
    verd.add_argument("results", nargs="+", type=Path)
    verd.add_argument("--grid", action="store_true", help="kernels as rows, facts as columns (a fleet's view)")
    verd.add_argument("--json", type=Path, help="also write the table as JSON here")
    verd.set_defaults(func=cmd_verdicts)
    fleetp = sub.add_parser("fleet", help="every kernel of a kernels file, each booted once, only the cheapest cases "
                            "that judge every fact at least once; then the verdict grid (exit as verdicts)")
    fleetp.add_argument("kernels_file", type=Path, help="the fleet, e.g. kernels-fleet.toml")
    fleetp.add_argument("--kernel", action="append", default=[], help="only this kernel id (repeatable)")
    fleetp.add_argument("--leave", action="append", default=[], metavar="FACT",
                        help="choose no case for FACT (too costly for the fleet): it may stay not judged")
    fleetp.add_argument("--run-dir", type=Path, default=None)
    fleetp.add_argument("--jobs", default="auto", help="pytest-xdist workers (default auto; 0: none)")
    fleetp.add_argument("--refresh-kernels", action="store_true", help="re-read the Debian indexes now")
    fleetp.set_defaults(func=cmd_fleet)
    snaps = sub.add_parser("snapshots", help="list or prune the saved guests, or print their keys: "
                           "snapshots [list|prune|key]")
    snaps.add_argument("action", nargs="?", choices=["list", "prune", "key"], default="list")
    _kernel_args(snaps)
    snaps.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    snaps.add_argument("--vm-memory", default="1G")
    snaps.add_argument("--max-gib", type=float, default=DEFAULT_MAX_BYTES / (1 << 30),
                       help="prune down to this size, least recently used first")
    snaps.add_argument("--all", action="store_true", help="prune every snapshot")
    snaps.set_defaults(func=cmd_snapshots)
    progs = sub.add_parser("check-progs", help="your cgroup sockopt, socket-policy and sockops programs on your "
                           "kernels: what they change, which sockets they miss, which program silences which; "
                           "exit 0 no finding, 1 findings, 2 something not checked (refused, or a kind of "
                           "program not checked yet)")
    _kernel_args(progs)
    progs.add_argument("--owns", action="append", default=[], metavar="LEVEL:OPTNAME",
                       help="an option your programs answer themselves (repeatable), e.g. SOL_IP:SO_ORIGINAL_DST")
    progs.add_argument("--maps", type=Path, default=None, metavar="FILE",
                       help="JSON: map name -> key/value pairs, filled in after loading")
    progs.add_argument("--run-dir", type=Path, default=None, help="where results and reports go")
    progs.add_argument("--verbose", action="store_true", help="show pytest's own output")
    progs.add_argument("objects", nargs="+", type=Path, metavar="OBJECT", help="OBJECT.bpf.o or OBJECT.bpf.c")
    progs.set_defaults(func=cmd_check_progs)
    check = sub.add_parser("check-results", help="fail unless kernels booted and VM tests ran")
    check.add_argument("results", type=Path)
    check.add_argument("--min-kernels", type=int, default=1)
    check.set_defaults(func=cmd_check_results)
    report = sub.add_parser("report", help="write report.html, kcidb.json, junit.xml from a results file")
    report.add_argument("results", type=Path)
    report.add_argument("--out-dir", type=Path, default=None, help="default: beside the results file")
    report.add_argument("--kernels-file", type=Path, default=None,
                        help="kernels.toml for the facts overrides (results files record them)")
    report.add_argument("--quiet", action="store_true", help="do not print the text matrix")
    report.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                        help="also write the matrix as Markdown tables (docs/scenario-results.md is made so)")
    report.set_defaults(func=cmd_report)
    comparep = sub.add_parser("compare", help="cases whose behaviour or outcome differs between two results "
                              "files; exit 1 on any worse outcome (failed, error, skipped, missing), an "
                              "unexplained behaviour change, a program no longer checked, or a change that brings "
                              "a known defect into the new kernel")
    comparep.add_argument("old", type=Path)
    comparep.add_argument("new", type=Path)
    comparep.add_argument("--old-kernel", help="kernel id in OLD (needed when it has several)")
    comparep.add_argument("--new-kernel", help="kernel id in NEW (needed when it has several)")
    comparep.add_argument("--kernels-file", type=Path, default=None)
    comparep.add_argument("--accept-defect", action="append", default=[], metavar="FACT",
                          help="take the new kernel's known defect of FACT (repeatable); the output records it")
    comparep.set_defaults(func=cmd_compare)
    mergep = sub.add_parser("merge", help="merge the results files of matrix shards: merge OUT.json SHARD.json...")
    mergep.add_argument("out", type=Path)
    mergep.add_argument("shards", type=Path, nargs="+")
    mergep.set_defaults(func=cmd_merge)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (KernelsFileError, KernelFetchError) as err:
        print(f"kregress: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
