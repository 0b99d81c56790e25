"""The rest of the per-cgroup networking policy of Stanislav Fomichev's LPC 2022 talk
("Networking resource control with per-cgroup LSM"), with the plain cgroup hooks every
kernel here has, so every kernel is judged (no lsm_cgroup precondition): an IP_TOS /
IPV6_TCLASS allow-list and its cmsg bypass, bind-port limits and what autobind escapes, a
bind rewritten to a privileged port, IPv4 hiding, and the one cgroup storage all of them
read the container's policy from.

Every test runs one case of guest/net_policy.c. Where a kernel refuses a program because
it predates a commit (a bind program returning 3, bpf_set_retval, the shared storage key),
the driver prints the refusal as an observation ({"loaded": false, ...}) and the facts say
on which kernels it is expected.
"""
import pytest

pytestmark = pytest.mark.scenario(facts=["bind_rewrite_privileged_port", "bind_sockopt_helpers",
                                         "cgroup_set_retval", "cgroup_storage_shared"])

DRIVER = "net_policy"
REWRITE = "bind_rewrite_privileged_port"
BIND_SOCKOPT = "bind_sockopt_helpers"
SET_RETVAL = "cgroup_set_retval"
SHARED = "cgroup_storage_shared"
FAMILIES = ("v4", "v6")


def per_family(result: dict, keys, where=None) -> dict:
    """One flat, named observation: FAMILY_KEY (or WHERE_FAMILY_KEY) for each family."""
    prefix = f"{where}_" if where else ""
    scope = result[where] if where else result
    return {f"{prefix}{family}_{key}": scope[family][key] for family in FAMILIES for key in keys}


def refusal(result: dict) -> dict:
    return {"loaded": result["loaded"], **({} if result["loaded"] else {"load_errno": result["load_errno"]})}


def test_tos_allow_list_in_setsockopt(run_driver, expect):
    """cgroup/setsockopt reads the container's TOS list from cgroup storage: setsockopt(IP_TOS /
    IPV6_TCLASS) with a listed value is OK and reaches the wire, an unlisted one is EPERM and the
    socket keeps the listed one. A sibling cgroup without the program sets and sends anything."""
    r = run_driver(DRIVER, "tos")
    allowed, forbidden = r["tos_allowed"], r["tos_forbidden"]
    keys = ("set_allowed", "set_forbidden", "socket_tos", "wire_tos")
    observed = {**per_family(r, keys, "in_cgroup"), **per_family(r, keys, "sibling")}
    expected = {}
    for family in FAMILIES:
        expected.update({f"in_cgroup_{family}_set_allowed": "OK", f"in_cgroup_{family}_set_forbidden": "EPERM",
                         f"in_cgroup_{family}_socket_tos": allowed, f"in_cgroup_{family}_wire_tos": allowed,
                         f"sibling_{family}_set_allowed": "OK", f"sibling_{family}_set_forbidden": "OK",
                         f"sibling_{family}_socket_tos": forbidden, f"sibling_{family}_wire_tos": forbidden})
    expect(observed, expected, tos_allowed=allowed, tos_forbidden=forbidden)


def test_tos_cmsg_bypasses_allow_list(run_driver, expect):
    """The talk's caveat ("sendmsg cmsg options are not enforced"): the same task, whose
    setsockopt of the unlisted TOS was EPERM, sends a datagram with that TOS as IP_TOS /
    IPV6_TCLASS ancillary data: the send is OK and the receiver reads the unlisted TOS. No
    cgroup hook sees a cmsg, on any kernel."""
    r = run_driver(DRIVER, "tos")
    forbidden = r["tos_forbidden"]
    observed = per_family(r, ("set_forbidden", "send_cmsg_forbidden", "wire_tos_cmsg"), "in_cgroup")
    expected = {}
    for family in FAMILIES:
        expected.update({f"in_cgroup_{family}_set_forbidden": "EPERM",
                         f"in_cgroup_{family}_send_cmsg_forbidden": "OK",
                         f"in_cgroup_{family}_wire_tos_cmsg": forbidden})
    expect(observed, expected, tos_forbidden=forbidden)


def test_tos_allow_list_at_bind(run_driver, kernel_facts, expect):
    """The talk holds the list at bind too: sockets whose TOS was set before the bind programs
    came (default, listed, unlisted) are bound afterwards; a bind program reads each socket's TOS
    with bpf_getsockopt and refuses the unlisted one (EPERM). bpf_getsockopt from bind hooks came
    with 427167c0b064 (v5.11): before it the verifier refuses the program (EINVAL)."""
    r = run_driver(DRIVER, "tos_bind")
    observed = refusal(r)
    if r["loaded"]:
        observed.update(per_family(r, ("default_tos", "allowed_tos", "forbidden_tos")))
    expected = {"loaded": False, "load_errno": "EINVAL"}
    if kernel_facts.has(BIND_SOCKOPT):
        expected = {"loaded": True, **{f"{family}_{key}": errno for family in FAMILIES for key, errno in
                                       (("default_tos", "OK"), ("allowed_tos", "OK"), ("forbidden_tos", "EPERM"))}}
    expect(observed, expected, facts=[BIND_SOCKOPT], verifier=r.get("verifier"))


def test_bind_port_limits(run_driver, expect):
    """cgroup/bind4 and bind6 with the container's range from storage: a port under the limit in
    the range is OK, one under the limit outside it is EPERM, one over the limit is left alone."""
    r = run_driver(DRIVER, "ports")
    observed = per_family(r, ("in_range", "refused_port", "above_limit"))
    expected = {}
    for family in FAMILIES:
        expected.update({f"{family}_in_range": "OK", f"{family}_refused_port": "EPERM",
                         f"{family}_above_limit": "OK"})
    expect(observed, expected, limit=r["port_limit"], range=(r["port_lo"], r["port_hi"]))


def test_autobind_escapes_bind_limits(run_driver, expect):
    """"Can't affect the ones selected by autobind": the netns's local port range lies under the
    limit and outside the container's range. bind() to port 0 runs the hook once, which sees port
    0 and lets it through; the kernel then picks a port from the local range, one that an explicit
    bind() is refused (EPERM). connect() without bind() never runs the hook, and its port is the
    same kind."""
    r = run_driver(DRIVER, "ports")
    observed, expected = {}, {}
    for family in FAMILIES:
        port0, connected = r[family]["bind_port_0"], r[family]["connect_without_bind"]
        observed.update({f"{family}_bind_port_0": port0["errno"], f"{family}_bind_port_0_hook_runs": port0["hook_runs"],
                         f"{family}_bind_port_0_hook_saw_port": port0["hook_saw_port"],
                         f"{family}_bind_port_0_port_in_local_range": port0["port_in_local_range"],
                         f"{family}_bind_port_0_port_explicitly": port0["same_port_bound_explicitly"],
                         f"{family}_connect": connected["errno"], f"{family}_connect_hook_runs": connected["hook_runs"],
                         f"{family}_connect_port_in_local_range": connected["port_in_local_range"],
                         f"{family}_connect_port_explicitly": connected["same_port_bound_explicitly"]})
        expected.update({f"{family}_bind_port_0": "OK", f"{family}_bind_port_0_hook_runs": 1,
                         f"{family}_bind_port_0_hook_saw_port": 0,
                         f"{family}_bind_port_0_port_in_local_range": True,
                         f"{family}_bind_port_0_port_explicitly": "EPERM",
                         f"{family}_connect": "OK", f"{family}_connect_hook_runs": 0,
                         f"{family}_connect_port_in_local_range": True,
                         f"{family}_connect_port_explicitly": "EPERM"})
    expect(observed, expected, ports={family: {"bind_port_0": r[family]["bind_port_0"]["port"],
                                               "connect": r[family]["connect_without_bind"]["port"]}
                                      for family in FAMILIES})


def rewrite_observed(r: dict) -> dict:
    observed = refusal(r)
    for family in FAMILIES if r["loaded"] else ():
        t = r[family]
        observed.update({f"{family}_privileged_port_without_cap": t["privileged_port_without_cap"],
                         f"{family}_rewritten_without_cap": (t["rewritten_without_cap"]["errno"],
                                                             t["rewritten_without_cap"]["port"]),
                         f"{family}_rewritten_with_cap": (t["rewritten_with_cap"]["errno"],
                                                          t["rewritten_with_cap"]["port"])})
    return observed


def rewrite_expected(bypass: bool, to_port: int) -> dict:
    """The task binds REWRITE_FROM; the program rewrites it to a port under 1024."""
    expected = {"loaded": True}
    for family in FAMILIES:
        expected.update({f"{family}_privileged_port_without_cap": "EACCES",
                         f"{family}_rewritten_without_cap": ("OK", to_port) if bypass else ("EACCES", -1),
                         f"{family}_rewritten_with_cap": ("OK", to_port)})
    return expected


def test_rewrite_to_privileged_port_checks_capability(run_driver, expect):
    """A bind program that rewrites the port to one under ip_unprivileged_port_start and returns 1:
    the kernel checks CAP_NET_BIND_SERVICE on the rewritten port, so the driver, having dropped
    the capability from its effective set, gets EACCES (as for binding port 80 itself); with the
    capability raised again the same bind lands on the rewritten port. Every kernel."""
    r = run_driver(DRIVER, "rewrite", "cap_check")
    expect(rewrite_observed(r), rewrite_expected(False, r.get("rewrite_to")), verifier=r.get("verifier"))


def test_rewrite_to_privileged_port_without_capability(run_driver, kernel_facts, expect):
    """The same rewrite returning 3: bit 1 tells the kernel to skip the CAP_NET_BIND_SERVICE check
    (772412176fb9, v5.12), so the task without the capability binds the rewritten privileged port.
    Before that commit the verifier allows only 0 and 1 from a bind program: the load is refused
    (EINVAL), the refusal observed."""
    r = run_driver(DRIVER, "rewrite", "no_cap_check")
    if kernel_facts.has(REWRITE):
        expected = rewrite_expected(True, r.get("rewrite_to"))
    else:
        expected = {"loaded": False, "load_errno": "EINVAL"}
    expect(rewrite_observed(r), expected, facts=[REWRITE], verifier=r.get("verifier"))


def hide_observed(r: dict) -> dict:
    observed = refusal(r)
    if r["loaded"]:
        observed.update({f"{where}_{kind}": r[where][kind] for where in ("hidden", "permitted")
                         for kind in ("inet_stream", "inet_dgram", "inet6_stream", "unix_stream")})
    return observed


def hide_expected(errno: str) -> dict:
    expected = {"loaded": True, "hidden_inet_stream": errno, "hidden_inet_dgram": errno,
                "hidden_inet6_stream": "OK", "hidden_unix_stream": "OK"}
    expected.update({f"permitted_{kind}": "OK" for kind in ("inet_stream", "inet_dgram", "inet6_stream",
                                                             "unix_stream")})
    return expected


def test_ipv4_hidden_with_eperm(run_driver, expect):
    """IPv4 hiding judged on its own: cgroup/sock_create returning 0 for AF_INET, where the
    policy in storage does not permit it, is EPERM on every kernel (what a JRE reads as "IPv4
    broken"); AF_INET6 and AF_UNIX (which never reaches the hook) keep working, and once the
    manager permits IPv4 in storage, AF_INET works again without reattaching."""
    r = run_driver(DRIVER, "hide", "eperm")
    expect(hide_observed(r), hide_expected("EPERM"))


def test_ipv4_hidden_with_chosen_errno(run_driver, kernel_facts, expect):
    """The talk's program: bpf_set_retval(-EAFNOSUPPORT) before returning 0 ("IPv4 absent").
    Only kernels with b44123b4a3dc (v5.18) know the helper; before it the verifier refuses the
    program (EINVAL, "invalid func unknown#187"), so on those kernels EPERM is all a policy can
    give."""
    r = run_driver(DRIVER, "hide", "errno")
    expected = hide_expected("EAFNOSUPPORT") if kernel_facts.has(SET_RETVAL) else {"loaded": False,
                                                                                    "load_errno": "EINVAL"}
    expect(hide_observed(r), expected, facts=[SET_RETVAL], verifier=r.get("verifier"))


def test_storage_shared_between_attach_types(run_driver, kernel_facts, expect):
    """One cgroup storage keyed by the cgroup id alone (7d9c3427894f, v5.9) is shared by the
    programs of every attach type on the cgroup: the manager's policy, written once, is enforced
    by cgroup/setsockopt and cgroup/bind4; the stamp cgroup/sock_create writes is what those two
    read; the manager's fields are still there afterwards. The older key (cgroup id, attach type)
    keeps one storage per attach type: cgroup/setsockopt never sees sock_create's stamp (1: ran,
    saw none). Before 7d9c3427894f a storage map served one program only and the key had to be
    the struct: the load is refused (no such kernel in the default matrix)."""
    r = run_driver(DRIVER, "storage")
    observed = refusal(r)
    if kernel_facts.has(SHARED):
        stamp = r.get("stamp_written")
        expected = {"loaded": True, "tos_allowed": "OK", "tos_forbidden": "EPERM", "bind_in_range": "OK",
                    "bind_refused_port": "EPERM", "stamp": stamp, "creates": 3, "stamp_seen_at_setsockopt": stamp,
                    "stamp_seen_at_bind": stamp, "manager_policy_kept": True,
                    "per_attach_type_sock_create": stamp, "per_attach_type_setsockopt": 1}
    else:
        expected = {"loaded": False}
    if r["loaded"]:
        observed.update(r["shared"])
        observed.update({f"per_attach_type_{hook}": seen for hook, seen in r["per_attach_type"].items()})
    expect(observed, expected, facts=[SHARED], verifier=r.get("verifier"))
