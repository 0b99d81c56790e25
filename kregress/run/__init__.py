"""The run wing: booting a kernel and talking to it.

accel (KVM or TCG, probed), hostcpu (the machine we run on), vng (virtme-ng's dry run),
boot_inputs (what a guest is made from), qemu_command (its QEMU command, one pure function),
errors (BootError), vm (the QEMU process: spawn, wait, stop), console (its console log),
boot_record (what a start came to), qmp (its control socket), snapshot (saved guests, the
cache), snapshot_start (a start from a snapshot: restore, or boot and save), guest (SSH and
the agent), session (one booted kernel as a test sees it), pool (a pytest process's kernels).
"""
