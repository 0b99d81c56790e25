#!/bin/sh
# Stage 2, PID 1 inside the guest image (its own dash and busybox): kernel interfaces
# the scenarios use, slirp's fixed address, the agent and sshd, then a marker the host
# waits for. The image is read-only; /run, /tmp and /var/tmp are tmpfs.
BB=/bin/busybox
say() { echo "KREGRESS: $*"; }
$BB mount -t cgroup2 none /sys/fs/cgroup
$BB mount -t bpf bpf /sys/fs/bpf
$BB mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$BB mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
$BB mkdir -p /dev/pts /dev/shm
$BB mount -t devpts devpts /dev/pts
$BB mount -t tmpfs shm /dev/shm
$BB hostname kregress
$BB ip link set lo up
IFACE=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
[ -n "$IFACE" ] || { say "FAIL no network interface (virtio_net not loaded?)"; exec $BB sleep 100000; }
$BB ip link set "$IFACE" up
$BB ip addr add 10.0.2.15/24 dev "$IFACE"
$BB ip route add default via 10.0.2.2
# The agent starts now, in parallel with sshd: the host reaches it through the SSH
# connection (direct-tcpip to 127.0.0.1:7001), never spawning Python per connection.
/usr/bin/python3 -u -I -S /run/kregress/agent.py --listen 7001 &
mkdir -p /run/sshd
if ! check=$(/usr/sbin/sshd -t -f /run/kregress/sshd_config 2>&1); then
    say "FAIL sshd rejects its configuration: $check"; exec $BB sleep 100000
fi
/usr/sbin/sshd -D -e -f /run/kregress/sshd_config &
say "READY release=$(uname -r) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null) iface=$IFACE t=$(cut -d' ' -f1 /proc/uptime)"
exec $BB sleep 2147483647      # the host stops the VM
