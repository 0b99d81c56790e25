"""One command per thing a test ran in the guest, that runs it again on the same kernel:
`kregress exec --kernel ID -- DRIVER ARGS` (or `--shell` for a plain command). A failed
case carries these in its failure message, and so in the HTML report, JUnit and KCIDB."""
from __future__ import annotations

import shlex
from pathlib import Path

from kregress.provision.programs import scenario_names
from kregress.paths import data, kregress_command


def commands(record: dict, kernel_id: str, kernels_file: Path | str) -> list[str]:
    drivers = set(scenario_names())
    programs_from = record.get("programs_from") or {}
    base = [kregress_command(), "exec"]
    if Path(kernels_file).resolve() != data("kernels.toml").resolve():
        base += ["--kernels-file", str(Path(kernels_file).resolve())]
    base += ["--kernel", kernel_id]
    out = []
    for argv in record.get("commands") or []:
        name = argv[0]
        if name in programs_from:
            out.append(shlex.join([*base, "--from", programs_from[name], "--", *argv]))
        elif name in drivers:
            out.append(shlex.join([*base, "--", *argv]))
        else:
            out.append(shlex.join([*base, "--shell", "--", shlex.join(argv)]))
    return out
