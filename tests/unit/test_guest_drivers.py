"""The guest drivers' shared parts, run on the host: one argument convention (the case
table in guest/common.h, whose usage line names every case), and a build whose content key
covers the shared helpers (guest/lib/) and a driver's own parts (guest/NAME/)."""
import json
import shutil
import subprocess

import pytest

from kregress.provision import programs as build
from kregress.paths import SUITE_ROOT

CASE_DRIVERS = {
    "sockopt_contract": ["reject", "optlen_minus_one", "optlen_raise", "retval", "large", "inheritance",
                         "preorder", "mprog", "race"],
    "sockops_flags": ["prog_a_alone", "prog_a_and_b", "storage_workaround", "nested_cgroups"],
    "lsm_priority": ["probe", "post_create", "accept", "whose_cgroup", "from_outside", "compare", "override",
                     "net_raw_xmit", "hierarchy", "detach", "shim_lifetime"],
    "getsockopt_efault": ["unknown", "private", "tos", "peergroups", "sizes"],
    "net_policy": ["tos", "tos_bind", "ports", "rewrite", "hide", "storage"],
    "getsockopt_paths": ["sctp", "packet", "uring"],
}


def usage_error(driver: str, *args: str) -> str:
    proc = subprocess.run([str(build.build(driver).driver), *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout
    return json.loads(proc.stdout)["error"]


@pytest.mark.parametrize("driver", sorted(CASE_DRIVERS))
def test_usage_line_lists_every_case(driver):
    error = usage_error(driver)
    assert error.startswith(f"usage: {driver} ") and error.endswith("(errno EINVAL)")
    named = {word for part in error.removeprefix(f"usage: {driver} ").split(" | ")
             for word in part.split(" ")[0].split("|")}
    assert named == set(CASE_DRIVERS[driver])


@pytest.mark.parametrize("driver, args", [
    ("sockopt_contract", ["no_such_case"]),
    ("sockopt_contract", ["mprog", "both"]),            # not one of get|set
    ("sockopt_contract", ["race"]),                     # CYCLES missing
    ("sockopt_contract", ["reject", "extra"]),
    ("sockops_flags", ["prog_a_and_b", "a_on_parent"]),
    ("lsm_priority", ["probe", "extra"]),
    ("net_policy", ["hide", "both"]),                   # eperm|errno
    ("getsockopt_efault", ["tos", "4", "clever"]),       # PROG is none|buggy|fixed
    ("getsockopt_paths", ["uring", "count"]),            # OPTLEN missing
])
def test_a_case_gets_exactly_its_arguments(driver, args):
    assert usage_error(driver, *args).startswith(f"usage: {driver} ")


def test_a_free_argument_is_the_case_to_check():
    """OPTLEN is any value by the table; the case itself names a bad one."""
    assert "OPTLEN lots" in usage_error("getsockopt_efault", "tos", "lots", "none")


def copy_sources(tmp_path):
    for part in ("progs", "guest"):
        shutil.copytree(SUITE_ROOT / part, tmp_path / part)
    return tmp_path


def test_every_driver_is_compiled_with_the_shared_helpers():
    helpers = sorted(f"guest/lib/{path.name}" for path in (SUITE_ROOT / "guest" / "lib").glob("*.c"))
    assert helpers
    for name in build.scenario_names():
        sources = build.driver_sources(name, SUITE_ROOT)
        assert sources[0] == f"guest/{name}.c" and sources[-len(helpers):] == helpers
    assert "lib" not in build.scenario_names()


def test_a_changed_shared_helper_rebuilds_every_driver(tmp_path):
    root = copy_sources(tmp_path)
    before = {name: build.content_key(name, root) for name in build.scenario_names(root)}
    for changed in ("lib/net.c", "lib/attach.h"):
        with open(root / "guest" / changed, "a") as source:
            source.write("\n/* changed */\n")
        after = {name: build.content_key(name, root) for name in build.scenario_names(root)}
        assert all(after[name] != before[name] for name in before), changed
        before = after


def test_a_drivers_own_part_rebuilds_that_driver_only(tmp_path):
    root = copy_sources(tmp_path)
    before = {name: build.content_key(name, root) for name in build.scenario_names(root)}
    with open(root / "guest" / "lsm_priority" / "shim_cases.c", "a") as source:
        source.write("\n/* changed */\n")
    changed = {name for name in before if build.content_key(name, root) != before[name]}
    assert changed == {"lsm_priority"}


def agent_build_dir(monkeypatch, tmp_path, directory) -> str:
    """Where build_agent would build from these sources (nothing compiled)."""
    seen = []
    monkeypatch.setattr(build, "AGENT_DIR", directory)
    monkeypatch.setattr(build, "_cached", lambda out, lock, make: seen.append(out.name))
    build.build_agent(out_root=tmp_path / "out")
    return seen[-1]


def test_the_agent_is_built_from_all_its_sources(monkeypatch, tmp_path):
    copy = tmp_path / "in_guest"
    shutil.copytree(build.AGENT_DIR, copy)
    assert {path.name for path in build.agent_sources(copy)} >= {"agent.c", "agent.h", "json.c", "command.c"}
    keys = [agent_build_dir(monkeypatch, tmp_path, copy)]
    for changed in ("agent.h", "kmsg.c"):
        with open(copy / changed, "a") as source:
            source.write("\n/* changed */\n")
        keys.append(agent_build_dir(monkeypatch, tmp_path, copy))
    assert len(set(keys)) == 3
