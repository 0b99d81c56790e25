"""check-progs' judging of socket-policy programs (kregress.check_progs.policy) on driver output
shaped as guest/check_policy prints it: reach, misses, their explanations, the verdict."""
from kregress.check_progs import findings as checkprogs, policy

ALL = list(policy.KIND_WORDS)
PLAIN = {"socket": "OK", "bind": "OK", "connect": "ECONNREFUSED", "accept": "OK", "priority": 0, "mark": 0,
         "device": ""}


def driver_doc(programs: dict[str, str], changed: dict[str, dict], ran: dict[str, list[str]]) -> dict:
    """check_policy's JSON: programs {name: section}; per kind, what the "with" round changed and
    which programs ran."""
    with_ = {kind: {**PLAIN, **changed.get(kind, {}),
                    "runs": {name: int(name in ran.get(kind, [])) for name in programs}} for kind in ALL}
    return {"programs": [{"name": n, "section": s, "checked": True} for n, s in programs.items()],
            "without": {kind: dict(PLAIN) for kind in ALL}, "with": with_}


def has_all(fact):
    return True


def test_sock_create_stamp_misses_accepted_packet_and_unix():
    inet = ["tcp4", "tcp6", "udp4", "raw4"]
    doc = driver_doc({"stamp": "cgroup/sock_create"}, {k: {"priority": 6} for k in inet}, {k: ["stamp"] for k in inet})
    check = policy.check_policy(doc, "k", has_all)
    assert check.sets == ["priority"] and sorted(check.reached) == sorted(inet)
    assert sorted(check.findings) == ["accepted_peer_inside", "accepted_peer_outside", "packet", "unix"]
    assert "inet_create/inet6_create" in check.findings["packet"] and "cloned" in check.findings["accepted_peer_outside"]
    assert "foreign_used_here" in check.missed and "foreign_used_here" not in check.findings   # not its own
    assert checkprogs.status([], [], check) == "findings"


def test_a_refusing_policy_is_shown_not_judged():
    doc = driver_doc({"hide": "cgroup/sock_create"}, {k: {"socket": "EAFNOSUPPORT"} for k in ("tcp4", "udp4", "raw4")},
                     {k: ["hide"] for k in ("tcp4", "tcp6", "udp4", "raw4")})
    check = policy.check_policy(doc, "k", has_all)
    assert check.refuses == ["EAFNOSUPPORT"] and check.sets == [] and check.findings == {}
    assert check.reached["tcp4"] == ["socket", "ran: hide"] and check.reached["tcp6"] == ["ran: hide"]
    assert checkprogs.status([], [], check) == "clean"


def test_lsm_stamp_misses_the_accepted_socket_whose_peer_is_elsewhere():
    own = ["tcp4", "tcp6", "udp4", "raw4", "packet", "unix", "accepted_peer_inside"]
    doc = driver_doc({"created": "lsm_cgroup/socket_post_create", "accepted": "lsm_cgroup/inet_csk_clone"},
                     {k: {"priority": 6} for k in own}, {k: ["created"] for k in own})
    check = policy.check_policy(doc, "k", has_all)
    assert list(check.findings) == ["accepted_peer_outside"]
    assert check.explained_by["accepted_peer_outside"] == ["lsm_cgroup_current_task_shim"]
    lines = policy.render({"policy": check.as_record(), "reproduce": "r"}, "k")
    assert any("MISSES accepted TCP, peer in another cgroup" in line for line in lines)
    assert any("sockops" in line and "PASSIVE_ESTABLISHED" in line for line in lines)


def test_a_hook_that_should_have_run_and_did_not_is_unexplained():
    doc = driver_doc({"created": "lsm_cgroup/socket_post_create"}, {"tcp4": {"priority": 6}}, {"tcp4": ["created"]})
    check = policy.check_policy(doc, "k", has_all)
    assert check.findings["unix"].startswith("UNEXPLAINED")


def test_handshake_in_ksoftirqd_explains_a_missed_inside_clone_before_6_5():
    doc = driver_doc({"accepted": "lsm_cgroup/inet_csk_clone"}, {}, {})
    check = policy.check_policy(doc, "k", lambda fact: fact != "softirq_inline_under_ksoftirqd")
    assert check.explained_by["accepted_peer_inside"] == ["lsm_cgroup_current_task_shim",
                                                          "softirq_inline_under_ksoftirqd"]


def test_expected_reach_follows_the_facts():
    without_lsm = policy.expected_reach(["lsm_cgroup/socket_post_create"], lambda fact: fact != "lsm_cgroup")
    assert all(why and "not run on this kernel (lsm_cgroup)" in why for why in without_lsm.values())
    with_lsm = policy.expected_reach(["lsm_cgroup/socket_post_create"], has_all)
    assert with_lsm["packet"] is None and with_lsm["accepted_peer_outside"]
    assert policy.expected_reach(["cgroup/connect4"], has_all)["tcp4"] == "unknown"


def test_report_html_has_a_row_for_the_policy():
    from kregress.check_progs.report import programs_section
    inet = ["tcp4", "tcp6", "udp4", "raw4"]
    doc = driver_doc({"stamp": "cgroup/sock_create"}, {k: {"priority": 6} for k in inet}, {k: ["stamp"] for k in inet})
    record = {"object": "o.bpf.o", "kernel": "k", "reproduce": "r", "status": "findings", "programs": [],
              "not_checked": [], "policy": policy.check_policy(doc, "k", has_all).as_record()}
    html = programs_section({"tests": [{"nodeid": "tests/test_your_programs.py::test_programs[k]", "kernel": "k",
                                        "outcome": "failed", "extras": {"check_progs": record}}]})
    assert "(policy programs)" in html and 'class="fail">findings (4)' in html and "MISSES AF_PACKET" in html


def test_a_counter_beside_the_stamp_does_not_make_it_reach_accepted_sockets():
    inet = ["tcp4", "tcp6", "udp4", "raw4"]
    ran = {k: ["stamp", "release"] for k in inet}
    ran.update(accepted_peer_inside=["release"], accepted_peer_outside=["release"])
    doc = driver_doc({"stamp": "cgroup/sock_create", "release": "cgroup/sock_release"},
                     {k: {"priority": 6} for k in inet}, ran)
    check = policy.check_policy(doc, "k", has_all)
    assert sorted(check.findings) == ["accepted_peer_inside", "accepted_peer_outside", "packet", "unix"]
    assert "ran for it (release) and set nothing" in check.findings["accepted_peer_outside"]


def test_ksoftirqd_explains_only_an_lsm_clone_hook():
    doc = driver_doc({"release": "cgroup/sock_release"}, {"tcp4": {"priority": 6}}, {"tcp4": ["release"]})
    check = policy.check_policy(doc, "k", lambda fact: fact != "softirq_inline_under_ksoftirqd")
    assert check.findings["accepted_peer_inside"].startswith("UNEXPLAINED")
