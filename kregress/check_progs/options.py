"""pytest options for kregress/check_progs/your_programs.py: the user's programs and what they own."""
from __future__ import annotations

from pathlib import Path


def pytest_addoption(parser):
    group = parser.getgroup("kregress-progs", "your programs (kregress check-progs)")
    group.addoption("--progs", nargs="+", type=Path, default=[], metavar="OBJECT",
                    help="programs to check (cgroup sockopt, socket policies, sockops): OBJECT.bpf.o "
                         "(libbpf-style sections) or OBJECT.bpf.c; several: each, and their sockops programs together")
    group.addoption("--owns", action="append", default=[], metavar="LEVEL:OPTNAME",
                    help="an option the programs answer themselves (repeatable), e.g. SOL_IP:SO_ORIGINAL_DST")
    group.addoption("--maps", type=Path, default=None, metavar="FILE",
                    help="JSON: map name -> key/value pairs filled in after loading")


def pytest_generate_tests(metafunc):
    """One test per object; with several, one more for all of them together (their sockops
    programs on one cgroup, as several teams' programs run on one host)."""
    if "user_program" in metafunc.fixturenames:
        progs = metafunc.config.option.progs or [None]
        params = progs + ([tuple(progs)] if len(progs) > 1 else [])
        metafunc.parametrize("user_program", params,
                             ids=[p.name if isinstance(p, Path) else "together" if p else "no-progs" for p in params])
