"""The provision wing: everything a guest is given, built on the host and cached by content.

image (the read-only erofs userspace from guest/image.toml), rootfs (mmdebstrap as root or not),
buildroot (the Debian root that compiles guest programs), programs (scenario drivers, BPF
objects and the guest agent, compiled in the build root), initramfs (busybox, our init and the
kernel's boot modules), in_guest/ (the agent's C source and the guest-side scripts).
"""
