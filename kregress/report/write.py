"""Reports from a results file: the behaviour matrix as self-contained HTML and as text,
plus the KCIDB and JUnit files, all written next to results.json.

Everything here reads only the results file (and, for old files, kernels.toml), so
`kregress report RESULTS.json` regenerates offline exactly what the pytest run wrote.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from kregress.expectation import deviations, documents
from kregress.report import known
from kregress.report import glance, junit, kcidb, verdicts
from kregress.kernels.facts import FACTS
from kregress.expectation.behaviour import behaviour_parts, behaviour_text, value_text
from kregress.report.matrix import Matrix, build
from kregress.check_progs.report import programs_section
from kregress.report.results import load, source_text

STATUS_MARK = {"pass": "+", "fail": "x", "skip": "s", "expected-diff": "~"}
STATUS_WORD = {"pass": "pass", "fail": "fail", "skip": "skip", "expected-diff": "expected difference"}


def page_text(size) -> str:
    return f"{size // 1024}K" if isinstance(size, int) else "?"


def kernel_header(col) -> list[str]:
    info = col.info
    lines = [info.get("package_version") or info.get("image") or "?",
             f"upstream {col.version or '?'}", f"uname -r {info.get('uname_r') or '?'}",
             f"accel {info.get('accel') or '?'}",
             f"{info.get('arch') or '?'}, {page_text(info.get('page_size'))} pages", source_text(info)]
    image = info.get("guest_image") or {}
    if image.get("digest"):
        lines.append(f"guest {image.get('suite')} {image.get('arch')} {image['digest'][:12]}")
    if info.get("error"):
        lines.append("NOT BOOTED: " + info["error"].splitlines()[0])
    elif info.get("boot_seconds"):
        lines.append(f"{'restored' if info.get('boot_how') == 'restored' else 'booted'} in {info['boot_seconds']}s")
    return lines


# ---- text (terminal summary, `kregress report`) ---------------------------------------

def render_text(matrix: Matrix, width: int = 150) -> list[str]:
    """A grid for the terminal (about `width` columns); report.html has the whole cells."""
    if not matrix.rows:
        return ["behaviour matrix: no VM test results"]
    label_width = min(48, max(len(row.name) for row in matrix.rows) + 2)
    cell_width = max(22, min(48, (width - label_width) // max(1, len(matrix.columns)) - 1))
    lines = [f"behaviour matrix ({', '.join(f'{m} {STATUS_WORD[s]}' for s, m in STATUS_MARK.items())}; "
             f"then * changed (explained), ! changed (unexplained); cells show the keys that differ "
             f"between kernels; full cells in report.html)"]
    for index in range(3):
        parts = [("" if index else "kernel").ljust(label_width)]
        for col in matrix.columns:
            header = [col.id, col.info.get("package_version") or "?", col.info.get("accel") or "?"][index]
            parts.append(_fit(header, cell_width))
        lines.append(" ".join(parts).rstrip())
    module = None
    for row in matrix.rows:
        if row.module != module:
            module = row.module
            lines.append(module)
        parts = [_fit("  " + row.name, label_width)]
        for col in matrix.columns:
            cell = row.cells.get(col.id)
            if not cell:
                parts.append(_fit("  -", cell_width))
                continue
            text = behaviour_text(cell.observed, row.varying or None) if cell.observed else cell.outcome
            if len(text) > cell_width - 2 and cell.observed:
                # too long for the grid: the values alone, in key order (report.html has the names)
                keys = row.varying or list(cell.observed)
                text = "/".join(value_text(cell.observed[k]) for k in keys if k in cell.observed)
            flag = "!" if cell.change and not cell.change.explained else ("*" if cell.change else " ")
            parts.append(_fit(f"{STATUS_MARK[cell.status]}{flag}{text}", cell_width))
        lines.append(" ".join(parts).rstrip())
    changes = list(matrix.changes())
    if changes:
        lines.append("changes between adjacent kernels (* explained, ! unexplained):")
        for row, cell in changes:
            keys = row.varying or None
            lines.append(f"  {row.case}: {cell.change.since} -> {cell.kernel}: {behaviour_text(cell.change.before, keys)}"
                         f" -> {behaviour_text(cell.observed, keys)}: {cell.change.label}")
    for stale in matrix.stale:
        lines.append(f"STALE: {stale}")
    return lines


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[:width - 1] + "…"


# ---- HTML --------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.35 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: .3em .5em; vertical-align: top; text-align: left; }
th.kernel { background: #eef; font-weight: normal; }
th.kernel b { font-size: 1.05em; }
td.case { font-family: monospace; }
tr.module td { background: #ddd; font-weight: bold; }
td.cell { font-family: monospace; min-width: 10em; }
td.pass { background: #d8f0d8; }
td.fail { background: #f6c9c9; }
td.skip { background: #e6e6e6; color: #555; }
td.expected-diff { background: #fde9b8; }
td.precondition { background: #f3d9f7; }
td.missing { background: #fff; color: #999; }
.obs.varies { font-weight: bold; }
.change { font-family: system-ui, sans-serif; font-size: .85em; margin-top: .3em; }
.change.explained { color: #114a8b; }
.change.unexplained { color: #a00; font-weight: bold; }
.stale { color: #8a4b00; font-weight: bold; font-size: .85em; }
.legend span.pass { background: #d8f0d8; } .legend span.fail { background: #f6c9c9; }
.legend span.skip { background: #e6e6e6; } .legend span.expected-diff { background: #fde9b8; }
.legend span { display: inline-block; padding: .1em .5em; margin-right: .5em; border: 1px solid #bbb; }
details pre { white-space: pre-wrap; max-width: 60em; font-size: .8em; }
#known-defects, #known, #documents, #deviations { white-space: pre-wrap; }
body.only-differences tr.same { display: none; }
"""

# A filter for long matrices; the page works without it.
SCRIPT = """
const box = document.getElementById('only-differences');
function update() {
  document.body.classList.toggle('only-differences', box.checked);
  const rows = document.querySelectorAll('tr.case-row');
  const shown = [...rows].filter(r => !(box.checked && r.classList.contains('same'))).length;
  document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' cases shown';
}
box.addEventListener('change', update);
update();
"""


def render_html(matrix: Matrix, title: str = "kregress behaviour matrix", verdict_rows: list[dict] = (),
                document_rules: list[dict] = (), deviation_rules: list[dict] = (),
                known_differences: list[dict] = (), programs_html: str = "") -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{escape(title)}</title><style>{CSS}{glance.CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1>"]
    if verdict_rows:        # first: per kernel and fact, has it and behaves like it, by which source
        out.append(glance.first_screen(list(verdict_rows), matrix.meta, matrix.columns))
        out.append(f'<details id="verdict-pairs"><summary>{len(verdict_rows)} kernel/fact pairs, one line each: '
                   f'{escape(verdicts.summary(list(verdict_rows)))}</summary>')
        out.append('<table id="verdicts"><tr><th>kernel</th><th>fact</th><th>expected</th>'
                   "<th>decided by</th><th>verdict</th><th>sources and behaviour</th></tr>")
        out += [f"<tr><td>{escape(r['kernel'])}</td><td>{escape(r['fact'])}</td>"
                f"<td>{escape(verdicts.STATE_TEXT[r['state']])}</td><td>{escape(str(r['decided_by']))}</td>"
                f"<td class=\"{_verdict_class(r)}\">{escape(r['verdict'])}</td>"
                f"<td>{escape(verdicts.sentence(r))}</td></tr>" for r in verdict_rows]
        out.append("</table></details>")
        defects = verdicts.defect_lines(list(verdict_rows))
        if defects:         # explained is not harmless: the kernels that carry a known defect
            out.append('<h2>Known defects</h2><pre id="known-defects">' + escape("\n".join(defects)) + "</pre>")
    if deviation_rules:     # stated intents the kernels are known to break
        out.append('<h2>Deviations</h2><pre id="deviations">'
                   + escape("\n".join(deviations.render(deviation_rules))) + "</pre>")
    if known_differences:   # seen before, not explained: shown, never counted as a pass
        failing = {row.case: [k for k, c in row.cells.items() if c.status not in ("pass", "expected-diff")]
                   for row in matrix.rows}
        out.append('<h2>Known differences</h2><pre id="known">'
                   + escape("\n".join(known.render(known_differences, failing))) + "</pre>")
    if document_rules:      # second: where the documentation and the kernels part ways
        out.append('<h2>Documentation</h2><pre id="documents">'
                   + escape("\n".join(documents.render(document_rules))) + "</pre>")
    out.append(programs_html)    # kregress check-progs: a section per program of the user's
    meta = matrix.meta
    counts = matrix.counts()
    out.append(f"<p>Run {escape(str(meta.get('started') or '?'))} to {escape(str(meta.get('finished') or '?'))} "
               f"on {escape(str((meta.get('host') or {}).get('machine', '?')))}. "
               + ", ".join(f"{counts[s]} {escape(STATUS_WORD[s])}" for s in STATUS_MARK if s in counts)
               + f"; {matrix.unexplained} unexplained change(s), {len(matrix.stale)} stale expectation(s).</p>")
    for accel in meta.get("accelerators", []):
        out.append(f"<p class=\"accel\">Accelerator: <b>{escape(str(accel['accel']))}</b> "
                   f"({escape(str(accel.get('reason') or ''))})</p>")
    if meta.get("harness_events"):      # what the harness did to keep going, and what the boot logs showed
        out.append('<ul id="harness-events" class="fail">'
                   + "".join(f"<li>{escape(line)}</li>" for line in meta["harness_events"]) + "</ul>")
    for image in meta.get("guest_images", []):
        packages = image.get("packages") or {}
        out.append(_record_details("image", f'Guest image: <b>{escape(str(image.get("suite")))} '
                                   f'{escape(str(image.get("arch")))}</b>, sha256 <code>{escape(image["digest"])}</code>, '
                                   f'{len(packages)} packages', image, sorted(packages.items())))
    for root in meta.get("build_roots", []):
        out.append(_record_details("buildroot", f'Build root (guest programs compiled in): '
                                   f'<b>{escape(str(root.get("suite")))}</b>, packages digest '
                                   f'<code>{escape(root["digest"])}</code>', root, (root.get("versions") or {}).items()))
    out.append('<p class="legend">' + "".join(
        f'<span class="{s}">{escape(STATUS_WORD[s])}</span>' for s in STATUS_MARK) + "</p>")
    out.append('<p><label><input type="checkbox" id="only-differences"> only cases whose behaviour or '
               'outcome differs between kernels</label> &mdash; <span id="shown"></span></p>')
    out.append(_table(matrix))
    if matrix.stale:
        out.append('<h2>Stale expectations</h2><ul id="stale">')
        out += [f"<li>{escape(s)}</li>" for s in matrix.stale]
        out.append("</ul>")
    out.append('<h2>Facts</h2><ul id="facts">')
    out += [f"<li><b>{escape(f.name)}</b>: {escape(f.label)}; releases: {escape(f.releases())}. "
            f"{escape(f.note)}</li>" for f in FACTS.values()]
    out.append(f"</ul><script>{SCRIPT}{glance.SCRIPT if verdict_rows else ''}</script></body></html>")
    return "\n".join(out) + "\n"


def _record_details(css: str, summary: str, record: dict, versions) -> str:
    """A shared per-kernel record (guest image, build root): summary (HTML), its kernels, its versions."""
    return (f'<details class="{css}"><summary>{summary} (kernels: {escape(", ".join(record.get("kernels") or []))})'
            f'</summary><p>{escape(", ".join(f"{name} {version}" for name, version in versions))}</p></details>')


def _verdict_class(row: dict) -> str:
    if row["verdict"] in verdicts.DISAGREEING:
        return "fail"
    return {"agree": "pass", "not judged": "skip"}.get(row["verdict"], "precondition")


def _table(matrix: Matrix) -> str:
    out = ['<table id="matrix"><thead><tr><th>case</th>']
    for col in matrix.columns:
        lines = kernel_header(col)
        title = col.info.get("accel_reason") or ""
        out.append(f'<th class="kernel" data-kernel="{escape(col.id)}" title="{escape(title)}"><b>{escape(col.id)}</b>'
                   + "".join(f"<br>{escape(line)}" for line in lines) + "</th>")
    out.append("</tr></thead><tbody>")
    module = None
    for row in matrix.rows:
        if row.module != module:
            module = row.module
            out.append(f'<tr class="module"><td colspan="{len(matrix.columns) + 1}">{escape(module)}</td></tr>')
        outcomes = {c.status for c in row.cells.values()}
        same = not row.varying and not any(c.change for c in row.cells.values()) and outcomes <= {"pass"}
        out.append(f'<tr class="case-row{" same" if same else ""}" data-case="{escape(row.case)}">'
                   f'<td class="case">{escape(row.name)}</td>')
        for col in matrix.columns:
            cell = row.cells.get(col.id)
            out.append(_cell(row, col.id, cell))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _cell(row, kernel: str, cell) -> str:
    attrs = f'data-kernel="{escape(kernel)}" data-case="{escape(row.case)}"'
    if cell is None:
        return f'<td class="cell missing" {attrs} data-status="missing">not run</td>'
    test = cell.test
    title = f"outcome {cell.outcome}"
    if cell.expected and cell.expected != cell.observed:
        title += f"; expected {behaviour_text(cell.expected)}"
    if test.get("why"):
        title += f"; why: {test['why']}"
    if cell.observed:   # the keys that differ between kernels stand out
        body = "<br>".join(f'<span class="obs{" varies" if k in row.varying else ""}">{escape(p)}</span>'
                           for k, p in zip(cell.observed, behaviour_parts(cell.observed)))
    else:
        body = f'<span class="obs">{escape(cell.outcome)}</span>'

    if cell.change:
        kind = "explained" if cell.change.explained else "unexplained"
        text = (f"changed since {cell.change.since}: {cell.change.label}" if cell.change.explained
                else f"unexplained change since {cell.change.since}")
        body += (f'<div class="change {kind}" data-facts="{escape(" ".join(cell.change.facts))}" '
                 f'title="{escape(cell.change.detail)}">{escape(text)}</div>')
    if cell.stale:
        body += f'<div class="stale">STALE: {escape(cell.stale)}</div>'
    if cell.status == "fail" or (cell.status == "skip" and test.get("longrepr")):
        body += f"<details><summary>{escape(cell.outcome)}</summary><pre>{escape(test.get('longrepr') or '')}</pre></details>"
    if test.get("dmesg"):
        body += f"<details><summary>dmesg ({len(test['dmesg'])})</summary><pre>{escape(chr(10).join(test['dmesg']))}</pre></details>"
    return (f'<td class="cell {cell.status}" {attrs} data-status="{cell.status}" title="{escape(title)}">'
            f"{body}</td>")


# ---- all files ---------------------------------------------------------------------------

REPORT_FILES = ("report.html", "kcidb.json", "junit.xml")


def write_reports(results_path: Path, out_dir: Path | None = None, kernels_file: Path | None = None,
                  skip: tuple[str, ...] = ()) -> tuple[Matrix, dict[str, Path]]:
    doc = load(results_path)
    out_dir = Path(out_dir or Path(results_path).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    matrix = build(doc, kernels_file)
    contents = {
        "report.html": lambda: render_html(matrix, verdict_rows=verdicts.table([doc]),
                                           document_rules=documents.rules([doc]),
                                           deviation_rules=deviations.rules([doc]),
                                           known_differences=known.ran(known.load(), (row.case for row in matrix.rows)),
                                           programs_html=programs_section(doc)),
        "kcidb.json": lambda: json.dumps(kcidb.from_results(doc), indent=1, sort_keys=True) + "\n",
        "junit.xml": lambda: junit.from_results(doc, matrix),
    }
    written = {}
    for name, make in contents.items():
        if name in skip:
            continue
        path = out_dir / name
        path.write_text(make())
        written[name] = path
    return matrix, written
