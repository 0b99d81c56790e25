"""bisect-run: one step of `git bisect run` in a kernel tree: build, boot, run, answer 0/1/125, or
128 to abort the bisection for what every commit would repeat."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from kregress.expectation.declared import scenario_facts
from kregress.kernels.facts import FACTS
from kregress.paths import NoSuite, suite_root
from kregress.bisect.judge import ABORT, EXIT_CODES, SKIP, Judgement, combine, judge, settled
from kregress.procs import run_logged, tail
from kregress.kernels.tree import DEFAULT_FRAGMENT, IMAGE, BuildResult, build_tree, git_info, kernel_version
from kregress.bisect.steps import StepLog

LOG_NAME = "kregress-bisect.jsonl"
EXPECT_TERMS = {"fixed": True, "buggy": False}


class CannotBisect(Exception):
    """Trouble that would be the same at every commit (a broken harness, no kernel tree):
    bisect-run aborts git bisect (exit 128) rather than answer 125 and skip every commit."""


class UsageError(CannotBisect):
    """A bad command line: aborts too, the same mistake would repeat at every step."""


# pytest options whose value follows them: their value is never made absolute (--deselect's node
# id is matched as pytest writes it, relative to the project root)
VALUE_OPTIONS = {"-k", "-m", "-p", "-o", "-c", "--rootdir", "--kernel", "--accel", "--maxfail", "--deselect"}


def resolve_selection(selection: list[str], root: Path) -> list[str]:
    """The selection with its test paths made absolute the way pytest, run in `root`, reads
    them (relative to `root`; absolute ones as given), so the fact lookup and the run agree
    whatever directory git bisect runs us in. A path that is not there is a usage error."""
    out, after_value_option = [], False
    for arg in selection:
        path_part = arg.split("::")[0]
        is_path = not after_value_option and not arg.startswith("-") and \
            (path_part.endswith(".py") or (root / path_part).is_dir())
        after_value_option = arg in VALUE_OPTIONS
        if not is_path:
            out.append(arg)
            continue
        path = root / path_part
        if not path.exists():
            raise UsageError(f"{arg}: no such test path; relative selections are read from the kregress "
                             f"checkout {root}, as pytest runs there (not from the kernel tree)")
        out.append(str(path) + arg[len(path_part):])
    return out


def pytest_command(override: str | None) -> list[str]:
    return shlex.split(override) if override else [sys.executable, "-m", "pytest"]


def run_selection(pytest_cmd: list[str], kernels_file: Path, kernel_id: str, selection: list[str],
                  run_dir: Path, accel: str, timeout: float) -> tuple[Judgement, float, Path]:
    """pytest (a subprocess, in the project root) on one kernel; judged from results.json."""
    results = run_dir / "results.json"
    cmd = [*pytest_cmd, "-p", "no:cacheprovider", "-q", "-rfEs", "--kernels-file", str(kernels_file),
           "--kernel", kernel_id, "--results", str(results), "--run-dir", str(run_dir),
           "--accel", accel, *selection]
    rc, seconds = run_logged(cmd, run_dir / "pytest.log", timeout, cwd=suite_root(), env=os.environ.copy())
    judgement = judge(results, kernel_id, rc)
    if judgement.verdict == "skip" and rc not in (None, 0, 1):
        judgement.reason += f"\n  pytest log tail ({run_dir / 'pytest.log'}):\n" + \
            "\n".join("  | " + line for line in tail(run_dir / "pytest.log", 8).splitlines())
    return judgement, seconds, results



def toml_string(text: str) -> str:
    return json.dumps(text)     # a JSON string (ASCII, \uXXXX escapes) is a TOML basic string


def write_kernels_file(path: Path, kernel_id: str, image: Path, version: str, facts: dict[str, bool],
                       description: str = "") -> Path:
    fact_text = ", ".join(f"{name} = {str(value).lower()}" for name, value in facts.items())
    lines = ["# written by kregress bisect-run for one bisection step", "[[kernel]]",
             f"id = {toml_string(kernel_id)}", f"description = {toml_string(description)}",
             f"image = {toml_string(str(image))}", f"version = {toml_string(version)}"]
    if facts:
        lines.append(f"facts = {{ {fact_text} }}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- bisect-run

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)

    def exit(self, status=0, message=None):
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kregress bisect-run",
                description="One step of `git bisect run`, run from a kernel source tree: build, boot, test; "
                            "exit 0 (good/old), 1 (bad/new), 125 (this commit cannot be judged) or 128 "
                            "(abort: a usage error or harness fault that every commit would repeat).",
                epilog="example: git bisect run /path/to/kregress/scripts/bisect-run --expect fixed "
                       "--fact getsockopt_relief -- "
                       "tests/scenarios/test_getsockopt_efault.py -k 'tos or longer_than_page'")
    p.add_argument("--expect", choices=sorted(EXPECT_TERMS), default="fixed",
                   help="how the OLD (good) side behaves: the kernel is judged with facts = { FACT = true "
                        "(fixed) | false (buggy) }, so the tests pass (exit 0) iff it behaves so. Use fixed "
                        "to find the commit that broke it, buggy (with git bisect --term-old=buggy "
                        "--term-new=fixed) to find the commit that fixed it. Default: fixed")
    p.add_argument("--fact", default=None, choices=sorted(FACTS),
                   help="the facts.py fact the behaviour belongs to (default: the one fact the selected "
                        "scenario modules declare; required when they declare several)")
    p.add_argument("--set-fact", action="append", default=[], metavar="NAME=true|false",
                   help="state another fact for the built kernel (repeatable)")
    p.add_argument("--repeat", type=int, default=1, help="runs (fresh boots) per commit, for flaky behaviour")
    p.add_argument("--bad-if", choices=["any", "all"], default="any",
                   help="with --repeat: bad if ANY run is bad (default), or only if ALL are")
    p.add_argument("--tree", type=Path, default=None, help="kernel tree (default: the current directory)")
    p.add_argument("--config", type=Path, default=DEFAULT_FRAGMENT, help="config fragment for vng --build")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--ccache", choices=["auto", "yes", "no"], default="auto",
                   help="build with CC='ccache gcc' (auto: when ccache is installed); keep it the same "
                        "for the whole bisection or make rebuilds everything")
    p.add_argument("--nice", type=int, default=0, help="run the build under nice -n N")
    p.add_argument("--no-build", action="store_true", help="test the tree's existing bzImage as it is")
    p.add_argument("--build-timeout", type=float, default=4 * 3600)
    p.add_argument("--test-timeout", type=float, default=1800, help="seconds per pytest run (boot included)")
    p.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    p.add_argument("--log", type=Path, default=None,
                   help=f"JSON-lines step log (default: $GIT_DIR/{LOG_NAME}, beside git's BISECT_LOG)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where this step's build log, results and console logs go (default: runs/bisect-...)")
    p.add_argument("--pytest-command", default=None, help=argparse.SUPPRESS)
    p.add_argument("selection", nargs="*", help="pytest arguments (after --): files, -k, -m ...; relative paths are read from the "
                        "kregress checkout, as pytest runs there")
    return p


def split_dashes(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1:]
    return argv, []


def parse_run_args(argv: list[str]) -> argparse.Namespace:
    before, after = split_dashes(argv)
    args = run_parser().parse_args(before)
    args.selection = [*args.selection, *after]
    if not args.selection:
        raise UsageError("no test selection: add -- TESTS, e.g. -- tests/scenarios/test_getsockopt_efault.py -k tos")
    if args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    try:
        suite = suite_root()
    except NoSuite as err:
        raise UsageError(str(err)) from None
    args.selection = resolve_selection(args.selection, suite)
    if args.fact is None:
        declared = scenario_facts(args.selection, suite)
        if len(declared) != 1:
            raise UsageError(f"name the fact this bisection is about with --fact: the selected scenario modules "
                             f"declare {', '.join(declared) or 'none'}")
        args.fact = declared[0]
    args.facts = {args.fact: EXPECT_TERMS[args.expect]}
    for item in args.set_fact:
        name, _, value = item.partition("=")
        if name not in FACTS or value.lower() not in ("true", "false"):
            raise UsageError(f"--set-fact {item!r}: write NAME=true|false with NAME one of {', '.join(FACTS)}")
        args.facts[name] = value.lower() == "true"
    if not args.config.is_file():
        raise UsageError(f"--config {args.config}: no such file")
    args.config = args.config.resolve()
    return args


ABORT_HINT = ("; it would be the same at every commit (git keeps the bisection: fix this, then run the same "
              "`git bisect run` again)")


def say(text: str) -> None:
    print(f"kregress bisect-run: {text}", file=sys.stderr, flush=True)


def main_run(argv: list[str]) -> int:
    """The exit-code contract lives here: whatever happens, 0, 1, 125 or 128 (abort). With
    --verdict-file F the code is also written to F, last thing: scripts/bisect-run only
    believes an exit code that was written there (a crash before this point, even an
    import error, then aborts the bisection with 128, never reads as "bad")."""
    verdict_file = None
    if "--verdict-file" in argv[:-1]:
        index = argv.index("--verdict-file")
        verdict_file = argv[index + 1]
        argv = argv[:index] + argv[index + 2:]
    code = _guarded_run(argv)
    if verdict_file:
        try:
            Path(verdict_file).write_text(f"{code}\n")
        except OSError:
            return ABORT
    return code


def _guarded_run(argv: list[str]) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main_run(argv)
    except CannotBisect as err:
        kind = "usage" if isinstance(err, UsageError) else "cannot bisect"
        say(f"{kind}: {err}")
        say(f"exit {ABORT}: aborting git bisect run{ABORT_HINT}")
        return ABORT
    except SystemExit:                # --help: not a verdict; stop a git bisect run that was handed it
        return ABORT
    except KeyboardInterrupt:
        say(f"interrupted: exit {ABORT}, aborting git bisect run (this commit stays untested)")
        return ABORT
    except BaseException as err:      # a harness bug: never good or bad, and it would repeat at every commit
        import traceback
        traceback.print_exc()
        say(f"internal error ({err.__class__.__name__}: {err}): exit {ABORT}, aborting git bisect run")
        return ABORT
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _main_run(argv: list[str]) -> int:
    args = parse_run_args(argv)
    tree = (args.tree or Path.cwd()).resolve()
    info = git_info(tree)
    short = (info.get("commit") or "nogit")[:12]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = (args.run_dir or suite_root() / "runs" / f"bisect-{stamp}-{short}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.log or (Path(info["git_dir"]) / LOG_NAME if info.get("git_dir") else run_dir / "bisect.jsonl")
    steps = StepLog(log_path)
    base = {"tool": "bisect-run", "tree": str(tree), "commit": info.get("commit"), "subject": info.get("subject"),
            "selection": args.selection, "expect": args.expect, "facts": args.facts,
            "repeat": args.repeat, "bad_if": args.bad_if, "run_dir": str(run_dir)}
    say(f"{short} {info.get('subject') or ''}")
    say(f"log: {log_path}")
    started = time.monotonic()

    def finish(verdict: str, reason: str, **extra) -> int:
        code = EXIT_CODES[verdict]
        terms = info.get("terms") or {"old": "good", "new": "bad"}
        term = {"good": terms["old"], "bad": terms["new"], "skip": "skip", "abort": "abort"}[verdict]
        label = {"good": f"{term} (old term)", "bad": f"{term} (new term)", "skip": "skip (cannot judge)",
                 "abort": "abort git bisect run"}[verdict]
        steps.append({**base, "event": "verdict", "verdict": verdict, "term": term, "exit_code": code,
                      "reason": reason, "seconds": round(time.monotonic() - started, 1), **extra})
        say(f"{short}: exit {code} = {label}: {reason}")
        return code

    # 1. build
    if args.no_build:
        build = BuildResult(True, "not built (--no-build)", image=tree / IMAGE, version=kernel_version(tree))
        if not build.image.is_file() or not build.version:
            build.ok, build.reason = False, f"--no-build: no {IMAGE} or no version in {tree}"
            build.every_commit = True       # nothing is built, so every commit would find the same
    else:
        say(f"building in {tree} (log {run_dir / 'build.log'})")
        build = build_tree(tree, args.config, args.jobs, args.ccache, args.nice, args.build_timeout,
                           run_dir / "build.log")
    steps.append({**base, "event": "build", "ok": build.ok, "reason": build.reason, "seconds": build.seconds,
                  "incremental": build.incremental, "version": build.version, "command": build.command,
                  "log": str(build.log) if build.log else None, "missing_configs": build.missing})
    say(build.reason.splitlines()[0] if build.reason else "built")
    if build.every_commit:
        return finish("abort", build.reason.splitlines()[0] + ABORT_HINT)
    if not build.ok:
        return finish("skip", build.reason.splitlines()[0], build_seconds=build.seconds)

    # 2. boot + test, N times
    kernel_id = f"bisect-{short}"
    kernels_file = write_kernels_file(run_dir / "kernels.toml", kernel_id, build.image, build.version,
                                      args.facts, description=info.get("subject") or "")
    pytest_cmd = pytest_command(args.pytest_command)
    verdicts, boots = [], []
    for index in range(1, args.repeat + 1):
        sub = run_dir / (f"run{index}" if args.repeat > 1 else "run")
        say(f"run {index}/{args.repeat}: booting {build.version} and running {shlex.join(args.selection)}")
        judgement, seconds, results = run_selection(pytest_cmd, kernels_file, kernel_id, args.selection, sub,
                                                    args.accel, args.test_timeout)
        verdicts.append(judgement.verdict)
        boots.append(judgement.boot_seconds)
        steps.append({**base, "event": "run", "repeat": index, "verdict": judgement.verdict,
                      "reason": judgement.reason, "pytest_seconds": seconds,
                      "boot_seconds": judgement.boot_seconds, "results": str(results),
                      "evidence": judgement.evidence()})
        say(f"run {index}: {judgement.verdict}: {judgement.reason}")
        if judgement.every_commit:
            return finish("abort", judgement.reason.splitlines()[0] + ABORT_HINT, build_seconds=build.seconds)
        if settled(verdicts, args.repeat, args.bad_if):
            break
        if judgement.verdict == "skip" and not judgement.booted:
            break       # the kernel does not come up: more runs only burn time
    verdict, tally = combine(verdicts, args.repeat, args.bad_if)
    return finish(verdict, tally, build_seconds=build.seconds, boot_seconds=boots, version=build.version)
