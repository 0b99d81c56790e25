"""`kregress check-progs` on programs of our own that stand for what fleets run
(tests/fixture_progs). Per kernel, every battery call's answer with the program attached
must be what the facts say the hook hands the caller (kregress.check_progs.sockopt_model, from the
kernel's own answer without the program), every finding must be explained by a fact, and
the program's verdict (findings or clean) must follow from those expectations."""
from pathlib import Path

import pytest

from kregress.check_progs import findings as checkprogs, guest as progs_guest, sockopt_model

PAGE_CAP = "sockopt_page_cap"
RETVAL_FIRST = "getsockopt_retval_in_run_ctx"
RELIEF = "getsockopt_relief"
NULL_OPTVAL = "getsockopt_null_optval"
# the hook model's facts (kregress.check_progs.sockopt_model), which include the findings' (checkprogs.FACTS_USED)
pytestmark = pytest.mark.scenario(facts=[PAGE_CAP, RETVAL_FIRST, RELIEF, NULL_OPTVAL])

FIXTURES = Path(__file__).parent.parent / "fixture_progs"
# what each fixture answers itself; everything else in the battery is not its business
OWNS = {"original_dst": {"SOL_IP:SO_ORIGINAL_DST (get on tcp)"}}
# a helper the fixture calls -> the fact whose series brought it: without it the load is refused
NEEDS = {"chains_get_retval": RETVAL_FIRST}    # bpf_get_retval, b44123b4a3dc, with c4dcfdd406aa (v5.18)


def observed_caller(call: dict, kernel: list, caller: list, volatile: bool) -> dict:
    if call["op"] == "set":
        return {"errno": caller[0], "value": "kernel's" if caller[2] == kernel[2] else "changed"}
    seen = {"errno": caller[0], "optlen": caller[1], "buffer": "kernel's" if caller[2] == kernel[2] else "changed"}
    if volatile:        # time and counters move between runs: the bytes are not comparable
        del seen["buffer"]
    return seen


def expected_for(call: dict, kernel: list, page: int, program: str, has, volatile: bool) -> dict:
    expected = sockopt_model.expected_caller(call, kernel, page, program, has)
    if expected is None:    # the other hook: the program does not see this call
        expected = {"errno": kernel[0], "value": "kernel's"} if call["op"] == "set" else \
            {"errno": kernel[0], "optlen": kernel[1], "buffer": "kernel's"}
    if volatile:
        expected.pop("buffer", None)
    return expected


def label(call: dict) -> str:
    return f"{call['op']} {call['socket']} {call['level_name']}:{call['optname_name']} {call['size']}"


@pytest.mark.parametrize("fixture", sorted(p.name[:-len(".bpf.c")] for p in FIXTURES.glob("*.bpf.c")))
def test_fixture(fixture, kernel_session, kernel_facts, expect):
    maps = FIXTURES / f"{fixture}.maps.json"
    facts = {PAGE_CAP: kernel_facts.has(PAGE_CAP), RETVAL_FIRST: kernel_facts.has(RETVAL_FIRST),
             RELIEF: kernel_facts.has(RELIEF), NULL_OPTVAL: kernel_facts.has(NULL_OPTVAL)}
    has = facts.__getitem__
    record = progs_guest.check_object(kernel_session, FIXTURES / f"{fixture}.bpf.c", has,
                                      maps=maps if maps.exists() else None)
    raw = record.pop("raw")["sockopt"]      # refused: no calls, no runs
    page = raw.get("page_size")
    off_model, compared, verdicts, expected_verdicts = [], 0, {}, {}
    for run, check in zip(raw.get("runs", []), record["programs"]):
        program, predicted_change = run["program"], False
        for call, before, caller, after in zip(raw.get("calls", []), run["without_before"], run["with"],
                                               run["without_after"]):
            if before[:2] != after[:2]:
                continue        # the kernel's own answer moved: recorded as unstable, judged by nobody
            volatile = before[2] != after[2]
            key = f"{program}: {label(call)}"
            seen = observed_caller(call, before, caller, volatile)
            wanted = expected_for(call, before, page, program, has, volatile)
            compared += 1
            if seen != wanted:
                off_model.append(f"{key}: kernel without it {before}, caller got {seen}, facts say {wanted}")
            owned = checkprogs.owner_key(call) in OWNS.get(fixture, set())
            predicted_change |= wanted != observed_caller(call, before, before, volatile) and not owned
        verdicts[program] = {"status": "findings" if check["findings"] else "clean",
                             "unexplained": sum(not f["explained_by"] for f in check["findings"]),
                             "owns": sorted(check["owned"])}
        expected_verdicts[program] = {"status": "findings" if predicted_change else "clean", "unexplained": 0,
                                      "owns": sorted(OWNS.get(fixture, set()))}
    # compact for the matrix: the verdicts, and only the answers the facts did not predict
    loads = facts[NEEDS[fixture]] if fixture in NEEDS else True
    programs = sorted(name for name, (model, _) in sockopt_model.PROGRAM_FIXTURE.items() if model == fixture)
    exit_code = checkprogs.exit_code(record)
    predicted_exit = 2 if not loads else 1 if any(v["status"] == "findings" for v in expected_verdicts.values()) else 0
    expect({"checked": record["status"] != "could not check", "verdicts": verdicts, "answers_off_model": off_model,
            "exit": exit_code, "not_checked": sorted(item["program"] for item in checkprogs.unchecked(record))},
           {"checked": loads, "verdicts": expected_verdicts, "answers_off_model": [],
            "exit": predicted_exit, "not_checked": [] if loads else programs},
           facts=[PAGE_CAP, RETVAL_FIRST, RELIEF, NULL_OPTVAL],
           note="\n".join(checkprogs.render(record)), page_size=page, answers_compared=compared,
           check_progs=record)
