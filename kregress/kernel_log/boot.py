"""A boot's kernel log, kept and judged: /dev/kmsg from its first line (what the guest
agent's first reply carries) and the serial console up to the ready marker.

A kernel is booted once and restored ever after, so the log of that one boot is stored
with its snapshot and judged again, against the current allowlist, on every restore.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kregress.kernel_log import splats

KMSG_FILE = "boot-kmsg.json"
CONSOLE_FILE = "boot-console.log"
# what the host itself writes into a console log (its command line, restore notes) and the
# guest init's markers: not kernel lines
HOST_LINES = ("# ", "KREGRESS: ")


class BootLogMissing(RuntimeError):
    """A snapshot without its boot's log: made by an older kregress."""


@dataclass
class BootLog:
    kmsg: list[str]
    console: list[str]
    origin: str                 # "boot <console file>" or "snapshot <name>, booted <when>"
    splats: list[dict] = field(default_factory=list)     # judged: splats.Splat.as_record()

    @classmethod
    def of_boot(cls, kmsg: list[str], console_log: Path) -> "BootLog":
        text = console_log.read_text(errors="replace") if console_log.exists() else ""
        console = [line for line in text.splitlines() if not line.startswith(HOST_LINES)]
        return cls(list(kmsg), console, f"boot {console_log.name}")

    def save(self, directory: Path) -> None:
        (directory / KMSG_FILE).write_text(json.dumps(self.kmsg))
        (directory / CONSOLE_FILE).write_text("".join(line + "\n" for line in self.console))

    @staticmethod
    def stored_in(directory: Path) -> bool:
        return (directory / KMSG_FILE).exists() and (directory / CONSOLE_FILE).exists()

    @classmethod
    def load(cls, directory: Path, origin: str) -> "BootLog":
        try:
            kmsg = json.loads((directory / KMSG_FILE).read_text())
            console = (directory / CONSOLE_FILE).read_text(errors="replace").splitlines()
        except (OSError, ValueError) as err:
            raise BootLogMissing(f"snapshot {directory.name} has no readable boot log ({err})") from None
        return cls(kmsg, console, origin)

    def judge(self, kernel_id: str, allowlist: list[splats.Allowed]) -> list[dict]:
        """Every splat of the boot, kmsg first; a console line is counted only when kmsg
        lacks it (a wrapped ring buffer, or what the kernel printed before the agent ran)."""
        found = [s.as_record("kmsg") for s in splats.find(self.kmsg, kernel_id, allowlist)]
        seen = {splats.message_of(record["line"]) for record in found}
        for splat in splats.find(self.console, kernel_id, allowlist):
            if splats.message_of(splat.line) not in seen:
                found.append(splat.as_record("console"))
        self.splats = found
        return found

    @property
    def problems(self) -> list[dict]:
        return [record for record in self.splats if "allowed" not in record]

    def starts_at_first_line(self) -> bool:
        """Does the kmsg part begin with the kernel's banner (or arm64's line before it)?"""
        return any(line.split("] ", 1)[-1].startswith("Linux version ") for line in self.kmsg[:5])

    def summary(self) -> dict:
        """The per-kernel record (results.json kernels[ID]["boot_log"])."""
        return {"origin": self.origin, "kmsg_lines": len(self.kmsg), "console_lines": len(self.console),
                "first_kmsg_line": self.kmsg[0] if self.kmsg else None,
                "starts_at_first_line": self.starts_at_first_line(), "splats": len(self.splats),
                "problems": len(self.problems)}
