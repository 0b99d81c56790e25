"""Two sockops programs share one bpf_sock_ops_cb_flags per socket ("Cgroup-bpf
production surprises"): prog_b clearing BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG in
PASSIVE_ESTABLISHED_CB silences prog_a's header-option callbacks on that socket too.

The expectation is "clobbering happens" on every kernel with the header-option callbacks
(fact sockops_hdr_opt); a kernel where it does not is news - flags per program? - and the
failure says so. Each check looks three ways: prog_a's callback counts on the accept()ed
socket, prog_a's option as found by the peer, and the flags the programs read back.
"""
import pytest

pytestmark = pytest.mark.scenario(facts=["sockops_hdr_opt"])

DRIVER = "sockops_flags"
FACT = "sockops_hdr_opt"
WRITE_HDR_OPT = 0x40    # BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
PARSE_ALL_HDR_OPT = 0x10  # BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG, prog_a's observer flag
PROG_A_FLAGS = WRITE_HDR_OPT | PARSE_ALL_HDR_OPT
ORDERS = ["a_first", "b_first"]


@pytest.fixture
def facts(kernel_session, kernel_facts, precondition):
    if not kernel_facts.has(FACT):      # a named skip; for a backport: facts = { sockops_hdr_opt = true }
        precondition("header-option sockops callbacks (WRITE_HDR_OPT)", False, facts=[FACT],
                     reason="no flag for the programs to share on this kernel")
    return kernel_facts


def observe(run_driver, case, *args) -> dict:
    return run_driver(DRIVER, case, *args)


def rejected_flags(seen: dict) -> dict:
    """Flag bits bpf_sock_ops_cb_flags_set() refused per side: none where the facts say the
    kernel has the header-option callbacks."""
    return {f"{role}_flag_bits_rejected": seen[role]["prog_a_rejected_flags"] for role in ("passive", "active")}


def counts(seen: dict, role: str) -> dict:
    """The raw numbers behind the booleans (they vary with retransmissions)."""
    return {**seen[role], "data_segments_each_way": seen["data_segments_each_way"], "retransmits": seen["retransmits"]}


def data_count_ok(actual: int, seen: dict) -> bool:
    """Each data segment carries one option; a retransmission (rare even under TCG) adds one."""
    n = seen["data_segments_each_way"]
    return n <= actual <= n + seen["retransmits"]


def flags(value: int) -> str:
    return "never read" if value < 0 else f"{value:#x}"


def check_clobbered(seen: dict, expect, order: str) -> None:
    """prog_b's clear in PASSIVE_ESTABLISHED_CB must stop prog_a on the accept()ed socket."""
    p = seen["passive"]
    observed = {
        **rejected_flags(seen),
        "run_order": seen["run_order"],
        # set-up: both programs really ran on the passive side before the clear
        "options_in_synack_a_b": [p["option_a_seen_by_active_peer_in_synack"],
                                  p["option_b_seen_by_active_peer_in_synack"]],
        "accepted_socket_starts_with_write_hdr_opt": bool(p["prog_b_flags_at_established"] & WRITE_HDR_OPT),
        # prog_a is still attached and still runs on the socket (PARSE is not gated by
        # WRITE_HDR_OPT): only the callbacks behind the cleared flag stopped
        "prog_a_still_parses_after_established": p["prog_a_parse_hdr_opt_after_established"] > 0,
        "passive_hdr_opt_len_after_established": p["prog_a_hdr_opt_len_after_established"],
        "passive_hdr_opt_writes_after_established": p["prog_a_write_hdr_opt_after_established"],
        "option_seen_by_active_peer_on_data": p["option_a_seen_by_active_peer_on_data"],
        "passive_flags_read_by_prog_a_after_established": p["prog_a_flags_read_after_established"],
        "passive_flags_after_prog_b_clear": p["prog_b_flags_after_established"],
    }
    expected = {
        **{key: 0 for key in rejected_flags(seen)}, "run_order": order,
        "options_in_synack_a_b": [1, 1], "accepted_socket_starts_with_write_hdr_opt": True,
        "prog_a_still_parses_after_established": True,
        "passive_hdr_opt_len_after_established": 0,
        "passive_hdr_opt_writes_after_established": 0,
        "option_seen_by_active_peer_on_data": 0,
        "passive_flags_read_by_prog_a_after_established": PARSE_ALL_HDR_OPT,
        "passive_flags_after_prog_b_clear": PARSE_ALL_HDR_OPT,
    }
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
    what = ("no longer silences prog_a on that socket" if not any(views.values()) else
            "silences prog_a, but the flags read back differ" if all(views.values()) else
            f"silences prog_a only partly; the three views disagree: {views}")
    expect(observed, expected, facts=[FACT], prog_b_flags_at_established=flags(p["prog_b_flags_at_established"]),
           note=f"BEHAVIOUR CHANGED? prog_b clearing WRITE_HDR_OPT_CB_FLAG in PASSIVE_ESTABLISHED_CB {what}: are "
                f"bpf_sock_ops_cb_flags per program now?\n{detail}")


def test_prog_a_alone_keeps_writing(run_driver, facts, expect):
    """Baseline: prog_a alone writes its option on the accepted socket's data segments."""
    seen = observe(run_driver, "prog_a_alone")
    p, n = seen["passive"], seen["data_segments_each_way"]
    observed = {
        **rejected_flags(seen),
        "passive_hdr_opt_len_on_every_data_segment": p["prog_a_hdr_opt_len_after_established"] >= n,
        "passive_option_written_on_every_data_segment":
            data_count_ok(p["prog_a_options_written_on_data_after_established"], seen),
        "option_seen_by_active_peer_on_every_data_segment": data_count_ok(p["option_a_seen_by_active_peer_on_data"], seen),
        "passive_flags_read_by_prog_a_after_established": p["prog_a_flags_read_after_established"],
    }
    expected = {key: True for key in observed}
    expected.update({key: 0 for key in rejected_flags(seen)})
    expected["passive_flags_read_by_prog_a_after_established"] = PROG_A_FLAGS   # the listener's, inherited
    expect(observed, expected, facts=[FACT], counts=counts(seen, "passive"))


@pytest.mark.parametrize("order", ORDERS)
def test_prog_b_clear_silences_prog_a(run_driver, facts, expect, order):
    """prog_a + prog_b in one cgroup, either attach order: prog_a stops writing after
    PASSIVE_ESTABLISHED on the accepted socket, and its option stops arriving."""
    seen = observe(run_driver, "prog_a_and_b", order)
    # BPF_F_ALLOW_MULTI runs in attach order
    check_clobbered(seen, expect, "prog_a,prog_b" if order == "a_first" else "prog_b,prog_a")


@pytest.mark.parametrize("order", ORDERS)
def test_sk_storage_workaround_keeps_both_working(run_driver, facts, expect, order):
    """Each program keeps its own bool in bpf_sk_storage and nobody clears a flag:
    prog_a writes on every segment, prog_b only in the SYN-ACK, in either order."""
    seen = observe(run_driver, "storage_workaround", order)
    p = seen["passive"]
    observed = {
        **rejected_flags(seen),
        "passive_option_written_on_every_data_segment":
            data_count_ok(p["prog_a_options_written_on_data_after_established"], seen),
        "option_seen_by_active_peer_on_every_data_segment": data_count_ok(p["option_a_seen_by_active_peer_on_data"], seen),
        "passive_flags_read_by_prog_a_after_established": p["prog_a_flags_read_after_established"],
        "option_b_seen_in_synack": p["option_b_seen_by_active_peer_in_synack"],
        "option_b_seen_on_data": p["option_b_seen_by_active_peer_on_data"],
        # prog_b is still called on the established socket (the flag stays on for prog_a);
        # its own bool is what keeps it quiet
        "prog_b_callbacks_skipped_by_bool": p["prog_b_skipped_by_storage_bool_after_established"] > 0,
    }
    expected = {**{key: 0 for key in rejected_flags(seen)}, "passive_option_written_on_every_data_segment": True,
                "option_seen_by_active_peer_on_every_data_segment": True,
                "passive_flags_read_by_prog_a_after_established": PROG_A_FLAGS,
                "option_b_seen_in_synack": 1, "option_b_seen_on_data": 0, "prog_b_callbacks_skipped_by_bool": True}
    expect(observed, expected, facts=[FACT], run_order=seen["run_order"], counts=counts(seen, "passive"))


@pytest.mark.parametrize("placement", ["a_on_parent", "b_on_parent"])
def test_parent_and_child_cgroups_clobber_too(run_driver, facts, expect, placement):
    """prog_a and prog_b on a parent and its child cgroup: the flags are per socket, so it
    is the same as one cgroup."""
    seen = observe(run_driver, "nested_cgroups", placement)
    # the effective array holds the child cgroup's programs first
    check_clobbered(seen, expect, "prog_b,prog_a" if placement == "a_on_parent" else "prog_a,prog_b")


@pytest.mark.parametrize("order", ORDERS)
def test_active_side_unaffected(run_driver, facts, expect, order):
    """prog_b clears only on the passive side: the connecting socket keeps prog_a's flag,
    keeps writing, and the accepted socket (which keeps PARSE_ALL) still sees the option."""
    seen = observe(run_driver, "prog_a_and_b", order)
    a = seen["active"]
    observed = {
        **rejected_flags(seen),
        "active_option_written_on_every_data_segment":
            data_count_ok(a["prog_a_options_written_on_data_after_established"], seen),
        "option_seen_by_passive_peer_on_every_data_segment": data_count_ok(a["option_a_seen_by_passive_peer_on_data"], seen),
        "active_flags_read_by_prog_a_after_established": a["prog_a_flags_read_after_established"],
        # The sharing cuts both ways: prog_b never asked for header-option callbacks on the
        # connecting socket, but prog_a's flag calls it there too.
        "prog_b_called_for_hdr_opt_len_on_active": a["prog_b_hdr_opt_len_after_established"] > 0,
    }
    expected = {**{key: 0 for key in rejected_flags(seen)}, "active_option_written_on_every_data_segment": True,
                "option_seen_by_passive_peer_on_every_data_segment": True,
                "active_flags_read_by_prog_a_after_established": PROG_A_FLAGS,
                "prog_b_called_for_hdr_opt_len_on_active": True}
    expect(observed, expected, facts=[FACT], run_order=seen["run_order"], counts=counts(seen, "active"),
           note="prog_b not called on the connecting socket although prog_a turned the flag on there: are "
                "bpf_sock_ops_cb_flags per program now?")
