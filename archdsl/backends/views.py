"""Cost reports for people, as aligned text: every layer with per-block
subtotals, the heaviest layers, totals per block kind, and two reports side
by side (`archc cost --layers`, `--top K`, `archc diff`)."""
from __future__ import annotations

from archdsl.backends.cost import Hardware, Layer, Part, Report, Totals
from archdsl.backends.units import fmt_seconds
from archdsl.compiler import ir
from archdsl.language.errors import ConfigError

RANKINGS = ("macs", "bytes", "time")
OUTSIDE_BLOCKS = "(no block)"


def fmt_count(n: float) -> str:
    """3 significant digits with k, M, G: 864, 221k, 10.8M, 1.23G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale * 0.9995:
            v = n / scale
            return f"{v:.{max(0, 2 - len(str(int(abs(v)))) + 1)}f}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) else str(n)


def pick_hardware(rep: Report, name: str | None = None) -> Hardware | None:
    """The preset asked for, else a100, else the report's first (None: the report has none)."""
    by_name = {h.name: h for h in rep.hardware}
    if name is not None:
        if name not in by_name:
            raise ConfigError(f"no hardware preset '{name}'", hint=f"presets: {', '.join(by_name) or 'none'}")
        return by_name[name]
    return by_name.get("a100") or next(iter(by_name.values()), None)


def align(rows: list[list[str]], left: int = 1) -> str:
    """Rows as text columns: the first `left` columns flush left, the others right; a rule under the head."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cost_cells(t: Layer | Totals, hw: Hardware | None, time: float | None) -> list[str]:
    cells = [f"{t.params:,}", fmt_count(t.macs), fmt_count(t.bytes), f"{t.macs / t.bytes:.1f}" if t.bytes else "0"]
    return cells + ([fmt_seconds(time)] if hw is not None else [])


def layer_table(rep: Report, hardware: str | None = None) -> str:
    """Every layer, each block call as a subtotal row above its layers (indented)."""
    hw = pick_hardware(rep, hardware)
    head = ["layer", "kind", "output", "params", "MACs", "bytes", "MACs/B"] + ([f"{hw.name}"] if hw else [])
    rows = [head]
    for depth, name, item, block in rep.costed.walk():
        pad = "  " * depth
        if isinstance(item, Part):
            rows.append([f"{pad}{name}", f"[{block}]", ""] + _cost_cells(item.total, hw, hw and item.time(hw)))
        else:
            rows.append([f"{pad}{name}", item.kind, ir.fmt_shape(item.out_shape)]
                        + _cost_cells(item, hw, hw and item.time(hw)))
    rows.append(["total", "", ""] + _cost_cells(rep.total, hw, hw and rep.roofline(hw)))
    return align(rows, left=3)


def top_layers(rep: Report, k: int, by: str = "macs", hardware: str | None = None) -> str:
    """The `k` heaviest layers by MACs, bytes moved or roofline time, with their share of the total."""
    if by not in RANKINGS:
        raise ConfigError(f"cannot rank layers by '{by}'", hint=f"by: {', '.join(RANKINGS)}")
    hw = pick_hardware(rep, hardware)
    if by == "time" and hw is None:
        raise ConfigError("ranking by time needs a hardware preset; the config has none")
    weight = {"macs": lambda l: l.macs, "bytes": lambda l: l.bytes, "time": lambda l: l.time(hw)}[by]
    total = {"macs": rep.total.macs, "bytes": rep.total.bytes, "time": hw and rep.roofline(hw)}[by] or 1
    ranked = sorted(rep.layers, key=weight, reverse=True)[:k]
    head = ["#", "layer", "kind", "output", "params", "MACs", "bytes", "MACs/B"] + ([hw.name] if hw else [])
    rows = [head + ["share"]] + [[str(i + 1), l.name, l.kind, ir.fmt_shape(l.out_shape)]
                                 + _cost_cells(l, hw, hw and l.time(hw)) + [f"{100 * weight(l) / total:.1f}%"]
                                 for i, l in enumerate(ranked)]
    share = sum(weight(l) for l in ranked) / total
    unit = {"macs": "MACs", "bytes": "bytes moved", "time": f"roofline time on {hw.name if hw else ''}"}[by]
    return (f"{rep.name}: the {len(ranked)} heaviest of {len(rep.layers)} layers by {unit} "
            f"({100 * share:.1f}% of the total)\n" + align(rows, left=4))


def by_block_kind(rep: Report) -> dict[str, tuple[int, Totals]]:
    """Calls and summed cost per block (by the name it is defined under), over the
    network's outermost block calls; layers outside any block under OUTSIDE_BLOCKS."""
    out: dict[str, tuple[int, Totals]] = {}
    for _, it, block in rep.costed.entries():
        call = type(it) is Part
        kind, cost = (block or "?", it.total) if call else (OUTSIDE_BLOCKS, Layer(*it))
        n, t = out.get(kind, (0, Totals()))
        t.add(cost)
        out[kind] = (n + call, t)
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}x" if a else ("=" if not b else "new")


def diff(a: Report, b: Report, config_a: dict, config_b: dict, labels: tuple[str, str]) -> str:
    """Two reports side by side: totals, per section, per block kind, and the config keys that differ."""
    la, lb = labels
    ta, tb = a.total, b.total
    rows = [["", la, lb, "B/A"]]
    for what, x, y, fmt in [("params", ta.params, tb.params, lambda v: f"{v / 1e6:.3f} M"),
                            ("MACs", ta.macs, tb.macs, lambda v: f"{v / 1e9:.3f} G"),
                            ("MACs, fvcore's count", ta.fvcore_macs, tb.fvcore_macs, lambda v: f"{v / 1e9:.3f} G"),
                            ("activations", ta.activations, tb.activations, lambda v: f"{v / 1e6:.2f} M"),
                            (f"bytes moved ({a.dtype}/{b.dtype})", ta.bytes, tb.bytes, lambda v: f"{v / 1e6:.1f} MB"),
                            ("MACs/byte", ta.intensity, tb.intensity, lambda v: f"{v:.1f}")]:
        rows.append([what, fmt(x), fmt(y), _ratio(x, y)])
    times_b = b.rooflines()
    for hw, s in a.rooflines().items():
        if hw in times_b:
            rows.append([f"time on {hw}", fmt_seconds(s), fmt_seconds(times_b[hw]), _ratio(s, times_b[hw])])
    parts = [f"A: {la}   B: {lb}", "", align(rows)]

    def side_by_side(title: str, ta: dict, tb: dict, counts: bool = False) -> str:
        head = [title] + (["calls A", "calls B"] if counts else []) + ["params A", "params B", "MACs A", "MACs B",
                                                                       "MACs B/A"]
        rows = [head]
        for k in list(ta) + [k for k in tb if k not in ta]:
            (na, xa), (nb, xb) = (ta.get(k, (0, Totals())), tb.get(k, (0, Totals())))
            rows.append([k] + ([str(na), str(nb)] if counts and k != OUTSIDE_BLOCKS else ["-", "-"] if counts else [])
                        + [fmt_count(xa.params), fmt_count(xb.params), fmt_count(xa.macs), fmt_count(xb.macs),
                           _ratio(xa.macs, xb.macs)])
        return align(rows)

    sec_a = {k: (0, t) for k, t in a.by_section().items()}
    sec_b = {k: (0, t) for k, t in b.by_section().items()}
    parts += ["", side_by_side("section", sec_a, sec_b), "",
              side_by_side("block", by_block_kind(a), by_block_kind(b), counts=True)]
    fa, fb = _flat(config_a), _flat(config_b)
    changed = [k for k in list(fa) + [k for k in fb if k not in fa] if fa.get(k, "-") != fb.get(k, "-")]
    if changed:
        rows = [["config key that differs", la, lb]]
        rows += [[k, str(fa.get(k, "(not set)")), str(fb.get(k, "(not set)"))] for k in changed]
        parts += ["", align(rows, left=3)]
    else:
        parts += ["", "the configs are the same"]
    return "\n".join(parts)
