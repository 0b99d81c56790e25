"""The kernels wing: what a kernel is before it boots.

entries (kernels.toml parsed and checked), resolve (an entry -> a bootable kernel), debian
(Debian's packages: apt, verified downloads, unpacking), tree (source trees built with
virtme-ng), kernel (the resolved kernel), kconfig (its .config or IKCONFIG), modules (its
module files), vmlinux (the uncompressed image inside any boot image), facts (upstream facts:
commit, releases carrying it), evidence (what binary, changelog and config say per fact).
"""
