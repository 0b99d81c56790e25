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


# A fleet's shape: 25 kernels (Debian's suites x flavors x arches) and every fact.
FLEET = [f"{suite}-{flavor}" for suite in ("bullseye", "bookworm", "bookworm-bpo", "trixie", "trixie-bpo")
         for flavor in ("amd64", "cloud-amd64", "rt-amd64", "arm64", "rt-arm64-16k")]
MEASURE = """<script>
const grid = document.getElementById('verdict-grid').getBoundingClientRect();
const cut = [...document.querySelectorAll('#verdict-grid th, #verdict-grid td')]
  .filter(c => c.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5).length;
const out = document.createElement('pre'); out.id = 'measured';
out.textContent = JSON.stringify({width: document.documentElement.clientWidth, right: grid.right,
  bottom: grid.bottom, cut: cut, cells: document.querySelectorAll('#verdict-grid td.v').length});
document.body.appendChild(out);
</script></body>"""


def fleet_doc() -> dict:
    from kregress.kernels.facts import FACTS
    from kregress.report.results import summarize
    kernels = {k: {"package_version": "6.12.117-1~bpo12+1", "arch": "arm64" if "arm64" in k else "x86_64",
                   "accel": "tcg", "boot_seconds": 4.2, "boot_how": "booted+saved"} for k in FLEET}
    tests = []
    for i, kernel in enumerate(FLEET):
        for j, fact in enumerate(FACTS):
            state, outcome = ("has", "passed") if (i + j) % 3 else ("lacks", "passed")
            if (i, j) == (3, 4):
                outcome = "failed"          # one contradiction, red with its mark
            tests.append({"nodeid": f"tests/scenarios/test_x.py::test_{fact}[{kernel}]", "kernel": kernel,
                          "outcome": outcome, "expectation_facts": [fact], "seconds": 0.1,
                          "facts_used": {fact: {"expected": state == "has", "state": state, "decided_by": "binary",
                                                "sources": {"binary": "present" if state == "has" else "absent"}}}})
    doc = {"format": "kregress-results/2", "started": "2026-12-07T23:00:00Z", "finished": "2026-12-07T23:04:00Z", "host": {"machine": "ci-host"},
           "kernels": kernels, "tests": tests}
    doc["summary"] = summarize(doc)
    return doc


@pytest.mark.skipif(not CHROMIUM, reason="chromium not installed (scripts/setup.sh installs it)")
def test_fleet_grid_fits_1280_px(tmp_path):
    """25 kernels x every fact at 1280 px: no column of the verdict grid cut off, the grid on the
    first screen; a screenshot of that screen is kept beside the report."""
    import json
    from kregress.kernels.facts import FACTS
    _, written = write_reports(write(tmp_path / "results.json", fleet_doc()))
    page = written["report.html"]
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE))
    size = ["--window-size=1280,1000", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *FLAGS, *size, "--dump-dom", measured.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-3000:]
    parsed = Cells()
    parsed.feed(dom.stdout)
    figures = json.loads(parsed.text(parsed.by_id["measured"]))
    assert figures["width"] <= 1280 and figures["cells"] == len(FLEET) * len(FACTS)
    assert figures["cut"] == 0 and figures["right"] <= figures["width"], figures
    assert figures["bottom"] <= 1000, f"the grid runs past the first screen: {figures}"
    shot = tmp_path / "report-1280.png"
    subprocess.run([CHROMIUM, *FLAGS, *size, f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(header[16:20], "big") == 1280
