#!/bin/sh
# (Re)start the guest's SSH server (dropbear) with the host key and authorized key in
# /run/kregress/ssh: at boot, and after a restore, when the guest takes the run's keys
# (dropbear cannot reload its key; connections already made live on in its children).
d=/run/kregress/ssh
if [ -s /run/dropbear.pid ]; then
    old=$(cat /run/dropbear.pid)
    kill "$old" 2> /dev/null
    # gone, or a zombie: PID 1 here does not reap, and a zombie holds no port
    while [ -e /proc/$old ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$old/stat 2> /dev/null; do sleep 0.01; done
fi
# -s: no passwords; -D: authorized_keys from the run's directory; -F -E: foreground, log to stderr;
# -W: a 1 MiB receive window (default 24 KiB: the host waited for a window adjustment every
# 24 KiB of a driver it pushed, each a round trip through the emulated guest; pushes ~35% faster)
# (a dropbear without -D reads ~/.ssh, which the initramfs linked to $d: /run/kregress/sshd_keys says which)
keys="-D $d"
read -r mode < /run/kregress/sshd_keys
[ "$mode" = home ] && keys=
/usr/sbin/dropbear -F -E -s -p 22 -W 1048576 -r $d/host_key $keys -P /run/dropbear.pid < /dev/null > /dev/console 2>&1 &
