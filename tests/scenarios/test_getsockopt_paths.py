"""The cgroup getsockopt hook's other paths and later states: SCTP options that skip it
(2598619e012c), io_uring's SOCKET_URING_OP_GETSOCKOPT (a5d2f99aff6b, v6.7) with optlen > PAGE_SIZE,
and AF_PACKET answering through getsockopt_iter (v7.1). One counting program
(progs/getsockopt_paths.bpf.c) says whether the hook ran for each call; it answers nothing, as
fleets' programs for other options do. Expectations come from kregress.kernels.facts."""
import pytest

pytestmark = pytest.mark.scenario(facts=["sctp_bypass_getsockopt", "io_uring_getsockopt",
                                         "getsockopt_iter_packet", "getsockopt_relief",
                                         "getsockopt_retval_in_run_ctx"])

DRIVER = "getsockopt_paths"
SCTP = "sctp_bypass_getsockopt"
URING = "io_uring_getsockopt"
ITER = "getsockopt_iter_packet"
RELIEF = "getsockopt_relief"
RETVAL = "getsockopt_retval_in_run_ctx"
BYPASSED = ("peeloff", "peeloff_flags", "connectx3")     # sctp_bpf_bypass_getsockopt's options
KERNEL_ANSWER = "ENOPROTOOPT"                            # an option no handler knows


def test_sctp_bypassed_options_skip_the_program(kernel_session, run_driver, kernel_facts, precondition, expect):
    """SCTP_SOCKOPT_PEELOFF, PEELOFF_FLAGS and CONNECTX3 (each failing on an empty socket) never
    reach the program where the kernel has 2598619e012c; SCTP_STATUS, the control, always does.
    The answers are the kernel's own: the same errno with the program as without it. sctp is a
    module in Debian: the kernel's own sctp.ko (and what it needs) is loaded first."""
    modules = kernel_session.load_modules(["sctp"])
    baseline = run_driver(DRIVER, "sctp", "none")
    precondition("SCTP socket", baseline["socket"] == "OK",
                 reason=f"socket(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP): {baseline['socket']}; modules: {modules}")
    seen = run_driver(DRIVER, "sctp", "count")
    bypass = kernel_facts.has(SCTP)
    observed = {f"{name}_program_runs": seen[name]["program_runs"] for name in ("status", *BYPASSED)}
    expected = {"status_program_runs": 1, **{f"{name}_program_runs": 0 if bypass else 1 for name in BYPASSED}}
    observed.update({f"{name}_errno_as_without_program": seen[name]["errno"] == baseline[name]["errno"]
                     for name in ("status", *BYPASSED)})
    expected.update({f"{name}_errno_as_without_program": True for name in ("status", *BYPASSED)})
    expect(observed, expected, facts=[SCTP], modules=modules,
           errnos={name: seen[name]["errno"] for name in ("status", *BYPASSED)})


def test_io_uring_getsockopt_big_optlen(run_driver, kernel_facts, precondition, expect):
    """SOCKET_URING_OP_GETSOCKOPT with an option nobody handles at SOL_SOCKET and optlen
    2 * PAGE_SIZE through the ignoring program: the hook runs as for getsockopt(), so the
    caller gets what the syscall gives (the kernel's ENOPROTOOPT where the relief or
    c4dcfdd406aa lets it through, else EFAULT). Any other level is EOPNOTSUPP before the hook
    (io_uring/uring_cmd.c accepts SOL_SOCKET only). A kernel without the command answers the
    probe (SO_TYPE) with an error: a named skip where the facts say it lacks it."""
    seen = run_driver(DRIVER, "uring", "count", "2page")
    precondition("io_uring_setup", seen["setup"] == "OK", reason=f"io_uring_setup: {seen['setup']}")
    probe = seen["probe"]
    precondition("SOCKET_URING_OP_GETSOCKOPT answered", probe["errno"] == "OK" and probe["so_type_is_stream"],
                 facts=[URING], reason=f"IORING_OP_URING_CMD GETSOCKOPT(SO_TYPE) completed with {probe['errno']}")
    relief, retval_first = kernel_facts.has(RELIEF), kernel_facts.has(RETVAL)     # both consulted
    answer = KERNEL_ANSWER if relief or retval_first else "EFAULT"
    observed = {"unknown_errno": seen["unknown"]["errno"], "unknown_program_runs": seen["unknown"]["program_runs"],
                "syscall_errno": seen["unknown_syscall"]["errno"],
                "syscall_program_runs": seen["unknown_syscall"]["program_runs"],
                "sol_ip_errno": seen["ip_tos"]["errno"], "sol_ip_program_runs": seen["ip_tos"]["program_runs"]}
    expected = {"unknown_errno": answer, "unknown_program_runs": 1, "syscall_errno": answer,
                "syscall_program_runs": 1, "sol_ip_errno": "EOPNOTSUPP", "sol_ip_program_runs": 0}
    expect(observed, expected, facts=[URING, RELIEF, RETVAL], optlen=seen["optlen_in"], probe_res=probe["res"])


def test_packet_getsockopt_iter(run_driver, kernel_facts, precondition, expect):
    """AF_PACKET, without and with the counting program. A level af_packet does not know with
    optlen -1: ENOPROTOOPT from the old handler, EINVAL from getsockopt_iter's optlen check
    (before the handler); with a program, EINVAL everywhere and the program never runs (the
    hook refuses a negative optlen before running programs, on every kernel). An unknown
    SOL_PACKET option with optlen in a read-only page: the old handler never writes optlen back
    (ENOPROTOOPT); getsockopt_iter always does (EFAULT, before the hook: no program runs). With
    a program on older kernels the hook writes optlen back itself: EFAULT before c4dcfdd406aa
    (v5.18), the kernel's error after it (the hook bails out on a negative retval)."""
    bare = run_driver(DRIVER, "packet", "none")
    precondition("AF_PACKET socket", bare["socket"] == "OK", reason=f"socket(AF_PACKET): {bare['socket']}")
    seen = run_driver(DRIVER, "packet", "count")
    iter_path, retval_first = kernel_facts.has(ITER), kernel_facts.has(RETVAL)
    level, readonly = "other_level_negative_optlen", "unknown_option_readonly_optlen"
    observed = {"level_errno": bare[level]["errno"], "readonly_errno": bare[readonly]["errno"],
                "level_errno_with_program": seen[level]["errno"], "level_program_runs": seen[level]["program_runs"],
                "readonly_errno_with_program": seen[readonly]["errno"],
                "readonly_program_runs": seen[readonly]["program_runs"]}
    expected = {"level_errno": "EINVAL" if iter_path else "ENOPROTOOPT",
                "readonly_errno": "EFAULT" if iter_path else "ENOPROTOOPT",
                "level_errno_with_program": "EINVAL", "level_program_runs": 0,
                "readonly_errno_with_program": "EFAULT" if iter_path or not retval_first else "ENOPROTOOPT",
                "readonly_program_runs": 0 if iter_path else 1}
    expect(observed, expected, facts=[ITER, RETVAL])
