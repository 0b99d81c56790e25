"""The upgrade gate on real kernels: two real runs of the getsockopt case that depends on two
facts, on debian-6.12. The first with the kernels file's facts as they are; the second with a
kernels file stating false facts (that the kernel lacks the relief fix and the v5.18 retval
rework, as tests/harness/test_reproduce.py does), so the case expects EFAULT, sees ENOPROTOOPT and
fails. The facts it names flip between the two runs, which once made `kregress compare` call
the change explained: a worse outcome must gate whatever facts flip. And the verdict table
puts both facts in question instead of contradicting each."""
import json
import subprocess

from nested import run_pytest

from kregress.paths import SUITE_ROOT


CASE = "tests/scenarios/test_getsockopt_efault.py::test_unknown_option_big_optlen"
KERNEL = 'id = "debian-6.12"\nsuite = "trixie"\n'
FALSE_FACTS = "facts = { getsockopt_relief = false, getsockopt_retval_in_run_ctx = false }\n"
FACTS = ("getsockopt_relief", "getsockopt_retval_in_run_ctx")


def kregress(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SUITE_ROOT / ".venv/bin/kregress"), *args], capture_output=True, text=True,
                          timeout=120)


def test_compare_gates_a_real_failure_even_when_the_named_facts_flip(tmp_path):
    runs = {}
    for name, facts in (("truthful", ""), ("false-facts", FALSE_FACTS)):
        kernels = tmp_path / f"{name}.toml"
        kernels.write_text(f"[[kernel]]\n{KERNEL}{facts}")
        runs[name] = tmp_path / name
        proc = run_pytest([CASE], runs[name], kernels, timeout=900)
        assert proc.returncode == (1 if facts else 0), proc.stdout[-3000:]
    old, new = (runs[name] / "results.json" for name in ("truthful", "false-facts"))
    [before] = [t for t in json.loads(old.read_text())["tests"] if t.get("kernel")]
    [after] = [t for t in json.loads(new.read_text())["tests"] if t.get("kernel")]
    assert (before["outcome"], after["outcome"]) == ("passed", "failed")
    # the kernel is the same (its own answer without a program, pinned, and through the program)
    same = {"errno_without_program": "ENOPROTOOPT", "errno": "ENOPROTOOPT"}
    assert before["observed"] == after["observed"] == same
    assert after["expected"] == {"errno_without_program": "ENOPROTOOPT", "errno": "EFAULT"}

    gate = kregress("compare", str(old), str(new))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    last = gate.stdout.rstrip().splitlines()[-1]
    assert last == ("compare: FAIL: debian-6.12 -> debian-6.12 (1 case(s)): gated by 1: "
                    "WORSE test_unknown_option_big_optlen (passed -> failed)"), gate.stdout
    assert f"  WORSE       {CASE}: passed -> failed" in gate.stdout
    # the other way round the same case got better: nothing gates
    back = kregress("compare", str(new), str(old))
    assert back.returncode == 0 and back.stdout.rstrip().endswith("nothing worse, missing, unexplained or bringing an unaccepted known defect"), back.stdout

    # verdicts: the truthful run agrees; the false one puts both facts in question, contradicting neither
    assert kregress("verdicts", str(old)).returncode == 0
    table = tmp_path / "verdicts.json"
    verdicts = kregress("verdicts", str(new), "--json", str(table))
    assert verdicts.returncode == 1, verdicts.stdout
    rows = {row["fact"]: row for row in json.loads(table.read_text())}
    assert set(rows) == set(FACTS)
    for name in FACTS:
        assert (rows[name]["state"], rows[name]["verdict"], rows[name]["against"]) == ("lacks", "IN QUESTION", [])
        assert rows[name]["decided_by"] == "kernels.toml"
    assert "CONTRADICTION" not in verdicts.stdout.replace("0 CONTRADICTION", "")
