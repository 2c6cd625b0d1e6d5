"""ShuffleNet V2's four guidelines for efficient networks (Ma et al., ECCV
2018), read per section (stem, each stage, head) from the cost report:

- G1, equal channel width minimizes memory access cost: for the 1x1 convs,
  their memory access cost hw(c1 + c2) + c1·c2 over its lower bound at the
  same FLOPs B = hw·c1·c2, 2·sqrt(hw·B) + B / hw (reached when c1 = c2); 1 is
  balanced.
- G2, excessive group convolution increases memory access cost: for the
  grouped and depthwise convs, bytes moved per MAC, and their share of the
  section's bytes.
- G3, network fragmentation reduces parallelism: layers that run a kernel
  per block, and the most parallel branches in one block.
- G4, element-wise operations are non-negligible: the share of the
  section's bytes, and of its roofline time at the chosen hardware, in
  element-wise layers (activations, norms, adds, scales, multiplies).

The section that breaks each guideline most is named under the table.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from archdsl.backends.cost import Hardware, Report, plain_class
from archdsl.compiler import ir


@dataclass
class Section:
    name: str
    mac_1x1: float = 0.0  # G1: Σ memory access cost of the 1x1 convs
    bound_1x1: float = 0.0  # and Σ its lower bound
    grouped_bytes: int = 0  # G2
    grouped_macs: int = 0
    bytes: int = 0
    blocks: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # G3: kernels per block
    branches: int = 1
    elementwise_bytes: int = 0  # G4
    elementwise_time: float = 0.0
    time: float = 0.0

    @property
    def g1(self) -> float | None:
        return self.mac_1x1 / self.bound_1x1 if self.bound_1x1 else None

    @property
    def g2(self) -> float | None:
        return self.grouped_bytes / self.grouped_macs if self.grouped_macs else None

    @property
    def g3(self) -> float | None:
        return sum(self.blocks.values()) / len(self.blocks) if self.blocks else None

    @property
    def g4(self) -> float | None:
        return self.elementwise_time / self.time if self.time else None


# G4's element-wise operations: the op classes of activations, adds, scales and norms
_ELEMENTWISE = ("elementwise", "smooth_act", "norm")
_BLOCK = re.compile(r"^(stages\.\d+\.blocks\.\d+)")
_BRANCH = re.compile(r"branches\.(\d+)")


def sections(rep: Report, hw: Hardware) -> list[Section]:
    out: dict[str, Section] = {}
    for l in rep.layers:
        key = ir.section_of(l.name)
        s = out.setdefault(key, Section(key))
        t = l.time(hw)
        s.bytes += l.bytes
        s.time += t
        cls = plain_class(l.op_class)  # a 1x1 conv is one whichever memory format it runs in
        if cls == "conv1x1":
            c1, c2 = ir.shapes(l.in_shape)[0][0], l.out_shape[0]
            hw_ = l.out_shape[1] * l.out_shape[2]
            b = hw_ * c1 * c2
            s.mac_1x1 += hw_ * (c1 + c2) + c1 * c2
            s.bound_1x1 += 2 * math.sqrt(hw_ * b) + b / hw_
        elif cls in ("grouped", "depthwise"):
            s.grouped_bytes += l.bytes
            s.grouped_macs += l.macs
        elif cls in _ELEMENTWISE:
            s.elementwise_bytes += l.bytes
            s.elementwise_time += t
        m = _BLOCK.match(l.name)
        if m and (l.macs or l.bytes):
            s.blocks[m.group(1)] += 1
        for b in _BRANCH.findall(l.name):
            s.branches = max(s.branches, int(b) + 1)
    return list(out.values())


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown(rep: Report, hw: Hardware) -> str:
    secs = sections(rep, hw)
    lines = [f"## ShuffleNet V2 guidelines (time at {hw.name})", "",
             "| section | G1: 1x1 MAC / bound | G2: grouped bytes/MAC (share of bytes) | "
             "G3: kernels per block (max branches) | G4: element-wise share of bytes / time |",
             "|---|---:|---:|---:|---:|"]
    for s in secs:
        g2 = "–" if s.g2 is None else f"{s.g2:.3f} ({s.grouped_bytes / (s.bytes or 1):.0%})"
        g3 = "–" if s.g3 is None else f"{s.g3:.1f} ({s.branches})"
        lines.append(f"| {s.name} | {_fmt(s.g1, '.2f')} | {g2} | {g3} | "
                     f"{s.elementwise_bytes / (s.bytes or 1):.0%} / {_fmt(s.g4, '.0%')} |")
    lines.append("")
    for g, what in (("g1", "G1 (unequal 1x1 widths)"), ("g2", "G2 (costly group convs)"),
                    ("g3", "G3 (fragmentation)"), ("g4", "G4 (element-wise time)")):
        worst = max((s for s in secs if getattr(s, g) is not None), key=lambda s: getattr(s, g), default=None)
        lines.append(f"- {what} is broken most by **{worst.name}**" if worst else f"- {what}: no layer it applies to")
    lines += ["", __doc__.split("\n\n", 1)[1].strip(), ""]
    return "\n".join(lines)
