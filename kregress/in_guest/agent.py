"""Runs inside the guest, started by the guest's init before sshd: it listens on the
guest's loopback (--listen PORT) and the host reaches it through its SSH connection (a
direct-tcpip channel). One JSON request per line in, one JSON reply per line out.
Spawning a process per command costs seconds under TCG; a message costs milliseconds.

Each reply carries the kernel log lines that appeared since the previous reply
(/dev/kmsg), so the host can give every test exactly the lines produced while it ran.
A request without "argv" only collects those lines. A command that outlives its timeout
gets its kernel stack recorded and a blocked-task dump (sysrq w) written to the log
before it is killed.

It imports only modules built into the interpreter: under TCG, `import json` (re, enum)
and `import subprocess` cost over a second of boot before the agent could answer. The
JSON here is a small codec over the C string functions the json package itself uses.
Standard library only: it runs under the guest image's /usr/bin/python3.
"""
import _json
import _socket
import _thread
import os
import select
import sys
import time

SIGKILL = 9


# -- JSON: the subset the host sends and expects (objects, arrays, strings, numbers,
#    true/false/null), strings through the json package's own C functions.

def dumps(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_json.encode_basestring_ascii(str(k)) + ":" + dumps(v)
                              for k, v in value.items()) + "}"
    raise TypeError("cannot encode %r" % type(value))


def loads(text):
    value, end = _parse(text, _skip(text, 0))
    if _skip(text, end) != len(text):
        raise ValueError("trailing data at %d" % end)
    return value


def _skip(text, at):
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _parse(text, at):
    char = text[at:at + 1]
    if char == '"':
        return _json.scanstring(text, at + 1, True)
    if char == "{":
        result, at = {}, _skip(text, at + 1)
        if text[at:at + 1] == "}":
            return result, at + 1
        while True:
            if text[at:at + 1] != '"':
                raise ValueError("expected a key at %d" % at)
            key, at = _json.scanstring(text, at + 1, True)
            at = _skip(text, at)
            if text[at:at + 1] != ":":
                raise ValueError("expected ':' at %d" % at)
            result[key], at = _parse(text, _skip(text, at + 1))
            at = _skip(text, at)
            if text[at:at + 1] == "}":
                return result, at + 1
            if text[at:at + 1] != ",":
                raise ValueError("expected ',' or '}' at %d" % at)
            at = _skip(text, at + 1)
    if char == "[":
        result, at = [], _skip(text, at + 1)
        if text[at:at + 1] == "]":
            return result, at + 1
        while True:
            item, at = _parse(text, _skip(text, at))
            result.append(item)
            at = _skip(text, at)
            if text[at:at + 1] == "]":
                return result, at + 1
            if text[at:at + 1] != ",":
                raise ValueError("expected ',' or ']' at %d" % at)
            at += 1
    for word, value in (("true", True), ("false", False), ("null", None)):
        if text.startswith(word, at):
            return value, at + len(word)
    end = at
    while end < len(text) and text[end] in "+-0123456789.eE":
        end += 1
    number = text[at:end]
    if not number:
        raise ValueError("unexpected %r at %d" % (char, at))
    return (float(number) if any(c in number for c in ".eE") else int(number)), end


# -- the kernel log

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


# -- running a command

def spawn(argv, env, cwd):
    """posix_spawn (no fork of this interpreter: cheaper, and safe with our threads) in a
    session of its own, stdin /dev/null; returns pid and its output fds."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2),
               (os.POSIX_SPAWN_CLOSE, out_r), (os.POSIX_SPAWN_CLOSE, err_r)]
    try:
        os.chdir(cwd)
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
    except OSError as err:
        os.write(err_w, ("agent: cannot run %s: %s\n" % (argv[0], err)).encode())
        pid = None
    finally:
        os.close(out_w)
        os.close(err_w)
    return pid, out_r, err_r


def collect(fds, deadline):
    """Read both pipes until EOF or the deadline; returns (outputs, reached EOF)."""
    data = {fd: [] for fd in fds}
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    open_fds = set(fds)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000):
            chunk = os.read(fd, 65536)
            if chunk:
                data[fd].append(chunk)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
    return [b"".join(data[fd]) for fd in fds], not open_fds


def run(request, kmsg):
    if not request.get("argv"):
        return {"rc": 0, "timed_out": False, "stdout": "", "stderr": "", "dmesg": drain_kmsg(kmsg),
                "seconds": 0.0}
    started = time.monotonic()
    env = dict(os.environ)
    env.update(request.get("env") or {})
    pid, out_fd, err_fd = spawn(request["argv"], env, request.get("cwd") or "/tmp")
    (out, err), finished = collect([out_fd, err_fd], started + request.get("timeout", 60))
    timed_out = False
    if pid is None:
        status = 127 << 8       # as a shell reports a command it cannot run
    elif finished:
        _, status = os.waitpid(pid, 0)
    else:
        timed_out = True
        stuck = kernel_stack(pid)
        sysrq("w")     # blocked tasks, for the host's report, before we kill anything
        try:
            os.killpg(pid, SIGKILL)
        except ProcessLookupError:
            pass
        (more_out, more_err), _ = collect([out_fd, err_fd], time.monotonic() + 5)
        out, err = out + more_out, err + more_err
        waited, status = os.waitpid(pid, os.WNOHANG)
        if not waited:     # stuck in the kernel: report, do not wait
            err += b"process did not die after SIGKILL (blocked in the kernel?)"
        err = ("command %d timed out; its kernel side:\n%s\n" % (pid, stuck)).encode() + err
    os.close(out_fd)
    os.close(err_fd)
    return {"rc": None if timed_out else os.waitstatus_to_exitcode(status), "timed_out": timed_out,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace"),
            "dmesg": drain_kmsg(kmsg), "seconds": round(time.monotonic() - started, 4)}


# -- serving the host

def send(fd, reply):
    data = (dumps(reply) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def serve(fd, kmsg):
    """Hello, then one reply per request line, until the host closes the connection."""
    send(fd, {"hello": os.uname().release})
    buffered = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            try:
                request = loads(line.decode())
                if request.get("bye"):      # the host is about to save the guest: be back in accept()
                    send(fd, {"bye": True})
                    return
                reply = run(request, kmsg)
            except Exception as err:   # the host must always get a reply line
                reply = {"rc": None, "timed_out": False, "stdout": "", "stderr": "agent: %r" % err,
                         "dmesg": drain_kmsg(kmsg), "seconds": 0.0, "agent_error": True}
            send(fd, reply)


def listen(port, kmsg):
    """One connection at a time on the guest's loopback (the host comes through SSH)."""
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    with open("/proc/uptime") as uptime:
        sys.stderr.write("KREGRESS: PHASE agent_listening %s\n" % uptime.read().split()[0])
    sys.stderr.flush()
    while True:
        fd, _ = server._accept()
        # a thread each: a connection that died with a restored snapshot never blocks the next
        _thread.start_new_thread(serve_connection, (fd, kmsg))


def serve_connection(fd, kmsg):
    try:
        serve(fd, kmsg)
    except OSError:      # the host went away mid-reply
        pass
    finally:
        os.close(fd)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--listen":
        sys.exit("usage: agent.py --listen PORT")
    listen(int(sys.argv[2]), open_kmsg())
