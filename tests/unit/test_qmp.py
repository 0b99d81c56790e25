"""The QMP client when QEMU goes away under it (as when it refuses an incoming state and
exits: the read gets ECONNRESET, not an end of file)."""
import json
import socket
import threading

import pytest

from kregress.run.qmp import QMP, QMPError
from kregress.run.vm import VM


def test_a_connection_qemu_resets_is_a_qmp_error(tmp_path):
    path = tmp_path / "qmp.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def qemu():
        conn, _ = server.accept()
        conn.sendall(b'{"QMP": {"version": {}}}\n')
        conn.recv(1024)
        conn.sendall(b'{"return": {}}\n')
        conn.recv(1024)
    threading.Thread(target=qemu, daemon=True).start()
    qmp = QMP(path, timeout=5)

    class Reset:
        def readline(self):
            raise ConnectionResetError(104, "Connection reset by peer")
    qmp.reader = Reset()
    with pytest.raises(QMPError, match="QMP connection broke: .*Connection reset by peer"):
        qmp.execute("query-status")
    qmp.close()
    server.close()


def monitor_server(path, answers):
    """A QEMU stand-in serving one client per human-monitor-command, answering in turn."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    seen = []

    def qemu():
        for answer in answers:
            conn, _ = server.accept()
            with conn, conn.makefile("r") as lines:
                conn.sendall(b'{"QMP": {"version": {}}}\n')
                lines.readline()
                conn.sendall(b'{"return": {}}\n')
                seen.append(json.loads(lines.readline())["arguments"]["command-line"])
                conn.sendall(json.dumps({"return": answer}).encode() + b"\n")
                lines.readline()            # the client closes: "" here, or QEMU waits for it
    threading.Thread(target=qemu, daemon=True).start()
    return server, seen


def test_a_second_port_is_forwarded_at_runtime_and_removed(tmp_path):
    """Per run: hostfwd_add on the running guest's user netdev, never on the command line (so
    never in the snapshot key); each QMP client closed whole, since QEMU serves one at a time."""
    vm = VM.__new__(VM)
    vm.qmp_dir = tmp_path
    server, seen = monitor_server(tmp_path / "qmp.sock", ["", "host forwarding rule for tcp:... removed\r\n"])
    port = vm.forward_port(8765)
    vm.unforward_port(port)
    assert seen == [f"hostfwd_add kr0 tcp:127.0.0.1:{port}-:8765", f"hostfwd_remove kr0 tcp:127.0.0.1:{port}"]
    server.close()


def test_qemu_refusing_a_forward_is_an_error(tmp_path):
    vm = VM.__new__(VM)
    vm.qmp_dir = tmp_path
    server, _ = monitor_server(tmp_path / "qmp.sock", ["could not set up host forwarding rule"])
    with pytest.raises(QMPError, match="hostfwd_add kr0 .*could not set up"):
        vm.forward_port(8765)
    server.close()
