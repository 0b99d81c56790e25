"""A minimal QEMU Machine Protocol client: enough to save a running guest and to know
when a restored one runs."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path


class QMPError(RuntimeError):
    """QEMU refused a command or stopped answering."""


class QMP:
    def __init__(self, path: Path, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:         # QEMU creates the socket shortly after it starts
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError as err:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"no QMP socket at {path} within {timeout:.0f}s: {err}") from None
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.reader = self.sock.makefile("r")
        self._read()                                  # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        try:
            line = self.reader.readline()
        except OSError as err:      # QEMU exited under us (e.g. refusing an incoming state): reset, timeout
            raise QMPError(f"QEMU's QMP connection broke: {err}") from None
        if not line:
            raise QMPError("QEMU closed the QMP connection")
        return json.loads(line)

    def execute(self, command: str, **arguments) -> dict:
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        try:
            self.sock.sendall((json.dumps(message) + "\n").encode())
        except OSError as err:
            raise QMPError(f"{command}: QEMU's QMP connection broke: {err}") from None
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QMPError(f"{command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return", {})

    def wait_status(self, wanted: str, timeout: float) -> float:
        """Poll until the VM's run state is `wanted`; returns the seconds waited."""
        started = time.monotonic()
        while True:
            status = self.execute("query-status").get("status")
            if status == wanted:
                return time.monotonic() - started
            if status in ("internal-error", "guest-panicked", "shutdown") or \
                    time.monotonic() - started > timeout:
                raise QMPError(f"VM state {status!r}, waiting for {wanted!r}")
            time.sleep(0.01)

    def migrate_to_file(self, path: Path, timeout: float = 120.0, errors: Path | None = None) -> dict:
        """Save the running guest's whole state into a file (QEMU 7.2 has no file: URI; exec:cat
        writes it). The guest is left paused ("postmigrate"). errors: where cat's own
        messages go (not beside the state: that file system may be the one that is full);
        QEMU itself only sees the pipe break."""
        self.execute("migrate-set-parameters", **{"max-bandwidth": 64 << 30})   # default throttles to 128 MiB/s
        self.execute("migrate", uri=f"exec:cat > '{path}'" + (f" 2> '{errors}'" if errors else ""))
        started = time.monotonic()
        while True:
            info = self.execute("query-migrate")
            if info.get("status") == "completed":
                return info
            if info.get("status") in ("failed", "cancelled") or time.monotonic() - started > timeout:
                said = errors.read_text(errors="replace").strip() if errors and errors.exists() else ""
                raise QMPError(f"saving the guest failed: {info.get('error-desc') or info.get('status')}"
                               + (f" ({said})" if said else ""))
            time.sleep(0.02)

    def close(self) -> None:
        """Both ends: the reader holds the socket's fd too, and QEMU's monitor serves one
        client at a time, so a half-closed client keeps the next one waiting for its greeting."""
        for closable in (self.reader, self.sock):
            try:
                closable.close()
            except (OSError, AttributeError):      # AttributeError: a test's stand-in reader
                pass
