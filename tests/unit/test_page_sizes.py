"""The getsockopt scenario's sizes come from the page size, not from constants: the
driver's own derivation (`getsockopt_efault sizes PAGE`), run on the host for the page
sizes Linux has (4K x86_64/arm64, 16K and 64K arm64)."""
import json
import subprocess

import pytest

from kregress.provision import programs as build


@pytest.fixture(scope="module")
def driver():
    return build.build("getsockopt_efault").driver


@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_optlens_and_groups_follow_the_page_size(driver, page):
    sizes = json.loads(subprocess.run([str(driver), "sizes", str(page)], capture_output=True, text=True,
                                      check=True).stdout)
    assert (sizes["page"], sizes["page+1"], sizes["2page"]) == (page, page + 1, 2 * page)
    assert sizes["groups"] * 4 > page                  # SO_PEERGROUPS answers more than a page
    assert sizes["groups"] * 4 < 2 * page              # ... and fits the 2-page buffer
    if page == 4096:
        assert sizes["groups"] == 1100                  # the talk's numbers on 4K pages


def test_bad_optlen_is_named(driver):
    proc = subprocess.run([str(driver), "tos", "lots", "none"], capture_output=True, text=True)
    assert proc.returncode == 2 and "OPTLEN lots" in json.loads(proc.stdout)["error"]


def test_no_program_hard_codes_a_4k_page():
    """The page size reaches BPF programs as data (a .rodata page_size the driver sets before
    the load), so the programs follow the guest's page: no 4096 in their code."""
    import re
    from kregress.paths import SUITE_ROOT
    for source in sorted((SUITE_ROOT / "progs").glob("*.[ch]")):
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source.read_text(), flags=re.S)
        assert not re.search(r"\b(4096|0x1000)\b", code), f"{source.name}: a 4 KiB constant where the page size is meant"
