"""Runs inside the guest, started by the guest's init before sshd: it listens on the
guest's loopback (port given with --listen) and the host reaches it through its SSH
connection (a direct-tcpip channel). One JSON request per line in, one JSON reply per
line out. Spawning a process per command costs seconds under TCG; a message to this
agent costs milliseconds. Without --listen it serves stdin/stdout.

Each reply carries the kernel log lines that appeared since the previous reply
(/dev/kmsg), so the host can give every test exactly the lines produced while it ran.
A request without "argv" only collects those lines. A command that outlives its timeout
gets a blocked-task dump (sysrq w) written to the log before it is killed.
Standard library only: it runs under the guest image's /usr/bin/python3.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time


def open_kmsg():
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(fd, 0, os.SEEK_END)
        return fd
    except OSError:
        return None


def drain_kmsg(fd):
    lines = []
    while fd is not None:
        try:
            record = os.read(fd, 8192)
        except BlockingIOError:
            break
        except OSError:          # EPIPE: records overwritten before we read them
            continue
        header, _, message = record.decode(errors="replace").partition(";")
        fields = header.split(",")
        stamp = int(fields[2]) / 1e6 if len(fields) > 2 and fields[2].isdigit() else 0.0
        lines.append("[%12.6f] %s" % (stamp, message.split("\n")[0]))
    return lines


def kernel_stack(pid):
    """Where the stuck command sits in the kernel (state, wchan, stack) before it is killed."""
    lines = []
    for name in ("stat", "wchan", "stack"):
        try:
            with open("/proc/%d/%s" % (pid, name)) as handle:
                lines.append("%s: %s" % (name, handle.read().strip()))
        except OSError as err:
            lines.append("%s: %s" % (name, err))
    return "\n".join(lines)


def sysrq(key):
    try:
        with open("/proc/sysrq-trigger", "w") as trigger:
            trigger.write(key)
    except OSError:
        pass


def run(request, kmsg):
    if not request.get("argv"):
        return {"rc": 0, "timed_out": False, "stdout": "", "stderr": "", "dmesg": drain_kmsg(kmsg),
                "seconds": 0.0}
    started = time.monotonic()
    proc = subprocess.Popen(request["argv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=request.get("cwd") or "/tmp",
                            env=dict(os.environ, **request.get("env", {})), start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=request.get("timeout", 60))
    except subprocess.TimeoutExpired:
        timed_out = True
        stuck = kernel_stack(proc.pid)
        sysrq("w")     # blocked tasks, for the host's report, before we kill anything
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:    # stuck in the kernel: report, do not wait
            out, err = b"", b"process did not die after SIGKILL (blocked in the kernel?)"
    if timed_out:
        err = ("command %d timed out; its kernel side:\n%s\n" % (proc.pid, stuck)).encode() + err
    return {"rc": None if timed_out else proc.returncode, "timed_out": timed_out,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace"),
            "dmesg": drain_kmsg(kmsg), "seconds": round(time.monotonic() - started, 4)}


def serve(reader, writer, kmsg):
    """One JSON request per line in, one JSON reply per line out, until EOF."""
    writer.write(json.dumps({"hello": os.uname().release}) + "\n")
    writer.flush()
    for line in reader:
        try:
            reply = run(json.loads(line), kmsg)
        except Exception as err:   # the host must always get a reply line
            reply = {"rc": None, "timed_out": False, "stdout": "", "stderr": "agent: %r" % err,
                     "dmesg": drain_kmsg(kmsg), "seconds": 0.0, "agent_error": True}
        writer.write(json.dumps(reply) + "\n")
        writer.flush()


def listen(port, kmsg):
    """Serve one connection at a time on the guest's loopback (reached through SSH)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    with open("/proc/uptime") as uptime:
        sys.stderr.write("KREGRESS: PHASE agent_listening %s\n" % uptime.read().split()[0])
    sys.stderr.flush()
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("r") as reader, conn.makefile("w") as writer:
            try:
                serve(reader, writer, kmsg)
            except OSError:      # the host went away mid-reply; wait for the next one
                pass


def main():
    kmsg = open_kmsg()
    if len(sys.argv) == 3 and sys.argv[1] == "--listen":
        listen(int(sys.argv[2]), kmsg)
    else:
        serve(sys.stdin, sys.stdout, kmsg)


if __name__ == "__main__":
    main()
