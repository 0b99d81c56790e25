#!/bin/busybox sh
# Stage 1, PID 1 in the initramfs (the image's own busybox). Loads exactly the modules
# listed in /etc/kregress/modules, mounts the read-only image from /dev/vda, gives it
# tmpfs for everything writable, takes the run's SSH keys from fw_cfg (or the keys disk) and hands over
# to stage 2 (guest_init.sh) inside the image, with the network and the kernel's
# filesystems already set up. Nothing of the host is mounted.
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "KREGRESS: $*"; }
fail() { say "FAIL $*"; exec sleep 100000; }
proc=/proc
uptime_s() { cut -d' ' -f1 $proc/uptime; }

mount -t proc proc /proc
say "PHASE kernel_done $(uptime_s)"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Test-only (tests/harness/test_resilience.py): a boot-time warning in the kernel log, a stand-in
# for a real WARN (Debian's kernels lack LKDTM, which would make one on purpose).
case " $(cat /proc/cmdline) " in *" kregress.test_boot_warning "*)
    echo "<4>WARNING: CPU: 0 PID: 1 at kregress-initramfs-init:0 stand-in boot warning" \
         "(test-only flag kregress.test_boot_warning)" > /dev/kmsg ;;
esac
for module in $(cat /etc/kregress/modules); do
    insmod "/lib/modules/$module.ko" || fail "insmod $module failed (see the lines above)"
done
for _ in $(seq 200); do [ -b /dev/vda ] && break; sleep 0.02; done
[ -b /dev/vda ] || fail "no /dev/vda: the guest image's disk did not appear (virtio_blk?)"
# Machines without fw_cfg (pseries, s390-ccw) get the run's keys on a disk of their own,
# serial krkeys, a tar archive; it is asked for on the command line after the image's.
# fw_cfg's sysfs directory is there once qemu_fw_cfg is loaded or built in, where QEMU has it.
keys_disk=
if [ ! -d /sys/firmware/qemu_fw_cfg ]; then
    for _ in $(seq 200); do
        for serial in /sys/block/vd*/serial; do
            [ "$(cat "$serial" 2>/dev/null)" = krkeys ] && keys_disk=${serial%/serial} && break 2
        done
        sleep 0.02
    done
    [ -n "$keys_disk" ] || fail "no keys disk (a virtio disk with serial krkeys) and no fw_cfg"
    keys_disk=/dev/${keys_disk##*/}
fi
image_disk=/dev/vda
[ "$keys_disk" = /dev/vda ] && image_disk=/dev/vdb
for _ in $(seq 200); do [ -b $image_disk ] && break; sleep 0.02; done
mkdir -p /newroot
mount -t erofs -o ro $image_disk /newroot || fail "cannot mount the guest image (erofs) from $image_disk"
mount -t tmpfs -o mode=0755,size=64m run /newroot/run
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
mount -t tmpfs -o mode=1777 vartmp /newroot/var/tmp
mkdir -p /newroot/run/kregress/ssh
cp /kregress/* /newroot/run/kregress/
for fs in dev proc sys; do mount --move "/$fs" "/newroot/$fs"; done
cd /newroot
proc=/newroot/proc
mknod -m 666 /dev/null c 1 3      # this shell gives background jobs /dev/null as stdin
# The guest agent (static, ours) runs in the image's root; the host reaches it through
# SSH (direct-tcpip to the guest's 127.0.0.1:7001). Commands it runs get this PATH.
ip link set lo up
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot . /run/kregress/agent --listen 7001 &
if [ -n "$keys_disk" ]; then
    tar -xf ".$keys_disk" -C run/kregress/ssh || fail "cannot read the keys from $keys_disk (a tar archive)"
    for name in host_key authorized_keys; do
        [ -s "run/kregress/ssh/$name" ] || fail "no $name on the keys disk $keys_disk"
    done
else
    keys=sys/firmware/qemu_fw_cfg/by_name/opt/kregress
    for name in host_key authorized_keys; do
        cat "$keys/$name/raw" > "run/kregress/ssh/$name" 2>/dev/null || fail "no $name in fw_cfg (/$keys)"
    done
fi
chmod 600 run/kregress/ssh/host_key
# a dropbear without -D (before 2024.84: bookworm's) reads root's ~/.ssh/authorized_keys
read -r sshd_keys < /kregress/sshd_keys
if [ "$sshd_keys" = home ]; then
    mount -t tmpfs -o mode=0700,size=1m roothome root && ln -s /run/kregress/ssh root/.ssh
fi
# The kernel interfaces the scenarios use and the network are set up here rather than in
# stage 2: this busybox runs its applets without an exec, and under TCG every program
# started from the image costs tens of milliseconds of boot.
mount -t securityfs securityfs sys/kernel/security
mount -t cgroup2 none sys/fs/cgroup
mount -t bpf bpf sys/fs/bpf
mount -t debugfs debugfs sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs sys/kernel/tracing 2>/dev/null
mkdir -p dev/pts dev/shm
mount -t devpts devpts dev/pts
mount -t tmpfs shm dev/shm
iface=$(ls sys/class/net | grep -v '^lo$' | head -n 1)
[ -n "$iface" ] || fail "no network interface (virtio_net not loaded?)"
ip link set "$iface" up
ip addr add 10.0.2.15/24 dev "$iface"
ip route add default via 10.0.2.2
hostname kregress
# the page size as the running kernel maps this shell (kB): the scenarios' sizes follow it
page_kb=$(grep -m1 KernelPageSize proc/self/smaps | tr -dc 0-9)
echo "release=$(uname -r) lsm=$(cat sys/kernel/security/lsm 2>/dev/null) page_kb=$page_kb iface=$iface" > run/kregress/ready
say "PHASE init_done $(uptime_s)"
exec switch_root /newroot /bin/sh /run/kregress/guest_init.sh
