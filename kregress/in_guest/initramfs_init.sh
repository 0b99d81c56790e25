#!/bin/busybox sh
# Stage 1, PID 1 in the initramfs (the image's own busybox). Loads exactly the modules
# listed in /etc/kregress/modules, mounts the read-only image from /dev/vda, gives it
# tmpfs for everything writable, takes the run's SSH keys from fw_cfg and hands over
# to stage 2 (guest_init.sh) inside the image. Nothing of the host is mounted.
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "KREGRESS: $*"; }
fail() { say "FAIL $*"; exec sleep 100000; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc
say "PHASE kernel_done $(uptime_s)"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /etc/kregress/modules); do
    insmod "/lib/modules/$module.ko" || fail "insmod $module failed (see the lines above)"
done
for _ in $(seq 200); do [ -b /dev/vda ] && break; sleep 0.02; done
[ -b /dev/vda ] || fail "no /dev/vda: the guest image's disk did not appear (virtio_blk?)"
mkdir -p /newroot
mount -t erofs -o ro /dev/vda /newroot || fail "cannot mount the guest image (erofs) from /dev/vda"
mount -t tmpfs -o mode=0755,size=64m run /newroot/run
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
mount -t tmpfs -o mode=1777 vartmp /newroot/var/tmp
mkdir -p /newroot/run/kregress/ssh
cp /kregress/* /newroot/run/kregress/
keys=/sys/firmware/qemu_fw_cfg/by_name/opt/kregress
for name in host_key authorized_keys; do
    cat "$keys/$name/raw" > "/newroot/run/kregress/ssh/$name" 2>/dev/null || fail "no $name in fw_cfg ($keys)"
done
chmod 600 /newroot/run/kregress/ssh/host_key
say "PHASE init_done $(uptime_s)"
for fs in dev proc sys; do mount --move "/$fs" "/newroot/$fs"; done
exec switch_root /newroot /bin/sh /run/kregress/guest_init.sh
