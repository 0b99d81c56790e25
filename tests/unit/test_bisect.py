"""bisect-run's exit-code contract (0 good, 1 bad, 125 this commit cannot be judged, 128 abort:
the same at every commit) and the
coarse bisection, with fake vng/make/pytest: fast, no VM, no kernel build."""
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from faketree import make_kernel_tree

from kregress.bisect import run as bisect_run
from kregress.bisect.coarse import coarse_bisect, main_kernels
from kregress.bisect.judge import ABORT, BAD, EXIT_CODES, GOOD, SKIP, combine, judge, settled
from kregress.bisect.run import main_run
from kregress.bisect.steps import StepLog
from kregress.kernels.tree import DEFAULT_FRAGMENT, git_info, required_configs
from kregress.paths import SUITE_ROOT
from kregress.report.results import case_of as case_name

FRAGMENT = DEFAULT_FRAGMENT

FAKE_PYTEST = r'''
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
def opt(name):
    return args[args.index(name) + 1]
results, kernel = Path(opt("--results")), opt("--kernel")
kernels_file = Path(opt("--kernels-file"))
state = Path(os.environ["FAKE_STATE"])
state.mkdir(parents=True, exist_ok=True)
calls = len(list(state.glob("call*")))
(state / f"call{calls}").write_text(json.dumps({"argv": args, "kernels_toml": kernels_file.read_text(),
                                                "cwd": os.getcwd()}))
mode = os.environ.get("FAKE_MODE", "pass")
if mode == "flaky":             # FAKE_SEQUENCE=pass,fail,... one per call
    mode = os.environ["FAKE_SEQUENCE"].split(",")[calls]
if mode == "by-kernel":         # FAKE_BEHAVIOUR={"kernel-id": {...observed...} or null}
    observed = json.loads(os.environ["FAKE_BEHAVIOUR"])[kernel]
    mode = "pass" if observed is not None else "boot-error"
else:
    observed = {"errno": "OK"}
if mode == "hang":
    time.sleep(120)
if mode == "nothing":
    sys.exit(int(os.environ.get("FAKE_RC", "4")))
doc = {"format": "kregress-results/2", "kernels": {kernel: {"id": kernel, "boot_seconds": 1.5, "boot_attempts": 1, "uname_r": "6.12.117-virtme",
                            "accel": "tcg", "upstream_version": kernel.split("_")[-1]}}, "tests": []}
def test(outcome, longrepr="", **extra):
    doc["tests"].append({"nodeid": f"tests/test_x.py::test_a[{kernel}]", "kernel": kernel, "outcome": outcome,
                         "longrepr": longrepr, "observed": observed if outcome != "error" else {},
                         "expected": {"errno": "OK"}, **extra})
rc = 0
if mode == "pass":
    test("passed")
elif mode == "fail":
    test("failed", "AssertionError: expected OK, got EFAULT"); rc = 1
elif mode == "boot-error":
    doc["kernels"][kernel] = {"id": kernel, "error": "bisect-x: boot failed after 2 attempt(s): Kernel panic"}
    test("error", "Failed: boot failed"); rc = 1
elif mode == "guest-lost":
    test("error", "GUEST-LOST: bisect-x: guest lost while running getsockopt_efault: EOF",
         harness_error="guest-lost"); rc = 1
elif mode == "harness-error":
    test("error", "GUEST-LOST: guest lost", harness_error="guest-lost"); rc = 1
elif mode == "all-skipped":
    test("skipped", "not supported by this kernel")
elif mode == "no-tests":
    rc = 5
results.parent.mkdir(parents=True, exist_ok=True)
results.write_text(json.dumps(doc))
sys.exit(rc)
'''

FAKE_VNG = r'''#!/bin/sh
# fake vng --build: FAKE_VNG=exit2|exit255|ok|ok-missing|no-image
echo "fake vng $*"
case "$FAKE_VNG" in
  exit2) exit 2 ;;
  exit255) exit 255 ;;
esac
if [ "$FAKE_VNG" != no-image ]; then
  mkdir -p arch/x86/boot && echo image > arch/x86/boot/bzImage
fi
grep '^CONFIG_.*=y$' "$FAKE_FRAGMENT" > .config
[ "$FAKE_VNG" = ok-missing ] && sed -i '/CONFIG_BPF_LSM/d' .config
echo vmlinux > vmlinux
exit 0
'''


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake kernel tree, fake tools on PATH, a fake pytest; returns a runner of main_run."""
    tree = make_kernel_tree(tmp_path / "tree")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_pytest = tmp_path / "fake_pytest.py"
    fake_pytest.write_text(FAKE_PYTEST)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("FAKE_FRAGMENT", str(FRAGMENT))
    monkeypatch.chdir(tree)
    selection = tmp_path / "tests" / "test_x.py"       # absolute: taken as given
    selection.parent.mkdir()
    selection.write_text("")

    class Fake:
        root, log = tmp_path, tmp_path / "steps.jsonl"

        def vng(self, mode="ok"):
            write_exe(bindir / "vng", FAKE_VNG)
            monkeypatch.setenv("FAKE_VNG", mode)

        def make(self, rc):
            write_exe(bindir / "make", f"#!/bin/sh\necho fake make \"$@\"\nexit {rc}\n")

        def run(self, *options, selection=(str(selection),), mode=None, **env) -> int:
            if mode:
                monkeypatch.setenv("FAKE_MODE", mode)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            fact = [] if "--fact" in options or not str(selection[0]).endswith("test_x.py") else \
                ["--fact", "getsockopt_relief"]
            argv = ["--log", str(self.log), "--run-dir", str(tmp_path / "run"), "--ccache", "no",
                    "--pytest-command", f"{sys.executable} {fake_pytest}", *fact, *options, "--", *selection]
            code = main_run(argv)
            assert code in (GOOD, BAD, SKIP, ABORT)
            return code

        def steps(self):
            return [json.loads(line) for line in self.log.read_text().splitlines()]

        def calls(self):
            state = tmp_path / "state"
            return [json.loads(p.read_text()) for p in sorted(state.glob("call*"))] if state.exists() else []

    return Fake()


# ---------------------------------------------------------------- the build fails in each way

@pytest.mark.parametrize("mode", ["exit2", "exit255"])
def test_vng_failing_is_skip(fake, mode):
    fake.vng(mode)
    assert fake.run(mode="pass") == SKIP
    verdict = fake.steps()[-1]
    assert verdict["event"] == "verdict" and verdict["exit_code"] == 125
    assert "build failed" in verdict["reason"] and fake.calls() == []     # nothing booted


def test_real_vng_with_failing_make_is_skip(fake):
    fake.make(2)            # the real vng runs virtme-configkernel, which runs our make
    assert fake.run(mode="pass") == SKIP
    build = next(s for s in fake.steps() if s["event"] == "build")
    assert not build["ok"] and "exited with" in build["reason"]


def test_missing_required_config_is_skip(fake):
    fake.vng("ok-missing")
    assert fake.run(mode="pass") == SKIP
    build = next(s for s in fake.steps() if s["event"] == "build")
    assert build["missing_configs"] == ["CONFIG_BPF_LSM"]
    assert "required CONFIG missing" in fake.steps()[-1]["reason"]


def test_no_image_is_skip(fake):
    fake.vng("no-image")
    assert fake.run(mode="pass") == SKIP
    assert "bzImage is missing" in fake.steps()[-1]["reason"]


def test_not_a_kernel_tree_aborts(fake, tmp_path):
    fake.vng("ok")
    assert fake.run("--tree", str(tmp_path), mode="pass") == ABORT
    assert fake.steps()[-1]["verdict"] == "abort"
    assert "not a kernel source tree" in fake.steps()[-1]["reason"]


def test_build_timeout_is_skip(fake, tmp_path):
    write_exe(tmp_path / "bin" / "vng", "#!/bin/sh\nsleep 60\n")
    assert fake.run("--build-timeout", "1", mode="pass") == SKIP
    assert "timed out" in fake.steps()[-1]["reason"]


# ---------------------------------------------------------------- boot and test outcomes

@pytest.mark.parametrize("mode, code", [
    ("pass", GOOD), ("fail", BAD),
    ("nothing", ABORT),         # pytest refused the command line (exit 4): the same at every commit
    ("no-tests", ABORT),        # the selection collected nothing: collection does not depend on the kernel
    ("boot-error", SKIP), ("guest-lost", SKIP), ("harness-error", SKIP), ("all-skipped", SKIP)])
def test_run_outcomes(fake, mode, code):
    fake.vng("ok")
    assert fake.run(mode=mode) == code
    kinds = [s["event"] for s in fake.steps()]
    assert kinds == ["build", "run", "verdict"]
    run = fake.steps()[1]
    assert run["evidence"]["verdict"] == {GOOD: "good", BAD: "bad", SKIP: "skip", ABORT: "skip"}[code]
    assert fake.steps()[-1]["verdict"] == {GOOD: "good", BAD: "bad", SKIP: "skip", ABORT: "abort"}[code]


def test_pytest_crash_before_any_result_aborts(fake):
    """pytest's internal error (exit 3) before it wrote anything is the harness's: every commit would repeat it."""
    fake.vng("ok")
    assert fake.run(mode="nothing", FAKE_RC="3") == ABORT
    assert "no results" in fake.steps()[-2]["reason"]


def test_harness_timeout_is_skip(fake):
    fake.vng("ok")
    assert fake.run("--test-timeout", "1", mode="hang") == SKIP
    assert "harness timeout" in fake.steps()[-1]["reason"] or "harness timeout" in fake.steps()[-2]["reason"]


def test_expect_writes_the_fact_and_the_version(fake):
    fake.vng("ok")
    fake.run("--expect", "buggy", "--set-fact", "getsockopt_retval_in_run_ctx=true", mode="pass")
    call = fake.calls()[0]
    toml = call["kernels_toml"]
    assert 'version = "6.12.117"' in toml and "bzImage" in toml
    assert "getsockopt_relief = false" in toml and "getsockopt_retval_in_run_ctx = true" in toml
    assert call["argv"][-1] == str(fake.root / "tests" / "test_x.py") and Path(call["cwd"]) == SUITE_ROOT
    fake.run("--expect", "fixed", mode="pass")
    assert "getsockopt_relief = true" in fake.calls()[1]["kernels_toml"]


def test_no_build_uses_existing_image(fake):
    fake.vng("exit2")            # would fail, but is not called
    (Path("arch/x86/boot")).mkdir(parents=True)
    Path("arch/x86/boot/bzImage").write_text("image")
    assert fake.run("--no-build", mode="pass") == GOOD


@pytest.mark.parametrize("argv", [[], ["--bogus", "--", "x"], ["--repeat", "0", "--", "x"],
                                  ["--set-fact", "nope=true", "--", "x"], ["--help"],
                                  ["--config", "/nonexistent", "--", "x"]])
def test_usage_errors_abort(argv, capsys):
    """The same mistake would repeat at every commit: 125 would skip them all, so abort."""
    assert main_run(argv) == ABORT
    if argv and argv != ["--help"]:
        assert "aborting git bisect run" in capsys.readouterr().err


def test_missing_vng_aborts(fake, monkeypatch):
    def no_vng(*args, **kwargs):
        raise FileNotFoundError("vng (virtme-ng) not found on PATH or in the venv")
    monkeypatch.setattr("kregress.kernels.tree.build_command", no_vng)
    assert fake.run(mode="pass") == ABORT
    assert "vng" in fake.steps()[-1]["reason"] and not fake.calls()


def test_no_build_without_an_image_aborts(fake):
    assert fake.run("--no-build", mode="pass") == ABORT


def test_internal_error_aborts(fake, monkeypatch):
    fake.vng("ok")

    def boom(*args, **kwargs):
        raise RuntimeError("harness bug")
    monkeypatch.setattr(bisect_run, "build_tree", boom)
    assert fake.run(mode="pass") == ABORT


# ---------------------------------------------------------------- repeats

@pytest.mark.parametrize("sequence, bad_if, code, runs", [
    ("pass,pass,pass", "any", GOOD, 3),
    ("pass,fail,pass", "any", BAD, 2),        # stops at the first bad run
    ("pass,fail,pass", "all", GOOD, 1),       # stops at the first good run
    ("fail,fail,fail", "all", BAD, 3),
    ("fail,guest-lost,fail", "all", SKIP, 3),  # not all judged bad: cannot say
    ("pass,guest-lost,pass", "any", SKIP, 3),  # none bad, but one run unjudged
])
def test_repeats(fake, sequence, bad_if, code, runs):
    fake.vng("ok")
    assert fake.run("--repeat", "3", "--bad-if", bad_if, mode="flaky", FAKE_SEQUENCE=sequence) == code
    assert len(fake.calls()) == runs
    assert [s["repeat"] for s in fake.steps() if s["event"] == "run"] == list(range(1, runs + 1))


def test_repeats_stop_when_the_kernel_does_not_boot(fake):
    fake.vng("ok")
    assert fake.run("--repeat", "3", mode="boot-error") == SKIP
    assert len(fake.calls()) == 1


def test_combine_and_settled():
    assert combine(["good", "bad"], 2, "any")[0] == "bad"
    assert combine(["good", "skip"], 2, "any")[0] == "skip"
    assert combine(["bad", "good"], 2, "all")[0] == "good"
    assert combine(["bad", "skip"], 2, "all")[0] == "skip"
    assert settled(["bad"], 3, "any") and not settled(["good"], 3, "any")
    assert settled(["good"], 3, "all") and not settled(["bad"], 3, "all")


def test_step_log_survives_a_torn_line(tmp_path):
    log = StepLog(tmp_path / "x.jsonl")
    log.append({"event": "a"})
    with open(log.path, "a") as handle:
        handle.write('{"event": "cut sho')
    assert [r["event"] for r in log.records()] == ["a"]


# ---------------------------------------------------------------- judging a results file

def test_judge_without_file_is_skip(tmp_path):
    assert judge(tmp_path / "none.json", "k", 1).verdict == "skip"
    assert judge(tmp_path / "none.json", "k", None).reason.startswith("harness timeout")


def test_judge_ignores_other_kernels_and_unit_tests(tmp_path):
    doc = {"format": "kregress-results/2", "kernels": {"k": {"boot_seconds": 2}}, "tests": [
        {"nodeid": "tests/unit/test_u.py::t", "outcome": "failed"},
        {"nodeid": "t[other]", "kernel": "other", "outcome": "failed"},
        {"nodeid": "t[k]", "kernel": "k", "outcome": "passed", "observed": {"a": 1}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    judged = judge(path, "k", 1)
    assert judged.verdict == "good" and judged.behaviour == {"t": {"a": 1}}


def test_case_name_drops_the_kernel_param():
    assert case_name("tests/a.py::t[debian-6.1]", "debian-6.1") == "tests/a.py::t"
    assert case_name("tests/a.py::t[debian-6.1-big]", "debian-6.1") == "tests/a.py::t[big]"
    assert case_name("tests/a.py::t", "k") == "tests/a.py::t"


def test_required_configs_come_from_the_fragment():
    required = required_configs(FRAGMENT)
    assert {"CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_BPF_LSM",
            "CONFIG_DEBUG_INFO_BTF"} <= set(required)
    assert "CONFIG_DRM" not in required


def test_the_fragment_builds_in_everything_the_guest_needs():
    """A bisect build has no modules: whatever the guest loads from modules elsewhere
    (virtio-blk, erofs, fw_cfg ...) must be built in, or preflight refuses every step."""
    from kregress.provision.initramfs import BOOT_NEEDS, missing_config
    required = required_configs(FRAGMENT)
    assert set(BOOT_NEEDS) <= set(required)
    assert missing_config({symbol: "y" for symbol in required}) == []


# ---------------------------------------------------------------- coarse bisection

def run_coarse(behaviours):
    calls = []

    def evaluate(i):
        calls.append(i)
        return behaviours[i]
    return coarse_bisect(len(behaviours), evaluate), calls


@pytest.mark.parametrize("n, change", [(2, 1), (4, 1), (4, 3), (10, 2), (10, 9), (16, 5), (33, 17)])
def test_coarse_finds_the_change_in_log_steps(n, change):
    behaviours = [{"e": "EFAULT"}] * change + [{"e": "OK"}] * (n - change)
    result, calls = run_coarse(behaviours)
    assert (result.last_same, result.first_diff) == (change - 1, change)
    assert len(calls) == len(set(calls)) <= 2 + max(0, (n - 2).bit_length())


def test_coarse_no_change():
    result, calls = run_coarse([{"e": 1}] * 8)
    assert result.first_diff is None and calls == [0, 7]


def test_coarse_skips_unjudged_kernels():
    behaviours = [{"e": 0}, {"e": 0}, None, {"e": 1}, {"e": 1}, None]
    result, calls = run_coarse(behaviours)
    assert (result.last_same, result.first_diff, result.unknown_between) == (1, 3, [2])
    assert calls[:2] == [0, 5] and 4 in calls     # the last could not be judged: its neighbour is used


def test_coarse_first_unjudged():
    result, calls = run_coarse([None, {"e": 1}])
    assert result.last_same is None and calls == [0]


FOUR = textwrap.dedent("""
    [[kernel]]
    id = "k_5.10.223"
    suite = "bullseye"
    [[kernel]]
    id = "k_6.1.158"
    suite = "bookworm"
    [[kernel]]
    id = "k_6.12.57"
    suite = "trixie"
    [[kernel]]
    id = "k_7.3.4"
    suite = "trixie-backports"
    """)


def test_bisect_kernels_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    kernels = tmp_path / "k.toml"
    kernels.write_text(FOUR)
    fake_pytest = tmp_path / "fake_pytest.py"
    fake_pytest.write_text(FAKE_PYTEST)
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("FAKE_MODE", "by-kernel")
    monkeypatch.setenv("FAKE_BEHAVIOUR", json.dumps({
        "k_5.10.223": {"errno": "EFAULT"}, "k_6.1.158": {"errno": "OK"},
        "k_6.12.57": {"errno": "OK"}, "k_7.3.4": {"errno": "OK"}}))
    log = tmp_path / "coarse.jsonl"
    argv = ["--kernels-file", str(kernels), "--run-dir", str(tmp_path / "run"), "--log", str(log),
            "--pytest-command", f"{sys.executable} {fake_pytest}", "--", "tests/test_x.py"]
    assert main_kernels(argv) == 0
    out = capsys.readouterr().out
    assert "between k_5.10.223 (5.10.223, same as k_5.10.223) and k_6.1.158 (6.1.158, first that differs)" in out
    assert "git bisect start v6.1.158 v5.10.223" in out
    assert "boots: 3 kernel(s) booted" in out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["kernel"] for r in records if r["event"] == "kernel"] == ["k_5.10.223", "k_7.3.4", "k_6.1.158"]
    assert records[-1]["first_diff"] == "k_6.1.158" and records[-1]["booted"] == 3
    # started again on the same log: nothing is booted again
    argv[argv.index("--log")] = "--resume"
    assert main_kernels(argv) == 0
    out = capsys.readouterr().out
    assert "boots: 0 kernel(s) booted" in out and "3 reused from the log" in out
    assert len(list((tmp_path / "state").glob("call*"))) == 3


# ---------------------------------------------------------------- scripts/bisect-run, the guard

WRAPPER = SUITE_ROOT / "scripts" / "bisect-run"


def run_wrapper(tmp_path, body: str | None, *args: str) -> int:
    env = dict(os.environ)
    if body is not None:
        env["KREGRESS_BIN"] = str(write_exe(tmp_path / "fake-kregress", "#!/bin/sh\n" + body))
    import subprocess
    return subprocess.run([str(WRAPPER), *args], env=env, capture_output=True, timeout=60).returncode


@pytest.mark.parametrize("body, code", [
    ('exit 1\n', ABORT),                                           # a crash before the verdict: not "bad"
    ('exit 0\n', ABORT),
    ('exit 3\n', ABORT),
    ('exit 200\n', ABORT),
    ('kill -9 $$\n', ABORT),
    ('f=$3; echo 128 > "$f"; exit 128\n', ABORT),
    ('f=$3; echo 1 > "$f"; exit 1\n', BAD),                        # verdict written: believed
    ('f=$3; echo 0 > "$f"; exit 0\n', GOOD),
    ('f=$3; echo 125 > "$f"; exit 125\n', SKIP),
    ('f=$3; echo 0 > "$f"; exit 1\n', ABORT),                      # disagreeing: not believed
])
def test_wrapper_believes_only_a_written_verdict(tmp_path, body, code):
    assert run_wrapper(tmp_path, body, "--", "x") == code


def test_wrapper_with_the_real_kregress(tmp_path):
    assert run_wrapper(tmp_path, None, "--bogus") == ABORT


def test_wrapper_without_kregress_aborts(tmp_path):
    env = {**os.environ, "KREGRESS_BIN": str(tmp_path / "nowhere")}
    import subprocess
    proc = subprocess.run([str(WRAPPER), "--", "x"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == ABORT and "is not there" in proc.stderr


def test_verdict_file_is_written(fake, tmp_path):
    fake.vng("ok")
    verdict = tmp_path / "verdict"
    assert fake.run("--verdict-file", str(verdict), mode="fail") == BAD
    assert verdict.read_text().strip() == "1"


def test_git_terms_only_while_bisecting(tmp_path):
    import subprocess
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    git_dir = tmp_path / ".git"
    (git_dir / "BISECT_TERMS").write_text("fixed\nbuggy\n")
    assert "terms" not in git_info(tmp_path)          # left over from an old bisection
    (git_dir / "BISECT_START").write_text("main\n")
    assert git_info(tmp_path)["terms"] == {"new": "fixed", "old": "buggy"}


def test_fact_comes_from_the_selected_scenario(fake, capsys):
    """Without --fact: the one fact the selected scenario module declares; several: abort, naming them."""
    fake.vng("ok")
    sockops = str(SUITE_ROOT / "tests" / "scenarios" / "test_sockops_flags.py")
    assert fake.run(selection=(sockops, "-k", "alone"), mode="pass") == GOOD
    assert "sockops_hdr_opt = true" in json.loads((fake.root / "state" / "call0").read_text())["kernels_toml"]
    efault = str(SUITE_ROOT / "tests" / "scenarios" / "test_getsockopt_efault.py")
    capsys.readouterr()
    assert fake.run(selection=(efault,), mode="pass") == ABORT
    said = capsys.readouterr().err
    assert "--fact" in said and "getsockopt_relief, getsockopt_retval_in_run_ctx" in said


def test_relative_selection_from_the_kernel_tree(fake, capsys):
    """git bisect run runs us in the kernel tree (the fixture's cwd): a relative selection is read
    from the project root, for the fact lookup and for the run alike."""
    fake.vng("ok")
    assert Path.cwd() != SUITE_ROOT and not Path("tests/scenarios/test_sockops_flags.py").exists()
    assert fake.run(selection=("tests/scenarios/test_sockops_flags.py", "-k", "alone"), mode="pass") == GOOD
    call = fake.calls()[0]
    assert "sockops_hdr_opt = true" in call["kernels_toml"]
    assert str(SUITE_ROOT / "tests" / "scenarios" / "test_sockops_flags.py") in call["argv"] and "alone" in call["argv"]
    assert Path(call["cwd"]) == SUITE_ROOT
    capsys.readouterr()
    assert fake.run(selection=("tests/test_no_such_scenario.py",), mode="pass") == ABORT
    assert "no such test path" in capsys.readouterr().err and len(fake.calls()) == 1


def test_judge_a_refused_attach_like_any_observation(tmp_path):
    """A regression that makes the kernel refuse an attach is a behaviour (bad), never 125:
    the driver reports the refusal, the test fails on it without a harness_error."""
    refused = {"refused": "attach of prio_clone: EOPNOTSUPP"}
    doc = {"format": "kregress-results/2", "kernels": {"k": {"boot_seconds": 2}}, "tests": [
        {"nodeid": "t[k]", "kernel": "k", "outcome": "failed", "observed": refused,
         "expected": {"refused": "nothing"}, "longrepr": "the kernel refused the attach of prio_clone"},
        {"nodeid": "u[k]", "kernel": "k", "outcome": "passed", "observed": {"a": 1}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    judged = judge(path, "k", 1)
    assert (judged.verdict, EXIT_CODES[judged.verdict]) == ("bad", BAD)
    assert judged.behaviour["t"] == refused and not judged.tests[0]["harness_problem"]


def test_a_collection_error_before_any_kernel_aborts(fake):
    """pytest exit 2 (a collection error) or 3 (a plugin crash) with no kernel record: the same at every commit."""
    fake.vng("ok")
    assert fake.run(mode="nothing", FAKE_RC="2") == ABORT


def test_deselect_stays_as_pytest_writes_it():
    from kregress.bisect.run import resolve_selection
    out = resolve_selection(["tests/scenarios/test_getsockopt_efault.py", "--deselect",
                             "tests/scenarios/test_getsockopt_efault.py::test_x"], SUITE_ROOT)
    assert out == [str(SUITE_ROOT / "tests/scenarios/test_getsockopt_efault.py"), "--deselect",
                   "tests/scenarios/test_getsockopt_efault.py::test_x"]
