"""What the plugin's modules share: where the kernel pool and the results file are kept, a
test's record, the kernel a test runs on."""
from __future__ import annotations

from pathlib import Path

import pytest

from kregress.report.results import ResultsFile
from kregress.run.pool import KernelPool
from kregress.expectation.record import new_record

PROPERTY = "kregress"       # the user property that carries a test's record to the controller
POOL = pytest.StashKey[KernelPool]()
RESULTS = pytest.StashKey[ResultsFile]()


def record_of(item) -> dict:
    for key, value in item.user_properties:
        if key == PROPERTY:
            return value
    value = new_record()
    item.user_properties.append((PROPERTY, value))
    return value


def kernel_of(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("kernel_id") if callspec else None


def unit_only(config) -> bool:
    """A run of tests/unit alone boots nothing: no probe, no run directory."""
    return bool(config.args) and all(
        Path(a.split("::")[0]).resolve().is_relative_to(config.rootpath / "tests/unit") for a in config.args)
