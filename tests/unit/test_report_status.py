from kregress.report.results import report_status


def test_every_recorded_outcome_has_one_status_for_all_reports():
    assert [report_status(o) for o in ("passed", "xpassed", "failed", "error", "skipped", "xfailed")] == [
        "pass", "pass", "fail", "error", "skip", "skip"]
    assert report_status("something new") == "error" and report_status(None) == "error"
