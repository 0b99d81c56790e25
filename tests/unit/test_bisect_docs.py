"""Every `bisect-run` command the README and docs/bisect.md show parses as bisect-run would
parse it in a kernel tree: flags known, the selection's files found from the project root, and
a fact named or exactly one declared by the selection (the demo once omitted it and skipped
every commit)."""
import re
import shlex

import pytest

from kregress.bisect.run import parse_run_args
from kregress.paths import SUITE_ROOT

DOCUMENTS = [SUITE_ROOT / "README.md", SUITE_ROOT / "docs" / "bisect.md"]


def bisect_run_commands(text: str) -> list[str]:
    """Command lines (continuations joined) that hand bisect-run to git bisect run or call it."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines()
            if re.match(r"\s*(\$ )?(git bisect run \S*bisect-run|\S*kregress bisect-run)\s", line)]


def commands():
    found = [(doc.name, command) for doc in DOCUMENTS for command in bisect_run_commands(doc.read_text())]
    assert len(found) >= 4, "the README and docs/bisect.md show bisect-run commands"
    return found


@pytest.mark.parametrize("document, command", commands(), ids=lambda v: v if v.endswith(".md") else "")
def test_documented_bisect_run_command_parses(document, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # git bisect run runs in the kernel tree, not here
    words = shlex.split(command)
    start = next(i for i, word in enumerate(words) if word.endswith("bisect-run")) + 1
    args = parse_run_args(words[start:])
    assert args.fact and args.selection, f"{document}: {command}"
