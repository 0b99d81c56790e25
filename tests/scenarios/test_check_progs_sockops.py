"""`kregress check-progs` on sockops programs of our own that stand for the talk's pair and a
router from the field (tests/sockops_progs): per kernel, a program that clears a header-option
flag silences the reference program beside it (and the object's own header-option program), one
that keeps its own bool in bpf_sk_storage silences nobody, and the read-only probe changes
nothing. The later writers of the same words answer as the facts say: where the kernel has
TCP_BPF_SOCK_OPS_CB_FLAGS (3882dccf48f9) another program can set the cleared flag back and the
silence ends, elsewhere bpf_setsockopt refuses it (EINVAL); where it has SK_BPF_CB_FLAGS
(24e82b7c045b) a second program's write replaces the first's. The expectations come from what
each fixture does to the flags and the facts (one flag byte per socket: sockops_hdr_opt,
0813a841566f), never from a run."""
from pathlib import Path

import pytest

from kregress.check_progs import findings as checkprogs, guest as progs_guest

FACT = "sockops_hdr_opt"
RESTORE = "sockops_cb_flags_setsockopt"
CB_WORD = "sk_bpf_cb_flags"
pytestmark = pytest.mark.scenario(facts=[FACT, RESTORE, CB_WORD])

FIXTURES = Path(__file__).parent.parent / "sockops_progs"
# what each fixture does: the programs that clear a header-option flag another may need, and
# the directions whose data segments then lose the other programs' options (passive side:
# to_client; active side: to_server)
CLEARS = {"prog_a_alone": {}, "clobber_pair": {"prog_b": ["to_client"]}, "storage_pair": {},
          "router": {"route": ["to_client", "to_server"]}}
# the object's own header-option program that goes quiet beside the clearing one
OWN_VICTIM = {"clobber_pair": "prog_a (its option 254:0xa1a1)"}


@pytest.mark.parametrize("fixture", sorted(CLEARS))
def test_sockops_fixture(fixture, kernel_session, kernel_facts, expect):
    maps = FIXTURES / f"{fixture}.maps.json"
    has = {name: kernel_facts.has(name) for name in (FACT, RESTORE, CB_WORD)}.__getitem__
    record = progs_guest.check_object(kernel_session, FIXTURES / f"{fixture}.bpf.c", has,
                                      maps=maps if maps.exists() else None, hdr_opt=has(FACT))
    record.pop("raw", None)
    check = record.get("sockops") or {}
    found = check.get("findings", [])
    silences = {f["program"]: sorted(d for d in f["lost"] if d.startswith("to_")) for f in found
                if f["victim"].startswith("the reference")}
    own = sorted(f["victim"] for f in found if not f["victim"].startswith("the reference"))
    wanted = CLEARS[fixture] if has(FACT) else {}
    observed = {"status": record["status"], "exit": checkprogs.exit_code(record),
                "silences_reference": silences, "silences_own": own,
                "probe_neutral": check.get("probe_neutral"),
                "reference_wrote_both_ways": all(check.get("reference_alone", {}).get(d, 0) > 0
                                                 for d in ("to_server", "to_client")),
                "explained": all(f["explained_by"] == [FACT] for f in found)}
    writers = check.get("later_writers", {})
    restores = writers.get(RESTORE, {}).get("restores", {})
    observed["restore"] = {p: [r["setsockopt"]["passive"], r["silence_ended"]] for p, r in restores.items()}
    word = writers.get(CB_WORD, {})
    observed["cb_word"] = [word.get("first_set"), word.get("word_after") if word.get("read_back") == "OK" else None]
    expected = {"status": "findings" if wanted else "clean", "exit": 1 if wanted else 0,
                "silences_reference": wanted, "silences_own": [OWN_VICTIM[fixture]] if fixture in OWN_VICTIM else [],
                "probe_neutral": True, "reference_wrote_both_ways": True, "explained": True,
                "restore": {p: ["OK", True] if has(RESTORE) else ["EINVAL", False] for p in wanted},
                "cb_word": ["OK", 0] if has(CB_WORD) else ["EINVAL", None]}
    expect(observed, expected, facts=[FACT, RESTORE, CB_WORD], note="\n".join(checkprogs.render(record)), check_progs=record)


def test_sockops_objects_together(kernel_session, kernel_facts, expect):
    """Two teams' objects on one cgroup (check-progs with several objects): the router of one
    silences the other's header-option program, across objects."""
    has = {name: kernel_facts.has(name) for name in (FACT, RESTORE, CB_WORD)}.__getitem__
    record = progs_guest.check_together(kernel_session, [FIXTURES / "prog_a_alone.bpf.c", FIXTURES / "router.bpf.c"],
                                        has, maps=FIXTURES / "router.maps.json")
    found = (record.get("sockops") or {}).get("findings", [])
    observed = {"status": record["status"], "programs": (record.get("sockops") or {}).get("programs"),
                "silenced": sorted((f["program"], f["victim"]) for f in found)}
    wanted = [("router/route", "prog_a_alone/prog_a (its option 254:0xa1a1)"),
              ("router/route", "the reference (another team's header-option program)")] if has(FACT) else []
    expect(observed, {"status": "findings" if wanted else "clean", "programs": ["prog_a_alone/prog_a", "router/route"],
                      "silenced": wanted},
           facts=[FACT, RESTORE, CB_WORD], note="\n".join(checkprogs.render(record)), check_progs=record)
