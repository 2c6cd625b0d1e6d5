"""Analytic cost report, read from the IR alone (no module is built).

Convention (also written into every report):
- params: learnable parameters (conv/linear weights and biases, norm affine);
  BN running statistics are buffers and are not counted.
- MACs: multiply-accumulates of conv and linear layers (and attention matmuls);
  equal to torch.utils.flop_counter.FlopCounterMode's total / 2.
- FLOPs = 2 × MACs.
- fvcore_macs: what fvcore's FlopCountAnalysis counts on the built module in
  eval mode, the figure timm's model cards publish as GMACs: the same MACs
  for conv, linear and explicit matmuls, plus 2 per element of each batch
  norm, 5 per element of each layer or group norm, 4-5 per weight of a
  weight-standardized conv, 1 per input element of global average pooling,
  1 (nearest) or 4 (bilinear) per output element of upsampling; fused
  attention (scaled_dot_product_attention), activations, elementwise ops and
  other pooling count 0. timm's squeeze-excite pools with a mean, which
  fvcore does not count, so its card can read a little less than this.
- activations: elements of the output tensors of conv and linear layers
  (the RegNet paper's definition), per image, including the convs inside an
  op (mqa's projections).
- bytes of a layer: its weights + its input activations + its output
  activations at the chosen dtype; joins (add, multiply, concat) read their
  inputs and write their output.
- roofline time of a layer: max(MACs / PeakMACs, bytes / PeakMemBW), summed
  over layers (MobileNetV4's model).
- a deployed report ("deployed": true; deploy=true) counts the folded graph
  that archdsl.deploy builds: BatchNorms folded into the convolutions before
  them (which gain a bias), sums of linear branches fused into one convolution.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import ClassVar, Iterator

from archdsl.backends import latency
from archdsl.backends.units import fmt_seconds
from archdsl.compiler import ir
from archdsl.ops import REGISTRY

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
CONVENTION = __doc__.split("Convention (also written into every report):\n", 1)[1].strip()
_COUNTS_ACTIVATIONS = {"conv", "ws_conv", "linear"}
_MOVES_NOTHING = {"identity", "dropout"}
RIDGE_POINTS = [0, 1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 400, 500]


@dataclass
class Hardware:
    name: str
    peak_macs: float  # MAC/s
    mem_bw: float  # bytes/s
    note: str = ""
    # A calibrated machine (`archc calibrate`; archdsl.backends.latency): per
    # op class (OP_CLASSES), the share of peak_macs its kernels reach (1 when
    # absent), of the bandwidth (its efficiency when absent), the output pixels
    # at which they compute at half speed (0 when absent), and the seconds a layer
    # costs whatever its size (module call, dispatch, launch): one figure,
    # or one per op class (0 when absent).
    efficiency: dict[str, float] = field(default_factory=dict)
    overhead: float | dict[str, float] = 0.0
    mem_efficiency: dict[str, float] = field(default_factory=dict)
    half_pixels: dict[str, float] = field(default_factory=dict)
    bw_curve: dict[int, float] = field(default_factory=dict)  # bytes moved -> bytes/s (caches), measured
    weight_bw: dict[str, float] = field(default_factory=dict)  # per op class: bytes/s preparing weights per call
    # Per op class, the channel multiple its kernels need to run their fast
    # path (a vector width), and how many times longer they run when a layer's
    # vector_channels are not a multiple of it (absent: no such effect).
    channel_align: dict[str, int] = field(default_factory=dict)
    misaligned: dict[str, float] = field(default_factory=dict)

    @property
    def ridge_point(self) -> float:
        return self.peak_macs / self.mem_bw

    @property
    def calibrated(self) -> bool:
        return bool(self.efficiency or self.overhead)

    def overhead_of(self, op_class: str) -> float:
        return self.overhead.get(op_class, 0.0) if isinstance(self.overhead, dict) else self.overhead

    @property
    def machine(self) -> tuple:
        """What Part.times takes: (peak, bw), or when calibrated (peak, bw), per
        class efficiencies, overheads, memory efficiencies, half-speed pixels,
        the bandwidth curve, weight bandwidths, the channel alignment and the
        misaligned slowdowns."""
        if not self.calibrated:
            return (self.peak_macs, self.mem_bw)
        return (self.peak_macs, self.mem_bw, tuple(sorted(self.efficiency.items())),
                tuple((c, self.overhead_of(c)) for c in OP_CLASSES), tuple(sorted(self.mem_efficiency.items())),
                tuple(sorted(self.half_pixels.items())), tuple(sorted(self.bw_curve.items())),
                tuple(sorted(self.weight_bw.items())), tuple(sorted(self.channel_align.items())),
                tuple(sorted(self.misaligned.items())))

    @cached_property
    def calibrated_machine(self) -> tuple:
        """latency.seconds's figures of this machine."""
        return latency.machine(self.peak_macs, self.mem_bw, self.efficiency, self.mem_efficiency,
                               {c: self.overhead_of(c) for c in OP_CLASSES}, self.half_pixels, self.bw_curve.items(),
                               self.weight_bw, self.channel_align, self.misaligned)


# Op classes of the calibrated roofline: kernels of one class reach a similar
# share of the machine's peak (archc calibrate measures typical layers of each).
OP_CLASSES = ("conv", "conv1x1", "depthwise", "grouped", "ws_conv", "gemm", "elementwise", "smooth_act", "norm",
              "pool", "window_pool", "data", "conv1x1_cl", "depthwise_cl", "norm_cl", "smooth_act_cl",
              "spatial_norm_cl")
# Channels-last variants of the classes (latency.CHANNELS_LAST_CLASSES and, for the norms, by kind).
CHANNELS_LAST_CLASSES = latency.CHANNELS_LAST_CLASSES
_CHANNELS_LAST_KINDS = latency.CHANNELS_LAST_KINDS
_PLAIN = latency.PLAIN_OF


def plain_class(op_class: str) -> str:
    """The class a channels-last class is a variant of (any other: itself)."""
    return _PLAIN.get(op_class, op_class)


def channels_last_class(op_class: str, kind: str) -> str:
    """The class of a layer whose kernel runs on channels-last tensors."""
    kinds = _CHANNELS_LAST_KINDS.get(op_class)
    return CHANNELS_LAST_CLASSES.get(op_class, op_class) if kinds is None else kinds.get(kind, op_class)


_GEMM = {"linear", "matmul", "mhsa", "mqa"}
_POOL = {"global_pool", "mean_tokens"}
# activations computed with exp, erf or tanh: several times the work per element of relu's
_SMOOTH = {"gelu", "gelu_tanh", "silu", "swish", "mish", "sigmoid", "tanh", "softplus", "elu", "celu", "selu"}
_NORM = {"layer_norm", "group_norm", "grn", "softmax"}  # statistics over a dimension, then a second pass
_DATA = {"cat", "concat", "chunk", "channel_shuffle", "pad", "shift", "reshape", "transpose", "tokens",
         "unflatten", "class_token", "take_token", "slice_channels", "upsample"}


def op_class(kind: str, attrs=None, in_shape=None) -> str:
    """The calibrated roofline's class of a layer (see OP_CLASSES)."""
    if kind == "ws_conv":  # standardizes its weights at every call: a kernel of its own
        return "ws_conv"
    if kind == "conv":
        k = attrs.k if isinstance(attrs.k, tuple) else (attrs.k, attrs.k)
        if attrs.groups == 1:
            return "conv1x1" if k == (1, 1) else "conv"
        return "depthwise" if attrs.groups == in_shape[0] else "grouped"
    if kind in _GEMM:
        return "gemm"
    if kind in ("max_pool", "avg_pool"):  # windows: kernels of their own, far from the roofline on CPUs
        return "window_pool"
    if kind in _POOL:
        return "pool"
    if kind in _DATA:
        return "data"
    if kind in _NORM:
        return "norm"
    if kind in _SMOOTH or (kind == "act" and attrs.fn in _SMOOTH):
        return "smooth_act"
    return "elementwise"


def vector_channels(kind: str, attrs=None, in_shape=None) -> int:
    """The channels a conv kernel's vector instructions run along: all of a
    depthwise conv's (one filter per channel, side by side), the input
    channels of one group of any other; 0 for other layers. Kernels run their
    fast path only when this is a multiple of their vector width
    (Hardware.channel_align)."""
    if kind not in ("conv", "ws_conv"):
        return 0
    c = in_shape[0]
    return c if attrs.groups == c else c // attrs.groups


@dataclass
class Layer:
    name: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    params: int
    macs: int
    activations: int
    weight_bytes: int
    act_bytes: int
    fvcore_macs: int = 0
    op_class: str = "elementwise"  # see OP_CLASSES
    vector_channels: int = 0  # see vector_channels()
    channels_last: bool = False  # its kernel runs on channels-last tensors (see Report.channels_last)

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_bytes

    def time(self, hw: Hardware, batch: int = 1) -> float:
        """Roofline seconds; at `batch`, weights are read once and activations per image."""
        macs, moved = self.macs * batch, self.weight_bytes + self.act_bytes * batch
        if not hw.calibrated:
            return max(macs / hw.peak_macs, moved / hw.mem_bw)
        return latency.seconds(macs, moved, self.op_class, self.out_shape, hw.calibrated_machine, self.weight_bytes,
                               self.vector_channels)


@dataclass
class Totals:
    params: int = 0
    macs: int = 0
    activations: int = 0
    weight_bytes: int = 0
    act_bytes: int = 0
    fvcore_macs: int = 0  # fvcore's count (see the convention)

    def add(self, layer: "Layer | Totals") -> None:
        self.params += layer.params
        self.macs += layer.macs
        self.activations += layer.activations
        self.weight_bytes += layer.weight_bytes
        self.act_bytes += layer.act_bytes
        self.fvcore_macs += layer.fvcore_macs

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.act_bytes

    @property
    def intensity(self) -> float:
        return self.macs / self.bytes if self.bytes else 0.0

    def as_dict(self) -> dict:
        return dict(asdict(self), flops=self.flops, bytes=self.bytes,
                    intensity=round(self.intensity, 4))


_ZEROS = (0, 0, 0, 0, 0, 0)  # Totals' fields, none


class Part:
    """The cost of one subtree: its layers, named relative to it, and one
    nested Part per block call and per section (stem, stage, head) in it.
    Equal block calls share their IR body (see ir.Seq.is_block), as a search's
    networks share equal sections (the elaborator's memo), so each is costed
    once, and a report's sums need no walk over every layer."""

    def __init__(self, items: list, blocks: dict[str, str] | None = None, out_layout=False):
        # Layer rows as plain tuples, in Layer's field order (a Layer is made
        # only when someone reads the layers: a sweep needs the sums), and
        # (prefix, Part) for each block call; `blocks`: prefix -> the block's
        # name; `out_layout`: its output's memory format (_Walk).
        self.items = items
        self.blocks = blocks or {}
        self.out_layout = out_layout
        # Its sums as one tuple in Totals' field order (a parent adds it as it
        # adds a row's), column by column in C.
        self.sums = tuple(map(sum, zip(*[it[1].sums if len(it) == 2 else it[4:10] for it in items]))) or _ZEROS
        self._times: dict[tuple, list[float]] = {}
        self._last: tuple = ((), [])  # the machines asked last and their times: a sweep asks the same
        self._ridge: dict[tuple, list[int]] | None = None  # (few ask: made when one does)
        self._source: tuple | None = None  # what a block body's Part names its layers from (named())
        self.section = False  # a section's: its layers are listed in place, under its name (entries())

    @property
    def total(self) -> Totals:
        return Totals(*self.sums)  # a copy: sums are shared

    def named(self) -> "Part":
        """This Part, its layers named. A block body's Part is made without
        names (sums need none: a sweep's bodies are never read by name); the
        names are given the first time someone reads them."""
        source = self._source
        if source is not None:
            children, wiring, nbytes, dtype, layout, weights_cl, stage = source
            walk = _Walk(nbytes, dtype, weights_cl, True)
            walk.seq(None, "", layout, children, wiring, stage)
            self.items, self.blocks, self._source = walk.items, walk.blocks, None  # the same rows, named
        return self

    def time(self, hw: Hardware) -> float:
        return self.times((hw.machine,))[0]

    def times(self, machines: tuple[tuple[float, float], ...]) -> list[float]:
        """Roofline seconds on each (peak MACs/s, bytes/s) — or Hardware.machine's
        calibrated form — in one walk."""
        last = self._last
        if machines == last[0]:  # equal tuples of the same figures compare by identity, in C
            return last[1]
        t = self._times.get(machines)
        if t is None:  # Layer.time, inlined: this is a sweep's inner loop
            if not all(map((2).__eq__, map(len, machines))):  # calibrated machines
                t = self._calibrated_times(machines)
            else:
                rows, parts = [], []
                for it in self.items:
                    if len(it) != 2:
                        rows.append((it[5], it[7] + it[8]))  # MACs, bytes moved
                    else:
                        parts.append(it[1].times(machines))
                t = []
                for peak, bw in machines:  # machine by machine, the rows in order (as Layer.time sums them)
                    s = 0.0
                    for macs, moved in rows:
                        compute, move = macs / peak, moved / bw
                        s += compute if compute > move else move
                    t.append(s)
                if parts:  # the rows' sums, then each block's, machine by machine in C
                    t = list(map(sum, zip(t, *parts)))
                self._times[machines] = t
        self._last = (machines, t)
        return t

    def _calibrated_times(self, machines: tuple) -> list[float]:
        """Part.times with calibrated machines: latency.seconds per layer."""
        t = [0.0] * len(machines)
        full = [latency.machine(m[0], m[1], dict(m[2]), dict(m[4]), dict(m[3]), dict(m[5]), m[6], dict(m[7]),
                                dict(m[8]), dict(m[9]))
                if len(m) > 2
                else latency.machine(m[0], m[1], {}, {}, {}, {}) for m in machines]
        for it in self.items:
            if len(it) == 2:
                for i, s in enumerate(it[1].times(machines)):
                    t[i] += s
                continue
            for i, m in enumerate(full):
                t[i] += latency.seconds(it[5], it[7] + it[8], it[10], it[3], m, it[7], it[11])
        self._times[machines] = t
        return t

    def ridge(self, points: tuple) -> list[int]:
        """MAC-equivalents at each ridge point (see Report.ridge_sweep)."""
        if self._ridge is None:
            self._ridge = {}
        r = self._ridge.get(points)
        if r is None:
            r = [0] * len(points)
            for it in self.items:
                sub = it[1].ridge(points) if len(it) == 2 else [max(it[5], (it[7] + it[8]) * rp) for rp in points]
                r = [a + b for a, b in zip(r, sub)]
            self._ridge[points] = r
        return r

    def entries(self, prefix: str = "") -> Iterator[tuple[str, "tuple | Part", str | None]]:
        """(name, layer row or block Part, block name) of its items in order,
        each section's own listed in its place (sections are no level of the
        module tree a reader sees: stages.1.blocks.0 is a block of the network)."""
        for it in self.named().items:
            if len(it) == 2:
                part = it[1]
                if part.section:
                    yield from part.entries(prefix + it[0] + ".")
                else:
                    yield prefix + it[0], part, self.blocks.get(it[0])
            else:
                yield prefix + it[0], it, None

    def walk(self, prefix: str = "", depth: int = 0) -> Iterator[tuple[int, str, "Layer | Part", str | None]]:
        """(depth, name, layer or block Part, block name) in order, each block before its layers."""
        for name, it, block in self.entries(prefix):
            if type(it) is Part:
                yield depth, name, it, block
                yield from it.walk(name + ".", depth + 1)
            else:
                yield depth, name, Layer(name, *it[1:]), None

    def layers(self, prefix: str = "") -> Iterator[Layer]:
        for name, it, _ in self.entries(prefix):
            if type(it) is Part:
                yield from it.layers(name + ".")
            else:
                yield Layer(name, *it[1:])


@dataclass
class Report:
    name: str
    input_shape: tuple
    dtype: str
    spec: ir.Node = field(repr=False)  # what it reports on; layers are named only when read
    hardware: list[Hardware] = field(default_factory=list)
    deployed: bool = False
    # A channels-last build (its input and conv weights): each layer's kernel
    # runs in the memory format its input has in the built module.
    channels_last: bool = False
    convention: ClassVar[str] = CONVENTION

    @cached_property
    def costed(self) -> Part:
        """The cost layer by layer, each named as the built module names it."""
        return costed(self.spec, self.dtype, self.channels_last)

    @cached_property
    def _sums(self) -> Part:
        # Totals and times need no names: a sweep's or a search's report
        # reads only these, and naming the layers was a fifth of its cost.
        named = self.__dict__.get("costed")
        return named if named is not None else unnamed(self.spec, self.dtype, self.channels_last)

    @cached_property
    def layers(self) -> list[Layer]:
        return list(self.costed.layers())

    @property
    def total(self) -> Totals:
        return self._sums.total

    def by_section(self) -> dict[str, Totals]:
        out: dict[str, Totals] = {}
        for it in self.costed.items:  # a nested part lies inside one section
            cost = it[1].total if len(it) == 2 else Layer(*it)
            out.setdefault(ir.section_of(it[0]), Totals()).add(cost)
        return out

    def roofline(self, hw: Hardware) -> float:
        return self._sums.time(hw)

    def rooflines(self) -> dict[str, float]:
        """Roofline seconds on each of the report's hardware presets (one walk for all)."""
        hws = self.hardware
        return dict(zip([h.name for h in hws], self._sums.times(tuple(h.machine for h in hws))))

    def ridge_sweep(self, points=RIDGE_POINTS) -> list[dict]:
        """Roofline time in units of 1/PeakMACs (i.e. 'MAC-equivalents') per ridge point."""
        return [{"ridge_point": rp, "mac_equivalents": m}
                for rp, m in zip(points, self._sums.ridge(tuple(points)))]

    # -------------------------------------------------------- renderings
    def to_dict(self, layers: bool = True) -> dict:
        d = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "deployed": self.deployed,
            "convention": CONVENTION,
            "total": self.total.as_dict(),
            "sections": {k: v.as_dict() for k, v in self.by_section().items()},
            "roofline": [{"hardware": hw.name, "peak_macs": hw.peak_macs, "mem_bw": hw.mem_bw,
                          "ridge_point": round(hw.ridge_point, 3), "seconds": self.roofline(hw)}
                         for hw in self.hardware],
            "ridge_sweep": self.ridge_sweep(),
        }
        if layers:
            d["layers"] = [dict(asdict(l), bytes=l.bytes) for l in self.layers]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        hws = self.hardware
        w.writerow(["name", "kind", "in_shape", "out_shape", "params", "macs", "fvcore_macs", "activations",
                    "weight_bytes", "act_bytes", "bytes", "intensity"] + [f"time_{h.name}_s" for h in hws])
        for l in self.layers:
            w.writerow([l.name, l.kind, ir.fmt_shape(l.in_shape), ir.fmt_shape(l.out_shape),
                        l.params, l.macs, l.fvcore_macs, l.activations, l.weight_bytes, l.act_bytes, l.bytes,
                        round(l.macs / l.bytes, 4) if l.bytes else 0] + [f"{l.time(h):.3e}" for h in hws])
        return buf.getvalue()

    def table(self) -> str:
        """Per-section table for people (markdown, readable in a terminal)."""
        rows = [("section", "params", "MMACs", "acts (M)", "MB", "MACs/B")]
        for k, t in list(self.by_section().items()) + [("total", self.total)]:
            rows.append((k, f"{t.params:,}", f"{t.macs / 1e6:,.1f}", f"{t.activations / 1e6:.2f}",
                         f"{t.bytes / 1e6:.1f}", f"{t.intensity:.1f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for j, r in enumerate(rows):
            lines.append("| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                           for i, c in enumerate(r)) + " |")
            if j == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    def roofline_table(self) -> str:
        lines = ["| hardware | PeakMACs (T/s) | BW (GB/s) | ridge (MACs/B) | time |",
                 "|---|---:|---:|---:|---:|"]
        for hw in self.hardware:
            lines.append(f"| {hw.name} | {hw.peak_macs / 1e12:.3g} | {hw.mem_bw / 1e9:.3g} | "
                         f"{hw.ridge_point:.1f} | {fmt_seconds(self.roofline(hw))} |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        t = self.total
        parts = [f"# {self.name}" + (" (deployed graph)" if self.deployed else ""), "",
                 f"input {'x'.join(map(str, self.input_shape))}, dtype {self.dtype}: "
                 f"{t.params:,} params, {t.macs / 1e9:.3f} GMACs, {t.activations / 1e6:.2f} M activations, "
                 f"{t.bytes / 1e6:.1f} MB moved, {t.intensity:.1f} MACs/byte", "",
                 f"fvcore, whose count timm's model cards quote, counts {t.fvcore_macs / 1e9:.3f} GMACs: "
                 "norms and average pooling too, fused attention not (see the counting convention).", "",
                 "## Per section", "", self.table(), ""]
        if self.hardware:
            parts += ["## Roofline", "", self.roofline_table(), ""]
        parts += ["## Counting convention", "", CONVENTION, ""]
        return "\n".join(parts)

    def _repr_markdown_(self) -> str:  # notebooks
        return self.to_markdown()

    def _repr_html_(self) -> str:  # notebooks that render HTML
        from archdsl.backends.html import STYLE, body
        return STYLE + body(self)

    def summary(self) -> str:
        t = self.total
        name = self.name + (" (deployed)" if self.deployed else "")
        s = (f"{name}: {t.params / 1e6:.3f} M params, {t.macs / 1e9:.3f} GMACs, "
             f"{t.activations / 1e6:.2f} M activations, {t.bytes / 1e6:.1f} MB ({self.dtype})")
        if self.hardware:
            s += "\n  roofline: " + ", ".join(f"{hw.name} {fmt_seconds(self.roofline(hw))}" for hw in self.hardware)
        return s


def _join_layer(name: str, kind: str, inputs: list[tuple], out: tuple, nbytes: int, params: int = 0,
                channels_last: bool = False) -> tuple:
    moved = (sum(ir.numel(s) for s in inputs) + ir.numel(out)) * nbytes
    return (name, kind, inputs[0], out, params, 0, 0, params * nbytes, moved, 0,
            "data" if kind == "concat" else "elementwise", 0, channels_last)


def _op_row(node: ir.Op, nbytes: int, channels_last: bool = False) -> tuple:
    """An op's cost row less its name, its kernel on channels-last tensors or
    not; kept on the node (equal ops on equal inputs are one node)."""
    # kept: [bytes per element, attrs, input shape (checked: copies keep it), row, channels-last row, does
    # it make a contiguous input channels-last]
    kept = node.costed
    if kept is None or kept[0] != nbytes or kept[1] is not node.attrs or kept[2] is not node.in_shape:
        opdef = REGISTRY[node.kind]
        kind = opdef.canonical or node.kind
        kept = node.costed = [nbytes, node.attrs, node.in_shape, (
            node.kind, node.in_shape, node.out_shape) + _op_cost(node, nbytes) + (
            op_class(kind, node.attrs, node.in_shape), vector_channels(kind, node.attrs, node.in_shape), False), None,
            opdef.layout == "channels_last"]
    if not channels_last:
        return kept[3]
    if kept[4] is None:
        row = kept[3]
        kept[4] = row[:9] + (channels_last_class(row[9], REGISTRY[node.kind].canonical or node.kind), row[10], True)
    return kept[4]


def _layer(name: str, node: ir.Op, nbytes: int) -> tuple:
    """The cost row of one op (Layer's fields, as a tuple), its kernel on contiguous tensors."""
    return (name,) + _op_row(node, nbytes)


def _op_cost(node: ir.Op, nbytes: int) -> tuple:
    """(params, macs, activations, weight bytes, moved bytes, fvcore's count) of an op."""
    c = REGISTRY[node.kind].cost(node.attrs, node.in_shape, node.out_shape)
    x, y = node.in_shape, node.out_shape
    out = y[0] * y[1] * y[2] if type(y[0]) is int else ir.numel(y)  # numel, inlined: one op per layer
    acts = c.activations if c.activations is not None else (out if node.kind in _COUNTS_ACTIVATIONS else 0)
    io_bytes = 0 if node.kind in _MOVES_NOTHING else (
        (x[0] * x[1] * x[2] if type(x[0]) is int else ir.numel(x)) + out) * nbytes
    return c.params, c.macs, acts, c.params * nbytes, io_bytes, c.macs if c.fvcore is None else c.fvcore


# ------------------------------------------------------------ memory formats
# A value's memory format: True when channels-last, False when contiguous; a
# tuple of them for several tensors. The torch backend's modules decide it
# (ops.registry.LAYOUTS); the network starts channels-last in a channels-last
# build, whose convolutions' weights are channels-last too.

def _first(layout) -> bool:
    return layout[0] if type(layout) is tuple else layout


def _op_layouts(node: ir.Op, layout, weights_cl: bool) -> tuple[bool, object]:
    """(does its kernel run channels-last, its output's format)."""
    rule = REGISTRY[node.kind].layout
    first = _first(layout)
    if rule == "keep":
        kernel = out = first
    elif rule == "weights":
        kernel = out = first or weights_cl
    elif rule == "all_inputs":
        kernel = out = all(layout) if type(layout) is tuple else layout
    else:
        kernel, out = first, rule == "channels_last"
    k = len(node.out_shape) if type(node.out_shape[0]) is tuple else 1
    return kernel, (out if k == 1 else (out,) * k)


class _Walk:
    """Cost rows of an IR subtree, in the order and under the names the torch
    backend gives its modules (ir.named's), each op's kernel in the memory
    format it meets there; block bodies are costed once per dtype and format
    (_body_part), as are sections. `named`: False leaves every name empty (sums need none)."""

    __slots__ = ("nbytes", "dtype", "weights_cl", "named", "items", "blocks")

    def __init__(self, nbytes: int, dtype: str, weights_cl: bool, named: bool):
        self.nbytes, self.dtype, self.weights_cl, self.named = nbytes, dtype, weights_cl, named
        self.items: list = []
        self.blocks: dict[str, str] = {}

    def node(self, node: ir.Node, name: str, layout):
        """Add `node`'s rows, its input in format `layout`; return its output's format."""
        t = type(node)
        if t is ir.Op:  # most rows
            if layout is False and not self.weights_cl:  # most of those: contiguous, as they were
                self.items.append(((name,) if self.named else _NO_NAME) + _op_row(node, self.nbytes))
                return node.costed[5]
            kernel, out = _op_layouts(node, layout, self.weights_cl)
            self.items.append(((name,) if self.named else _NO_NAME) + _op_row(node, self.nbytes, kernel))
            return out
        if t is ir.Seq:
            if node.name is not None and node.role in _BLOCK_ROLES:  # a block call (ir.Seq.is_block)
                children = node.children
                if not children:
                    return layout
                done = getattr(children, "costed", None)
                part = None if done is None else done.get(_part_key(self.dtype, layout, self.weights_cl))
                if part is None:
                    part = _body_part(node, self.nbytes, self.dtype, layout, self.weights_cl)
                self.items.append((name, part))
                if self.named:
                    self.blocks[name] = node.name
                return part.out_layout
            return self.seq(node, name, layout)
        items = self.items
        at = len(items)
        items.append(None)  # the join's row, listed before the branches' (as ir.named lists them)
        parts = ir.children_named(node, name) if self.named else [("", c) for _, c in ir.children_named(node)]
        if t is ir.Residual:
            outs = {seq is node.body: self.node(seq, label, layout) for label, seq in parts}
            body = outs[True]
            short = outs.get(False, layout)
            # the lowering adds the shortcut into a body output of its own in place (inference), else s + y
            out = body if node.gain is not None or ir.fresh(node.body) else short
            gains = 0 if node.gain is None else node.out_shape[0] if node.gain_per_channel else 1
            items[at] = self._join(name, "add", [node.out_shape, node.out_shape], node.out_shape, gains, out)
            return out
        if t is ir.Parallel or t is ir.Split:
            # a split's parts are slices of its input, strided as it is
            outs = [self.node(b, label, layout) for label, b in parts]
            kind = "add" if t is ir.Parallel and node.join == "sum" else "concat"
            out = _first(outs[0]) if kind == "add" else all(map(_first, outs))
            items[at] = self._join(name, kind, [b.out_shape for b in node.branches], node.out_shape, 0, out)
            return out
        if t is ir.Gate:
            self.node(node.body, parts[0][0], layout)
            items[at] = self._join(name, "mul", [node.in_shape, node.body.out_shape], node.out_shape, 0, layout)
            return layout
        raise TypeError(f"no cost rule for IR node {t.__name__}")

    def _join(self, name: str, kind: str, inputs: list, out: tuple, params: int, layout) -> tuple:
        return _join_layer(f"{name}.{kind}" if self.named else "", kind, inputs, out, self.nbytes, params,
                           _first(layout))

    def seq(self, node: ir.Seq | None, name: str, layout, children=None, wiring=None, stage: bool = False):
        """A sequence's children, in order (`node`'s, or `children` wired by
        `wiring`: a body's, those of a stage when `stage`); wired (a DAG), each
        from the values it takes."""
        if node is not None:
            children, wiring = node.children, node.wiring
            if type(children) is ir.Body:  # a section the elaborator may share: one Part, costed once
                part = _body_part(node, self.nbytes, self.dtype, layout, self.weights_cl)
                self.items.append((name, part))
                return part.out_layout
        if not self.named:
            if wiring is None:  # sums: the commonest walk
                visit = self.node
                for c in children:
                    layout = visit(c, "", layout)
                return layout
            labels = [""] * len(children)
        elif node is not None:
            labels = [label for label, _ in ir.children_named(node, name)]
        else:  # a body's children named from their index, as ir.children_named names them
            labels = [("blocks." if stage else "") + str(i) for i in range(len(children))]
        if wiring is None:
            for c, label in zip(children, labels):
                layout = self.node(c, label, layout)
            return layout
        formats = list(layout) if type(layout) is tuple else [layout] * wiring.n_inputs
        for c, ids, label in zip(children, wiring.inputs, labels):
            out = self.node(c, label, formats[ids[0]] if len(ids) == 1 else tuple(formats[j] for j in ids))
            k = len(c.out_shape) if type(c.out_shape[0]) is tuple else 1
            formats.extend(out if type(out) is tuple else (out,) * k)
        ids = wiring.outputs
        return formats[ids[0]] if len(ids) == 1 else tuple(formats[j] for j in ids)


_BLOCK_ROLES = ("block", None)
_NO_NAME = ("",)


def _part_key(dtype: str, layout, weights_cl: bool):
    """What a body's cost (a block call's, a section's) is kept under: its
    dtype, and its input's and weights' formats when any is channels-last."""
    return (dtype, layout, weights_cl) if layout is not False or weights_cl else dtype


def _body_part(node: ir.Seq, nbytes: int, dtype: str, layout=False, weights_cl: bool = False) -> Part:
    """The cost of a block call's body or of a section; kept on its children
    (an ir.Body, shared by equal calls and equal sections, as is their
    wiring) per dtype and memory format."""
    children = node.children
    key = _part_key(dtype, layout, weights_cl)
    done = getattr(children, "costed", None)
    if done is not None:
        part = done.get(key)
        if part is not None:
            return part
    stage = node.role == "stage"
    walk = _Walk(nbytes, dtype, weights_cl, False)
    out = walk.seq(None, "", layout, children, node.wiring, stage)
    part = Part(walk.items, None, out)
    part._source = (children, node.wiring, nbytes, dtype, layout, weights_cl, stage)
    part.section = not node.is_block
    if isinstance(children, ir.Body):
        if done is None:
            children.costed = done = {}
        done[key] = part
    return part


def costed(spec: ir.Node, dtype: str = "fp32", channels_last: bool = False) -> Part:
    """The cost of `spec`, layer by layer, with block bodies costed once each;
    `channels_last`: a channels-last build (its input and weights)."""
    return _costed(spec, dtype, channels_last, True, channels_last)


def unnamed(spec: ir.Node, dtype: str = "fp32", channels_last: bool = False, layout=None) -> Part:
    """`costed` without the layers' names: the same items in the same order
    (so equal totals and, summed in that order, equal times), block bodies
    costed once each, for callers that read only sums; `layout`: the format
    `spec`'s input arrives in, when not the build's (a section after others:
    the Part's out_layout of the one before)."""
    return _costed(spec, dtype, channels_last, False, channels_last if layout is None else layout)


def _costed(spec: ir.Node, dtype: str, channels_last: bool, named: bool, layout) -> Part:
    nbytes = DTYPE_BYTES[dtype]
    if type(spec) is ir.Seq and (spec.is_block or type(spec.children) is ir.Body):  # a block or a section alone
        part = _body_part(spec, nbytes, dtype, layout, channels_last)
        return part.named() if named else part
    walk = _Walk(nbytes, dtype, channels_last, named)
    out = walk.node(spec, "", layout) if type(spec) is not ir.Seq else walk.seq(spec, "", layout)
    return Part(walk.items, walk.blocks, out)


def report(spec: ir.Seq, name: str, dtype: str = "fp32", hardware: list[Hardware] | None = None,
           deployed: bool = False, channels_last: bool = False) -> Report:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}")
    return Report(name, spec.in_shape, dtype, spec, list(hardware or []), deployed, channels_last)
