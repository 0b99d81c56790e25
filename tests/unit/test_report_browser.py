"""report.html opened by a real browser (Debian's chromium, headless): the DOM it builds has
a cell per case and kernel with the observed behaviour, the change annotations, and the
page's own script has run. scripts/setup.sh installs chromium."""
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from kregress.report.write import write_reports

from reportdata import RELIEF_COMMIT, four_kernels, write

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


class Cells(HTMLParser):
    """The matrix cells (data-kernel + data-case) with their text, and elements by id."""

    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self.by_id: dict[str, str] = {}
        self._open: list[tuple[str, object]] = []     # (tag, what collects its text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        target = None
        if tag == "td" and "data-kernel" in attrs:
            target = self.cells[attrs["data-case"], attrs["data-kernel"]] = {
                "class": attrs.get("class", ""), "status": attrs.get("data-status"), "text": []}
        elif attrs.get("id"):
            target = self.by_id.setdefault(attrs["id"], {"text": []})
        if tag not in ("br", "input", "meta"):
            self._open.append((tag, target))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, target in self._open:
            if target is not None:
                target["text"].append(data)

    def text(self, cell) -> str:
        return " ".join(" ".join(cell["text"]).split())


def dump_dom(page, profile) -> str:
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.skipif(not CHROMIUM, reason="chromium not installed (scripts/setup.sh installs it)")
def test_chromium_finds_the_cells(tmp_path):
    results = write(tmp_path / "results.json", four_kernels())
    _, written = write_reports(results)
    dom = dump_dom(written["report.html"], tmp_path / "profile")
    page = Cells()
    page.feed(dom)
    kernels = list(four_kernels()["kernels"])
    assert len(page.cells) == 7 * len(kernels), sorted(page.cells)
    tos = "tests/test_getsockopt_efault.py::test_setsockopt_ip_tos_optlen_4097"
    old, new = page.cells[tos, "debian-5.10"], page.cells[tos, "debian-6.1"]
    assert page.text(old) == "EFAULT tos=0" and old["status"] == "expected-diff"
    assert "expected-diff" in old["class"].split()
    assert page.text(new).startswith(f"OK tos=16 changed since debian-5.10: getsockopt_relief {RELIEF_COMMIT} "
                                     "dmesg (1) [")
    assert "] bpf setsockopt: ignoring program buffer with optlen=4097 (max_optlen=4096)" in page.text(new)
    assert page.text(page.cells[tos, "debian-backports"]).startswith("OK tos=16")
    # The script ran in the browser: it filled in the row count.
    assert page.text(page.by_id["shown"]) == "7 of 7 cases shown"
