"""check-progs on an object whose programs it does not check yet (cgroup/connect4): on every kernel
the object is "not checked", each program named with its section, and the exit is 2, never a clean
pass. Whether a kernel can check such programs is not a kernel fact but check-progs' own reach,
so the expectation is the same everywhere."""
import re
from pathlib import Path

import pytest

from kregress.check_progs import findings as checkprogs, guest as progs_guest

pytestmark = pytest.mark.scenario(facts=[])

OBJECTS = {"connect4": Path(__file__).parent.parent / "unchecked_progs" / "connect4_port.bpf.c"}
PROGRAM = re.compile(r'SEC\("([^".]+)"\)\s*\n\s*int\s+(\w+)\(')


def programs_in(source: Path) -> dict[str, str]:
    """program name -> section, read from the source the object is built from."""
    return {name: section for section, name in PROGRAM.findall(source.read_text())}


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_unchecked_object_is_never_clean(kind, kernel_session, expect):
    source = OBJECTS[kind]
    record = progs_guest.check_object(kernel_session, source, lambda fact: False)   # no run: no fact consulted
    record.pop("raw", None)
    lines, code = checkprogs.render(record), checkprogs.exit_code(record)
    unchecked = {item["program"]: item["section"] for item in checkprogs.unchecked(record)}
    expect({"status": record["status"], "exit": code, "not_checked": unchecked, "checked": len(record["programs"])},
           {"status": "not checked", "exit": 2, "not_checked": programs_in(source), "checked": 0},
           note="\n".join(lines), check_progs=record)
