#!/bin/sh
# Runs inside the guest (vng --exec): network for the forwarded SSH port, then sshd,
# then a marker the host waits for. The guest's root is the host's, read-only; only
# tmpfs overlays (/etc, /tmp, /run ...) are writable, so nothing here touches the host.
RUN_DIR="$1"
set -u
say() { echo "KREGRESS: $*"; }
modprobe -q virtio_net 2>/dev/null
ip link set lo up
IFACE=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
if [ -z "$IFACE" ]; then say "FAIL no network interface (virtio_net missing?)"; exec sleep infinity; fi
ip link set "$IFACE" up
ip addr add 10.0.2.15/24 dev "$IFACE"      # slirp's fixed guest address
ip route add default via 10.0.2.2 2>/dev/null
# sshd (UsePAM no) refuses a root whose shadow entry is "*" as locked. Bind a
# guest-only copy over it: the host's file is never written.
sed 's/^root:[^:]*:/root:x:/' /etc/shadow > /run/kregress-shadow
mount --bind /run/kregress-shadow /etc/shadow
# Root's login shell becomes /bin/sh in the guest: sshd runs every session through it,
# and bash would source the host's ~/.bashrc (pyenv init and the like: seconds under TCG).
sed 's#^\(root:[^:]*:0:0:[^:]*:[^:]*\):.*#\1:/bin/sh#' /etc/passwd > /run/kregress-passwd
mount --bind /run/kregress-passwd /etc/passwd
mkdir -p /run/sshd && chmod 0755 /run/sshd
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
# sshd logs to the console, which the host keeps in the run directory.
if ! check=$(/usr/sbin/sshd -t -f "$RUN_DIR/sshd_config" 2>&1); then
    say "FAIL sshd rejects $RUN_DIR/sshd_config: $check"; exec sleep infinity
fi
/usr/sbin/sshd -D -e -r -f "$RUN_DIR/sshd_config" 2>&1 | sed -u 's/^/sshd: /' &
say "READY release=$(uname -r) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null) iface=$IFACE"
exec sleep infinity      # the host stops the VM
