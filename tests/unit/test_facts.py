import pytest

from kregress.facts import FACTS, KernelFacts, parse_version
from kregress.kernels import upstream_version_of


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
