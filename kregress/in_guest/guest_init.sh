#!/bin/sh
# Stage 2, PID 1 inside the guest image (its own dash and busybox): network, the SSH server, the
# guest agent, the kernel interfaces the scenarios use, then a marker the host waits for.
# The image is read-only; /run, /tmp and /var/tmp are tmpfs. Order matters under TCG:
# the agent's Python start and the host's SSH handshake are the longest steps, so the
# agent starts first and the SSH server right after the network.
BB=/bin/busybox
say() { echo "KREGRESS: $*"; }
$BB ip link set lo up
# The host reaches the agent through SSH (direct-tcpip to the guest's 127.0.0.1:7001).
# Its Python start is the longest step here, so it starts first and overlaps the rest.
/usr/bin/python3 -u -I -S /run/kregress/agent.py --listen 7001 &
IFACE=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
[ -n "$IFACE" ] || { say "FAIL no network interface (virtio_net not loaded?)"; exec $BB sleep 100000; }
$BB ip link set "$IFACE" up
$BB ip addr add 10.0.2.15/24 dev "$IFACE"
$BB ip route add default via 10.0.2.2
$BB mkdir -p /dev/pts
$BB mount -t devpts devpts /dev/pts
# dropbear, with the run's host key (in dropbear's format, written by the host) and the
# run's authorized key; it logs to the console, which the host keeps
/run/kregress/start_sshd.sh
$BB mount -t securityfs securityfs /sys/kernel/security
$BB mount -t cgroup2 none /sys/fs/cgroup
$BB mount -t bpf bpf /sys/fs/bpf
$BB mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$BB mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
$BB mkdir -p /dev/shm
$BB mount -t tmpfs shm /dev/shm
$BB hostname kregress
say "READY release=$(uname -r) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null) iface=$IFACE t=$(cut -d' ' -f1 /proc/uptime)"
exec $BB sleep 2147483647      # the host stops the VM
