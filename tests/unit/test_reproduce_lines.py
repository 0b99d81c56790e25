"""The replay commands a failed case carries."""
import shlex

from kregress.paths import PROJECT_ROOT
from kregress.reproduce import commands


def test_drivers_plain_commands_and_reproducers(tmp_path):
    record = {"commands": [["getsockopt_efault", "unknown", "8192", "buggy"], ["cat", "/etc/os-release"],
                           ["whose_cgroup"]],
              "programs_from": {"whose_cgroup": "/src/findings/x"}}
    lines = commands(record, "debian-6.1", PROJECT_ROOT / "kernels.toml")
    assert lines == [
        "kregress exec --kernel debian-6.1 -- getsockopt_efault unknown 8192 buggy",
        "kregress exec --kernel debian-6.1 --shell -- 'cat /etc/os-release'",
        "kregress exec --kernel debian-6.1 --from /src/findings/x -- whose_cgroup"]
    other = tmp_path / "my kernels.toml"
    line = commands(record, "mine", other)[0]
    assert shlex.split(line)[2:6] == ["--kernels-file", str(other.resolve()), "--kernel", "mine"]
    assert commands({}, "k", other) == []
