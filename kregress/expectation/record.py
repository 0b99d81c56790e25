"""A test's results entry, typed: the harness's own fields, and `extras` for whatever a test
adds (counts, sizes, attempts), so nothing a test adds can overwrite what the harness
recorded (outcome, dmesg, observed, harness_error...).

A scenario test ends one way: through expect() or through the precondition helper; each
writes `ended_by`, and the plugin fails a scenario test that ended any other way."""
from __future__ import annotations

ENDINGS = ("expect", "precondition")


class RecordError(ValueError):
    """A test tried to add a field under a name the harness owns."""


def new_record() -> dict:
    return {"observed": {}, "expected": {}, "dmesg": [], "extras": {}}


def add_extras(record: dict, extras: dict) -> None:
    """What a test adds beyond observed/expected goes into record["extras"], never the top level."""
    clash = sorted(set(extras) & {"observed", "expected", "dmesg", "outcome", "harness_error", "facts_used",
                                  "precondition", "deviations", "ended_by", "dmesg_before", "kernel_problems"})
    if clash:
        raise RecordError(f"a test may not record {', '.join(clash)} as an extra: the harness owns those "
                          f"fields; give the value another name")
    record.setdefault("extras", {}).update(extras)


def extra(test: dict, key: str, default=None):
    """A per-test extra value: in `extras` (this format), else the top level (older results files)."""
    extras = test.get("extras") or {}
    return extras[key] if key in extras else test.get(key, default)


def ending_problem(record: dict, outcome: str, xfailed: bool) -> str:
    """Why a scenario test's ending is not one of the allowed ones ("" when it is)."""
    if record.get("harness_error"):
        return ""           # the guest or the harness failed: not the test's ending
    ended_by = record.get("ended_by")
    if xfailed:
        return "it ended in xfail: a scenario test ends in expect() or the precondition helper, never xfail"
    if outcome == "skipped" and ended_by != "precondition":
        return ("it was skipped without the precondition helper: a skip must name its precondition and the "
                "facts it was judged against (the `precondition` fixture)")
    if outcome in ("passed", "failed") and ended_by not in ENDINGS:
        return ("it ended without expect() or the precondition helper (a bare assert, pytest.fail or a return "
                "before judging): end it with expect(observed, expected, facts=[...])")
    return ""
