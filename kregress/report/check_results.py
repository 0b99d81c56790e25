"""`kregress check-results`: the CI gate after a run. A green run must have tested kernels: one
that booted none, or ran no VM test, fails however its tests ended."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def check(results: Path, min_kernels: int) -> int:
    """Print what booted and ran; 1 when fewer than min_kernels booted or no VM test ran."""
    try:
        doc = json.loads(Path(results).read_text())
    except (OSError, ValueError) as err:
        print(f"check-results: cannot read {results}: {err}", file=sys.stderr)
        return 1
    summary = doc.get("summary", {})
    kernels = doc.get("kernels", {})
    for accel in doc.get("accelerators", []):
        print(f"accelerator: {accel.get('accel')} ({accel.get('reason')})")
    for kernel_id, info in kernels.items():
        how = "restored" if info.get("boot_how") == "restored" else "booted"
        state = f"{how} in {info['boot_seconds']}s" if info.get("boot_seconds") else "NOT BOOTED"
        print(f"  {kernel_id}: {info.get('package_version') or info.get('image')} "
              f"uname -r {info.get('uname_r')}: {state}")
    print(f"kernels booted: {summary.get('kernels_booted', 0)} of {len(kernels)}; "
          f"VM tests run: {summary.get('vm_tests_run', 0)}; outcomes: {summary.get('outcomes')}")
    problems = []
    if summary.get("kernels_booted", 0) < min_kernels:
        problems.append(f"only {summary.get('kernels_booted', 0)} kernel(s) booted, need {min_kernels}")
    if summary.get("vm_tests_run", 0) < 1:
        problems.append("no VM test ran")
    for problem in problems:
        print(f"check-results: FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0
