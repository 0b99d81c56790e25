from kregress.report.results import verdict


def test_every_recorded_outcome_has_one_verdict_for_all_reports():
    assert [verdict(o) for o in ("passed", "xpassed", "failed", "error", "skipped", "xfailed")] == [
        "pass", "pass", "fail", "error", "skip", "skip"]
    assert verdict("something new") == "error" and verdict(None) == "error"
