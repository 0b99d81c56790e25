"""The replay commands a failed case carries."""
import shlex

from kregress.paths import SUITE_ROOT, kregress_command
from kregress.report.reproduce import commands


def test_drivers_plain_commands_and_reproducers(tmp_path):
    record = {"commands": [["getsockopt_efault", "unknown", "8192", "buggy"], ["cat", "/etc/os-release"],
                           ["whose_cgroup"]],
              "programs_from": {"whose_cgroup": "/src/findings/x"}}
    lines = commands(record, "debian-6.1", SUITE_ROOT / "kernels.toml")
    k = kregress_command()
    assert lines == [
        f"{k} exec --kernel debian-6.1 -- getsockopt_efault unknown 8192 buggy",
        f"{k} exec --kernel debian-6.1 --shell -- 'cat /etc/os-release'",
        f"{k} exec --kernel debian-6.1 --from /src/findings/x -- whose_cgroup"]
    other = tmp_path / "my kernels.toml"
    line = commands(record, "mine", other)[0]
    assert shlex.split(line)[2:6] == ["--kernels-file", str(other.resolve()), "--kernel", "mine"]
    assert commands({}, "k", other) == []


def test_the_command_is_the_one_the_readme_gives(monkeypatch, tmp_path):
    """From the project's venv the lines say .venv/bin/kregress, as the README does."""
    import sys
    venv_bin = SUITE_ROOT / ".venv" / "bin"
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    if (venv_bin / "kregress").exists():
        assert kregress_command() == ".venv/bin/kregress"
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert kregress_command() == "kregress"          # no entry point beside it: the PATH's
