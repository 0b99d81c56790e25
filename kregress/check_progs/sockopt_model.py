"""What the cgroup sockopt hook hands the caller, as the facts describe it: the expected
answer of a battery call with a program attached, from the kernel's own answer without it.

The programs are described by what they do to ctx->optlen (the fixtures under
tests/fixture_progs are that simple). Facts (kregress.kernels.facts): sockopt_page_cap (BPF's
buffer is at most PAGE_SIZE), getsockopt_retval_in_run_ctx (c4dcfdd406aa: a kernel error
returns before any copy), getsockopt_relief (29ebbba7d461: past PAGE_SIZE the program's
buffer is ignored), getsockopt_null_optval (00e74ae08638).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SETSOCKOPT_MIN_BUFFER = 16      # 9babe825da76: the setsockopt buffer is at least 16 bytes

# ctx->optlen after the program, from (optlen, buffer size, call); None: the program answers
# the call itself (optlen 16, retval 0: the SO_ORIGINAL_DST answerer)
OptlenRule = Callable[[int, int, dict], "int | None"]


@dataclass(frozen=True)
class ProgramModel:
    get: OptlenRule | None
    set: OptlenRule | None = None


def _original_dst(optlen: int, buffer: int, call: dict):
    if call["level_name"] == "SOL_IP" and call["optname_name"] == "SO_ORIGINAL_DST" and buffer >= 16:
        return None
    return optlen


MODELS = {
    "ignores_others": ProgramModel(get=lambda n, b, c: n, set=lambda n, b, c: n),
    "resets_past_buffer": ProgramModel(get=lambda n, b, c: 0 if n > b else n, set=lambda n, b, c: 0 if n > b else n),
    "clamps_4096": ProgramModel(get=lambda n, b, c: min(n, 4096)),
    "resets_above_4096": ProgramModel(get=lambda n, b, c: 0 if n > 4096 else n,
                                      set=lambda n, b, c: 0 if n > 4096 else n),
    "original_dst": ProgramModel(get=_original_dst),
    # bpf_get_retval() < 0 -> optlen 0: on the kernels that load it a kernel error returns first anyway
    "chains_get_retval": ProgramModel(get=lambda n, b, c: 0 if n > b else n),
}
PROGRAM_FIXTURE = {     # program name in the object -> its model and which hook it is
    "get_ignores_others": ("ignores_others", "get"), "set_ignores_others": ("ignores_others", "set"),
    "get_resets_past_buffer": ("resets_past_buffer", "get"), "set_resets_past_buffer": ("resets_past_buffer", "set"),
    "get_clamps_4096": ("clamps_4096", "get"),
    "get_resets_above_4096": ("resets_above_4096", "get"), "set_resets_above_4096": ("resets_above_4096", "set"),
    "get_original_dst": ("original_dst", "get"),
    "get_chains_politely": ("chains_get_retval", "get"),
}


def expected_getsockopt(call: dict, kernel: list, page: int, rule: OptlenRule, has) -> dict:
    """{"errno", "optlen", "buffer": "kernel's" | "changed"} the caller should get."""
    errno, k_optlen, _ = kernel
    null = call["size"] == "null"
    n = call["optlen_in"]
    unchanged = {"errno": errno, "optlen": k_optlen, "buffer": "kernel's"}
    buffer = min(n, page) if has("sockopt_page_cap") else n
    ctx_optlen = k_optlen if errno == "OK" else n
    after = rule(ctx_optlen, buffer, call)
    if after is None:           # the program's own answer
        return {"errno": "OK", "optlen": 16, "buffer": "changed"}
    if errno != "OK" and has("getsockopt_retval_in_run_ctx"):
        return unchanged
    if (not null or not has("getsockopt_null_optval")) and (after > buffer or after < 0):
        if has("getsockopt_relief") and n > page and after >= 0:
            return unchanged
        return {**unchanged, "errno": "EFAULT"}
    if after == 0:
        return unchanged
    # copied back: the kernel's bytes on success, BPF's zeroed buffer after an error
    return {"errno": errno, "optlen": after, "buffer": "kernel's" if errno == "OK" or null else "changed"}


def expected_setsockopt(call: dict, kernel: list, page: int, rule: OptlenRule, has) -> dict:
    errno = kernel[0]
    n = call["optlen_in"]
    unchanged = {"errno": errno, "value": "kernel's"}
    if call["size"] == "null":
        return unchanged        # the hook's copy from NULL fails as the kernel's would
    buffer = min(max(n, SETSOCKOPT_MIN_BUFFER), page)
    after = rule(n, buffer, call)
    if after == -1 or after == 0 or after <= buffer:
        return unchanged        # skipped, the caller's buffer, or the same bytes from BPF's copy
    if has("getsockopt_relief") and n > page:
        return unchanged
    return {"errno": "EFAULT", "value": "changed"}     # the kernel never set it: the default reads back


def expected_caller(call: dict, kernel: list, page: int, program: str, has) -> dict | None:
    """The caller's expected answer with the fixture program attached; None: the program
    does not run on this call (a getsockopt program on a setsockopt call, and back)."""
    fixture, hook = PROGRAM_FIXTURE[program]
    rule = getattr(MODELS[fixture], hook)
    if hook == "get" and call["op"] == "get":
        return expected_getsockopt(call, kernel, page, rule, has)
    if hook == "set" and call["op"] == "set":
        return expected_setsockopt(call, kernel, page, rule, has)
    return None
