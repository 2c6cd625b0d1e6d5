"""The four forms of MobileNetV4's universal inverted bottleneck, side by side.

Each form is one `uib` block (blocks/uib.arch) compiled as a one-block
network at a fixed shape; the figures are archc's own report (fp32): MACs,
bytes moved (weights + every layer's input and output + the residual add),
operational intensity (MACs per byte) and roofline time on the standard
hardware presets. Prints markdown tables (docs/uib.md quotes them).

    python bench/uib_forms.py [--shapes 80x28,256x7] [--expand 4]

A shape CxS is C -> C channels at SxS, stride 1 (an identity residual). The
defaults are MobileNetV4-Conv-M at 224: stage 1 (80 channels at 28x28) and
stage 3 (256 channels at 7x7).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import archdsl

# (form, start depthwise kernel, middle depthwise kernel; 0: none) — the
# kernels of MobileNetV4-Conv-M's most common rows (a3_k5, k5, a3_k0).
FORMS = [("ExtraDW", 3, 5), ("IB", 0, 5), ("ConvNeXt-like", 3, 0), ("FFN", 0, 0)]

SPEC = """use "blocks/uib"
# One UIB at a fixed shape: the cost of a block form by itself.
network uib_form(start_k, mid_k, c = 80, res = 28, expand = 4) {
  input(c, res, res)
  stage { uib(c, start_k: start_k, mid_k: mid_k, expand: expand) }
}
"""
CONFIG = "defaults: [base, _self_]\nrecipe: uib_form\nparams: {start_k: 0, mid_k: 0}\n"


def table(cfg: Path, c: int, res: int, expand: float) -> str:
    rows = []
    hw_names = None
    for form, a, k in FORMS:
        rep = archdsl.cost(cfg, [f"params.start_k={a}", f"params.mid_k={k}", f"params.c={c}",
                                 f"params.res={res}", f"params.expand={expand}"])
        t = rep.total
        hw_names = [h.name for h in rep.hardware]
        rows.append([form, str(a or "-"), str(k or "-"), f"{t.params:,}", f"{t.macs / 1e6:.2f}",
                     f"{t.bytes / 1e6:.2f}", f"{t.weight_bytes / 1e6:.2f}", f"{t.intensity:.1f}"]
                    + [f"{rep.roofline(h) * 1e6:.1f}" for h in rep.hardware])
    head = ["form", "dw start", "dw mid", "params", "MMACs", "MB moved", "of it weights", "MACs/B"] + \
           [f"{n} (µs)" for n in hw_names]
    lines = [f"{c} -> {c} channels at {res}x{res}, expansion {expand:g}, fp32:", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def ridge_line(cfg: Path) -> str:
    rep = archdsl.cost(cfg)
    return "ridge points (MACs/B): " + ", ".join(f"{h.name} {h.ridge_point:.1f}" for h in rep.hardware)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="80x28,256x7", help="CxS,... (C channels at SxS)")
    ap.add_argument("--expand", type=float, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "uib_form.arch").write_text(SPEC)
        cfg = Path(d) / "uib_form.yaml"
        cfg.write_text(CONFIG.replace("uib_form\n", str(Path(d) / "uib_form.arch") + "\n", 1))
        parts = [table(cfg, *map(int, s.split("x")), args.expand) for s in args.shapes.split(",")]
        print("\n\n".join(parts + [ridge_line(cfg)]))


if __name__ == "__main__":
    main()
