"""The kernel-problem rules (kregress/kernel_log/splats.py) on real kernel log text, the allowlist,
and a boot's log judged as bootlog.py keeps it."""
import re
from pathlib import Path

import pytest

from kregress.kernel_log import splats
from kregress.kernel_log.boot import BootLog, BootLogMissing

DATA = Path(__file__).parent / "data" / "kernel-logs" / "splats.txt"


def cases():
    found, current = [], None
    for line in DATA.read_text().splitlines():
        if line.startswith("## "):
            rules, _, source = line[3:].partition(" | ")
            current = ([] if rules == "none" else [r.strip() for r in rules.split(",")], source, [])
            found.append(current)
        elif current and line and not line.startswith("# "):
            current[2].append(line)
    return found


@pytest.mark.parametrize("rules, source, lines", cases(), ids=[c[1][:40] for c in cases()])
def test_rules_name_each_report_once_by_its_first_line(rules, source, lines):
    assert [s.rule for s in splats.find(lines, "k")] == rules, source


def test_every_rule_is_exercised_by_real_text():
    seen = {rule for rules, _, _ in cases() for rule in rules}
    assert seen == {name for name, _ in splats.RULES}


def test_the_log_line_is_kept_as_logged_and_its_message_without_stamps():
    [splat] = splats.find(["<4>[   19.990743] Oops: general protection fault, probably"], "k")
    assert splat.line == "<4>[   19.990743] Oops: general protection fault, probably"
    assert splats.message_of("[   26.767880][    T1] Oops: x") == "Oops: x"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "allow.toml"
    path.write_text(text)
    return path


def test_allowlist_allows_only_its_kernels_and_lines_and_says_why(tmp_path):
    allow = splats.load_allowlist(write(tmp_path, """
[[allow]]
kernels = ["debian-6.12*"]
line = "WARNING: CPU: \\\\d+ PID: \\\\d+ at fs/dcache.c"
why = "a stand-in reason that names why this is benign"
"""))
    line = "WARNING: CPU: 1 PID: 3045 at fs/dcache.c:1676 umount_check+0xc0/0xc8"
    [allowed] = splats.find([line], "debian-6.12-arm64-16k", allow)
    assert allowed.allowed_because == "a stand-in reason that names why this is benign"
    assert splats.problems([allowed]) == []
    assert splats.find([line], "debian-6.1", allow)[0].allowed_because is None       # another kernel
    other = "WARNING: CPU: 1 PID: 3045 at fs/namei.c:1 x"
    assert splats.find([other], "debian-6.12", allow)[0].allowed_because is None     # another line
    assert splats.find([line], "k", allow)[0].as_record("kmsg") == {"rule": "WARN", "line": line, "source": "kmsg"}


@pytest.mark.parametrize("entry, says", [
    ('line = "BUG: x"\nwhy = "because it is benign here"', "'kernels' must list"),
    ('kernels = []\nline = "BUG: x"\nwhy = "because it is benign here"', "'kernels' must list"),
    ('kernels = ["k"]\nwhy = "because it is benign here"', "'line' must be a regular expression"),
    ('kernels = ["k"]\nline = "BUG: x"', "'why' must say"),
    ('kernels = ["k"]\nline = "BUG: x"\nwhy = "benign"', "'why' must say"),
    ('kernels = ["k"]\nline = "BUG: ("\nwhy = "because it is benign here"', "not a valid regular expression"),
    ('kernels = ["k"]\nline = "BUG: x"\nwhy = "because it is benign here"\nkernel = "k"', "unknown key(s) kernel"),
])
def test_a_bad_allowlist_entry_is_named_with_the_fix(tmp_path, entry, says):
    path = write(tmp_path, "[[allow]]\n" + entry + "\n")
    with pytest.raises(splats.AllowlistError, match=re.escape(says)) as err:
        splats.load_allowlist(path)
    assert f"{path}: [[allow]] entry 1" in str(err.value)


def test_allowlist_files_that_are_not_there_or_not_toml(tmp_path):
    assert splats.load_allowlist() == [] or splats.DEFAULT_ALLOWLIST.exists()
    with pytest.raises(splats.AllowlistError, match="no such allowlist file"):
        splats.load_allowlist(tmp_path / "missing.toml")
    with pytest.raises(splats.AllowlistError, match="not valid TOML"):
        splats.load_allowlist(write(tmp_path, "[[allow]\n"))


def test_the_projects_allowlist_loads():
    for entry in splats.load_allowlist(splats.DEFAULT_ALLOWLIST):
        assert entry.kernels and entry.why


BANNER = "[    0.000000] Linux version 6.12.117+deb13-amd64 (debian-kernel@lists.debian.org)"
WARN = "[    2.100000] WARNING: CPU: 0 PID: 1 at kregress-initramfs-init:0 stand-in boot warning"


def test_a_boot_log_counts_a_console_line_only_when_kmsg_lacks_it(tmp_path):
    console = tmp_path / "k.boot1.log"
    console.write_text(f"# qemu-system-x86_64 -kernel ...\n{WARN}\n"
                       "[    2.200000] BUG: unable to handle page fault for address: 0\n"
                       "KREGRESS: READY release=6.12 lsm= page_kb=4 iface=eth0 t=3.1\n")
    log = BootLog.of_boot([BANNER, WARN], console)
    assert log.console == [WARN, "[    2.200000] BUG: unable to handle page fault for address: 0"]
    records = log.judge("k", [])
    assert [(r["rule"], r["source"]) for r in records] == [("WARN", "kmsg"), ("BUG", "console")]
    assert log.problems == records and log.starts_at_first_line()
    assert log.summary()["problems"] == 2 and log.summary()["origin"] == "boot k.boot1.log"


def test_a_boot_log_saved_with_a_snapshot_is_judged_again_on_load(tmp_path):
    console = tmp_path / "k.boot1.log"
    console.write_text(WARN + "\n")
    BootLog.of_boot([BANNER, WARN], console).save(tmp_path)
    loaded = BootLog.load(tmp_path, "snapshot k-abc")
    assert (loaded.kmsg, loaded.console, loaded.splats) == ([BANNER, WARN], [WARN], [])
    allow = [splats.Allowed(("k",), re.compile("stand-in boot warning"), "the resilience test's stand-in")]
    assert loaded.judge("k", allow)[0]["allowed"] == "the resilience test's stand-in" and not loaded.problems
    assert loaded.judge("other", allow) and loaded.problems       # the allowlist of now, not of the save


def test_a_snapshot_without_its_boot_log_is_refused(tmp_path):
    with pytest.raises(BootLogMissing, match="has no readable boot log"):
        BootLog.load(tmp_path, "snapshot x")


def test_a_kmsg_that_does_not_begin_at_the_banner_is_noticed(tmp_path):
    assert not BootLog(["[   5.0] eth0: link up"], [], "boot x").starts_at_first_line()
    arm64 = ["[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]", BANNER]
    assert BootLog(arm64, [], "boot x").starts_at_first_line()
