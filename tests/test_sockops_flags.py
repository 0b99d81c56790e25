"""Two sockops programs share one bpf_sock_ops_cb_flags per socket ("Cgroup-bpf
production surprises"): prog_b clearing BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG in
PASSIVE_ESTABLISHED_CB silences prog_a's header-option callbacks on that socket too.

The expectation is "clobbering happens" on every kernel with the header-option callbacks
(fact sockops_hdr_opt); a kernel where it does not is news - flags per program? - and the
failure says so. Each check looks three ways: prog_a's callback counts on the accept()ed
socket, prog_a's option as found by the peer, and the flags the programs read back.
"""
import pytest

pytestmark = pytest.mark.vm

DRIVER = "sockops_flags"
FACT = "sockops_hdr_opt"
WRITE_HDR_OPT = 0x40    # BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
PARSE_ALL_HDR_OPT = 0x10  # BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG, prog_a's observer flag
PROG_A_FLAGS = WRITE_HDR_OPT | PARSE_ALL_HDR_OPT
ORDERS = ["a_first", "b_first"]


@pytest.fixture
def facts(kernel_session, kernel_facts):
    if not kernel_facts.has(FACT):
        pytest.skip(f"{kernel_facts.kernel_id} has no header-option sockops callbacks, so no flag to "
                    f"share: {kernel_facts.why(FACT)}. To run it anyway on a kernel with a backport, set "
                    f"facts = {{ {FACT} = true }} in kernels.toml")
    return kernel_facts


def observe(run_driver, facts, case, *args) -> dict:
    seen = run_driver(DRIVER, case, *args)
    for role in ("passive", "active"):
        rejected = seen[role]["prog_a_rejected_flags"]
        if rejected:
            pytest.fail(f"bpf_sock_ops_cb_flags_set() rejected flag bits {rejected:#x} on the {role} socket: "
                        + facts.contradiction(FACT, False), pytrace=False)
    return seen


def data_count_ok(actual: int, seen: dict) -> bool:
    """Each data segment carries one option; a retransmission (rare even under TCG) adds one."""
    n = seen["data_segments_each_way"]
    return n <= actual <= n + seen["retransmits"]


def flags(value: int) -> str:
    return "never read" if value < 0 else f"{value:#x}"


def check_clobbered(seen: dict, facts, record_behaviour) -> None:
    """prog_b's clear in PASSIVE_ESTABLISHED_CB must stop prog_a on the accept()ed socket."""
    p = seen["passive"]
    # Set-up: both programs really ran on the passive side before the clear.
    assert (p["option_a_seen_by_active_peer_in_synack"], p["option_b_seen_by_active_peer_in_synack"]) == (1, 1), (
        f"both programs' options should be in the SYN-ACK (A, B), got "
        f"({p['option_a_seen_by_active_peer_in_synack']}, {p['option_b_seen_by_active_peer_in_synack']}): {seen}")
    assert p["prog_b_flags_at_established"] & WRITE_HDR_OPT, (
        f"the accepted socket should start with the listener's WRITE_HDR_OPT flag, prog_b read "
        f"{flags(p['prog_b_flags_at_established'])}")
    observed = {
        "passive_hdr_opt_len_after_established": p["prog_a_hdr_opt_len_after_established"],
        "passive_hdr_opt_writes_after_established": p["prog_a_write_hdr_opt_after_established"],
        "option_seen_by_active_peer_on_data": p["option_a_seen_by_active_peer_on_data"],
        "passive_flags_read_by_prog_a_after_established": p["prog_a_flags_read_after_established"],
        "passive_flags_after_prog_b_clear": p["prog_b_flags_after_established"],
    }
    expected = {
        "passive_hdr_opt_len_after_established": 0,
        "passive_hdr_opt_writes_after_established": 0,
        "option_seen_by_active_peer_on_data": 0,
        "passive_flags_read_by_prog_a_after_established": PARSE_ALL_HDR_OPT,
        "passive_flags_after_prog_b_clear": PARSE_ALL_HDR_OPT,
    }
    record_behaviour(observed, expected, why=facts.why(FACT), run_order=seen["run_order"])
    # The three views, each saying whether prog_a was silenced.
    views = {
        "prog_a's HDR_OPT_LEN/WRITE_HDR_OPT callbacks after PASSIVE_ESTABLISHED":
            observed["passive_hdr_opt_len_after_established"] + observed["passive_hdr_opt_writes_after_established"] == 0,
        "option A on data segments at the active peer": observed["option_seen_by_active_peer_on_data"] == 0,
        "WRITE_HDR_OPT flag as prog_a reads it after establishment":
            not observed["passive_flags_read_by_prog_a_after_established"] & WRITE_HDR_OPT,
    }
    detail = (f"observed {observed}\nexpected {expected}\nrun order {seen['run_order']}, "
              f"{seen['data_segments_each_way']} data segments each way")
    if not all(views.values()):
        what = ("no longer silences prog_a on that socket" if not any(views.values()) else
                f"silences prog_a only partly; the three views disagree: {views}")
        pytest.fail(f"BEHAVIOUR CHANGED on {facts.kernel_id} ({facts.version}): prog_b clearing "
                    f"WRITE_HDR_OPT_CB_FLAG in PASSIVE_ESTABLISHED_CB {what} - are bpf_sock_ops_cb_flags "
                    f"per program now? Expected the shared per-socket flags of every kernel with {FACT} "
                    f"({facts.why(FACT)}).\n{detail}", pytrace=False)
    # prog_a is still attached and still runs on the socket (PARSE is not gated by WRITE_HDR_OPT):
    # only the callbacks behind the cleared flag stopped.
    assert p["prog_a_parse_hdr_opt_after_established"] > 0, (
        f"prog_a should still get PARSE_HDR_OPT callbacks on the passive socket, got 0\n{detail}")


def test_prog_a_alone_keeps_writing(run_driver, facts, record_behaviour):
    """Baseline: prog_a alone writes its option on the accepted socket's data segments."""
    seen = observe(run_driver, facts, "prog_a_alone")
    p, n = seen["passive"], seen["data_segments_each_way"]
    observed = {
        "passive_hdr_opt_len_after_established": p["prog_a_hdr_opt_len_after_established"],
        "passive_options_written_on_data": p["prog_a_options_written_on_data_after_established"],
        "option_seen_by_active_peer_on_data": p["option_a_seen_by_active_peer_on_data"],
        "passive_flags_read_by_prog_a_after_established": p["prog_a_flags_read_after_established"],
    }
    expected = {"passive_options_written_on_data": n, "option_seen_by_active_peer_on_data": n,
                "passive_flags_read_by_prog_a_after_established": PROG_A_FLAGS}
    record_behaviour(observed, expected, why=facts.why(FACT))
    detail = f"observed {observed}, expected {expected} (and hdr_opt_len >= {n}); retransmits {seen['retransmits']}"
    assert observed["passive_flags_read_by_prog_a_after_established"] == PROG_A_FLAGS, (
        "the accepted socket should keep the listener's flags (inherited since v5.10): " + detail)
    assert observed["passive_hdr_opt_len_after_established"] >= n, detail
    assert data_count_ok(observed["passive_options_written_on_data"], seen), detail
    assert data_count_ok(observed["option_seen_by_active_peer_on_data"], seen), detail


@pytest.mark.parametrize("order", ORDERS)
def test_prog_b_clear_silences_prog_a(run_driver, facts, record_behaviour, order):
    """prog_a + prog_b in one cgroup, either attach order: prog_a stops writing after
    PASSIVE_ESTABLISHED on the accepted socket, and its option stops arriving."""
    seen = observe(run_driver, facts, "prog_a_and_b", order)
    expected_order = "prog_a,prog_b" if order == "a_first" else "prog_b,prog_a"
    assert seen["run_order"] == expected_order, f"BPF_F_ALLOW_MULTI should run in attach order: {seen['run_order']}"
    check_clobbered(seen, facts, record_behaviour)


@pytest.mark.parametrize("order", ORDERS)
def test_sk_storage_workaround_keeps_both_working(run_driver, facts, record_behaviour, order):
    """Each program keeps its own bool in bpf_sk_storage and nobody clears a flag:
    prog_a writes on every segment, prog_b only in the SYN-ACK, in either order."""
    seen = observe(run_driver, facts, "storage_workaround", order)
    p, n = seen["passive"], seen["data_segments_each_way"]
    observed = {
        "passive_options_written_on_data": p["prog_a_options_written_on_data_after_established"],
        "option_seen_by_active_peer_on_data": p["option_a_seen_by_active_peer_on_data"],
        "passive_flags_read_by_prog_a_after_established": p["prog_a_flags_read_after_established"],
        "option_b_seen_in_synack": p["option_b_seen_by_active_peer_in_synack"],
        "option_b_seen_on_data": p["option_b_seen_by_active_peer_on_data"],
        "prog_b_callbacks_skipped_by_bool": p["prog_b_skipped_by_storage_bool_after_established"],
    }
    expected = {"passive_options_written_on_data": n, "option_seen_by_active_peer_on_data": n,
                "passive_flags_read_by_prog_a_after_established": PROG_A_FLAGS,
                "option_b_seen_in_synack": 1, "option_b_seen_on_data": 0}
    record_behaviour(observed, expected, run_order=seen["run_order"])
    detail = f"observed {observed}\nexpected {expected}; retransmits {seen['retransmits']}"
    assert data_count_ok(observed["passive_options_written_on_data"], seen), "prog_a stopped writing: " + detail
    assert data_count_ok(observed["option_seen_by_active_peer_on_data"], seen), "option A lost: " + detail
    assert observed["passive_flags_read_by_prog_a_after_established"] == PROG_A_FLAGS, detail
    assert (observed["option_b_seen_in_synack"], observed["option_b_seen_on_data"]) == (1, 0), (
        "prog_b should write in the SYN-ACK only: " + detail)
    # prog_b is still called on the established socket (the flag stays on for prog_a);
    # its own bool is what keeps it quiet.
    assert observed["prog_b_callbacks_skipped_by_bool"] > 0, detail


@pytest.mark.parametrize("placement", ["a_on_parent", "b_on_parent"])
def test_parent_and_child_cgroups_clobber_too(run_driver, facts, record_behaviour, placement):
    """prog_a and prog_b on a parent and its child cgroup: the flags are per socket, so it
    is the same as one cgroup."""
    seen = observe(run_driver, facts, "nested_cgroups", placement)
    # the effective array holds the child cgroup's programs first
    expected_order = "prog_b,prog_a" if placement == "a_on_parent" else "prog_a,prog_b"
    assert seen["run_order"] == expected_order, f"effective order {seen['run_order']}, expected {expected_order}"
    check_clobbered(seen, facts, record_behaviour)


@pytest.mark.parametrize("order", ORDERS)
def test_active_side_unaffected(run_driver, facts, record_behaviour, order):
    """prog_b clears only on the passive side: the connecting socket keeps prog_a's flag,
    keeps writing, and the accepted socket (which keeps PARSE_ALL) still sees the option."""
    seen = observe(run_driver, facts, "prog_a_and_b", order)
    a, n = seen["active"], seen["data_segments_each_way"]
    observed = {
        "active_options_written_on_data": a["prog_a_options_written_on_data_after_established"],
        "option_seen_by_passive_peer_on_data": a["option_a_seen_by_passive_peer_on_data"],
        "active_flags_read_by_prog_a_after_established": a["prog_a_flags_read_after_established"],
        "prog_b_hdr_opt_len_on_active": a["prog_b_hdr_opt_len_after_established"],
    }
    expected = {"active_options_written_on_data": n, "option_seen_by_passive_peer_on_data": n,
                "active_flags_read_by_prog_a_after_established": PROG_A_FLAGS}
    record_behaviour(observed, expected, run_order=seen["run_order"])
    detail = f"observed {observed}\nexpected {expected}; retransmits {seen['retransmits']}"
    assert observed["active_flags_read_by_prog_a_after_established"] == PROG_A_FLAGS, detail
    assert data_count_ok(observed["active_options_written_on_data"], seen), detail
    assert data_count_ok(observed["option_seen_by_passive_peer_on_data"], seen), detail
    # The sharing cuts both ways: prog_b never asked for header-option callbacks on the
    # connecting socket, but prog_a's flag calls it there too.
    if observed["prog_b_hdr_opt_len_on_active"] == 0:
        pytest.fail(f"BEHAVIOUR CHANGED on {facts.kernel_id} ({facts.version}): prog_b got no "
                    f"HDR_OPT_LEN callbacks on the connecting socket although prog_a turned the flag on "
                    f"there - are bpf_sock_ops_cb_flags per program now?\n{detail}", pytrace=False)
