"""The guest agent (kregress/provision/in_guest/agent.c), built as the guest gets it and run here on
the host, spoken to over TCP the way the host speaks to it through SSH."""
import json
import socket
import subprocess
import time
import zlib

import pytest

from kregress.provision.programs import build_agent


@pytest.fixture(scope="module")
def agent():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(build_agent()), "--listen", str(port)], stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().startswith("KREGRESS: PHASE agent_listening ")
    yield port
    proc.kill()
    proc.wait()


class Connection:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.lines = self.sock.makefile("rb")
        self.hello = self.reply()

    def reply(self) -> dict:
        line = self.lines.readline()
        assert line.endswith(b"\n"), line
        line.decode("ascii")       # the agent writes ASCII only
        return json.loads(line)

    def ask(self, request) -> dict:
        self.sock.sendall((request if isinstance(request, str) else json.dumps(request)).encode() + b"\n")
        return self.reply()


def test_hello_names_the_running_kernel(agent):
    assert Connection(agent).hello == {"hello": subprocess.check_output(["uname", "-r"], text=True).strip()}


def test_runs_a_command_with_its_env_cwd_and_output(agent, tmp_path):
    conn = Connection(agent)
    reply = conn.ask({"argv": ["sh", "-c", 'echo "out $KR_X $(pwd)"; echo "err é \\"q\\"" >&2; exit 3'],
                      "env": {"KR_X": "x y"}, "cwd": str(tmp_path), "timeout": 10})
    assert (reply["rc"], reply["timed_out"]) == (3, False)
    assert reply["stdout"] == f"out x y {tmp_path}\n"
    assert reply["stderr"] == 'err é "q"\n'
    assert isinstance(reply["dmesg"], list) and reply["seconds"] >= 0
    assert conn.ask({"argv": ["sh", "-c", "kill -9 $$"]})["rc"] == -9     # as Python reports a signal


def test_bytes_that_are_not_utf8_arrive_replaced(agent):
    reply = Connection(agent).ask({"argv": ["printf", "a\\377b\\342\\202c\\001"]})
    assert reply["stdout"] == "a\ufffdb\ufffd\ufffdc\x01"


def test_a_missing_program_is_rc_127_with_the_reason(agent):
    reply = Connection(agent).ask({"argv": ["kregress-no-such-program"]})
    assert reply["rc"] == 127 and "cannot run kregress-no-such-program" in reply["stderr"]


def test_a_command_past_its_timeout_is_killed_with_its_kernel_side_recorded(agent):
    started = time.monotonic()
    reply = Connection(agent).ask({"argv": ["sh", "-c", "echo started; exec sleep 30"], "timeout": 0.5})
    assert time.monotonic() - started < 10
    assert reply["timed_out"] and reply["rc"] is None and reply["stdout"] == "started\n"
    assert "timed out; its kernel side:" in reply["stderr"] and "wchan:" in reply["stderr"]


def test_a_bad_request_gets_an_error_reply_and_the_connection_goes_on(agent):
    conn = Connection(agent)
    for bad in ('{"argv": ["true"]', "[1, 2]", '{"argv": "\\q"}', "nonsense"):
        reply = conn.ask(bad)
        assert reply["agent_error"] and reply["rc"] is None and reply["stderr"].startswith("agent: bad request"), bad
    assert conn.ask({"argv": ["true"]})["rc"] == 0
    assert conn.ask({})["rc"] == 0          # no argv: only the kernel log lines


def test_escapes_and_surrogates_in_requests_are_decoded(agent):
    reply = Connection(agent).ask('{"argv": ["printf", "%s", "tab\\there \\u00e9 \\ud83d\\ude00 \\/"]}')
    assert reply["stdout"] == "tab\there é \U0001f600 /"


def test_bye_ends_the_connection_and_the_agent_takes_the_next(agent):
    conn = Connection(agent)
    assert conn.ask({"bye": True}) == {"bye": True}
    assert conn.lines.readline() == b""
    other = Connection(agent)       # a connection left hanging does not block the next one
    assert Connection(agent).ask({"argv": ["echo", "next"]})["stdout"] == "next\n"
    other.sock.close()


def test_put_writes_a_file_whole_with_its_mode_and_the_connection_goes_on(agent, tmp_path):
    conn = Connection(agent)
    data = bytes(range(256)) * 300 + b"\n{}\n"         # newlines and JSON-looking bytes inside
    target = tmp_path / "made" / "by" / "agent.bin"
    conn.sock.sendall(json.dumps({"put": str(target), "size": len(data), "mode": 0o750}).encode() + b"\n" + data)
    assert conn.reply()["rc"] == 0
    assert target.read_bytes() == data and target.stat().st_mode & 0o7777 == 0o750
    assert conn.ask({"argv": ["cat", str(target)]})["rc"] == 0
    assert list(target.parent.iterdir()) == [target]       # no temporary file left


def test_a_put_that_cannot_be_written_is_an_error_reply(agent, tmp_path):
    conn = Connection(agent)
    (tmp_path / "file").write_text("")
    conn.sock.sendall(json.dumps({"put": str(tmp_path / "file" / "x"), "size": 3}).encode() + b"\nabc")
    reply = conn.reply()
    assert reply["agent_error"] and "Not a directory" in reply["stderr"]
    assert conn.ask({"put": "/x"})["stderr"].startswith("agent: bad request")      # no size
    assert conn.ask({"argv": ["echo", "ok"]})["stdout"] == "ok\n"


def test_put_of_zlib_data_writes_it_inflated_and_refuses_garbage(agent, tmp_path):
    conn = Connection(agent)
    data = b"driver bytes " * 50000
    packed = zlib.compress(data)
    target = tmp_path / "inflated"
    conn.sock.sendall(json.dumps({"put": str(target), "size": len(packed), "zlib": True}).encode() + b"\n" + packed)
    assert conn.reply()["rc"] == 0 and target.read_bytes() == data
    conn.sock.sendall(json.dumps({"put": str(tmp_path / "bad"), "size": 5, "zlib": True}).encode() + b"\nnotz!")
    assert conn.reply()["agent_error"] and not (tmp_path / "bad").exists()
    assert conn.ask({"argv": ["true"]})["rc"] == 0


def log_on_host(line: str) -> None:
    """A line in the host's kernel log (the agent under test reads the host's /dev/kmsg)."""
    try:
        with open("/dev/kmsg", "w") as kmsg:
            kmsg.write(f"<6>{line}\n")
    except OSError as err:
        pytest.skip(f"cannot write /dev/kmsg here ({err}): run as root to check the agent's kernel log")


def test_lines_logged_before_the_agent_started_reach_its_first_reply(tmp_path):
    """The agent reads /dev/kmsg from the kernel's first record, not from its end: a boot's
    log reaches the host. Here: a line this test writes to the host's log just before."""
    marker = f"kregress unit test: logged before the agent started ({tmp_path.name})"
    log_on_host(marker)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(build_agent()), "--listen", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        proc.stderr.readline()
        first = Connection(port).ask({})["dmesg"]
        assert any(line.endswith(marker) for line in first), first[-5:]
        assert not any(line.endswith(marker) for line in Connection(port).ask({})["dmesg"])   # once
    finally:
        proc.kill()
        proc.wait()


def test_kernel_log_asked_for_without_waiting_arrives_before_the_next_reply(agent, tmp_path):
    """GuestConnection.collect_dmesg_soon: the request goes out at once; its reply (the lines
    logged until the agent read it) is read into the list it was given, before the reply
    of the next request. Here the agent runs on the host: the host's log is its kmsg."""
    from kregress.run.guest import GuestConnection
    session = GuestConnection.__new__(GuestConnection)        # the agent's own socket instead of SSH
    session._agent = socket.create_connection(("127.0.0.1", agent), timeout=30)
    session._agent_out = session._agent.makefile("r")
    session._unread = []
    assert "hello" in session._read_reply(timeout=30)
    session.collect_dmesg()         # everything logged so far
    marker = f"kregress unit test: logged between two tests ({tmp_path.name})"
    log_on_host(marker)
    before = []
    session.collect_dmesg_soon(before)
    assert session._unread == [before] and before == []        # asked, not read yet
    result = session.run(["sh", "-c", "echo ran"])
    assert result.stdout == "ran\n" and session._unread == []
    assert any(line.endswith(marker) for line in before), before[-5:]
    assert not any(line.endswith(marker) for line in result.dmesg)
    session._agent.close()
