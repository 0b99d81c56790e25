"""The console log module (numbering, markers, phases, excerpts) and the RSS scan of a process group."""
import sys
import time

from kregress.procs import group_peak_rss_mb, kill_group, spawn
from kregress.run import console

LOG = """# qemu-system-x86_64 ...
KREGRESS: PHASE kernel_done 1.50
KREGRESS: PHASE init_done 2.00
KREGRESS: PHASE other 9.00
KREGRESS: READY release=6.12.107 lsm=bpf page_kb=4 iface=eth0 t=2.50
"""


def test_each_start_gets_the_next_numbered_log_and_earlier_ones_stay(tmp_path):
    first = console.next_log(tmp_path, "k1", "boot")
    assert first == tmp_path / "console" / "k1.boot1.log"
    first.write_text("boot 1")
    assert console.next_log(tmp_path, "k1", "boot").name == "k1.boot2.log"
    assert console.next_log(tmp_path, "k1", "restore").name == "k1.restore1.log"
    assert console.next_log(tmp_path, "k2", "boot").name == "k2.boot1.log"
    assert first.read_text() == "boot 1"


def test_phases_are_placed_on_the_host_clock_by_the_ready_marker():
    ready = console.READY.search(LOG)
    assert ready.groups() == ("6.12.107", "bpf", "4", "2.50")
    # ready seen 4.0 s after spawning, at guest time 2.5: the kernel started at 1.5
    assert console.phases(LOG, ready, 4.0) == {"kernel_start": 1.5, "kernel_done": 3.0, "init_done": 3.5,
                                               "sshd_ready": 4.0}


def test_qemu_errors_tail_and_lines_around(tmp_path):
    log = tmp_path / "c.log"
    assert console.qemu_errors(log) == [] and console.tail(log) == "(no console log)"
    lines = [f"line {n}" for n in range(40)]
    lines[30] = "qemu-system-x86_64: warning: host doesn't support requested feature"
    lines[31] = "qemu-system-x86_64: error: failed to set MSR 0x10a"
    log.write_text("\n".join(lines) + "\n")
    assert console.qemu_errors(log) == ["qemu-system-x86_64: error: failed to set MSR 0x10a"]
    assert console.tail(log, 2).splitlines()[1:] == ["  | line 38", "  | line 39"]
    offset = log.read_text().index("line 20")
    around = console.around(log, offset, before=2, after=2).splitlines()[1:]
    assert around == ["  | line 18", "  | line 19", "  | line 20", "  | line 21"]
    assert console.FATAL.search(lines[31]) and not console.FATAL.search(lines[30])


def test_the_rss_scan_finds_the_named_process_of_the_group_only():
    proc = spawn([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"], reap=False)
    try:
        deadline = time.monotonic() + 20
        found = None
        while time.monotonic() < deadline and not (found and found >= 64):
            found = group_peak_rss_mb(proc.pid, "python")
            time.sleep(0.1)
        assert found and found >= 64, found
        assert group_peak_rss_mb(proc.pid, "qemu-system") is None
        assert group_peak_rss_mb(proc.pid + 1_000_000, "python") is None
    finally:
        kill_group(proc)
