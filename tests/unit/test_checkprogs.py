"""check-progs' judging layer on recorded guest/check_progs output (Debian 5.10.223 and
6.12.117 under TCG, 2026-12-01): classification, ownership, the hook model, exit status."""
import json
from pathlib import Path

import pytest

from kregress.check_progs import findings as checkprogs, guest as progs_guest, sockopt_model
from kregress.kernels.decision import KernelFacts
from kregress.check_progs.report import programs_section

DATA = Path(__file__).with_name("data") / "check_progs"


def recorded(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def facts_of(kernel_id: str):
    return KernelFacts(kernel_id, {"debian-5.10": "5.10.223", "debian-6.12": "6.12.117"}[kernel_id]).has


def checks(name: str, owns=()):
    kernel_id = "-".join(name.split("-")[:2])
    doc = recorded(name)
    return [checkprogs.check_program(doc, run, kernel_id, facts_of(kernel_id), list(owns)) for run in doc["runs"]]


def kinds(check) -> set[str]:
    return {f.kind for f in check.findings}


def test_ignoring_program_on_510_every_finding_explained():
    get, set_ = checks("debian-5.10-ignores_others")
    assert kinds(get) == {"efault_past_page", "copyout_after_error", "efault_longer_than_buffer", "error_length_lost"}
    (lost,) = [f for f in get.findings if f.kind == "error_length_lost"]    # the length the caller needs, gone
    assert (lost.call["optname_name"], lost.kernel[:2], lost.caller[:2]) == ("SO_PEERGROUPS", ["ERANGE", 4400],
                                                                              ["ERANGE", 4096])
    assert kinds(set_) == {"set_efault_past_page"}
    assert all(f.explained_by for f in get.findings + set_.findings)
    past_page = [f for f in get.findings if f.kind == "efault_past_page"]
    assert all(f.call["optlen_in"] > 4096 and f.caller[0] == "EFAULT" for f in past_page)
    assert {f.call["optname_name"] for f in past_page} >= {"9876 (no handler)", "SO_PEERGROUPS"}


def test_ignoring_program_on_612_only_the_small_buffer_efault():
    get, set_ = checks("debian-6.12-ignores_others")
    assert [(f.call["optname_name"], f.call["size"], f.kind) for f in get.findings] == \
        [("NETLINK_LIST_MEMBERSHIPS", "natural", "efault_longer_than_buffer")]
    assert not set_.findings
    assert checkprogs.status([get, set_]) == "findings"


def test_volatile_answers_compare_errno_and_optlen_only():
    get, _ = checks("debian-6.12-ignores_others")
    doc = recorded("debian-6.12-ignores_others")
    tcp_info = [i for i, c in enumerate(doc["calls"]) if c["optname_name"] == "TCP_INFO" and c["size"] != "null"]
    run = doc["runs"][0]
    assert any(run["without_before"][i][2] != run["without_after"][i][2] for i in tcp_info)     # it does move
    assert not [f for f in get.differences if f.call["optname_name"] == "TCP_INFO"]


def test_original_dst_ownership_inferred_and_declared():
    (inferred,) = checks("debian-5.10-original_dst")
    key = "SOL_IP:SO_ORIGINAL_DST (get on tcp)"
    assert inferred.owned == {key: "inferred"}
    assert key not in {checkprogs.owner_key(f.call) for f in inferred.findings}
    (declared,) = checks("debian-5.10-original_dst", owns=checkprogs.parse_owns(["SOL_IP:SO_ORIGINAL_DST"]))
    assert declared.owned[key] == "declared"
    (by_number,) = checks("debian-5.10-original_dst", owns=checkprogs.parse_owns(["0:80"]))
    assert by_number.owned[key] == "declared"


def test_a_fact_that_does_not_apply_leaves_it_unexplained():
    """EFAULT past a page on a kernel that has the relief: no fact explains it."""
    call = {"op": "get", "optlen_in": 8192, "socket": "tcp", "level_name": "SOL_SOCKET", "optname_name": "X"}
    kind, facts, _ = checkprogs.classify(call, ["ENOPROTOOPT", 8192, "a"], ["EFAULT", 8192, "a"], 4096,
                                         facts_of("debian-6.12"))
    assert (kind, facts) == ("unexplained", [])
    kind, facts, _ = checkprogs.classify(call, ["ENOPROTOOPT", 8192, "a"], ["EFAULT", 8192, "a"], 4096,
                                         facts_of("debian-5.10"))
    assert (kind, facts) == ("efault_past_page", ["getsockopt_relief", "getsockopt_retval_in_run_ctx"])


@pytest.mark.parametrize("name", ["debian-5.10-ignores_others", "debian-5.10-original_dst", "debian-6.12-ignores_others"])
def test_hook_model_predicts_the_recorded_answers(name):
    doc = recorded(name)
    has = facts_of("-".join(name.split("-")[:2]))
    compared = 0
    for run in doc["runs"]:
        for call, before, caller, after in zip(doc["calls"], run["without_before"], run["with"], run["without_after"]):
            expected = sockopt_model.expected_caller(call, before, doc["page_size"], run["program"], has)
            if expected is None or before[2] != after[2]:
                continue
            if call["op"] == "get":
                seen = {"errno": caller[0], "optlen": caller[1], "buffer": "kernel's" if caller[2] == before[2] else "changed"}
            else:
                seen = {"errno": caller[0], "value": "kernel's" if caller[2] == before[2] else "changed"}
            assert seen == expected, (call, before, caller)
            compared += 1
    assert compared > 50


def test_hook_model_on_16k_pages_reset_above_4096_is_harmless_for_others():
    call = {"op": "get", "optlen_in": 8192, "size": "2page", "level_name": "SOL_SOCKET", "optname_name": "X"}
    has = facts_of("debian-6.12")
    kernel = ["OK", 5000, "k"]
    assert sockopt_model.expected_caller(call, kernel, 16384, "get_resets_above_4096", has) == \
        {"errno": "OK", "optlen": 5000, "buffer": "kernel's"}
    assert sockopt_model.expected_caller(call, kernel, 16384, "get_clamps_4096", has) == \
        {"errno": "OK", "optlen": 4096, "buffer": "kernel's"}


def test_owns_and_maps_input_errors(tmp_path):
    with pytest.raises(ValueError, match="LEVEL:OPTNAME"):
        checkprogs.parse_owns(["SO_ORIGINAL_DST"])
    bad = tmp_path / "maps.json"
    bad.write_text('{"cfg": {"0": "ten"}}')
    with pytest.raises(progs_guest.ProgramInputError, match="map 'cfg'"):
        progs_guest.encode_maps(bad)
    good = tmp_path / "good.json"
    good.write_text('{"cfg": {"0": 10}, "raw": [["0x0100", "0xff"]]}')
    assert progs_guest.encode_maps(good) == "cfg 0 10\nraw 0x0100 0xff\n"
    with pytest.raises(progs_guest.ProgramInputError, match="no such file"):
        progs_guest.compile_object(tmp_path / "missing.bpf.o")


def _results(*records) -> dict:
    return {"tests": [{"nodeid": f"tests/test_your_programs.py::test_programs[{i}]", "outcome": "failed",
                       "kernel": "debian-5.10", "extras": {"check_progs": r} if r else {},
                       "longrepr": "BOOT FAILED"} for i, r in enumerate(records)]}


def test_exit_status_and_report_section():
    (check,) = checks("debian-5.10-original_dst")
    base = {"object": "o.bpf.o", "kernel": "debian-5.10", "reproduce": "kregress check-progs --kernel debian-5.10 o.bpf.o"}
    findings = {**base, "status": "findings", "programs": [check.as_record()]}
    clean = {**base, "status": "clean", "programs": [{**check.as_record(), "findings": []}]}
    refused = {**base, "status": "could not check", "programs": [],
               "refused": {"stage": "load", "program": "", "errno": "EINVAL", "strerror": "Invalid argument",
                           "libbpf_log": "libbpf: prog 'x': BPF program load failed"}}
    assert checkprogs.summarise(_results(clean))[1] == 0
    lines, code = checkprogs.summarise(_results(clean, findings))
    assert code == 1 and any("reproduce: kregress check-progs" in line for line in lines)
    lines, code = checkprogs.summarise(_results(findings, refused))
    assert code == 2 and any("COULD NOT CHECK: the kernel refused the load of x: EINVAL" in line for line in lines)
    assert checkprogs.summarise(_results(None))[1] == 2
    html = programs_section(_results(findings, refused))
    assert html.count('<section class="program">') == 2 and "get_original_dst" in html and "EINVAL" in html
    assert programs_section({"tests": []}) == ""


def test_findings_counted_per_kind_most_harmful_first():
    get, _ = checks("debian-5.10-ignores_others")
    record = {"object": "o.bpf.o", "kernel": "debian-5.10", "reproduce": "r", "programs": [get.as_record()]}
    lines = checkprogs.render(record)
    counts = next(line for line in lines if "by kind, most harmful first" in line)
    assert counts.index("efault_past_page") < counts.index("error_length_lost") < counts.index("copyout_after_error")
    listed = [line for line in lines if line.startswith("  - ")]
    ranks = [checkprogs.HARM_ORDER.index(line.rsplit("[", 1)[1].split(";")[0]) for line in listed]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4


def test_truncation_by_the_programs_own_constant_on_16k_pages():
    call = {"op": "get", "optlen_in": 10240, "socket": "unix-mid", "level_name": "SOL_SOCKET",
            "optname_name": "SO_PEERGROUPS", "size": "natural"}
    kind, facts, why = checkprogs.classify(call, ["OK", 10240, "a"], ["OK", 4096, "a"], 16384, facts_of("debian-6.12"))
    assert kind == "truncated" and "a limit of its own" in why and "16384" in why
    assert "BPF sees at most PAGE_SIZE" not in why
    kind, _, why = checkprogs.classify({**call, "optlen_in": 8192}, ["OK", 8192, "a"], ["OK", 4096, "a"], 4096,
                                       facts_of("debian-6.12"))
    assert kind == "truncated" and "BPF sees at most PAGE_SIZE = 4096" in why


def test_owns_hint_where_the_program_answers_an_option_itself():
    finding = {"call": {"op": "get", "level_name": "SOL_IP", "optname_name": "SO_ORIGINAL_DST", "socket": "tcp",
                        "optlen_in": 4096, "size": "page"},
               "kernel": ["ENOENT", 4096, "a"], "caller": ["OK", 16, "b"], "kind": "unexplained",
               "explained_by": [], "why": "w"}
    check = {"program": "p", "section": "cgroup/getsockopt", "findings": [finding], "owned": {}}
    lines = checkprogs.render({"object": "o", "kernel": "k", "reproduce": "r", "programs": [check]})
    assert any("--owns SOL_IP:SO_ORIGINAL_DST" in line for line in lines)


def not_checked_record(**extra) -> dict:
    return {"object": "router.bpf.o", "kernel": "debian-6.12", "reproduce": "r", "status": "not checked",
            "programs": [], "not_checked": [{"program": "router", "section": "sockops",
                                             "why": checkprogs.NOT_CHECKED_WHY}], **extra}


def test_a_program_nothing_looked_at_is_never_clean():
    assert checkprogs.status([], [{"program": "router"}]) == "not checked"
    assert checkprogs.status([]) == "clean"
    lines, code = checkprogs.summarise(_results(not_checked_record()))
    assert code == 2
    assert f"router (sockops) on debian-6.12: NOT CHECKED: {checkprogs.NOT_CHECKED_WHY}" in "\n".join(lines)
    html = programs_section(_results(not_checked_record()))
    assert 'class="fail">not checked' in html and "sockops" in html
    assert checkprogs.unchecked_in(_results(not_checked_record())) == [
        f"not checked: router (sockops) of router.bpf.o on debian-6.12: {checkprogs.NOT_CHECKED_WHY}"]
    old = {"object": "o", "kernel": "k", "not_checked": ["legacy_name"]}          # older records: bare names
    assert checkprogs.unchecked(old)[0]["program"] == "legacy_name"


def test_a_refused_object_names_the_helper_the_program_and_what_went_unchecked():
    log = ("libbpf: prog 'get_chains_politely': BPF program load failed: Invalid argument\n"
           "libbpf: prog 'get_chains_politely': -- BEGIN PROG LOAD LOG --\n0: R1=ctx(id=0,off=0,imm=0)\n"
           "invalid func unknown#186\n")
    refused = {"stage": "load", "program": "", "errno": "EINVAL", "strerror": "Invalid argument", "libbpf_log": log}
    record = {"object": "lb.bpf.o", "kernel": "debian-5.10", "reproduce": "r", "status": "could not check",
              "programs": [], "refused": refused,
              "not_checked": [{"program": "get_chains_politely", "section": "cgroup/getsockopt",
                               "why": "the kernel refused it (above)"},
                              {"program": "set_chains", "section": "cgroup/setsockopt",
                               "why": "not run: the kernel refused get_chains_politely, so the object's checks did not run"}]}
    text = "\n".join(checkprogs.render(record))
    assert "the kernel refused the load of get_chains_politely: EINVAL" in text and "load  refused" not in text
    assert "does not know bpf_get_retval (helper 186, which came with b44123b4a3dc in v5.18)" in text
    assert "set_chains (cgroup/setsockopt) on debian-5.10: NOT CHECKED" in text
    merged = {**refused, "libbpf_log": "libbpf: prog 'get_x': BPF program load failed\n"
                                       "invalid bpf_context access off=32 size=8\n"}
    hints = checkprogs.refusal_hints(merged, "debian-6.12")
    assert len(hints) == 1 and "ctx->optlen and ctx->retval" in hints[0] and "barrier" in hints[0]
    assert checkprogs.refused_program(merged) == "get_x"


def test_several_objects_get_a_together_test():
    from types import SimpleNamespace
    from kregress.check_progs.options import pytest_generate_tests
    seen = {}
    metafunc = SimpleNamespace(fixturenames=["user_program"],
                               config=SimpleNamespace(option=SimpleNamespace(progs=[Path("a.bpf.o"), Path("b.bpf.o")])),
                               parametrize=lambda name, params, ids: seen.update(params=params, ids=ids))
    pytest_generate_tests(metafunc)
    assert seen["ids"] == ["a.bpf.o", "b.bpf.o", "together"] and seen["params"][2] == (Path("a.bpf.o"), Path("b.bpf.o"))
    metafunc.config.option.progs = [Path("a.bpf.o")]
    pytest_generate_tests(metafunc)
    assert seen["ids"] == ["a.bpf.o"]
