"""A failing case carries the commands that replay it on its kernel, and running them
reproduces what the case observed. The failure is made for real: a kernels file that
states false facts about debian-6.12 (that it lacks the relief fix and the v5.18 retval
rework, either of which lets the kernel's own errno through), so the getsockopt case
expects EFAULT and sees ENOPROTOOPT."""
import json
import shlex
import subprocess

from nested import run_pytest

from kregress.paths import SUITE_ROOT, kregress_command


CASE = "tests/scenarios/test_getsockopt_efault.py::test_unknown_option_big_optlen"
DEBIAN_6_12 = 'id = "debian-6.12"\nsuite = "trixie"\n'


def test_a_failed_case_carries_commands_that_reproduce_it(tmp_path):
    kernels = tmp_path / "kernels.toml"
    kernels.write_text(f"[[kernel]]\n{DEBIAN_6_12}facts = {{ getsockopt_relief = false, getsockopt_retval_in_run_ctx = false }}\n")
    run_dir = tmp_path / "run"
    proc = run_pytest([CASE], run_dir, kernels, timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:]
    [case] = [t for t in json.loads((run_dir / "results.json").read_text())["tests"] if t.get("kernel")]
    assert case["outcome"] == "failed"
    assert case["reproduce"] and all(line in case["longrepr"] for line in case["reproduce"])
    assert "reproduce on debian-6.12" in proc.stdout           # in the failure message itself
    for report in ("report.html", "junit.xml", "kcidb.json"):       # and in every report of the run
        assert case["reproduce"][-1].split(" -- ")[-1] in (run_dir / report).read_text(), report

    # the last command is the one the verdict is about (the program attached)
    replay = shlex.split(case["reproduce"][-1])
    assert replay[:2] == [kregress_command(), "exec"] and "--kernels-file" in replay
    out = subprocess.run([str(SUITE_ROOT / ".venv/bin/kregress"), *replay[1:]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["errno"] == case["observed"]["errno"], (out.stdout, case["observed"])
