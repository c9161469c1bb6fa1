"""The report's two formats: one self-contained HTML file (plotly.js inline: it opens offline, asks no host) and a
Markdown file with a PNG per figure beside it (drawn with matplotlib from the same plotly figures' data)."""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from maskcls.common.fileio import write_text
from maskcls.wrapup.document import ReportRequest, Section

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
.cmd{font-family:monospace;color:#555;font-size:12px;margin:0 0 1.5em}.note{background:#f6f6e8;padding:.6em;
border-left:3px solid #cc9}"""


def _text_html(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def png_bytes(views: list) -> bytes:
    """Images side by side as one PNG (the report's Grad-CAM rows)."""
    import io

    import numpy as np
    from PIL import Image
    h = max(v.shape[0] for v in views)
    row = np.concatenate([np.pad(v, ((0, h - v.shape[0]), (0, 4), (0, 0)), constant_values=255) for v in views], 1)
    buf = io.BytesIO()
    Image.fromarray(row.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def to_html(sections: list[Section], request: ReportRequest) -> str:
    """The whole report as one HTML document with no outside reference."""
    from plotly.offline import get_plotlyjs
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(request.title)}</title>"
             f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(request.title)}</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if request.notes.get(sec.title):
            parts.append(f"<div class='note'>{_text_html(request.notes[sec.title])}</div>")
        for block in sec.blocks:
            if block[0] == "text":
                parts.append(f"<p>{_text_html(block[1])}</p>")
            elif block[0] == "table":
                parts.append(block[1].to_html(index=False, escape=True, border=0))
                parts.append(f"<p class='cmd'>{html.escape(block[2])}</p>")
            elif block[0] == "images":
                import base64
                data = base64.b64encode(png_bytes(block[1])).decode()
                parts.append(f"<figure><img alt='{html.escape(block[2])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
                parts.append(f"<p class='cmd'>reproduce: {html.escape(block[3])}</p>")
            else:
                parts.append(block[1].to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}))
                parts.append(f"<p class='cmd'>reproduce: {html.escape(block[2])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def figure_png(fig, path: Path) -> None:
    """A plotly figure's bars, lines and heat maps drawn again with matplotlib (no browser or kaleido needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out, ax = plt.subplots(figsize=(9, 4.5), dpi=90)
    for trace in fig.data:
        if trace.type == "heatmap":
            ax.imshow(trace.z, cmap="Blues", aspect="auto")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        elif trace.type == "bar":
            xs = list(trace.x) if trace.x is not None else list(range(len(trace.y)))
            horizontal = trace.orientation == "h"
            values, cats = (trace.x, trace.y) if horizontal else (trace.y, xs)
            err = trace.error_x if horizontal else trace.error_y
            bars = dict(xerr=None, yerr=None)
            if err is not None and err.array is not None:
                lo = err.arrayminus if err.arrayminus is not None else err.array
                bars["xerr" if horizontal else "yerr"] = [list(lo), list(err.array)]
            base = list(trace.base) if trace.base is not None else None
            positions = [str(c) for c in cats]
            if horizontal:
                ax.barh(positions, list(values), left=base, xerr=bars["xerr"])
            else:
                ax.bar(positions, list(values), bottom=base, yerr=bars["yerr"])
        elif trace.type == "scatter" and trace.y is not None and "lines" in (trace.mode or "lines"):
            ax.plot(list(trace.x) if trace.x is not None else range(len(trace.y)), list(trace.y))
        elif trace.type == "scatter" and trace.y is not None:  # markers, with their error bars
            err = trace.error_y
            yerr = [list(err.arrayminus if err.arrayminus is not None else err.array), list(err.array)] \
                if err is not None and err.array is not None else None
            ax.errorbar(list(trace.x), list(trace.y), yerr=yerr, fmt="o", label=trace.name)
            for x, y, t in zip(trace.x, trace.y, trace.text or []):
                ax.annotate(str(t), (x, y), fontsize=7)
    ax.set_title(fig.layout.title.text or "", fontsize=10)
    ax.tick_params(labelsize=7)
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right")
    out.tight_layout()
    out.savefig(path, format="png")
    plt.close(out)


def _md(text) -> str:
    """Text for the Markdown file with HTML escaped as the HTML report escapes it: a run name or config value
    holding `<script>` or `<img onerror=...>` shows as text in a wiki, never as markup."""
    return html.escape(str(text), quote=False)


def _md_table(frame: pd.DataFrame) -> str:
    cells = [[_md(v).replace("|", "\\|").replace("\n", " ") for v in row] for row in frame.astype(str).values]
    head = "| " + " | ".join(_md(c) for c in frame.columns) + " |\n| " + " | ".join("---" for _ in frame.columns) \
        + " |"
    return head + "".join("\n| " + " | ".join(r) + " |" for r in cells)


def to_markdown(sections: list[Section], request: ReportRequest, out: Path) -> tuple[str, dict[str, bytes]]:
    """The report as Markdown text for `out` and its figures as PNG bytes by file name (in `<out stem>_figures/`),
    all in memory: nothing is written until every part is made."""
    import io
    folder_name = f"{out.stem}_figures"
    lines, pngs = [f"# {_md(request.title)}", ""], {}
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        if request.notes.get(sec.title):
            lines += ["> " + _md(request.notes[sec.title]).replace("\n", "\n> "), ""]
        for block in sec.blocks:
            if block[0] == "text":
                lines += [_md(block[1]), ""]
            elif block[0] == "table":
                lines += [_md_table(block[1]), "", f"`{_md(block[2])}`", ""]
            elif block[0] == "images":
                name = f"{len(pngs) + 1:02d}-grad-cam.png"
                pngs[name] = png_bytes(block[1])
                lines += [f"![{_md(block[2])}]({folder_name}/{name})", "", _md(block[2]), ""]
            else:
                name = f"{len(pngs) + 1:02d}-{re.sub(r'[^a-z0-9]+', '-', sec.title.lower())}.png"
                buf = io.BytesIO()
                figure_png(block[1], buf)
                pngs[name] = buf.getvalue()
                lines += [f"![{sec.title}]({folder_name}/{name})", "", f"reproduce: `{_md(block[2])}`", ""]
    return "\n".join(lines), pngs


def write_report(runs_root, request: ReportRequest, out, *, markdown: bool = True) -> dict:
    """Build the report and write `out` (.html) and, with `markdown`, `out`.md with its PNGs; returns the paths.
    Every part is made in memory first: a failure leaves no half report, and no old figure beside a new one."""
    from maskcls.common.fileio import write_bytes
    from maskcls.common.outputs import guard_output
    from maskcls.wrapup.document import build_report
    if not str(out).lower().endswith(".html"):
        raise ValueError(f"--out {str(out)!r}: expected an .html file name (the Markdown goes beside it)")
    out = guard_output(out, example="report.html", companions=("{stem}.md",) if markdown else (),
                       folders=("{stem}_figures",) if markdown else (), reads=request.read_files,
                       runs_root=runs_root).path
    sections = build_report(runs_root, request)
    page = to_html(sections, request)
    md = out.with_suffix(".md")
    text, pngs = to_markdown(sections, request, md) if markdown else ("", {})
    write_text(out, page)
    result = {"html": str(out), "bytes": len(page.encode()), "sections": [s.title for s in sections]}
    if markdown:
        folder = out.parent / f"{md.stem}_figures"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("[0-9][0-9]-*.png"):  # a report built again: no figure of the last one stays
            old.unlink()
        for name, data in pngs.items():
            write_bytes(folder / name, data)
        write_text(md, text)
        result.update(markdown=str(md), figures=[str(folder / n) for n in pngs])
    return result
