"""report.html's "Your programs" section: per program, what it changes on which kernel."""
from __future__ import annotations

from html import escape

from kregress.check_progs import findings as checkprogs, policy, sockops


def programs_section(doc: dict) -> str:
    """One block per program (object and program name), one row per kernel; "" without checks."""
    by_program: dict[tuple[str, str], list[tuple[str, dict | None, dict]]] = {}
    for test, record in checkprogs.records_of(doc):
        if record is None or record.get("refused"):
            key = ((record or {}).get("object") or test["nodeid"], "(object)")
            by_program.setdefault(key, []).append((test.get("kernel", "?"), None, record or test))
        for check in (record or {}).get("programs", []):     # what ran before a refusal too
            by_program.setdefault((record["object"], check["program"]), []).append((record["kernel"], check, record))
        for kind in ("policy", "sockops"):      # the other kinds: one row per object, its words
            if (record or {}).get(kind):
                by_program.setdefault((record["object"], f"({kind} programs)"), []).append(
                    (record["kernel"], {kind: record[kind]}, record))
        for item in checkprogs.unchecked(record or {}):
            by_program.setdefault((record["object"], item["program"]), []).append(
                (record["kernel"], {"not_checked": item}, record))
    if not by_program:
        return ""
    out = ['<h2>Your programs</h2>']
    for (obj, program), rows in sorted(by_program.items()):
        out.append(f'<section class="program"><h3>{escape(program)} <small>{escape(obj)}</small></h3><table>'
                   "<tr><th>kernel</th><th>verdict</th><th>findings</th><th>reproduce</th></tr>")
        for kernel, check, record in rows:
            out.append(_row(kernel, check, record))
        out.append("</table></section>")
    return "\n".join(out)


def _row(kernel: str, check: dict | None, record: dict) -> str:
    if check is None:
        refused = record.get("refused") or {}
        words = (f"{refused.get('stage')} refused: {refused.get('errno')} ({refused.get('strerror')})\n"
                 f"{refused.get('libbpf_log', '')}" if refused else record.get("longrepr", ""))
        return (f'<tr><td>{escape(kernel)}</td><td class="fail">could not check</td>'
                f"<td><pre>{escape(words.strip()[-3000:])}</pre></td><td>{escape(record.get('reproduce', ''))}</td></tr>")
    if "not_checked" in check:      # nothing looked at it: never shown as a pass
        item = check["not_checked"]
        return (f'<tr><td>{escape(kernel)}</td><td class="fail">not checked</td>'
                f"<td>{escape(item['section'])}: {escape(item['why'])}</td><td></td></tr>")
    for kind, render in (("policy", policy.render), ("sockops", sockops.render)):
        if kind in check:
            found = check[kind]["findings"]
            return (f'<tr><td>{escape(kernel)}</td><td class="{"fail" if found else "pass"}">'
                    f'{"findings" if found else "no finding"} ({len(found)})</td>'
                    f"<td><pre>{escape(chr(10).join(render({**record, kind: check[kind]}, kernel)))}</pre></td>"
                    f"<td><code>{escape(record['reproduce']) if found else ''}</code></td></tr>")
    findings = checkprogs.by_harm(check["findings"])
    items = "".join(f"<li>{escape(f['call']['op'])}sockopt({escape(f['call']['level_name'])}, "
                    f"{escape(f['call']['optname_name'])}) on {escape(f['call']['socket'])}, optlen "
                    f"{f['call']['optlen_in']}: {escape(f['why'])} <i>({escape(', '.join(f['explained_by']) or 'UNEXPLAINED')})"
                    f"</i></li>" for f in findings)
    advice = "".join(f"<li><b>change</b>: {escape(checkprogs.ADVICE[kind])}</li>"
                     for kind in sorted({f["kind"] for f in findings}))
    owned = "".join(f"<li>owns {escape(key)} ({escape(how)})</li>" for key, how in check["owned"].items())
    verdict = "findings" if findings else "no finding"
    return (f'<tr><td>{escape(kernel)}</td><td class="{"fail" if findings else "pass"}">{verdict} '
            f"({len(findings)})</td><td><ul>{owned}{items}{advice}</ul></td>"
            f"<td><code>{escape(record['reproduce']) if findings else ''}</code></td></tr>")
