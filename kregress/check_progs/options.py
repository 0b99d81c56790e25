"""pytest options for tests/test_your_programs.py: the user's programs and what they own."""
from __future__ import annotations

from pathlib import Path


def pytest_addoption(parser):
    group = parser.getgroup("kregress-progs", "your programs (kregress check-progs)")
    group.addoption("--progs", nargs="+", type=Path, default=[], metavar="OBJECT",
                    help="cgroup sockopt programs to check: OBJECT.bpf.o (libbpf-style sections) or OBJECT.bpf.c")
    group.addoption("--owns", action="append", default=[], metavar="LEVEL:OPTNAME",
                    help="an option the programs answer themselves (repeatable), e.g. SOL_IP:SO_ORIGINAL_DST")
    group.addoption("--maps", type=Path, default=None, metavar="FILE",
                    help="JSON: map name -> key/value pairs filled in after loading")


def pytest_generate_tests(metafunc):
    if "user_program" in metafunc.fixturenames:
        progs = metafunc.config.option.progs or [None]
        metafunc.parametrize("user_program", progs, ids=[p.name if p else "no-progs" for p in progs])
