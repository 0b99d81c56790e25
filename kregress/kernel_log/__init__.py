"""The kernel-log wing: a guest's kernel messages, kept and judged.

splats (kernel problems and the allowlist), boot (the boot's log, kept with the snapshot),
gaps (lines logged while no test was running).
"""
