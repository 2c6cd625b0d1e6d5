"""A cost report as HTML: the body a notebook shows (Report._repr_html_), and
report.html, one self-contained file (figures inlined as PNG data) that each
build writes. `rep` is a backends.cost.Report (not imported here: Report's
_repr_html_ imports this module)."""
from __future__ import annotations

import base64
from html import escape

from archdsl.backends import figures
from archdsl.compiler.ir import section_of
from archdsl.backends.units import fmt_seconds

STYLE = """<style>
.archc-report{font-family:system-ui,sans-serif;max-width:1100px}
.archc-report table{border-collapse:collapse;margin:.5em 0}
.archc-report th,.archc-report td{padding:2px 10px;border-bottom:1px solid #ddd}
.archc-report td.n,.archc-report th.n{text-align:right;font-variant-numeric:tabular-nums}
.archc-report pre{white-space:pre-wrap;font-size:85%;background:#f6f6f6;padding:.6em}
</style>"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A table whose first column is text and the others numbers."""
    cls = lambda i: "" if i == 0 else ' class="n"'  # noqa: E731
    out = ["<table><tr>" + "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(head)) + "</tr>"]
    out += ["<tr>" + "".join(f"<td{cls(i)}>{escape(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows]
    return "\n".join(out) + "</table>"


def body(rep) -> str:
    """Summary, per-section costs and roofline times: what a notebook shows for a Report."""
    t = rep.total
    title = escape(rep.name) + (" (deployed graph)" if rep.deployed else "")
    summary = (f"input {'x'.join(map(str, rep.input_shape))}, {rep.dtype}: <b>{t.params / 1e6:.3f} M params</b>, "
               f"<b>{t.macs / 1e9:.3f} GMACs</b> (fvcore's count, as timm's model cards quote it: "
               f"{t.fvcore_macs / 1e9:.3f}), {t.activations / 1e6:.2f} M activations, "
               f"{t.bytes / 1e6:.1f} MB moved, {t.intensity:.1f} MACs/byte")
    times = {hw.name: {} for hw in rep.hardware}
    for l in rep.layers:
        for hw in rep.hardware:
            sec = times[hw.name]
            sec[section_of(l.name)] = sec.get(section_of(l.name), 0.0) + l.time(hw)
    rows = []
    for k, s in list(rep.by_section().items()) + [("total", t)]:
        cells = [k, f"{s.params:,}", f"{s.macs / 1e6:,.1f}", f"{s.activations / 1e6:.2f}", f"{s.bytes / 1e6:.1f}",
                 f"{s.intensity:.1f}"]
        cells += [fmt_seconds(times[hw.name].get(k, 0.0) if k != "total" else rep.roofline(hw))
                  for hw in rep.hardware]
        rows.append(cells)
    sections = _table(["section", "params", "MMACs", "acts (M)", "MB", "MACs/B"] + [hw.name for hw in rep.hardware],
                      rows)
    hw_rows = [[hw.name, f"{hw.peak_macs / 1e12:.3g}", f"{hw.mem_bw / 1e9:.3g}", f"{hw.ridge_point:.1f}",
                fmt_seconds(rep.roofline(hw))] for hw in rep.hardware]
    roof = _table(["hardware", "peak TMACs/s", "GB/s", "ridge (MACs/B)", "roofline time"], hw_rows)
    return (f'<div class="archc-report"><h2>{title}</h2><p>{summary}</p>'
            f"<h3>Per section</h3>{sections}" + (f"<h3>Roofline</h3>{roof}" if rep.hardware else "") + "</div>")


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p><i>{escape(alt)}: {escape(figures.NO_MATPLOTLIB)}</i></p>"
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def page(rep, with_figures: bool = True) -> str:
    """report.html: the body, the per-section bars, the roofline of every layer, the
    convention; with_figures false: none drawn (a config's `figures: false`)."""
    drawn = ("<h3>Cost per section</h3>" + _img(figures.section_bars(rep), "cost per section")
             + "<h3>Roofline of every layer</h3>" + _img(figures.roofline(rep), "roofline")) if with_figures else (
        "<p><i>Figures not drawn (figures=false in the config).</i></p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{escape(rep.name)}: archc report</title>{STYLE}</head><body>\n" + body(rep)
            + '<div class="archc-report">' + drawn
            + f"<h3>Counting convention</h3><pre>{escape(rep.convention)}</pre></div>\n</body></html>\n")
