#!/bin/sh
# Stage 2, PID 1 inside the guest image (its own dash). Stage 1 (initramfs_init.sh) has
# set up the network, the mounts and /run/kregress, and started the guest agent; this
# starts the SSH server and prints the marker the host waits for. The image is read-only;
# /run, /tmp and /var/tmp are tmpfs. Only builtins besides the server: under TCG each
# program started costs.
# dropbear, with the run's host key (in dropbear's format, written by the host) and the
# run's authorized key; it logs to the console, which the host keeps
/run/kregress/start_sshd.sh
read -r ready < /run/kregress/ready
read -r uptime _ < /proc/uptime
echo "KREGRESS: READY $ready t=$uptime"
exec /bin/busybox sleep 2147483647      # the host stops the VM
