"""Talk to a booted guest: paramiko SSH, and through it the guest agent (commands, files, clock)."""
from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import socket
import struct
import subprocess
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from kregress.files import write_whole
from kregress.run.qemu_command import KEYS_DISK
from kregress.paths import cache_dir

# paramiko logs every failed connect attempt as a traceback; our errors say enough
logging.getLogger("paramiko").setLevel(logging.CRITICAL)
AGENT_PORT = 7001       # the guest agent's, inside the guest


def free_port() -> int:
    """A free port on 127.0.0.1, for a guest's SSH forward."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



class GuestLost(RuntimeError):
    """The guest stopped answering (panic, hang, dead VM)."""


@dataclass
class CommandResult:
    argv: list[str]
    rc: int | None
    stdout: str
    stderr: str
    dmesg: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False

    def json(self) -> dict:
        """The driver's one JSON object; a clear error if it printed something else."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"{' '.join(self.argv)} printed no JSON (exit {self.rc}).\n"
                                 f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}") from None


@dataclass(frozen=True)
class RunKeys:
    """SSH keys made for one run: the guest's host key (also in dropbear's format, which is
    what the guest's server reads) and the client key. The guest gets the host key and the
    authorized key through fw_cfg at boot, or on the keys disk (keys_disk) where the
    machine has no fw_cfg."""
    directory: Path

    @classmethod
    def create(cls, directory: Path) -> "RunKeys":
        """Make the run's keys once. xdist workers and the controller may all call this at
        the same moment: under a lock, and each key appears whole or not at all."""
        directory = directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for name in ("host_ed25519", "client_ed25519"):
                if not (directory / name).exists():
                    _keygen(directory, name)
            dropbear = directory / "host_ed25519.dropbear"
            if not dropbear.exists():
                partial = directory / "host_ed25519.dropbear.partial"
                partial.write_bytes(dropbear_ed25519((directory / "host_ed25519").read_text()))
                partial.chmod(0o600)
                os.replace(partial, dropbear)
            authorized = directory / "authorized_keys"
            if not authorized.exists():
                partial = directory / "authorized_keys.partial"
                partial.write_text((directory / "client_ed25519.pub").read_text())
                os.replace(partial, authorized)
            disk = directory / KEYS_DISK
            if not disk.exists():
                partial = directory / (KEYS_DISK + ".partial")
                partial.write_bytes(keys_disk({"host_key": dropbear.read_bytes(),
                                               "authorized_keys": authorized.read_bytes()}))
                os.replace(partial, disk)
        return cls(directory)

    @property
    def host_public(self) -> str:
        return (self.directory / "host_ed25519.pub").read_text().split()[1]


KEYS_DISK_BYTES = 64 * 1024     # fixed: a saved guest's disk is the same size as the run's


def keys_disk(files: dict[str, bytes]) -> bytes:
    """The keys disk (machines without fw_cfg): a ustar archive the initramfs's busybox tar
    reads straight off the block device, padded to KEYS_DISK_BYTES, the same bytes for the
    same keys."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    data = out.getvalue()
    if len(data) > KEYS_DISK_BYTES:
        raise ValueError(f"the keys take {len(data)} bytes, more than the keys disk's {KEYS_DISK_BYTES}")
    return data + b"\0" * (KEYS_DISK_BYTES - len(data))


def dropbear_ed25519(openssh_private_key: str) -> bytes:
    """The guest's SSH server (dropbear) reads host keys in its own format only; for ed25519
    that is the key type and the 64-byte secret (seed, then public key) as SSH strings, the
    same 64 bytes an unencrypted OpenSSH key holds."""
    body = "".join(line for line in openssh_private_key.splitlines() if line and not line.startswith("-----"))
    data = base64.b64decode(body)
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic):
        raise ValueError("not an OpenSSH private key")
    fields, at = [], len(magic)
    for _ in range(3):                        # cipher, kdf, kdf options
        value, at = _ssh_string(data, at)
        fields.append(value)
    if fields[0] != b"none":
        raise ValueError("the host key must not be encrypted")
    at += 4                                   # number of keys (1)
    _, at = _ssh_string(data, at)             # public key blob
    private, _ = _ssh_string(data, at)
    kind, inner = _ssh_string(private, 8)     # after two check integers
    public, inner = _ssh_string(private, inner)
    secret, _ = _ssh_string(private, inner)
    if kind != b"ssh-ed25519" or len(secret) != 64 or secret[32:] != public:
        raise ValueError(f"not an ed25519 key ({kind!r})")
    return struct.pack(">I", len(kind)) + kind + struct.pack(">I", len(secret)) + secret


def _ssh_string(data: bytes, at: int) -> tuple[bytes, int]:
    (length,) = struct.unpack(">I", data[at:at + 4])
    return data[at + 4:at + 4 + length], at + 4 + length


def _keygen(directory: Path, name: str) -> None:
    """ssh-keygen into a scratch name, then rename: the private key last, so its presence
    means both halves are complete."""
    scratch = directory / f".{name}.{os.getpid()}"
    for path in (scratch, scratch.with_name(scratch.name + ".pub")):
        path.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kregress-{name}", "-f", str(scratch)],
                   check=True, stdin=subprocess.DEVNULL)
    os.replace(scratch.with_name(scratch.name + ".pub"), directory / f"{name}.pub")
    os.replace(scratch, directory / name)


class _ExpectKey(paramiko.MissingHostKeyPolicy):
    def __init__(self, expected_b64: str):
        self.expected = expected_b64

    def missing_host_key(self, client, hostname, key):
        if key.get_base64() != self.expected:
            raise paramiko.SSHException(f"guest host key mismatch for {hostname}: not this run's key")


@functools.lru_cache(maxsize=32)
def _compressed_at(path: Path, size: int, mtime_ns: int) -> bytes:
    # kept on disk too: compressing a driver took 0.1-0.3 s of host CPU in every worker
    # and every run, for the same bytes
    name = hashlib.sha256(f"{path.resolve()}:{size}:{mtime_ns}".encode()).hexdigest()[:24]
    kept = cache_dir() / "compressed" / f"{name}.zlib"
    try:
        return kept.read_bytes()
    except OSError:
        pass
    data = zlib.compress(path.read_bytes(), 6)
    write_whole(kept, data)         # whoever writes it at the same time
    return data


def _compressed(path: Path) -> bytes:
    """A file's zlib stream, made once per version of the file (by size and mtime)."""
    stat = path.stat()
    return _compressed_at(path, stat.st_size, stat.st_mtime_ns)


class GuestConnection:
    """One SSH connection per VM; commands go to the agent over one long-lived channel."""

    def __init__(self, port: int, keys: RunKeys, connect_timeout: float = 60.0):
        self.port = port
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(_ExpectKey(keys.host_public))
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.client.connect("127.0.0.1", port=port, username="root",
                                    key_filename=str(keys.directory / "client_ed25519"),
                                    look_for_keys=False, allow_agent=False, timeout=10,
                                    banner_timeout=20, auth_timeout=20)
                break
            except paramiko.AuthenticationException as err:   # retrying cannot help
                raise GuestLost(f"SSH to 127.0.0.1:{port}: the guest refused this run's key: {err}") from err
            except (OSError, paramiko.SSHException) as err:
                if time.monotonic() > deadline:
                    raise GuestLost(f"SSH to 127.0.0.1:{port} failed for {connect_timeout:.0f}s: {err}") from err
                time.sleep(0.1)
        self._agent = None
        self._agent_out = None
        self._unread: list[list[str]] = []    # kernel log requests sent, their replies not yet read

    def put(self, local: Path, remote: str, mode: int = 0o755) -> None:
        """Copy a file into the guest through the agent (no SFTP server to start),
        compressed: decrypting SSH traffic is what costs in a guest under TCG."""
        self.put_bytes(_compressed(local), remote, mode, compressed=True)

    def put_bytes(self, data: bytes, remote: str, mode: int = 0o644, compressed: bool = False) -> None:
        request = {"put": remote, "size": len(data), "mode": mode, "zlib": compressed}
        self._ask((json.dumps(request) + "\n").encode() + data, f"writing {remote}", timeout=60 + len(data) / 1e6)

    def set_clock(self, seconds: float) -> None:
        self._ask((json.dumps({"clock": seconds}) + "\n").encode(), "setting the guest's clock", timeout=30)

    def _send(self, data: bytes) -> None:
        try:
            self._agent.sendall(data)
        except (OSError, paramiko.SSHException) as err:
            raise GuestLost(f"sending to guest agent failed: {err}") from err

    def _ask(self, request: bytes, what: str, timeout: float) -> dict:
        self._send(request)
        reply = self._read_reply(timeout)
        if reply.get("rc") != 0:
            raise GuestLost(f"{what} failed in the guest: {reply.get('stderr')}")
        return reply

    def start_agent(self, port: int, timeout: float = 60.0) -> str:
        """Reach the agent the guest's init started, through this connection (direct-tcpip
        to the guest's loopback): nothing is spawned. It may still be starting: retry."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                channel = self.client.get_transport().open_channel(
                    "direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=10)
                break
            except paramiko.ChannelException as err:     # connection refused: not listening yet
                if time.monotonic() > deadline:
                    raise GuestLost(f"guest agent on the guest's 127.0.0.1:{port} did not answer "
                                    f"within {timeout:.0f}s: {err}") from err
                time.sleep(0.05)
            except (OSError, paramiko.SSHException) as err:
                raise GuestLost(f"opening the guest agent channel failed: {err}") from err
        self._agent = channel
        self._agent_out = channel.makefile("r")
        hello = self._read_reply(timeout=timeout)
        return hello["hello"]

    def _read_reply(self, timeout: float) -> dict:
        """The reply to the latest request, after those to the requests sent before it."""
        while self._unread:
            self._unread.pop(0).extend(self._read_line(timeout)["dmesg"])
        return self._read_line(timeout)

    def _read_line(self, timeout: float) -> dict:
        self._agent.settimeout(timeout)
        try:
            line = self._agent_out.readline()
        except socket.timeout:
            raise GuestLost(f"guest agent gave no answer within {timeout:.0f}s") from None
        except (OSError, EOFError, paramiko.SSHException) as err:
            raise GuestLost(f"guest agent connection broke: {err}") from err
        if not line:
            raise GuestLost("guest agent connection closed (guest died?)")
        return json.loads(line)

    def run(self, argv: list[str], timeout: float = 60.0, env: dict | None = None) -> CommandResult:
        request = {"argv": [str(a) for a in argv], "timeout": timeout, "env": env or {}}
        self._send((json.dumps(request) + "\n").encode())
        # the agent enforces the timeout itself; the margin covers a guest that stopped
        reply = self._read_reply(timeout + 30)
        return CommandResult(argv=request["argv"], rc=reply["rc"], stdout=reply["stdout"],
                             stderr=reply["stderr"], dmesg=reply["dmesg"], seconds=reply["seconds"],
                             timed_out=reply["timed_out"])

    def collect_dmesg(self, timeout: float = 30.0) -> list[str]:
        """Kernel log lines since the previous reply, without running anything."""
        self._send(b"{}\n")
        return self._read_reply(timeout)["dmesg"]

    def collect_dmesg_soon(self, into: list[str]) -> None:
        """Ask for the kernel log lines since the previous reply now, without waiting: the
        agent answers in order, so they are added to `into` before the next reply is read."""
        self._send(b"{}\n")
        self._unread.append(into)

    def say_goodbye(self, timeout: float = 30.0) -> None:
        """End the agent's connection from its side, so that it waits for the next one."""
        self._send(b'{"bye": true}\n')
        if not self._read_reply(timeout).get("bye"):
            raise GuestLost("guest agent did not acknowledge the goodbye")

    def ssh_exec(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """A plain SSH exec (one session per command), for comparison and for rescue."""
        _, stdout, _ = self.client.exec_command(command, timeout=timeout)
        out = stdout.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
