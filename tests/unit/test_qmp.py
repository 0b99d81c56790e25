"""The QMP client when QEMU goes away under it (as when it refuses an incoming state and
exits: the read gets ECONNRESET, not an end of file)."""
import socket
import threading

import pytest

from kregress.run.qmp import QMP, QMPError


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
