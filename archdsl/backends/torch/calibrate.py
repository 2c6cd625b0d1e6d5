"""`archc calibrate`: measure this machine with short micro-benchmarks and
write a hardware preset the cost model uses (cost.Hardware's calibrated form,
archdsl/backends/latency.py):

    time of a layer = max(MACs / (peak · e) · (1 + (p / pixels)²), (bytes - weights) / (bw(bytes) · m)) · a
                      + weights / w + overhead

peak: the best MAC/s of dense GEMMs and convs; bw(bytes): copy bandwidth
when that many bytes move (a measured curve: caches, then memory). Per op
class (cost.OP_CLASSES), e (the share of peak its kernels reach), m (the
share of bw), p (the output pixels per image at which they compute at half
speed), w (the bytes/s at which they read and prepare their weights on each
call, whatever the batch: oneDNN's reorder of a conv's weights, a weight-
standardized conv's standardization), a (how many times longer a kernel
runs when the layer's vector channels are not a multiple of the class's
channel alignment: 1 for those that are; the alignment is the multiple of 8,
16 or 32 that explains the class's kernels best, or none) and overhead
(seconds per layer whatever its size: module call, dispatch, kernel launch)
are fitted to the class's micro-benchmarks: typical layers from tiny to large (large weights
on small maps among them), each at batch 1 and 8, and a tiny layer, each
timed after other typical layers (CONTEXT), as in a network. The fit
minimizes the squared log error of the formula over them, so small layers,
which run far below peak, weigh as much as large ones. Every kernel is an IR
op lowered as archc lowers it and costed by the cost report's own rules, so
calibration and report agree on what a layer's MACs and bytes are. The heap
is kept steady (timing.steady_heap) and, with one CPU thread, kernels are
timed on the thread's CPU clock (timing.py says why). The channels-last
classes (latency.PLAIN_OF) time their kernels on channels-last
inputs and weights. A probe of a few typical kernels, timed between the
phases, scales each phase's times to the machine's median speed over the
calibration (PROBE says why). Takes under two minutes (81-98 s on one
thread of a 2-vCPU Xeon VM).
"""
from __future__ import annotations

import copy
import math
import platform
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from archdsl.backends import latency
from archdsl.backends.cost import DTYPE_BYTES, OP_CLASSES, Layer, _layer
from archdsl.backends.latency import pixels
from archdsl.backends.torch.timing import check_clock, heap_is_steady, measure, steady_heap
from archdsl.compiler import ir
from archdsl.ops import REGISTRY, LowerContext

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BATCHES = (1, 8)  # each kernel is timed at these batch sizes


def _convs(**kw) -> list:
    """(op, attrs, input shape) of convs: kw maps a name to (out, k, stride, groups or 'dw', (C, H, W))."""
    out = []
    for o, k, s, g, shape in kw.values():
        out.append(("conv", dict(out=o, k=k, stride=s, groups=shape[0] if g == "dw" else g), shape))
    return out


# Typical layers per op class, tiny to large: (op, attributes, input shape (C, H, W)).
KERNELS: dict[str, list[tuple[str, dict, tuple]]] = {
    "conv": _convs(stem=(32, 3, 2, 1, (3, 224, 224)), stem7=(64, 7, 2, 1, (3, 160, 160)),
                   a=(32, 3, 1, 1, (32, 112, 112)), b=(64, 3, 1, 1, (64, 56, 56)), c=(128, 3, 1, 1, (128, 28, 28)),
                   d=(256, 3, 2, 1, (128, 28, 28)), e=(256, 3, 1, 1, (256, 14, 14)), f=(512, 3, 1, 1, (512, 7, 7)),
                   g=(512, 3, 1, 1, (512, 2, 2)), h=(16, 3, 1, 1, (16, 16, 16)), i=(256, 3, 1, 1, (256, 6, 6)),
                   j=(512, 3, 1, 1, (512, 3, 3)), k=(40, 3, 1, 1, (40, 56, 56))),
    "conv1x1": _convs(a=(96, 1, 1, 1, (16, 112, 112)), b=(256, 1, 1, 1, (64, 56, 56)),
                      c=(64, 1, 1, 1, (256, 56, 56)), d=(128, 1, 1, 1, (512, 28, 28)),
                      e=(160, 1, 1, 1, (960, 7, 7)), f=(1280, 1, 1, 1, (320, 7, 7)),
                      g=(512, 1, 1, 1, (2048, 2, 2)), h=(16, 1, 1, 1, (32, 14, 14)), i=(384, 1, 1, 1, (1536, 37, 1)),
                      j=(40, 1, 1, 1, (24, 56, 56)),
                      se=(512, 1, 1, 1, (2048, 1, 1))),
    "depthwise": _convs(a=(32, 3, 1, "dw", (32, 112, 112)), b=(96, 3, 2, "dw", (96, 112, 112)),
                        c=(144, 3, 1, "dw", (144, 56, 56)), d=(240, 5, 1, "dw", (240, 28, 28)),
                        e=(480, 3, 1, "dw", (480, 14, 14)), f=(672, 5, 2, "dw", (672, 14, 14)),
                        g=(960, 3, 1, "dw", (960, 7, 7)), h=(768, 7, 1, "dw", (768, 3, 3)),
                        i=(16, 3, 1, "dw", (16, 16, 16)), j=(24, 3, 1, "dw", (24, 112, 112)),
                        k=(40, 5, 2, "dw", (40, 56, 56)), l=(12, 3, 1, "dw", (12, 56, 56)),
                        m=(56, 3, 1, "dw", (56, 28, 28)), n=(48, 3, 1, "dw", (48, 28, 28))),
    "grouped": _convs(a=(128, 3, 1, 32, (128, 56, 56)), b=(256, 3, 1, 32, (256, 28, 28)),
                      c=(512, 3, 1, 32, (512, 14, 14)), d=(1024, 3, 1, 32, (1024, 7, 7)),
                      e=(240, 1, 1, 3, (240, 28, 28)), f=(224, 3, 1, 14, (224, 28, 28)),
                      g=(1024, 3, 1, 64, (1024, 2, 2)), h=(48, 3, 2, 6, (48, 56, 56)),
                      i=(1024, 3, 1, 32, (1024, 3, 3)), j=(240, 3, 1, 20, (240, 28, 28)),
                      k=(320, 3, 1, 16, (320, 28, 28))),
    "gemm": [("linear", dict(out=1000), (1280, 1, 1)), ("linear", dict(out=1000), (2048, 1, 1)),
             ("linear", dict(out=1000), (320, 1, 1)), ("linear", dict(out=128), (512, 1, 1)),
             ("matmul", {}, ((6, 197, 64), (6, 64, 197))), ("matmul", {}, ((6, 197, 197), (6, 197, 64))),
             ("matmul", {}, ((4, 64, 32), (4, 32, 64))),
             ("mhsa", dict(heads=6), (384, 197, 1)), ("mhsa", dict(heads=6), (384, 37, 1))],
    "ws_conv": [(k, dict(a, **({"groups": a["groups"]} if "groups" in a else {})), sh) for k, a, sh in (
        ("ws_conv", dict(out=16, k=3, stride=2), (3, 192, 192)), ("ws_conv", dict(out=64, k=3), (32, 96, 96)),
        ("ws_conv", dict(out=256, k=1), (128, 24, 24)), ("ws_conv", dict(out=128, k=1), (256, 24, 24)),
        ("ws_conv", dict(out=256, k=3, groups=2), (256, 24, 24)), ("ws_conv", dict(out=1536, k=1), (768, 6, 6)),
        ("ws_conv", dict(out=768, k=3, groups=6), (768, 6, 6)), ("ws_conv", dict(out=3072, k=1), (1536, 2, 2)),
        ("ws_conv", dict(out=1536, k=3, groups=12), (1536, 3, 3)))],
    "elementwise": [("relu", {}, (64, 112, 112)), ("bn", {}, (64, 56, 56)), ("add", {}, ((256, 28, 28),) * 2),
                    ("hard_swish", {}, (96, 28, 28)), ("bn", {}, (960, 7, 7)), ("bn", {}, (96, 112, 112)),
                    ("mul", {}, ((240, 28, 28), (240, 1, 1))), ("relu", {}, (512, 2, 2)),
                    ("add", {}, ((2048, 2, 2),) * 2), ("relu6", {}, (144, 56, 56)), ("bn", {}, (24, 112, 112)),
                    ("relu", {}, (40, 56, 56)), ("bn", {}, (120, 28, 28))],
    "smooth_act": [("silu", {}, (96, 112, 112)), ("silu", {}, (240, 28, 28)), ("silu", {}, (1152, 7, 7)),
                   ("gelu", {}, (1536, 197, 1)), ("gelu", {}, (160, 56, 56)), ("sigmoid", {}, (480, 14, 14)),
                   ("sigmoid", {}, (480, 1, 1)), ("gelu", {}, (3072, 2, 2))],
    "norm": [("layer_norm", {}, (384, 197, 1)), ("layer_norm", {}, (40, 56, 56)), ("layer_norm", {}, (768, 4, 4)),
             ("grn", {}, (160, 56, 56)), ("grn", {}, (640, 14, 14)), ("softmax", {}, (6, 197, 197)),
             ("softmax", {}, (4, 64, 64)), ("group_norm", dict(groups=1), (64, 56, 56))],
    "pool": [("global_pool", {}, (1280, 7, 7)), ("global_pool", {}, (480, 14, 14)),
             ("global_pool", {}, (2048, 2, 2)), ("global_pool", {}, (64, 56, 56))],
    "window_pool": [("max_pool", dict(k=3, stride=2, padding=1), (64, 112, 112)),
                    ("max_pool", dict(k=2), (128, 28, 28)), ("max_pool", dict(k=3, stride=2, padding=1), (24, 56, 56)),
                    ("max_pool", dict(k=3, stride=1, padding=1), (256, 14, 14)),
                    ("avg_pool", dict(k=2), (256, 28, 28)),
                    ("avg_pool", dict(k=3, stride=1, padding=1), (128, 28, 28))],
    "data": [("cat", {}, ((64, 28, 28),) * 2), ("channel_shuffle", dict(groups=2), (116, 28, 28)),
             ("cat", {}, ((128, 14, 14),) * 4), ("cat", {}, ((32, 56, 56),) * 2),
             ("channel_shuffle", dict(groups=2), (464, 7, 7))],
    # on channels-last tensors (latency.PLAIN_OF): ConvNeXt's layers, and MobileNet's deployed
    "conv1x1_cl": _convs(b=(256, 1, 1, 1, (64, 56, 56)), e=(160, 1, 1, 1, (960, 7, 7)),
                         i=(3072, 1, 1, 1, (768, 2, 2)), j=(384, 1, 1, 1, (1536, 4, 4)),
                         h=(384, 1, 1, 1, (96, 14, 14))),
    "depthwise_cl": _convs(a=(32, 3, 1, "dw", (32, 112, 112)), c=(144, 3, 1, "dw", (144, 56, 56)),
                           k=(40, 5, 2, "dw", (40, 56, 56)), m=(96, 7, 1, "dw", (96, 56, 56)),
                           n=(384, 7, 1, "dw", (384, 14, 14)), o=(768, 7, 1, "dw", (768, 3, 3))),
    "norm_cl": [("layer_norm", {}, (96, 56, 56)), ("layer_norm", {}, (384, 14, 14)), ("layer_norm", {}, (768, 4, 4))],
    "smooth_act_cl": [("gelu", {}, (160, 56, 56)), ("gelu", {}, (640, 14, 14)), ("gelu", {}, (1536, 4, 4))],
    "spatial_norm_cl": [("grn", {}, (160, 28, 28)), ("grn", {}, (640, 14, 14)), ("grn", {}, (2560, 4, 4))],
}
assert set(KERNELS) == set(OP_CLASSES)


@dataclass
class Calibration:
    name: str
    device: str
    threads: int
    dtype: str
    peak_macs: float
    mem_bw: float
    overhead: dict[str, float]  # seconds per layer, per op class
    efficiency: dict[str, float]  # share of peak_macs, per op class
    seconds: float  # how long calibrating took
    detail: list[dict] = field(default_factory=list)  # per kernel: class, layer, batch, predicted, measured
    mem_efficiency: dict[str, float] = field(default_factory=dict)  # share of mem_bw, per op class
    clock: str = "wall"
    steady_heap: bool = False
    half_pixels: dict[str, float] = field(default_factory=dict)  # per op class: output pixels at half speed
    bw_curve: dict[int, float] = field(default_factory=dict)  # bytes moved -> bytes/s
    weight_bw: dict[str, float] = field(default_factory=dict)  # per op class: bytes/s preparing weights per call
    channel_align: dict[str, int] = field(default_factory=dict)  # per op class: channels its fast kernels need
    misaligned: dict[str, float] = field(default_factory=dict)  # per op class: slowdown off that alignment
    drift: list[float] = field(default_factory=list)  # per phase: the machine's slowdown against its median (probe)
    probe_s: float = 0.0  # the probe's median reading: the speed every phase was scaled to

    def yaml(self) -> str:
        def flow(d: dict) -> str:
            return "{" + ", ".join(f"{k}: {v:.4g}" for k, v in d.items()) + "}"
        note = (f"archc calibrate: {platform.machine()} {self.device}, {self.threads} thread(s), {self.dtype}, "
                f"batch {'/'.join(map(str, BATCHES))}, {self.clock} clock"
                + (", steady heap" if self.steady_heap else "")
                + (f", speed {min(self.drift):.2f}-{max(self.drift):.2f}x its median" if self.drift else "")
                + f", torch {torch.__version__}, "
                f"{time.strftime('%Y-%m-%d')}")
        return (f"# Measured by `archc calibrate` on this machine ({platform.node()}, {platform.processor() or platform.machine()}).\n"
                f"# Choose it with `hardware={self.name}`. Time of a layer (archdsl/backends/latency.py):\n"
                f"# max(MACs / (peak_macs * e) * (1 + (p / output pixels)^2), (bytes - weights) / (bw(bytes) * m)) * a\n"
                f"# + weights / w + overhead, bw from bw_curve; e (efficiency), m (mem_efficiency), p (half_pixels),\n"
                f"# w (weight_bw; a class without it: weights among the bytes, no term of their own), a (misaligned,\n"
                f"# when the layer's vector channels are not a multiple of channel_align; else 1) and\n"
                f"# overhead of the layer's op class.\n"
                f"{self.name}:\n"
                f"  peak_macs: {self.peak_macs:.4g}     # MAC/s, best dense GEMM / conv\n"
                f"  mem_bw: {self.mem_bw:.4g}        # bytes/s, streaming copy\n"
                f"  overhead: {flow(self.overhead)}  # seconds per layer\n"
                f"  efficiency: {flow(self.efficiency)}\n"
                f"  mem_efficiency: {flow(self.mem_efficiency)}\n"
                f"  half_pixels: {flow(self.half_pixels)}\n"
                f"  bw_curve: {flow(self.bw_curve)}  # bytes moved: bytes/s\n"
                f"  weight_bw: {flow(self.weight_bw)}  # bytes/s\n"
                f"  channel_align: {flow(self.channel_align)}  # channels\n"
                f"  misaligned: {flow(self.misaligned)}  # times longer off the alignment\n"
                f"  note: \"{note}\"\n")


def _op(kind: str, attrs: dict, in_shape: tuple) -> ir.Op:
    opdef = REGISTRY[kind]
    a = opdef.attrs(**dict(opdef.preset), **attrs)
    return ir.Op(in_shape, opdef.shape(a, in_shape), None, (), kind, a)


def _inputs(node: ir.Op, batch: int, device: str, dtype: torch.dtype, channels_last: bool = False):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    make = [torch.randn((batch,) + tuple(s), device=device, dtype=dtype).contiguous(memory_format=fmt)
            for s in ir.shapes(node.in_shape)]
    return tuple(make) if REGISTRY[node.kind].joins else make[0]


def _module(node: ir.Op, device: str, dtype: torch.dtype, channels_last: bool = False) -> nn.Module:
    m = REGISTRY[node.kind].lower(node.attrs, node.in_shape, node.out_shape, LowerContext(False))
    m = m.to(device=device, dtype=dtype).eval()
    return m.to(memory_format=torch.channels_last) if channels_last else m


COLD_BYTES = 64 * 2 ** 20  # more than a CPU's last-level cache


# Layers that run, in turn, before each timed call of a kernel: in a network a
# layer follows other layers, whose code and data leave the caches, branch
# predictors and oneDNN's state other than a loop over one layer would (on a
# 2-core EPYC VM, a small layer took 1.5-3x longer in a network than in such
# a loop); timed this way it takes what it takes there.
CONTEXT: list[tuple[str, dict, tuple]] = [
    ("conv", dict(out=32, k=3), (32, 28, 28)), ("bn", {}, (96, 56, 56)),
    ("conv", dict(out=144, k=3, groups=144), (144, 28, 28)), ("conv", dict(out=64, k=1), (128, 28, 28)),
    ("relu6", {}, (96, 56, 56)), ("silu", {}, (240, 28, 28)),
    ("max_pool", dict(k=3, stride=2, padding=1), (32, 56, 56)), ("add", {}, ((64, 56, 56),) * 2)]


def _context(device: str, dtype: torch.dtype):
    """before(i) for timing.measure: the i-th context layer (CONTEXT, in turn) runs."""
    made = []
    for kind, attrs, shape in CONTEXT:
        node = _op(kind, attrs, shape)
        made.append((_module(node, device, dtype), _inputs(node, 1, device, dtype)))

    def before(i: int) -> None:
        m, x = made[i % len(made)]
        m(x)
    return before


# A few typical kernels, timed again between the phases of a calibration: a
# shared machine's speed drifts over two minutes (on a 2-vCPU Xeon VM, one
# calibration's phases ran 0.92-1.45x its median speed), and each op class
# is timed at one moment of it, so each class's figures would carry that
# moment's speed. Each phase's times are scaled to the
# machine's median speed over the whole calibration (its probe readings'
# median), so the classes agree with each other.
PROBE: list[tuple[str, dict, tuple]] = [
    ("conv", dict(out=64, k=3), (64, 28, 28)), ("conv", dict(out=128, k=1), (64, 28, 28)),
    ("bn", {}, (96, 56, 56)), ("conv", dict(out=144, k=3, groups=144), (144, 28, 28))]


def probe(device: str, dtype: torch.dtype, clock: str, before=None, min_time: float = 0.02):
    """seconds(): the summed medians of PROBE's kernels, each timed as a
    calibration times its kernels (after `before`, the context)."""
    nodes = [_op(k, a, s) for k, a, s in PROBE]

    def seconds() -> float:
        return sum(_time_op(n, 1, device, dtype, min_time, False, clock, before) for n in nodes)
    return seconds


def speeds(readings: list[float]) -> list[float]:
    """Per phase, how many times slower than its median the machine ran:
    `readings` are the probe's seconds before the first phase and after each
    (n + 1 for n phases); a phase's speed is the mean of its two readings."""
    ref = statistics.median(readings)
    return [(a + b) / 2 / ref for a, b in zip(readings, readings[1:])]


def _time_op(node: ir.Op, batch: int, device: str, dtype: torch.dtype, min_time: float, cold: bool = False,
             clock: str = "wall", before=None, cold_weights: bool = True, channels_last: bool = False) -> float:
    """Median seconds of one call, each after `before(i)` (the context:
    _context) when given. On a CPU each call takes the next of several
    copies of the layer, as many as make their weights, inputs and outputs
    together larger than the caches, so that its weights come from memory,
    as in a network, which last read them
    a whole forward pass ago (in a loop over one copy, a classifier's 5 MB of
    weights stay in cache: 3x faster than in a network); its input is one
    tensor, as a network's layer reads what the layer before it has just
    written, or, `cold`, the next of as many copies: nothing in cache;
    `channels_last`: input and weights in that memory format."""
    n = 1
    if device == "cpu" and (cold or cold_weights):
        weights = sum(p.numel() for p in _module(node, "meta", dtype).parameters())
        if weights or cold:
            # between two calls of one copy, the others' weights, inputs and outputs pass through the
            # caches: a layer that moves megabytes needs few copies for its weights to leave them
            per = weights + sum(ir.numel(s) for s in ir.shapes(node.in_shape) + ir.shapes(node.out_shape)) * batch
            n = max(1, min(64, -(-COLD_BYTES // max(per * torch.finfo(dtype).bits // 8, 1))))
    first = _module(node, device, dtype, channels_last)
    mods = [first] + [copy.deepcopy(first) for _ in range(n - 1)]  # copied: far quicker than drawing weights anew
    xs = [_inputs(node, batch, device, dtype, channels_last) for _ in range(n if cold else 1)]
    turn = [0]

    def call():
        i = turn[0]
        turn[0] += 1
        mods[i % n](xs[i % len(xs)])
    with torch.no_grad():
        return measure(call, device, warmup=max(3, n), runs=max(9, n), min_time=min_time, clock=clock,
                       before=before).median


def _peak(device: str, dtype: torch.dtype, min_time: float, clock: str) -> float:
    """The best MAC/s of a few dense GEMMs and convs."""
    rates = []
    for n in (256, 512, 1024):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        with torch.no_grad():
            t = measure(lambda: a @ b, device, warmup=2, runs=3, min_time=min_time, clock=clock).median
        rates.append(n ** 3 / t)
    for kind, attrs, shape in KERNELS["conv"][2:6]:
        node = _op(kind, attrs, shape)
        macs = REGISTRY[kind].cost(node.attrs, node.in_shape, node.out_shape).macs
        rates.append(macs / _time_op(node, 1, device, dtype, min_time, clock=clock, cold_weights=False))
    return max(rates)


def _bandwidth(device: str, dtype: torch.dtype, min_time: float, clock: str) -> float:
    """Streaming copy: bytes read + written per second, on tensors far larger than the caches."""
    n = 32 * 2 ** 20
    src = torch.randn(n, device=device, dtype=dtype)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), device, warmup=2, runs=5, min_time=min_time, clock=clock).median
    return 2 * n * src.element_size() / t


def _bw_curve(device: str, dtype: torch.dtype, min_time: float, clock: str) -> dict[int, float]:
    """Copy bandwidth by bytes moved (read + written), 256 KB to 128 MB: the
    same buffers each call, as a network's next layer finds its input where
    the last one wrote it (in cache when small enough)."""
    out = {}
    item = torch.finfo(dtype).bits // 8
    for k in range(18, 28):
        n = 2 ** k // 2 // item
        src = torch.randn(n, device=device, dtype=dtype)
        dst = torch.empty_like(src)
        t = measure(lambda: dst.copy_(src), device, warmup=3, runs=10, min_time=min_time / 2, clock=clock).median
        out[2 ** k] = 2 ** k / t
    return out


# Per op class, a tiny layer of it: what it takes is nearly all overhead.
TINY: dict[str, tuple[str, dict, tuple]] = {
    "conv": ("conv", dict(out=8, k=3), (8, 4, 4)), "conv1x1": ("conv", dict(out=8, k=1), (8, 4, 4)),
    "depthwise": ("conv", dict(out=8, k=3, groups=8), (8, 4, 4)),
    "grouped": ("conv", dict(out=8, k=3, groups=2), (8, 4, 4)), "ws_conv": ("ws_conv", dict(out=8, k=3), (8, 4, 4)),
    "gemm": ("linear", dict(out=8), (8, 1, 1)), "elementwise": ("bn", {}, (8, 4, 4)),
    "smooth_act": ("silu", {}, (8, 4, 4)), "norm": ("layer_norm", {}, (8, 4, 4)),
    "pool": ("global_pool", {}, (8, 4, 4)), "window_pool": ("max_pool", dict(k=3, stride=1, padding=1), (8, 4, 4)),
    "data": ("cat", {}, ((8, 4, 4),) * 2),
    "conv1x1_cl": ("conv", dict(out=8, k=1), (8, 4, 4)), "depthwise_cl": ("conv", dict(out=8, k=3, groups=8), (8, 4, 4)),
    "norm_cl": ("layer_norm", {}, (8, 4, 4)),
    "smooth_act_cl": ("gelu", {}, (8, 4, 4)), "spatial_norm_cl": ("grn", {}, (8, 4, 4)),
}
assert set(TINY) == set(OP_CLASSES)


def _overheads(device: str, dtype: torch.dtype, min_time: float, clock: str, before, cold_weights: bool = True
               ) -> dict[str, float]:
    """Seconds of one tiny layer of each op class, called as a network calls
    its layers (a module call after other layers: `before`): what a layer
    costs whatever its size (module call, dispatch, kernel launch)."""
    out = {}
    for cls, (kind, attrs, shape) in TINY.items():
        out[cls] = _time_op(_op(kind, attrs, shape), 1, device, dtype, min_time, False, clock, before, cold_weights,
                            cls in _CHANNELS_LAST)
    return out


_CHANNELS_LAST = set(latency.PLAIN_OF)  # classes timed on channels-last tensors


def predicted(layer: Layer, peak: float, bw: float, batch: int = 1) -> float:
    """Roofline seconds of one layer at `batch` (weights read once, activations per image)."""
    return max(batch * layer.macs / peak, (layer.weight_bytes + batch * layer.act_bytes) / bw)


GB = 1e9  # the fit's unit of weight preparation: seconds per GB


def fit(points: list[tuple], peak: float, bw) -> tuple[float, float, float, float, float, float]:
    """(e, m, p, w, overhead, a) of one op class: what makes latency.seconds
    closest to the measured seconds over `points` (MACs, bytes, weight bytes,
    output pixels per image, seconds[, misaligned: a bool]), given
    bw(bytes moved) -> bytes/s; see _fit."""
    return _fit(points, peak, bw)[1]


def _fit(points: list[tuple], peak: float, bw) -> tuple[float, tuple[float, float, float, float, float, float]]:
    """(squared log error, (e, m, p, w, overhead, a)): from each of a few
    starting p and w, a grid over log e and log m, then pattern steps over all
    six. A weak pull of log e, log m and log a towards 0 settles what the
    points leave free (e of a class whose kernels have no MACs; a where no
    point is misaligned)."""
    # per point: compute and memory seconds at e = m = 1, GB of weights, 1 / pixels² (0 on a 1x1 map,
    # a matrix product: latency.small_map), seconds, misaligned
    pts = [(c / peak, (b - wb) / bw(b), wb / GB, 1 / (px * px) if px > 1 else 0.0, t, bool(rest and rest[0]))
           for c, b, wb, px, t, *rest in points if t > 0]
    least = min(pt[4] for pt in pts)
    any_off = any(pt[5] for pt in pts)
    cols = torch.tensor([pt[:5] for pt in pts], dtype=torch.float64).T
    off_col = torch.tensor([pt[5] for pt in pts])
    grid = [x * 0.5 for x in range(-18, 7)]  # e, m from 1e-4 to 20

    def loss(le: float, lm: float, lp: float, q: float, o: float, la: float) -> float:  # q: seconds per GB of weights
        e, m, p, a = math.exp(le), math.exp(lm), math.exp(lp) - 1, math.exp(la)
        p2, log = p * p, math.log
        err = 0.0
        for c, x, wb, inv_px2, t, off in pts:  # latency.seconds's formula, inlined: the fit's inner loop
            compute, move = c / e * (1 + p2 * inv_px2), x / m
            err += log(((compute if compute > move else move) * (a if off else 1.0) + wb * q + o) / t) ** 2
        return err + 1e-3 * (le * le + lm * lm + la * la)

    def grid_best(lp: float, q: float, o: float, la: float) -> tuple:
        """loss's minimum over the grid of log e and log m, all at once (as loss computes it)."""
        le = torch.tensor(grid, dtype=torch.float64)[:, None, None]
        lm = torch.tensor(grid, dtype=torch.float64)[None, :, None]
        c, x, wb, inv_px2, t = cols
        p = math.exp(lp) - 1
        k = torch.maximum(c / le.exp() * (1 + p * p * inv_px2), x / lm.exp())
        k = k * torch.where(off_col, math.exp(la), 1.0) + wb * q + o
        val = (k / t).log().square().sum(-1) + 1e-3 * (le[..., 0] ** 2 + lm[..., 0] ** 2 + la * la)
        i = int(val.argmin())
        return float(val.flatten()[i]), grid[i // len(grid)], grid[i % len(grid)], lp, q, o, la

    found = []
    for p in (0, 4, 32, 256):  # each start: a grid over log e, log m, then a pattern search
        for q in (0.0, 0.3):  # weights free, or prepared at 3 GB/s (oneDNN's reorder of a conv's)
            lp, o, la = math.log1p(p), least * 0.25, math.log(2.0) if any_off else 0.0
            best = grid_best(lp, q, o, la)
            _, *x = best
            step = [0.25, 0.25, 0.5, 0.05, least * 0.05, 0.25 if any_off else 0.0]
            for _ in range(80):  # halve the steps when no move helps
                moved = False
                for i in range(6):
                    if not step[i]:
                        continue
                    for sign in (1, -1):
                        cand = list(x)
                        cand[i] += sign * step[i]
                        if cand[2] < 0 or cand[3] < 0 or cand[4] < 0:
                            continue
                        val = loss(*cand)
                        if val < best[0]:
                            best, x, moved = (val, *cand), cand, True
                if not moved:
                    step = [s / 2 for s in step]
                    if step[0] < 1e-3:
                        break
            found.append(best)
    err, *x = min(found)
    le, lm, lp, q, o, la = x
    return err, (math.exp(le), math.exp(lm), math.exp(lp) - 1, GB / max(q, 1e-6), o, math.exp(la))  # w <= 1e15 B/s


ALIGNMENTS = (8, 16, 32)  # the channel multiples a class's fast kernels may need (vector widths)


def fit_aligned(points: list[tuple], lanes: list[int], peak: float, bw) -> tuple[int, tuple]:
    """(alignment, fit's figures) of one op class whose points (fit's, without
    the flag) have vector channels `lanes` (cost.vector_channels; 0: none):
    among no alignment and ALIGNMENTS, the one whose fit errs least, an
    alignment kept only when its slowdown (a) explains at least a quarter of
    the error and is at least 1.1 (0: none)."""
    err0, best = _fit(points, peak, bw)
    found = 0
    least = err0
    for align in ALIGNMENTS:
        off = [bool(n) and n % align != 0 for n in lanes]
        if not any(off) or all(off):
            continue
        err, figures = _fit([pt + (o,) for pt, o in zip(points, off)], peak, bw)
        if err < least and err < 0.75 * err0 and figures[5] >= 1.1:
            found, best, least = align, figures, err
    return found, best


def calibrate(name: str, device: str = "cpu", threads: int | None = 1, dtype: str = "fp32",
              min_time: float = 0.1, log=None, cold: bool = False, clock: str | None = None,
              context: bool = True, steady: bool = True, kernels: dict | None = None,
              cold_weights: bool = True) -> Calibration:
    """Measure this machine (see the module docstring); `cold`: see _time_op;
    `clock`: timing.CLOCKS (default: thread with one CPU thread, else wall);
    `context`: time each kernel after other layers (CONTEXT), as in a network;
    `steady`: make this process's heap steady first (timing.steady_heap);
    `kernels`: per op class, the layers to time (default KERNELS);
    `cold_weights`: time each layer with its weights out of cache (_time_op)."""
    start = time.perf_counter()
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    nthreads = threads or torch.get_num_threads()
    clock = clock or ("thread" if device == "cpu" and nthreads == 1 else "wall")
    check_clock(clock, device, nthreads)
    if steady and device == "cpu":
        steady_heap()
    tdtype = TORCH_DTYPES[dtype]
    say = log or (lambda s: None)
    torch.manual_seed(0)
    peak = _peak(device, tdtype, min_time, clock)
    say(f"peak: {peak / 1e9:.1f} GMAC/s")
    bw = _bandwidth(device, tdtype, min_time, clock)
    curve = _bw_curve(device, tdtype, min_time, clock)
    say(f"bandwidth: {bw / 1e9:.1f} GB/s streaming; " + ", ".join(
        f"{k / 2 ** 20:g} MB {v / 1e9:.0f}" for k, v in curve.items()) + " GB/s moving fewer bytes")
    at = tuple(sorted(curve.items()))

    def bw_of(moved: float) -> float:
        return latency.bandwidth_at(moved, at, bw)
    before = _context(device, tdtype) if context else None
    speed = probe(device, tdtype, clock, before, min(min_time, 0.02))
    readings = [speed(), speed()]  # the first one warms the probe's kernels up
    tiny = _overheads(device, tdtype, min_time, clock, before, cold_weights)
    readings.append(speed())
    nbytes = DTYPE_BYTES[dtype]
    timed = {}  # per class: (points, lanes, rows), in the machine's speed of the moment
    for cls, layers in (kernels or KERNELS).items():
        began = time.perf_counter()
        kind, attrs, shape = TINY[cls]
        node = _op(kind, attrs, shape)
        layer = Layer(*_layer(kind, node, nbytes))
        # a tiny layer: overhead, nearly all
        points = [(layer.macs, layer.bytes, layer.weight_bytes, pixels(node.out_shape), tiny[cls])]
        lanes = [layer.vector_channels]
        rows = []
        for kind, attrs, shape in layers:
            node = _op(kind, attrs, shape)
            layer = Layer(*_layer(kind, node, nbytes))
            for b in BATCHES:
                t = _time_op(node, b, device, tdtype, min_time, cold, clock, before, cold_weights, cls in _CHANNELS_LAST)
                macs, moved = layer.macs * b, layer.weight_bytes + layer.act_bytes * b
                points.append((macs, moved, layer.weight_bytes, pixels(node.out_shape), t))
                lanes.append(layer.vector_channels)
                rows.append(dict(op_class=cls, kind=kind, in_shape=ir.fmt_shape(node.in_shape), batch=b, macs=macs,
                                 bytes=moved, weight_bytes=layer.weight_bytes, pixels=pixels(node.out_shape),
                                 vector_channels=layer.vector_channels, roofline_s=predicted(layer, peak, bw, b),
                                 measured_s=t))
        readings.append(speed())
        timed[cls] = points, lanes, rows
        say(f"{cls}: {len(rows)} kernels timed in {time.perf_counter() - began:.1f} s")
    # phases: the overheads (the tiny layers), then each class's kernels
    drift = speeds(readings[1:])
    say(f"machine speed while timing: {min(drift):.2f}-{max(drift):.2f}x its median (probe); "
        "times scaled to the median")
    efficiency, mem_efficiency, half_pixels, overhead, weight_bw, detail = {}, {}, {}, {}, {}, []
    channel_align, misaligned = {}, {}
    for k, (cls, (points, lanes, rows)) in enumerate(timed.items()):
        # the tiny layer was timed in the overheads' phase (0), the others in the class's own
        points = [pt[:4] + (pt[4] / drift[k + 1 if i else 0],) for i, pt in enumerate(points)]
        for r in rows:
            r["measured_s"] /= drift[k + 1]
        align, (e, m, p, w, o, a) = fit_aligned(points, lanes, peak, bw_of)
        efficiency[cls], mem_efficiency[cls], half_pixels[cls], overhead[cls] = e, m, p, o
        weight_bw[cls] = w
        if align:
            channel_align[cls], misaligned[cls] = align, a
        fitted = latency.machine(peak, bw, {cls: e}, {cls: m}, {cls: o}, {cls: p}, at, {cls: w}, channel_align,
                                 misaligned)
        for r in rows:
            r["fitted_s"] = latency.seconds(r["macs"], r["bytes"], cls, (1, r["pixels"]), fitted, r["weight_bytes"],
                                            r["vector_channels"])
        detail += rows
        err = statistics.median(abs(r["fitted_s"] / r["measured_s"] - 1) for r in rows)
        off = f", {a:.3g}x as long off multiples of {align} channels" if align else ""
        say(f"{cls}: efficiency {e:.3g}, memory {m:.3g}, half speed at {p:.3g} pixels, weights prepared at "
            f"{w / 1e9:.3g} GB/s, overhead {o * 1e6:.1f} µs{off} (median error over its {len(rows)} kernels: "
            f"{err:.0%})")
    return Calibration(name, device, nthreads, dtype, peak, bw, overhead, efficiency,
                       time.perf_counter() - start, detail, mem_efficiency, clock, heap_is_steady(), half_pixels,
                       curve, weight_bw, channel_align, misaligned, drift, statistics.median(readings[1:]))
