"""`archc calibrate`: measure this machine with short micro-benchmarks and
write a hardware preset the cost model uses (cost.Hardware's calibrated form):

    time of a layer = max(MACs / (peak · e), bytes / (bw · e)) + overhead

peak: the best MAC/s of dense GEMMs and convs; bw: streaming copy bandwidth;
e: per op class (cost.OP_CLASSES), the median over a few typical layers of
that class of (roofline time at peak and bw) / (measured time − overhead);
overhead: seconds per layer of each op class, from chains of tiny layers
of the class (module call, dispatch, kernel launch). Every kernel is an IR op lowered as archc lowers
it, costed by the cost report's own rules, so calibration and report agree
on what a layer's MACs and bytes are. Runs in well under two minutes.
"""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from archdsl.backends.cost import DTYPE_BYTES, OP_CLASSES, Layer, _layer
from archdsl.backends.torch.timing import measure
from archdsl.compiler import ir
from archdsl.ops import REGISTRY, LowerContext

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Typical layers per op class: (op, attributes, input shape (C, H, W)).
KERNELS: dict[str, list[tuple[str, dict, tuple]]] = {
    "conv": [("conv", dict(out=64, k=3), (64, 56, 56)), ("conv", dict(out=128, k=3), (128, 28, 28)),
             ("conv", dict(out=256, k=3), (256, 14, 14)), ("conv", dict(out=32, k=3, stride=2), (3, 224, 224))],
    "conv1x1": [("conv", dict(out=256, k=1), (64, 56, 56)), ("conv", dict(out=64, k=1), (256, 56, 56)),
                ("conv", dict(out=128, k=1), (512, 28, 28)), ("conv", dict(out=1280, k=1), (320, 7, 7))],
    "depthwise": [("conv", dict(out=144, k=3, groups=144), (144, 56, 56)),
                  ("conv", dict(out=240, k=5, groups=240), (240, 28, 28)),
                  ("conv", dict(out=672, k=3, groups=672), (672, 14, 14)),
                  ("conv", dict(out=960, k=3, groups=960), (960, 7, 7))],
    "grouped": [("conv", dict(out=128, k=3, groups=32), (128, 56, 56)),
                ("conv", dict(out=256, k=3, groups=32), (256, 28, 28)),
                ("conv", dict(out=240, k=1, groups=3), (240, 28, 28)),
                ("conv", dict(out=224, k=3, groups=14), (224, 28, 28))],
    "gemm": [("linear", dict(out=1000), (1280, 1, 1)), ("linear", dict(out=1000), (2048, 1, 1)),
             ("matmul", {}, ((6, 197, 64), (6, 64, 197))), ("matmul", {}, ((6, 197, 197), (6, 197, 64)))],
    "elementwise": [("relu", {}, (64, 112, 112)), ("bn", {}, (64, 56, 56)), ("add", {}, ((256, 28, 28),) * 2),
                    ("hard_swish", {}, (96, 28, 28)), ("sigmoid", {}, (480, 14, 14))],
    "pool": [("global_pool", {}, (1280, 7, 7)), ("global_pool", {}, (480, 14, 14)), ("avg_pool", dict(k=2), (256, 28, 28))],
    "max_pool": [("max_pool", dict(k=3, stride=2, padding=1), (64, 112, 112)),
                 ("max_pool", dict(k=2), (128, 28, 28)), ("max_pool", dict(k=3, stride=2, padding=1), (24, 56, 56))],
    "data": [("cat", {}, ((64, 28, 28),) * 2), ("channel_shuffle", dict(groups=2), (116, 28, 28)),
             ("cat", {}, ((128, 14, 14),) * 4)],
}
assert set(KERNELS) == set(OP_CLASSES)


@dataclass
class Calibration:
    name: str
    device: str
    threads: int
    dtype: str
    batch: int
    peak_macs: float
    mem_bw: float
    overhead: dict[str, float]  # seconds per layer, per op class
    efficiency: dict[str, float]
    seconds: float  # how long calibrating took
    detail: list[dict] = field(default_factory=list)  # per kernel: class, layer, predicted, measured

    def yaml(self) -> str:
        effs = ", ".join(f"{k}: {v:.4g}" for k, v in self.efficiency.items())
        overs = ", ".join(f"{k}: {v:.4g}" for k, v in self.overhead.items())
        note = (f"archc calibrate: {platform.machine()} {self.device}, {self.threads} thread(s), {self.dtype}, "
                f"batch {self.batch}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
        return (f"# Measured by `archc calibrate` on this machine ({platform.node()}, {platform.processor() or platform.machine()}).\n"
                f"# Choose it with `hardware={self.name}`. time of a layer = max(MACs / (peak_macs * e),\n"
                f"# bytes / (mem_bw * e)) + overhead, e = efficiency of the layer's op class (1 if absent).\n"
                f"{self.name}:\n"
                f"  peak_macs: {self.peak_macs:.4g}     # MAC/s, best dense GEMM / conv\n"
                f"  mem_bw: {self.mem_bw:.4g}        # bytes/s, streaming copy\n"
                f"  overhead: {{{overs}}}  # seconds per layer\n"
                f"  efficiency: {{{effs}}}\n"
                f"  note: \"{note}\"\n")


def _op(kind: str, attrs: dict, in_shape: tuple) -> ir.Op:
    opdef = REGISTRY[kind]
    a = opdef.attrs(**dict(opdef.preset), **attrs)
    return ir.Op(in_shape, opdef.shape(a, in_shape), None, (), kind, a)


def _inputs(node: ir.Op, batch: int, device: str, dtype: torch.dtype):
    make = [torch.randn((batch,) + tuple(s), device=device, dtype=dtype) for s in ir.shapes(node.in_shape)]
    return tuple(make) if REGISTRY[node.kind].joins else make[0]


def _module(node: ir.Op, device: str, dtype: torch.dtype) -> nn.Module:
    m = REGISTRY[node.kind].lower(node.attrs, node.in_shape, node.out_shape, LowerContext(False))
    return m.to(device=device, dtype=dtype).eval()


COLD_BYTES = 64 * 2 ** 20  # more than a CPU's last-level cache


def _time_op(node: ir.Op, batch: int, device: str, dtype: torch.dtype, min_time: float, cold: bool = True) -> float:
    """Median seconds of one call. In a network a layer reads what the layer
    before it wrote and weights no other layer read, so on a CPU (`cold`)
    each call takes the next of several copies of the layer and its input,
    together larger than the caches: a layer repeated on the same data would
    find it all in cache."""
    n = 1
    if cold and device == "cpu":
        per = sum(ir.numel(s) for s in ir.shapes(node.in_shape)) * batch + sum(
            p.numel() for p in _module(node, "meta", dtype).parameters())
        n = max(1, min(64, -(-COLD_BYTES // max(per * torch.finfo(dtype).bits // 8, 1))))
    pairs = [(_module(node, device, dtype), _inputs(node, batch, device, dtype)) for _ in range(n)]
    turn = [0]

    def call():
        m, x = pairs[turn[0] % n]
        turn[0] += 1
        m(x)
    with torch.no_grad():
        return measure(call, device, warmup=max(3, n), runs=max(5, n), min_time=min_time).median


def _peak(device: str, dtype: torch.dtype, min_time: float) -> float:
    """The best MAC/s of a few dense GEMMs and convs."""
    rates = []
    for n in (256, 512, 1024):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        with torch.no_grad():
            t = measure(lambda: a @ b, device, warmup=2, runs=3, min_time=min_time).median
        rates.append(n ** 3 / t)
    for kind, attrs, shape in KERNELS["conv"][:3]:
        node = _op(kind, attrs, shape)
        macs = REGISTRY[kind].cost(node.attrs, node.in_shape, node.out_shape).macs
        rates.append(macs / _time_op(node, 1, device, dtype, min_time, cold=False))  # the best it can do
    return max(rates)


def _bandwidth(device: str, dtype: torch.dtype, min_time: float) -> float:
    """Streaming copy: bytes read + written per second, on tensors far larger than the caches."""
    n = 32 * 2 ** 20
    src = torch.randn(n, device=device, dtype=dtype)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), device, warmup=2, runs=5, min_time=min_time).median
    return 2 * n * src.element_size() / t


# Per op class, a tiny layer of it: a chain of them costs its overhead per layer.
TINY: dict[str, tuple[str, dict, tuple]] = {
    "conv": ("conv", dict(out=8, k=3), (8, 4, 4)), "conv1x1": ("conv", dict(out=8, k=1), (8, 4, 4)),
    "depthwise": ("conv", dict(out=8, k=3, groups=8), (8, 4, 4)),
    "grouped": ("conv", dict(out=8, k=3, groups=2), (8, 4, 4)), "gemm": ("linear", dict(out=8), (8, 1, 1)),
    "elementwise": ("bn", {}, (8, 4, 4)), "pool": ("global_pool", {}, (8, 4, 4)),
    "max_pool": ("max_pool", dict(k=3, stride=1, padding=1), (8, 4, 4)), "data": ("cat", {}, ((8, 4, 4),) * 2),
}
assert set(TINY) == set(OP_CLASSES)


def _overheads(device: str, dtype: torch.dtype, min_time: float) -> dict[str, float]:
    """Seconds per layer of a chain of 50 tiny layers of each op class (module
    call, dispatch, kernel launch: what a layer costs whatever its size)."""
    n = 50
    out = {}
    for cls, (kind, attrs, shape) in TINY.items():
        node = _op(kind, attrs, shape)
        mods = [_module(node, device, dtype) for _ in range(n)]
        x = _inputs(node, 1, device, dtype)
        if REGISTRY[kind].joins:
            def chain(x=x, mods=mods):
                for m in mods:
                    m(x)
        elif kind == "linear" or kind == "global_pool":  # their output is the next one's input shape
            def chain(x=x, mods=mods):
                for m in mods:
                    m(x)
        else:
            seq = nn.Sequential(*mods)

            def chain(x=x, seq=seq):
                seq(x)
        with torch.no_grad():
            # the 10th percentile: a fixed cost, without the stalls of a shared machine
            out[cls] = measure(chain, device, warmup=2, runs=10, min_time=min_time).p10 / n
    return out


def predicted(layer: Layer, peak: float, bw: float, batch: int = 1) -> float:
    """Roofline seconds of one layer at `batch` (weights read once, activations per image)."""
    return max(batch * layer.macs / peak, (layer.weight_bytes + batch * layer.act_bytes) / bw)


def calibrate(name: str, device: str = "cpu", threads: int | None = 1, dtype: str = "fp32", batch: int = 1,
              min_time: float = 0.15, log=None, cold: bool = True) -> Calibration:
    """Measure this machine (see the module docstring); `cold`: see _time_op."""
    start = time.perf_counter()
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    tdtype = TORCH_DTYPES[dtype]
    say = log or (lambda s: None)
    torch.manual_seed(0)
    peak = _peak(device, tdtype, min_time)
    say(f"peak: {peak / 1e9:.1f} GMAC/s")
    bw = _bandwidth(device, tdtype, min_time)
    say(f"bandwidth: {bw / 1e9:.1f} GB/s")
    overhead = _overheads(device, tdtype, min_time)
    say("overhead per layer: " + ", ".join(f"{k} {v * 1e6:.1f} µs" for k, v in overhead.items()))
    nbytes = DTYPE_BYTES[dtype]
    efficiency, detail = {}, []
    for cls, kernels in KERNELS.items():
        ratios = []
        for kind, attrs, shape in kernels:
            node = _op(kind, attrs, shape)
            layer = Layer(*_layer(kind, node, nbytes))
            t = _time_op(node, batch, device, tdtype, min_time, cold)
            t0 = predicted(layer, peak, bw, batch)
            ratios.append(t0 / max(t - overhead[cls], 0.05 * t))
            detail.append(dict(op_class=cls, kind=kind, in_shape=ir.fmt_shape(node.in_shape), macs=layer.macs,
                               bytes=layer.bytes, roofline_s=t0, measured_s=t))
        efficiency[cls] = statistics.median(ratios)
        say(f"{cls}: efficiency {efficiency[cls]:.3g}")
    return Calibration(name, device, threads or torch.get_num_threads(), dtype, batch, peak, bw, overhead,
                       efficiency, time.perf_counter() - start, detail)
