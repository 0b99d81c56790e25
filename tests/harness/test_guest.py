"""The guest itself, on every kernel: it runs the image built from guest/image.toml, from
a read-only block device, and nothing of the host is mounted in it; restored or booted,
it answers to this run's SSH keys only and keeps the host's time."""
import time

import pytest

from kregress.run.guest import GuestLost, GuestConnection

HOST_SHARES = ("9p", "virtiofs", "fuse.virtiofs")


def mounts(kernel_session) -> list[dict]:
    """/proc/self/mountinfo: mount point, filesystem type, source and options per line."""
    table = []
    for line in kernel_session.run(["cat", "/proc/self/mountinfo"]).stdout.splitlines():
        fields, _, rest = line.partition(" - ")
        fstype, source, super_options = rest.split(" ", 2)
        table.append({"target": fields.split()[4], "fstype": fstype, "source": source,
                      "options": fields.split()[5] + "," + super_options})
    return table


def test_nothing_of_the_host_is_mounted(kernel_session, record_behaviour):
    table = mounts(kernel_session)
    shares = [m for m in table if m["fstype"] in HOST_SHARES]
    root = next(m for m in table if m["target"] == "/")
    writable = sorted(m["target"] for m in table if m["fstype"] == "tmpfs")
    record_behaviour({"host_shares": len(shares), "root": f"{root['fstype']} {root['source']}",
                      "tmpfs": writable})
    assert not shares, f"host filesystems mounted in the guest: {shares}"
    assert (root["fstype"], root["source"]) == ("erofs", "/dev/vda"), root
    assert "ro" in root["options"].split(","), root
    assert {"/run", "/tmp", "/var/tmp"} <= set(writable), writable


def test_userspace_is_the_images_own(kernel_session, record_behaviour):
    image = kernel_session.image
    release = dict(line.split("=", 1) for line in
                   kernel_session.run(["cat", "/etc/os-release"]).stdout.splitlines() if "=" in line)
    # getconf asks the C library that is running; the image's own, if nothing of the host is
    libc = kernel_session.run(["getconf", "GNU_LIBC_VERSION"]).stdout.split()
    record_behaviour({"codename": release.get("VERSION_CODENAME"), "libc": " ".join(libc)},
                     {"codename": image.suite, "image_digest": image.digest})
    assert release.get("VERSION_CODENAME") == image.suite
    assert libc[:1] == ["glibc"] and image.packages["libc6"].startswith(libc[1] + "-"), (image.packages["libc6"], libc)


def test_guest_takes_this_runs_keys_and_the_hosts_time(kernel_session, record_behaviour):
    vm = kernel_session.vm
    guest_now = float(kernel_session.run(["date", "+%s.%N"]).stdout)
    authorized = kernel_session.run(["cat", "/run/kregress/ssh/authorized_keys"]).stdout
    skew = guest_now - time.time()
    run_key_only = authorized == (vm.keys.directory / "authorized_keys").read_text()
    # what compare sees must not move between runs: the skew and how the guest started are extras
    record_behaviour({"clock_within_30s": abs(skew) < 30, "run_key_only": run_key_only},
                     {"clock_within_30s": True, "run_key_only": True}, clock_skew_s=round(skew, 1), guest_start=kernel_session.boot.how)
    assert abs(skew) < 30, f"a restored guest's clock must be set to the host's (off by {skew:.0f}s)"
    assert run_key_only, authorized
    # dropbear is restarted on the run's host key in the background after a restore
    deadline = time.monotonic() + 20
    while True:
        try:
            GuestConnection(vm.port, vm.keys, connect_timeout=5).close()
            break
        except GuestLost:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if vm.guest_keys.directory != vm.keys.directory:       # restored: the snapshot's keys are out
        # (the server now runs on the run's host key, as the login above proved: no retry window left)
        with pytest.raises(GuestLost):
            GuestConnection(vm.port, vm.guest_keys, connect_timeout=0.5)
