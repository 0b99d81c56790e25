"""Bisecting kernels for a behaviour.

bisect-run      one step of `git bisect run`, inside a kernel source tree: build the
                checked-out kernel with virtme-ng (configs/bisect.config), boot it, run
                a pytest selection, answer 0 (good/old), 1 (bad/new) or 125 (cannot
                judge). It never exits with anything else, so git bisect is never
                aborted by a harness problem.
bisect-kernels  coarse bisection over prebuilt kernels (kernels.toml entries, in the
                order given): boots about log2(N) of them to find the first kernel whose
                observed behaviour differs from the first one's, and prints the range to
                hand to a source bisect.

Both append one JSON line per step to a log as they go (build, each run, the verdict;
each kernel booted), so an interrupted bisection loses nothing; bisect-kernels reuses
the kernels already judged in its log when started again.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .facts import FACTS
from .paths import PROJECT_ROOT
from .procs import kill_group

GOOD, BAD, SKIP = 0, 1, 125
EXIT_CODES = {"good": GOOD, "bad": BAD, "skip": SKIP}
DEFAULT_FRAGMENT = PROJECT_ROOT / "configs" / "bisect.config"
IMAGE = Path("arch/x86/boot/bzImage")
LOG_NAME = "kregress-bisect.jsonl"
EXPECT_TERMS = {"fixed": True, "buggy": False}
DEFAULT_FACT = "getsockopt_relief"
# A failed test whose message says the harness, not the kernel's behaviour, failed.
HARNESS_FAILURE = re.compile(r"guest lost|guest-lost|guest-panic|timed out after|failed \(exit -?\d+\)|"
                             r"cannot fetch|boot failed|NOT BOOTED|GUEST-|HARNESS", re.IGNORECASE)
PYTEST_EXIT = {2: "pytest was interrupted", 3: "pytest internal error", 4: "pytest usage error",
               5: "the selection collected no test"}


class UsageError(Exception):
    """A bad command line: bisect-run answers 125 (every commit would be unjudgeable)."""


# --------------------------------------------------------------------------- step log

class StepLog:
    """Append-only JSON lines, flushed and fsynced per record: a crash loses nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict) -> dict:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, default=str, sort_keys=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue        # a line cut short by a crash: ignore it
        return out


# --------------------------------------------------------------------------- subprocesses

def run_logged(cmd: list[str], log_path: Path, timeout: float, cwd: Path | None = None,
               env: dict | None = None) -> tuple[int | None, float]:
    """Run in its own process group with output to log_path; (exit code or None on timeout, s)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"# {shlex.join(cmd)}\n# cwd {cwd or os.getcwd()}\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            log.write(f"# cannot start: {err}\n")
            return 127, 0.0
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc, grace=20)   # pytest shuts its VM down on SIGTERM
            log.write(f"\n# killed after {timeout:.0f}s\n")
            return None, round(time.monotonic() - started, 2)
        except BaseException:
            kill_group(proc, grace=20)   # pytest shuts its VM down on SIGTERM
            raise
    return rc, round(time.monotonic() - started, 2)


def tool_env() -> dict:
    """The caller's PATH first (so a wrapper or fake wins), then our venv (vng,
    virtme-configkernel, virtme-run) and sbin (depmod)."""
    extra = [str(Path(sys.executable).parent), "/usr/sbin", "/sbin"]
    path = os.pathsep.join([os.environ.get("PATH", "/usr/bin:/bin"), *extra])
    return dict(os.environ, PATH=path)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- judging results

@dataclass
class Judgement:
    """One pytest run on one kernel, read back from its results.json."""
    verdict: str                    # good | bad | skip
    reason: str
    tests: list[dict] = field(default_factory=list)
    booted: bool = False
    boot_seconds: float | None = None
    boot_attempts: int | None = None
    console_log: str | None = None
    uname_r: str | None = None
    accel: str | None = None

    @property
    def behaviour(self) -> dict | None:
        """test name -> observed dict; None when the run cannot be judged."""
        if self.verdict == "skip" and not (self.tests and all(t["outcome"] == "skipped" for t in self.tests)):
            return None
        return {t["name"]: (t["observed"] or {"_outcome": t["outcome"]}) for t in self.tests}

    def evidence(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason, "booted": self.booted,
                "boot_seconds": self.boot_seconds, "boot_attempts": self.boot_attempts,
                "uname_r": self.uname_r, "accel": self.accel, "console_log": self.console_log,
                "tests": self.tests}


def case_name(nodeid: str, kernel_id: str) -> str:
    """'tests/x.py::test_a[debian-6.1]' -> 'tests/x.py::test_a': the kernel parameter dropped,
    so one test's behaviour can be compared across kernels."""
    match = re.match(r"^(.*)\[(.*)\]$", nodeid)
    if not match:
        return nodeid
    head, params = match.group(1), match.group(2)
    if params == kernel_id:
        return head
    for variant in (f"{kernel_id}-", f"-{kernel_id}"):
        if variant in params:
            return f"{head}[{params.replace(variant, '', 1)}]"
    return nodeid


def judge(results_path: Path, kernel_id: str, pytest_rc: int | None) -> Judgement:
    """The verdict of one run: good (all judged tests passed), bad (a test failed on the
    behaviour), skip (nothing could be judged: no results, boot failure, lost guest,
    harness error, every test skipped, or pytest itself broke)."""
    if pytest_rc is None:
        return Judgement("skip", "harness timeout: pytest was killed")
    try:
        doc = json.loads(Path(results_path).read_text())
    except (OSError, ValueError) as err:
        return Judgement("skip", f"no results (pytest exit {pytest_rc}): cannot read {results_path}: "
                                 f"{err.__class__.__name__}")
    info = (doc.get("kernels") or {}).get(kernel_id, {})
    found = Judgement("skip", "", booted=bool(info.get("boot_seconds")),
                      boot_seconds=info.get("boot_seconds"), boot_attempts=info.get("boot_attempts"),
                      console_log=info.get("console_log"), uname_r=info.get("uname_r"), accel=info.get("accel"))
    for test in doc.get("tests", []):
        if test.get("kernel") != kernel_id:
            continue
        message = (test.get("longrepr") or "").strip()
        harness = bool(test.get("harness_error")) or test.get("outcome") == "error" or (
            test.get("outcome") == "failed" and bool(HARNESS_FAILURE.search(message)))
        found.tests.append({"name": case_name(test.get("nodeid", "?"), kernel_id),
                            "nodeid": test.get("nodeid"), "outcome": test.get("outcome"),
                            "harness_problem": harness, "observed": test.get("observed") or {},
                            "expected": test.get("expected") or {},
                            "message": message[-1200:] if test.get("outcome") != "passed" else ""})
    if info.get("error"):
        found.reason = f"boot failed: {str(info['error']).splitlines()[0][:300]}"
        return found
    if pytest_rc in PYTEST_EXIT and pytest_rc != 5:
        found.reason = f"{PYTEST_EXIT[pytest_rc]} (exit {pytest_rc})"
        return found
    if not found.tests:
        found.reason = (f"the selection ran no test on {kernel_id} (pytest exit {pytest_rc}); "
                        "check the test selection")
        return found
    problems = [t for t in found.tests if t["harness_problem"]]
    if problems:
        first = problems[0]
        found.reason = (f"harness problem in {first['name']} ({first['outcome']}): "
                        f"{(first['message'].splitlines() or [''])[0][:300]}")
        return found
    failed = [t for t in found.tests if t["outcome"] == "failed"]
    passed = [t for t in found.tests if t["outcome"] == "passed"]
    if failed:
        found.verdict = "bad"
        found.reason = f"{len(failed)} of {len(found.tests)} test(s) failed: " + ", ".join(t["name"] for t in failed)
    elif passed:
        found.verdict = "good"
        skipped = len(found.tests) - len(passed)
        found.reason = f"{len(passed)} test(s) passed" + (f", {skipped} skipped" if skipped else "")
    else:
        found.reason = "every selected test was skipped: " + (found.tests[0]["message"].splitlines() or [""])[0][:200]
    return found


def combine(verdicts: list[str], repeat: int, bad_if: str) -> tuple[str, str]:
    """N runs of one commit -> one verdict.

    bad_if=any (flaky bug shows up sometimes): bad if any run was bad; good only when all
    `repeat` runs were judged good; otherwise skip.
    bad_if=all (bad only when it reproduces every time): good if any run was good; bad only
    when all `repeat` runs were judged bad; otherwise skip.
    """
    good, bad = verdicts.count("good"), verdicts.count("bad")
    skipped = verdicts.count("skip")
    tally = f"{good} good, {bad} bad, {skipped} unjudged of {len(verdicts)} run(s) (bad if {bad_if})"
    if bad_if == "any":
        if bad:
            return "bad", tally
        if good >= repeat:
            return "good", tally
        return "skip", tally
    if good:
        return "good", tally
    if bad >= repeat:
        return "bad", tally
    return "skip", tally


def settled(verdicts: list[str], repeat: int, bad_if: str) -> bool:
    """Whether more runs could still change the combined verdict."""
    if len(verdicts) >= repeat:
        return True
    if bad_if == "any":
        return "bad" in verdicts
    return "good" in verdicts


# --------------------------------------------------------------------------- running pytest

def pytest_command(override: str | None) -> list[str]:
    return shlex.split(override) if override else [sys.executable, "-m", "pytest"]


def run_selection(pytest_cmd: list[str], kernels_file: Path, kernel_id: str, selection: list[str],
                  run_dir: Path, accel: str, timeout: float) -> tuple[Judgement, float, Path]:
    """pytest (a subprocess, in the project root) on one kernel; judged from results.json."""
    results = run_dir / "results.json"
    cmd = [*pytest_cmd, "-p", "no:cacheprovider", "-q", "-rfEs", "--kernels-file", str(kernels_file),
           "--kernel", kernel_id, "--results", str(results), "--run-dir", str(run_dir),
           "--accel", accel, *selection]
    rc, seconds = run_logged(cmd, run_dir / "pytest.log", timeout, cwd=PROJECT_ROOT, env=os.environ.copy())
    judgement = judge(results, kernel_id, rc)
    if judgement.verdict == "skip" and rc not in (None, 0, 1):
        judgement.reason += f"\n  pytest log tail ({run_dir / 'pytest.log'}):\n" + \
            "\n".join("  | " + line for line in tail(run_dir / "pytest.log", 8).splitlines())
    return judgement, seconds, results


# --------------------------------------------------------------------------- the kernel tree

@dataclass
class BuildResult:
    ok: bool
    reason: str
    seconds: float = 0.0
    image: Path | None = None
    version: str | None = None
    incremental: bool = False
    command: list[str] = field(default_factory=list)
    log: Path | None = None
    missing: list[str] = field(default_factory=list)


def required_configs(fragment: Path) -> list[str]:
    """Every CONFIG_X=y line of the fragment is required in the built .config."""
    return [line.split("=", 1)[0] for line in fragment.read_text().splitlines()
            if re.match(r"^CONFIG_\w+=y\s*$", line)]


def missing_configs(dot_config: Path, required: list[str]) -> list[str]:
    try:
        have = {line.split("=", 1)[0] for line in dot_config.read_text(errors="replace").splitlines()
                if line.startswith("CONFIG_") and line.rstrip().endswith("=y")}
    except OSError:
        return list(required)
    return [name for name in required if name not in have]


def kernel_version(tree: Path) -> str | None:
    """VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile (what `make kernelversion` prints,
    without EXTRAVERSION: the facts table matches numbers)."""
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except OSError:
        return None
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        match = re.search(rf"^{key}\s*=\s*(\d+)\s*$", text, re.MULTILINE)
        if not match:
            return None
        fields[key] = match.group(1)
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"


def build_command(fragment: Path, jobs: int, use_ccache: bool, nice: int, env: dict) -> list[str]:
    vng = shutil.which("vng", path=env["PATH"])
    if not vng:
        raise FileNotFoundError("vng (virtme-ng) not found on PATH or in the venv")
    cmd = [vng, "--build", "--verbose", "--config", str(fragment), "--jobs", str(jobs)]
    if use_ccache:
        cmd.append("CC=ccache gcc")
    if nice > 0:
        cmd = ["nice", "-n", str(nice), *cmd]
    return cmd


def build_tree(tree: Path, fragment: Path, jobs: int, ccache: str, nice: int, timeout: float,
               log_path: Path) -> BuildResult:
    """`vng --build` in the tree: an incremental make when the tree was built before."""
    if not (tree / "Makefile").exists() or not (tree / "Kconfig").exists():
        return BuildResult(False, f"{tree} is not a kernel source tree (no Makefile/Kconfig)")
    env = tool_env()
    use_ccache = ccache == "yes" or (ccache == "auto" and shutil.which("ccache", path=env["PATH"]) is not None)
    try:
        cmd = build_command(fragment, jobs, use_ccache, nice, env)
    except FileNotFoundError as err:
        return BuildResult(False, str(err))
    incremental = (tree / "vmlinux").exists()
    rc, seconds = run_logged(cmd, log_path, timeout, cwd=tree, env=env)
    result = BuildResult(False, "", seconds=seconds, incremental=incremental, command=cmd, log=log_path,
                         version=kernel_version(tree))
    if rc is None:
        result.reason = f"build timed out after {timeout:.0f}s"
    elif rc != 0:
        result.reason = f"build failed: {Path(cmd[0]).name if cmd[0] != 'nice' else 'vng'} exited with {rc}\n" + \
            "\n".join("  | " + line for line in tail(log_path).splitlines())
    elif not (tree / IMAGE).is_file():
        result.reason = f"build said it succeeded but {IMAGE} is missing"
    else:
        result.missing = missing_configs(tree / ".config", required_configs(fragment))
        if result.missing:
            result.reason = (f"required CONFIG missing from the built .config: {', '.join(result.missing)} "
                             f"(this commit's Kconfig cannot give them, or an old .config without the "
                             f"fragment is in the way: remove it once or run vng --kconfig --config {fragment})")
        elif not result.version:
            result.reason = "cannot read VERSION/PATCHLEVEL/SUBLEVEL from the Makefile"
        else:
            result.ok, result.image = True, tree / IMAGE
            result.reason = f"built {result.version} in {seconds:.0f}s" + (" (incremental)" if incremental else " (fresh tree)")
    return result


def git_info(tree: Path) -> dict:
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None
    info = {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s")}
    git_dir = git("rev-parse", "--absolute-git-dir")
    info["git_dir"] = git_dir
    terms = Path(git_dir) / "BISECT_TERMS" if git_dir else None
    if terms and terms.exists() and (terms.parent / "BISECT_START").exists():    # a bisection is on
        lines = terms.read_text().split()
        if len(lines) >= 2:
            info["terms"] = {"new": lines[0], "old": lines[1]}
    return info


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
                            "exit 0 (good/old), 1 (bad/new) or 125 (cannot judge), never anything else.",
                epilog="example: git bisect run /path/to/kregress/scripts/bisect-run --expect fixed -- "
                       "tests/test_getsockopt_efault.py -k 'tos or longer_than_page'")
    p.add_argument("--expect", choices=sorted(EXPECT_TERMS), default="fixed",
                   help="how the OLD (good) side behaves: the kernel is judged with facts = { FACT = true "
                        "(fixed) | false (buggy) }, so the tests pass (exit 0) iff it behaves so. Use fixed "
                        "to find the commit that broke it, buggy (with git bisect --term-old=buggy "
                        "--term-new=fixed) to find the commit that fixed it. Default: fixed")
    p.add_argument("--fact", default=DEFAULT_FACT, choices=sorted(FACTS),
                   help=f"the facts.py fact the behaviour belongs to (default {DEFAULT_FACT})")
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
    p.add_argument("selection", nargs="*", help="pytest arguments (after --): files, -k, -m ...")
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
        raise UsageError("no test selection: add -- TESTS, e.g. -- tests/test_getsockopt_efault.py -k tos")
    if args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
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


def say(text: str) -> None:
    print(f"kregress bisect-run: {text}", file=sys.stderr, flush=True)


def main_run(argv: list[str]) -> int:
    """The exit-code contract lives here: whatever happens, 0, 1 or 125. With
    --verdict-file F the code is also written to F, last thing: scripts/bisect-run only
    believes an exit code that was written there (a crash before this point, even an
    import error, then reads as 125, not as "bad")."""
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
            return SKIP
    return code


def _guarded_run(argv: list[str]) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main_run(argv)
    except UsageError as err:
        print(f"kregress bisect-run: usage: {err}", file=sys.stderr)
        print("kregress bisect-run: answering 125 (cannot judge), not aborting git bisect", file=sys.stderr)
        return SKIP
    except SystemExit:                # --help: not a verdict either
        return SKIP
    except KeyboardInterrupt:
        say("interrupted: answering 125")
        return SKIP
    except BaseException as err:      # a harness bug must not mark a commit good or bad
        import traceback
        traceback.print_exc()
        say(f"internal error ({err.__class__.__name__}: {err}): answering 125")
        return SKIP
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
    run_dir = (args.run_dir or PROJECT_ROOT / "runs" / f"bisect-{stamp}-{short}").resolve()
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
        term = {"good": terms["old"], "bad": terms["new"], "skip": "skip"}[verdict]
        label = {"good": f"{term} (old term)", "bad": f"{term} (new term)", "skip": "skip (cannot judge)"}[verdict]
        steps.append({**base, "event": "verdict", "verdict": verdict, "term": term, "exit_code": code,
                      "reason": reason, "seconds": round(time.monotonic() - started, 1), **extra})
        say(f"{short}: exit {code} = {label}: {reason}")
        return code

    # 1. build
    if args.no_build:
        build = BuildResult(True, "not built (--no-build)", image=tree / IMAGE, version=kernel_version(tree))
        if not build.image.is_file() or not build.version:
            build.ok, build.reason = False, f"--no-build: no {IMAGE} or no version in {tree}"
    else:
        say(f"building in {tree} (log {run_dir / 'build.log'})")
        build = build_tree(tree, args.config, args.jobs, args.ccache, args.nice, args.build_timeout,
                           run_dir / "build.log")
    steps.append({**base, "event": "build", "ok": build.ok, "reason": build.reason, "seconds": build.seconds,
                  "incremental": build.incremental, "version": build.version, "command": build.command,
                  "log": str(build.log) if build.log else None, "missing_configs": build.missing})
    say(build.reason.splitlines()[0] if build.reason else "built")
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
        if settled(verdicts, args.repeat, args.bad_if):
            break
        if judgement.verdict == "skip" and not judgement.booted:
            break       # the kernel does not come up: more runs only burn time
    verdict, tally = combine(verdicts, args.repeat, args.bad_if)
    return finish(verdict, tally, build_seconds=build.seconds, boot_seconds=boots, version=build.version)


# --------------------------------------------------------------------------- coarse bisection

@dataclass
class CoarseResult:
    evaluated: dict[int, dict | None]        # index -> behaviour (None: could not judge)
    last_same: int | None                    # index known to behave as the first
    first_diff: int | None                   # index known to differ (None: no change found)
    unknown_between: list[int]
    order: list[int]                         # indices in the order they were evaluated
    note: str = ""


def coarse_bisect(count: int, evaluate: Callable[[int], dict | None]) -> CoarseResult:
    """Find the first index whose behaviour differs from index 0's, evaluating ~log2(count)+2.

    Assumes one change along the list (like git bisect). An index that cannot be judged
    is skipped; if the answer lies among skipped ones, they are all reported."""
    results: dict[int, dict | None] = {}
    order: list[int] = []

    def get(i: int) -> dict | None:
        if i not in results:
            results[i] = evaluate(i)
            order.append(i)
        return results[i]

    ref = get(0)
    if ref is None:
        return CoarseResult(results, None, None, [], order, "the first kernel could not be judged")
    lo, hi = 0, None
    for i in range(count - 1, 0, -1):           # the last judgeable kernel
        behaviour = get(i)
        if behaviour is None:
            continue
        if behaviour == ref:
            lo = i
        else:
            hi = i
        break
    if hi is None:
        unknown = [i for i in range(lo + 1, count) if results.get(i, 0) is None]
        return CoarseResult(results, lo, None, unknown, order,
                            "no kernel differs from the first one among those judged "
                            "(a change and its reversal in between would not be seen)")
    while True:
        candidates = [i for i in range(lo + 1, hi) if i not in results]
        if not candidates:
            break
        middle = (lo + hi) / 2
        pick = min(candidates, key=lambda i: (abs(i - middle), i))
        behaviour = get(pick)
        if behaviour is None:
            continue
        if behaviour == ref:
            lo = pick
        else:
            hi = pick
    unknown = [i for i in range(lo + 1, hi) if results.get(i, 0) is None]
    return CoarseResult(results, lo, hi, unknown, order)


def diff_behaviour(a: dict, b: dict) -> list[str]:
    lines = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            lines.append(f"{name}: {json.dumps(a.get(name), sort_keys=True)} -> "
                         f"{json.dumps(b.get(name), sort_keys=True)}")
    return lines


def kernels_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kregress bisect-kernels",
                                description="Coarse bisection over prebuilt kernels: boot ~log2(N) of them "
                                            "to find the first whose observed behaviour differs from the first.")
    p.add_argument("--kernels-file", type=Path, default=PROJECT_ROOT / "kernels-bisect.toml")
    p.add_argument("--kernel", action="append", default=[], metavar="ID",
                   help="kernel ids in order, oldest first (default: every entry of the file, in file order)")
    p.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"])
    p.add_argument("--test-timeout", type=float, default=1800, help="seconds per kernel (fetch+boot+tests)")
    p.add_argument("--log", type=Path, default=None, help="JSON-lines step log (default: RUN_DIR/bisect.jsonl)")
    p.add_argument("--resume", type=Path, default=None, metavar="LOG",
                   help="reuse the behaviours judged in an earlier log (same kernels file and selection); "
                        "new steps are appended to it")
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--pytest-command", default=None, help=argparse.SUPPRESS)
    p.add_argument("selection", nargs="*", help="pytest arguments (after --)")
    return p


def main_kernels(argv: list[str]) -> int:
    from .config import KernelsFileError, load_kernels
    before, after = split_dashes(argv)
    args = kernels_parser().parse_args(before)
    selection = [*args.selection, *after]
    if not selection:
        print("bisect-kernels: give a test selection after --", file=sys.stderr)
        return 2
    kernels_file = args.kernels_file.resolve()
    try:
        specs = load_kernels(kernels_file, known_facts=set(FACTS))
    except KernelsFileError as err:
        print(f"bisect-kernels: {err}", file=sys.stderr)
        return 2
    by_id = {s.id: s for s in specs}
    ids = args.kernel or [s.id for s in specs]
    unknown = [k for k in ids if k not in by_id]
    if unknown or len(ids) < 2:
        print(f"bisect-kernels: need at least two known kernel ids (unknown: {unknown}; "
              f"known: {', '.join(by_id)})", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = (args.run_dir or PROJECT_ROOT / "runs" / f"bisect-kernels-{stamp}-{os.getpid()}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.resume or args.log or run_dir / "bisect.jsonl"
    steps = StepLog(log_path)
    known: dict[str, dict] = {}
    if args.resume:
        for record in steps.records():
            if (record.get("event") == "kernel" and record.get("kernels_file") == str(kernels_file)
                    and record.get("selection") == selection and record.get("behaviour") is not None):
                known[record["kernel"]] = record
    pytest_cmd = pytest_command(args.pytest_command)
    base = {"tool": "bisect-kernels", "kernels_file": str(kernels_file), "selection": selection,
            "kernels": ids, "run_dir": str(run_dir)}
    print(f"coarse bisection over {len(ids)} kernels ({ids[0]} .. {ids[-1]}), selection: {shlex.join(selection)}")
    print(f"log: {log_path}")
    stats = {"booted": 0, "boot_attempts": 0, "reused": 0, "seconds": 0.0}
    versions: dict[str, str | None] = {}

    def evaluate(index: int) -> dict | None:
        kernel_id = ids[index]
        if kernel_id in known:
            record = known[kernel_id]
            versions[kernel_id] = record.get("version")
            stats["reused"] += 1
            print(f"  [{index + 1}/{len(ids)}] {kernel_id}: from the log ({record.get('version')})", flush=True)
            return record["behaviour"]
        print(f"  [{index + 1}/{len(ids)}] {kernel_id}: booting ...", end="", flush=True)
        judgement, seconds, results = run_selection(pytest_cmd, kernels_file, kernel_id, selection,
                                                    run_dir / kernel_id, args.accel, args.test_timeout)
        stats["seconds"] += seconds
        if judgement.booted:
            stats["booted"] += 1
            stats["boot_attempts"] += judgement.boot_attempts or 1
        version = _results_version(results, kernel_id)
        versions[kernel_id] = version
        behaviour = judgement.behaviour
        steps.append({**base, "event": "kernel", "index": index, "kernel": kernel_id, "version": version,
                      "uname_r": judgement.uname_r, "behaviour": behaviour,
                      "verdict": "unknown" if behaviour is None else "judged", "reason": judgement.reason,
                      "boot_seconds": judgement.boot_seconds, "boot_attempts": judgement.boot_attempts,
                      "pytest_seconds": seconds, "results": str(results), "evidence": judgement.evidence()})
        state = "cannot judge: " + judgement.reason.splitlines()[0] if behaviour is None else \
            f"{judgement.uname_r}, boot {judgement.boot_seconds}s, {seconds:.0f}s in all"
        print(f" {state}", flush=True)
        return behaviour

    result = coarse_bisect(len(ids), evaluate)
    ref = result.evaluated.get(0)
    lines = []
    for index in result.order:
        behaviour = result.evaluated[index]
        mark = "?" if behaviour is None else ("same" if behaviour == ref else "DIFFERS")
        lines.append(f"  {ids[index]:<28} {versions.get(ids[index]) or '':<12} {mark}")
    print("evaluated (in order):")
    print("\n".join(lines))
    summary = {**base, "event": "result", "evaluated": [ids[i] for i in result.order],
               "booted": stats["booted"], "boot_attempts": stats["boot_attempts"], "reused": stats["reused"],
               "log2_n": round(math.log2(len(ids)), 2), "seconds": round(stats["seconds"], 1),
               "note": result.note}
    code = 0
    if ref is None:
        print(f"result: {result.note}")
        code = 1
    elif result.first_diff is None:
        print(f"result: {result.note}; last judged: {ids[result.last_same]}")
    else:
        same, diff = ids[result.last_same], ids[result.first_diff]
        summary.update(last_same=same, first_diff=diff, unknown_between=[ids[i] for i in result.unknown_between],
                       last_same_version=versions.get(same), first_diff_version=versions.get(diff),
                       differences=diff_behaviour(ref, result.evaluated[result.first_diff]))
        print(f"result: behaviour changes between {same} ({versions.get(same)}, same as {ids[0]}) "
              f"and {diff} ({versions.get(diff)}, first that differs)")
        if result.unknown_between:
            print(f"  could not judge in between: {', '.join(ids[i] for i in result.unknown_between)}")
        for line in summary["differences"]:
            print(f"  {line}")
        hint = source_range_hint(versions.get(same), versions.get(diff))
        summary["source_bisect"] = hint
        print(f"hand to a source bisect: {hint}")
    print(f"boots: {stats['booted']} kernel(s) booted ({stats['boot_attempts']} boot attempt(s)), "
          f"{stats['reused']} reused from the log, of {len(ids)} kernels (log2 {len(ids)} = "
          f"{math.log2(len(ids)):.1f}); {stats['seconds']:.0f}s of test runs")
    steps.append(summary)
    return code


def _results_version(results: Path, kernel_id: str) -> str | None:
    try:
        info = json.loads(results.read_text())["kernels"][kernel_id]
    except (OSError, ValueError, KeyError):
        return None
    return info.get("upstream_version") or info.get("package_version")


def source_range_hint(old: str | None, new: str | None) -> str:
    def tag(version: str | None) -> str:
        if not version:
            return "?"
        parts = version.split(".")
        return "v" + (".".join(parts[:2]) if len(parts) > 2 and parts[2] == "0" else version)
    if not old or not new:
        return f"git bisect start {tag(new)} {tag(old)}"
    hint = f"git bisect start {tag(new)} {tag(old)}"
    if old.split(".")[:2] != new.split(".")[:2]:
        hint += ("   (different release lines: git tests their merge base first, and the change "
                 "may be a stable backport; narrow the selection to one behaviour first)")
    return hint


def main(argv: list[str]) -> int:
    """Entry from cli.py: argv[0] is bisect-run or bisect-kernels."""
    if argv[0] == "bisect-run":
        return main_run(argv[1:])
    return main_kernels(argv[1:])
