import pytest

from kregress.kernels.decision import KernelFacts
from kregress.kernels.facts import FACTS, parse_version
from kregress.kernels.kernel import upstream_version_of


@pytest.mark.parametrize("debian, upstream", [
    ("6.1.176-1", "6.1.176"), ("7.3.4-1~bpo13+1", "7.3.4"), ("6.13~rc6-1~exp1", "6.13.0"),
    ("5.10.223-1", "5.10.223"), ("garbage", None)])
def test_upstream_version_from_debian_version(debian, upstream):
    assert upstream_version_of(debian) == upstream


@pytest.mark.parametrize("version, has_fix", [
    ("5.10.223", False),   # never backported to 5.10.y
    ("5.15.120", False), ("5.15.121", True),
    ("6.1.38", False), ("6.1.39", True), ("6.1.176", True),
    ("6.4.16", False),     # 6.4.y: not in the stable list
    ("6.5.0", True), ("6.12.107", True), ("7.3.4", True)])
def test_relief_fix_by_version(version, has_fix):
    assert KernelFacts("k", version).has("getsockopt_relief") is has_fix


def test_mainline_only_facts():
    assert not KernelFacts("k", "5.10.223").has("lsm_cgroup")
    assert KernelFacts("k", "6.0.0").has("lsm_cgroup")
    assert KernelFacts("k", "5.10.0").has("sockops_hdr_opt")
    assert not KernelFacts("k", "5.9.16").has("sockops_hdr_opt")


@pytest.mark.parametrize("version, deferred, not_revived", [
    ("6.1.166", False, False), ("6.1.176", False, True),     # frees the shim at once; UAF fix from 6.1.167
    ("6.5.0", True, False), ("6.12.76", True, False),         # deferred, a dying shim is revived
    ("6.12.77", True, True), ("6.12.107", True, True),        # deferred, a second shim beside it
    ("6.19.6", True, False), ("6.19.7", True, True), ("7.3.4", True, True)])
def test_lsm_cgroup_shim_lifetime_facts(version, deferred, not_revived):
    facts = KernelFacts("k", version)
    assert facts.has("bpf_link_put_deferred") is deferred
    assert facts.has("lsm_cgroup_shim_not_revived") is not_revived


def test_kernels_toml_override_beats_version():
    facts = KernelFacts("src", "6.1.10", {"getsockopt_relief": True})
    assert facts.has("getsockopt_relief")
    assert "kernels.toml states getsockopt_relief = true" in facts.why("getsockopt_relief")


def test_contradiction_message_names_kernel_version_and_fix():
    message = KernelFacts("debian-5.10", "5.10.223").contradiction("getsockopt_relief", observed_present=True)
    assert message.startswith("debian-5.10 (5.10.223) behaves with 29ebbba7d461")
    assert "but its version says it lacks it" in message


def test_unknown_version_says_how_to_fix():
    with pytest.raises(LookupError, match=r"set version = \"X.Y.Z\" or facts = \{ lsm_cgroup = true/false \}"):
        KernelFacts("local", None).has("lsm_cgroup")


def test_every_fact_has_commit_and_release():
    for fact in FACTS.values():
        assert len(fact.commit) == 12 and fact.mainline >= (5, 0), fact
    assert parse_version("6.12") == (6, 12, 0)


def test_order_of_trust_stated_binary_changelog_version():
    evidence = {"getsockopt_relief": {"binary": "present", "changelog": "unknown"}}
    facts = KernelFacts("deb61-claims-5.10", "5.10.0", {}, evidence)
    assert facts.has("getsockopt_relief") and facts.decided_by("getsockopt_relief") == "binary"
    assert facts.disagreements("getsockopt_relief") == ["version"]
    assert "its binary says it has" in facts.why("getsockopt_relief")
    assert "version says lacks it" in facts.why("getsockopt_relief")
    stated = KernelFacts("k", "5.10.0", {"getsockopt_relief": False}, evidence)
    assert not stated.has("getsockopt_relief") and stated.decided_by("getsockopt_relief") == "kernels.toml"
    changelog_only = KernelFacts("k", None, {}, {"lsm_cgroup": {"binary": "unknown", "changelog": "present"}})
    assert changelog_only.has("lsm_cgroup") and changelog_only.decided_by("lsm_cgroup") == "changelog"
    assert facts.used == {"getsockopt_relief"}     # what the test asked about, for its record


# what Debian's configs say (bookworm arm64 6.1.176 and trixie arm64 6.12 /boot/config-*)
LSM_CONFIG = {"CONFIG_BPF_LSM": "y", "CONFIG_CGROUP_BPF": "y", "CONFIG_DEBUG_INFO_BTF": "y", "CONFIG_BPF_JIT": "y"}
WITH_DIRECT_CALLS = {**LSM_CONFIG, "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS": "y"}


def test_lsm_cgroup_on_arm64_needs_ftrace_direct_calls():
    bookworm = KernelFacts("debian-6.1-arm64", "6.1.176", arch="arm64", config=LSM_CONFIG,
                           config_source="boot/config-6.1.0-50-arm64")
    assert bookworm.state("lsm_cgroup") == "unusable" and bookworm.has("lsm_cgroup")
    assert bookworm.unusable_reason("lsm_cgroup") == "arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"
    summary = bookworm.summary("lsm_cgroup")
    assert (summary["expected"], summary["state"], summary["reason"]) == (
        True, "unusable", "arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS")
    assert summary["config_needs"]["CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"] == "unset"
    assert bookworm.unusable_skip("lsm_cgroup").startswith(
        "unusable here: lsm_cgroup: arm64 kernel without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS (its config: "
        "config-6.1.0-50-arm64); 6.1.176 carries 69fd337a975c")
    # a kernel that runs the programs anyway contradicts its config
    assert "says it cannot use it here: arm64 kernel without" in bookworm.contradiction("lsm_cgroup", True)
    # the other facts need nothing arm64-specific
    assert bookworm.state("getsockopt_relief") == "has"

    trixie = KernelFacts("debian-6.12-arm64-16k", "6.12.117", arch="arm64", config=WITH_DIRECT_CALLS)
    assert trixie.state("lsm_cgroup") == "has" and "reason" not in trixie.summary("lsm_cgroup")
    # x86_64 attaches trampolines without ftrace direct calls
    assert KernelFacts("debian-6.1", "6.1.176", config=LSM_CONFIG).state("lsm_cgroup") == "has"


def test_options_every_arch_needs_and_what_no_config_means():
    no_bpf_lsm = {k: v for k, v in LSM_CONFIG.items() if k != "CONFIG_BPF_LSM"}
    facts = KernelFacts("own", "6.12.1", config=no_bpf_lsm)
    assert facts.unusable_reason("lsm_cgroup") == "kernel without CONFIG_BPF_LSM"
    # lacking the commit stays "lacks", whatever the config
    assert KernelFacts("debian-5.10-arm64", "5.10.223", arch="arm64", config=LSM_CONFIG).state("lsm_cgroup") == "lacks"
    # no config: nothing says it is unusable, and the record says the config is unknown
    unknown = KernelFacts("own", "6.12.1", arch="arm64")
    assert unknown.state("lsm_cgroup") == "has"
    assert unknown.summary("lsm_cgroup")["config_needs"] == "unknown: no config found"


@pytest.mark.parametrize("version, set_retval, bind_rewrite, storage_shared, bind_sockopt", [
    ("5.8.18", False, False, False, False), ("5.9.0", False, False, True, False),
    ("5.10.223", False, False, True, False), ("5.11.0", False, False, True, True),
    ("5.12.0", False, True, True, True), ("5.17.15", False, True, True, True), ("5.18.0", True, True, True, True),
    ("6.1.176", True, True, True, True)])
def test_net_policy_facts_by_version(version, set_retval, bind_rewrite, storage_shared, bind_sockopt):
    facts = KernelFacts("k", version)
    assert facts.has("bind_sockopt_helpers") is bind_sockopt
    assert facts.has("cgroup_set_retval") is set_retval
    assert facts.has("bind_rewrite_privileged_port") is bind_rewrite
    assert facts.has("cgroup_storage_shared") is storage_shared
