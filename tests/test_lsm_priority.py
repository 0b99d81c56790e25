"""Per-cgroup SO_PRIORITY and socket policy with lsm_cgroup (BPF_LSM_CGROUP), after
Stanislav Fomichev's LPC 2022 talk "Networking resource control with per-cgroup LSM".

Every test runs one case of guest/lsm_priority.c. Preconditions are observed, not
assumed: the driver first tries an lsm_cgroup program, and a kernel that refuses it is
an expected skip only when its version says it lacks 69fd337a975c (fact "lsm_cgroup"),
or its config says it cannot run it (unusable here: e.g. arm64 without ftrace direct calls);
a kernel that accepts the programs but does not run the bpf LSM fails, naming the
lsm= boot parameter that fixes it.
"""
import pytest

pytestmark = pytest.mark.scenario(facts=["lsm_cgroup"])

DRIVER = "lsm_priority"
FACT = "lsm_cgroup"
HEADER = ("case", "lsm_cgroup_supported", "active_lsms")


def observe(case, run_driver, kernel_session, kernel_facts) -> dict:
    """The case's observations, once the kernel is known to run lsm_cgroup programs."""
    result = run_driver(DRIVER, case)
    supported = result["lsm_cgroup_supported"]
    # the facts' decision: has it, lacks it, or has it but cannot run it here (issue 21: its config)
    state = kernel_facts.state(FACT)
    if supported != (state == "has"):
        how = "accepted" if supported else f"refused ({result.get('stage')}: {result.get('load_errno')})"
        pytest.fail(f"{kernel_facts.contradiction(FACT, supported)}; the kernel {how} an lsm_cgroup "
                    f"program. Driver output: {result}", pytrace=False)
    if state == "unusable":
        pytest.skip(f"{kernel_facts.unusable_skip(FACT)}; the kernel refused the {result['stage']} of an "
                    f"lsm_cgroup program with {result['load_errno']} ({result.get('libbpf', '')})")
    if not supported:
        pytest.skip(f"not supported by this kernel: lsm_cgroup (BPF_LSM_CGROUP) is missing - "
                    f"{kernel_facts.why(FACT)}; the kernel refused the {result['stage']} of an "
                    f"lsm_cgroup program with {result['load_errno']} ({result.get('libbpf', '')})")
    lsms = kernel_session.active_lsms
    if "bpf" not in lsms:
        current = ",".join(lsms)
        pytest.fail(f"the bpf LSM is not active on {kernel_session.kernel.id} (active LSMs: "
                    f"{current or 'none listed'}): lsm_cgroup programs load and attach but never run, so "
                    f"nothing here can be checked. Boot with lsm={current + ',' if current else ''}bpf. "
                    f"Observed anyway: {strip(result)}", pytrace=False)
    return result


# A finding on debian-6.1 (6.1.176): now and then a freshly attached lsm_cgroup program on
# inet_csk_clone does not run at all for the next handshake (2 of 20 attempts in one guest,
# right after the previous attach was detached; 0 of 20 on 6.12.107). And once, on
# debian-6.12 in a guest restored for that one test, both programs of the hierarchy case ran
# twice for one socket right after the previous links were destroyed. Cases that depend on
# a freshly attached program running exactly as attached are judged on the first of up to
# ATTEMPTS attempts in which it did, and every miss is recorded in the results
# (clone_program_missed, attach_anomalies) so the rate stays visible across runs.
ATTEMPTS = 3


def observe_until(case, ran, what, run_driver, kernel_session, kernel_facts) -> tuple[dict, int]:
    missed = 0
    while True:
        result = observe(case, run_driver, kernel_session, kernel_facts)
        if ran(result):
            return result, missed
        missed += 1
        if missed == ATTEMPTS:
            pytest.fail(f"{what} in {missed} attempts: {strip(result)}", pytrace=False)


def observe_clone(case, ran, run_driver, kernel_session, kernel_facts) -> tuple[dict, int]:
    return observe_until(case, ran, "the lsm_cgroup program on inet_csk_clone never ran", run_driver,
                         kernel_session, kernel_facts)


def strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in HEADER}


def test_post_create_sets_priority_in_its_cgroup_only(run_driver, kernel_session, kernel_facts, expect):
    """1. socket_post_create + bpf_setsockopt: every socket made in the cgroup, none in a sibling."""
    r = observe("post_create", run_driver, kernel_session, kernel_facts)
    prio = r["prio_set"]
    observed = {"tcp": r["in_cgroup"]["tcp"], "udp6": r["in_cgroup"]["udp6"], "unix": r["in_cgroup"]["unix"],
                "sibling_tcp": r["sibling"]["tcp"], "sibling_udp6": r["sibling"]["udp6"],
                "sibling_unix": r["sibling"]["unix"], "bpf_setsockopt": r["bpf_setsockopt"]}
    expected = {"tcp": prio, "udp6": prio, "unix": prio,
                "sibling_tcp": 0, "sibling_udp6": 0, "sibling_unix": 0, "bpf_setsockopt": "OK"}
    expect(observed, expected, facts=[FACT])


def test_accepted_socket_needs_inet_csk_clone(run_driver, kernel_session, kernel_facts, expect):
    """2. socket_post_create never runs for accept()ed sockets; inet_csk_clone does, whichever
    cgroup calls accept(). The listener predates the programs (priority 0), since a child
    inherits its listener's priority and would hide whether a hook ran for it."""
    # two handshakes after the clone program is attached (accepted in the server's cgroup and
    # from another): a miss on either one is a miss, not a verdict
    r, missed = observe_clone("accept", lambda r: r["with_inet_csk_clone"]["clone_runs"] == 2, run_driver,
                              kernel_session, kernel_facts)
    prio = r["prio_set"]
    post, clone = r["post_create_only"], r["with_inet_csk_clone"]
    observed = {"listener": r["listener"], "post_create_only_client": post["client"],
                "post_create_only_accepted": post["accepted"], "clone_accepted": clone["accepted"],
                "clone_accepted_from_other_cgroup": clone["accepted_from_other_cgroup"],
                "bpf_setsockopt": clone["bpf_setsockopt"]}
    expected = {"listener": 0, "post_create_only_client": prio, "post_create_only_accepted": 0,
                "clone_accepted": prio, "clone_accepted_from_other_cgroup": prio, "bpf_setsockopt": "OK"}
    expect(observed, expected, facts=[FACT], clone_program_missed=missed)


def test_hooks_run_programs_of_socket_cgroup(run_driver, kernel_session, kernel_facts, record_behaviour):
    """2b. Whose cgroup runs: 69fd337a975c says hooks taking a struct socket/sock use the
    socket's cgroup (so a listener's clone follows the listener), others current's.
    socket_bind and inet_csk_clone are probed where the socket's and the task's differ."""
    clone_ran = lambda r: r["inet_csk_clone_on_server_listener"]["runs_from_server"] + \
        r["inet_csk_clone_on_server_listener"]["runs_from_other"] > 0
    r, missed = observe_clone("whose_cgroup", clone_ran, run_driver, kernel_session, kernel_facts)
    prio = r["prio_set"]
    bind, clone = r["socket_bind_denied_in_server"], r["inet_csk_clone_on_server_listener"]
    observed = {"bind_socket_from_server_task_in_other": bind["socket_from_server_bound_from_other"],
                "bind_socket_from_other_task_in_server": bind["socket_from_other_bound_from_server"],
                "clone_handshake_from_server": clone["handshake_from_server"],
                "clone_handshake_from_other": clone["handshake_from_other"]}
    by_socket = {"bind_socket_from_server_task_in_other": "EPERM", "bind_socket_from_other_task_in_server": "OK",
                 "clone_handshake_from_server": prio, "clone_handshake_from_other": prio}
    by_task = {"bind_socket_from_server_task_in_other": "OK", "bind_socket_from_other_task_in_server": "EPERM",
               "clone_handshake_from_server": prio, "clone_handshake_from_other": 0}
    runs_for = "socket" if observed == by_socket else "task" if observed == by_task else "mixed"
    record_behaviour({**observed, "programs_of": runs_for}, {**by_socket, "programs_of": "socket"},
                     clone_program_missed=missed)
    if runs_for == "task":
        # bpf_lsm_find_cgroup_shim() compares the hook's first parameter type (a pointer
        # type's BTF id) with btf_sock_ids[] (the struct ids): never equal, so every hook
        # gets the current-task shim. Kept visible as xfail until a kernel fixes it.
        pytest.xfail("this kernel runs the lsm_cgroup programs of the current task's cgroup, not the "
                     "socket's, for socket_bind and inet_csk_clone (contrary to 69fd337a975c's description): "
                     f"{observed}")
    # A kernel that runs the socket's cgroup's programs has fixed what every kernel so far
    # does: that must be seen, not pass quietly. Record the fix as a fact and expect it.
    assert runs_for != "socket", ("expectation stale: this kernel runs the lsm_cgroup programs of the socket's "
                                  "cgroup, as 69fd337a975c describes, unlike every kernel tested before (see "
                                  "docs/lsm_priority.md); find the fixing commit and add it to kregress/facts.py")
    pytest.fail(f"neither the socket's nor the task's cgroup consistently: {observed}", pytrace=False)


def test_cgroup_sock_misses_what_lsm_cgroup_covers(run_driver, kernel_session, kernel_facts, expect):
    """3. The reason for the migration, side by side: cgroup/sock_create sets the priority of
    active INET sockets only; lsm_cgroup also reaches accepted and AF_PACKET sockets."""
    r, missed = observe_clone("compare", lambda r: r["lsm_cgroup"]["clone_runs"] > 0, run_driver, kernel_session,
                              kernel_facts)
    sock, lsm = r["cgroup_sock"], r["lsm_cgroup"]
    observed = {f"{name}_{k}": col[k] for name, col in (("cgroup_sock", sock), ("lsm_cgroup", lsm))
                for k in ("active_tcp", "accepted_tcp", "packet")}
    expected = {"cgroup_sock_active_tcp": sock["prio_set"], "cgroup_sock_accepted_tcp": 0, "cgroup_sock_packet": 0,
                "lsm_cgroup_active_tcp": lsm["prio_set"], "lsm_cgroup_accepted_tcp": lsm["prio_set"],
                "lsm_cgroup_packet": lsm["prio_set"]}
    expect(observed, expected, facts=[FACT], clone_program_missed=missed)


def test_task_cannot_override_priority(run_driver, kernel_session, kernel_facts, expect):
    """4. A cgroup/setsockopt guard makes setsockopt(SO_PRIORITY) EPERM for the task, while
    bpf_setsockopt from lsm_cgroup (which does not pass through that hook) still sets it."""
    r = observe("override", run_driver, kernel_session, kernel_facts)
    prio, task = r["prio_set"], r["task_prio"]
    free, guarded = r["without_guard"], r["with_guard"]
    observed = {"unguarded_setsockopt": free["task_setsockopt"], "unguarded_after": free["after"],
                "guarded_created": guarded["created"], "guarded_setsockopt": guarded["task_setsockopt"],
                "guarded_after": guarded["after"], "guarded_other_option": guarded["other_option"]}
    expected = {"unguarded_setsockopt": "OK", "unguarded_after": task,
                "guarded_created": prio, "guarded_setsockopt": "EPERM", "guarded_after": prio,
                "guarded_other_option": "OK"}
    expect(observed, expected, facts=[FACT])


def test_net_raw_xmit_and_chosen_errno(run_driver, kernel_session, kernel_facts, expect):
    """5. NET_RAW_XMIT: AF_PACKET may send but not receive (protocol != 0 at socket() or
    bind() is EPERM); IPv4 hiding's errno from bpf_set_retval reaches userspace unchanged."""
    r = observe("net_raw_xmit", run_driver, kernel_session, kernel_facts)
    observed = {**r["in_cgroup"], **{f"sibling_{k}": v for k, v in r["sibling"].items()}}
    expected = {"packet_eth_p_all": "EPERM", "packet_dgram_eth_p_ip": "EPERM", "packet_proto_0": "OK",
                "bind_eth_p_all": "EPERM", "bind_proto_0": "OK", "send": "OK",
                "inet": "EAFNOSUPPORT", "inet6": "OK",
                "sibling_packet_eth_p_all": "OK", "sibling_inet": "OK"}
    expect(observed, expected, facts=[FACT])


def run_order(run: dict, parent_prio: int, child_prio: int) -> str:
    """Each program read SO_PRIORITY before writing it: whoever saw the other's value ran second."""
    if run["parent_runs"] != 1 or run["child_runs"] != 1:
        return f"not both once (parent {run['parent_runs']}, child {run['child_runs']})"
    if run["child_seen"] == 0 and run["parent_seen"] == child_prio:
        return "child,parent"
    if run["parent_seen"] == 0 and run["child_seen"] == parent_prio:
        return "parent,child"
    return f"unclear (parent saw {run['parent_seen']}, child saw {run['child_seen']})"


def test_parent_and_child_programs_order(run_driver, kernel_session, kernel_facts, expect):
    """6. Programs on a parent and its child cgroup both run for a socket in the child. The
    documented order (BPF_F_ALLOW_MULTI in uapi bpf.h: the sub-cgroup's programs first, then
    the parent's) makes the parent the last writer, whichever was attached first."""
    once = lambda r: all(r[k]["parent_runs"] == 1 and r[k]["child_runs"] == 1  # noqa: E731
                         for k in ("parent_attached_first", "child_attached_first"))
    r, anomalies = observe_until("hierarchy", once, "the two programs never ran once each for one socket",
                                 run_driver, kernel_session, kernel_facts)
    parent_prio, child_prio = r["parent_prio"], r["child_prio"]
    writer = {parent_prio: "parent", child_prio: "child"}
    observed, expected = {}, {}
    for attach in ("parent_attached_first", "child_attached_first"):
        run = r[attach]
        observed[f"{attach}_order"] = run_order(run, parent_prio, child_prio)
        observed[f"{attach}_last_writer"] = writer.get(run["final"], f"neither ({run['final']})")
        expected[f"{attach}_order"] = "child,parent"
        expected[f"{attach}_last_writer"] = "parent"
    expect(observed, expected, facts=[FACT], attach_anomalies=anomalies,
           detach={"listed_after_destroy": r["listed_after_destroy"], "waited_ms": r["waited_ms"]})


def test_detach_restores_default(run_driver, kernel_session, kernel_facts, expect):
    """7. Destroying the links takes every effect away: default priority, AF_PACKET with a
    protocol allowed again, no lsm_cgroup program left on the cgroup."""
    r = observe("detach", run_driver, kernel_session, kernel_facts)
    on, off = r["attached"], r["detached"]
    observed = {"attached_prio": on["prio"], "attached_packet": on["packet_eth_p_all"],
                "attached_programs": on["query_count"], "detached_prio": off["prio"],
                "detached_packet": off["packet_eth_p_all"], "detached_programs": off["query_count"]}
    expected = {"attached_prio": r["prio_set"], "attached_packet": "EPERM", "attached_programs": 2,
                "detached_prio": 0, "detached_packet": "OK", "detached_programs": 0}
    expect(observed, expected, facts=[FACT])
