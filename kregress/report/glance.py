"""report.html's first screen, what a fleet asks: the run's header (when, where, which
accelerator per kernel, how many kernels booted and VM tests ran, their outcomes) and the
kernels x facts verdict grid in compact cells: the fact's state by symbol, the verdict by colour
and mark, a legend, the reason on hover (title) or click. 25 kernels and every fact fit 1280 px
(tests/unit/test_report_browser.py measures it in chromium). The per-pair list follows, folded."""
from __future__ import annotations

from html import escape

from kregress.report import verdicts

STATE_SYMBOL = {"has": "●", "lacks": "○", "unusable": "⊘"}
STATE_WORD = {"has": "has the fix/feature", "lacks": "lacks it", "unusable": "has it, unusable here"}
# verdict -> (css class, mark after the state's symbol, legend word)
VERDICT_LOOK = {"agree": ("agree", "", "behaves as the facts say"),
                "CONTRADICTION": ("contradiction", "!", "CONTRADICTION: behaves otherwise"),
                "IN QUESTION": ("in-question", "?", "IN QUESTION: a failing test named several facts"),
                "precondition failed": ("precondition", "P", "precondition failed"),
                "not judged": ("not-judged", "·", "not judged: no test judged it")}

CSS = """
#run-header { margin: .2em 0 .6em; font-size: 13px; }
#run-header span { margin-right: 1.2em; white-space: nowrap; }
#verdict-grid { border-collapse: collapse; font-size: 12px; }
#verdict-grid th, #verdict-grid td { border: 1px solid #ccc; padding: 1px 3px; }
#verdict-grid th.fact { vertical-align: bottom; height: 12.5em; width: 1.7em; padding: 2px 0; }
#verdict-grid th.fact span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
#verdict-grid th.kernel { white-space: nowrap; text-align: left; font-weight: normal; background: #f4f4fb; }
#verdict-grid th.kernel small { color: #555; }
#verdict-grid td.v { text-align: center; width: 1.7em; cursor: pointer; font-size: 13px; line-height: 1.2; }
#verdict-grid td.v.missing { background: #fff; color: #bbb; }
.v.agree { background: #cdeccd; } .v.contradiction { background: #e8413c; color: #fff; font-weight: bold; }
.v.in-question { background: #f6a623; font-weight: bold; } .v.precondition { background: #d9b3e6; }
.v.not-judged { background: #eee; color: #777; }
#verdict-legend { font-size: 12px; margin: .4em 0; }
#verdict-legend span { display: inline-block; margin-right: 1em; }
#verdict-legend b { display: inline-block; min-width: 1.4em; text-align: center; border: 1px solid #ccc; }
#cell-reason { font-size: 12px; min-height: 1.4em; margin: .3em 0; color: #222; }
"""

# Click a cell: its reason (the same text as its hover title) below the grid.
SCRIPT = """
document.querySelectorAll('#verdict-grid td.v').forEach(cell => cell.addEventListener('click', () => {
  document.getElementById('cell-reason').textContent =
    cell.dataset.verdictKernel + ' / ' + cell.dataset.fact + ': ' + cell.title;
}));
"""


def look(row: dict | None) -> tuple[str, str]:
    """(css class, cell text) of one kernel/fact verdict."""
    if row is None:
        return "missing", "-"
    key = "precondition failed" if row["verdict"].startswith("precondition failed") else row["verdict"]
    css, mark, _ = VERDICT_LOOK[key]
    return css, STATE_SYMBOL[row["state"]] + mark


def reason(row: dict) -> str:
    return f"{verdicts.STATE_TEXT[row['state']]} ({row['decided_by']}): {row['verdict']}; {verdicts.sentence(row)}"


def run_header(meta: dict, columns) -> str:
    summary = meta.get("summary") or {}
    accels = sorted({str(col.info.get("accel")) for col in columns if col.info.get("accel")})
    outcomes = ", ".join(f"{n} {what}" for what, n in sorted((summary.get("outcomes") or {}).items()))
    parts = [f"run {meta.get('started') or '?'} to {meta.get('finished') or '?'}",
             f"host {(meta.get('host') or {}).get('machine', '?')}",
             f"accelerator {' / '.join(accels) or '?'} (per kernel in the grid)",
             f"kernels booted {summary.get('kernels_booted', '?')} of {len(columns)}",
             f"VM tests {summary.get('vm_tests_run', '?')}", f"outcomes: {outcomes or 'none'}"]
    return '<p id="run-header">' + "".join(f"<span>{escape(p)}</span>" for p in parts) + "</p>"


def verdict_grid(rows: list[dict], columns) -> str:
    """Kernels as rows (id, package version, arch, accelerator), facts as columns."""
    kernels, facts, cells = verdicts.grid(rows)
    info = {col.id: col.info for col in columns}
    out = ['<table id="verdict-grid"><tr><th>kernel</th>'
           + "".join(f'<th class="fact" title="{escape(f)}"><span>{escape(f)}</span></th>' for f in facts) + "</tr>"]
    for kernel in kernels:
        k = info.get(kernel) or {}
        version = next((r["package_version"] for r in rows if r["kernel"] == kernel and r.get("package_version")),
                       k.get("package_version") or k.get("uname_r") or "")
        detail = " · ".join(str(x) for x in (version, k.get("arch"), k.get("accel")) if x)
        out.append(f'<tr><th class="kernel">{escape(kernel)} <small>{escape(detail)}</small></th>')
        for fact in facts:
            row = cells.get((kernel, fact))
            css, text = look(row)
            attrs = (f' data-state="{row["state"]}" data-verdict="{escape(row["verdict"])}"'
                     f' title="{escape(reason(row))}"') if row else ""
            out.append(f'<td class="v {css}" data-verdict-kernel="{escape(kernel)}" data-fact="{escape(fact)}"'
                       f'{attrs}>{escape(text)}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def legend() -> str:
    states = "".join(f"<span><b>{s}</b> {escape(STATE_WORD[k])}</span>" for k, s in STATE_SYMBOL.items())
    looks = "".join(f'<span><b class="v {css}">{mark or "&nbsp;"}</b> {escape(word)}</span>'
                    for css, mark, word in VERDICT_LOOK.values())
    return f'<p id="verdict-legend">{states}<br>{looks}<span>(hover or click a cell for its reason)</span></p>'


def first_screen(rows: list[dict], meta: dict, columns) -> str:
    return (run_header(meta, columns) + "<h2>Verdicts</h2>" + legend() + verdict_grid(rows, columns)
            + '<p id="cell-reason"></p>')
