"""The run wing: booting a kernel and talking to it.

accel (KVM or TCG, probed and cached), kvm_probe (each kernel's accelerator), hostcpu (the
machine we run on), catalog (the selected kernels, resolved), vng (virtme-ng's dry run),
boot_inputs (what a guest is made from, its stable description, a start's slots, the
snapshot key), qemu_command (its QEMU command, one pure function), errors (BootError), vm
(the QEMU process and its guest: boot, save, restore, stop), console (its console log),
boot_record (what a start came to), qmp (its control socket), snapshot (saved guests, the
cache), snapshot_start (the snapshot policy: restore, or boot and save), guest (the SSH
connection and the agent), session (one booted kernel as a test sees it), pool (a pytest
process's one live VM).
"""
