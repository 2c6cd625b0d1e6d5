"""`archc profile`: a built module's measured forward latency, in total and
per layer, beside the cost report's predicted (roofline) time.

The total is the median of timed forward passes after a warm-up; with one
CPU thread on the thread's CPU clock, as `archc calibrate` measures, and the
heap steady when the caller made it so (`archc profile` does; timing.py
says why). Per layer,
torch.profiler records one range per IR layer, named as the report names it
(the module names follow the IR's layer paths): an op's range is its module's
forward; a join (a residual's add, a concat, a gate's multiply) is its
structural module's time less the layers inside it. Each layer's time is
the median over the profiled passes. The profiler's own cost (a few µs per
range) is in the per-layer times, not in the total.
"""
from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import os

import torch

from archdsl.backends.cost import Hardware, Report
from archdsl.backends.torch.timing import Timing, heap_is_steady, measure, synchronize
from archdsl.compiler import ir

_JOIN = {ir.Residual: "add", ir.Split: "concat", ir.Gate: "mul"}


@dataclass
class LayerTime:
    name: str
    kind: str
    op_class: str
    macs: int  # for the whole batch
    bytes: int
    predicted_s: float
    measured_s: float | None  # None: no module ran for it


@dataclass
class Profile:
    name: str
    device: str
    batch: int
    threads: int
    dtype: str
    channels_last: bool
    deployed: bool
    hardware: Hardware
    total: Timing
    predicted_s: float
    layers: list[LayerTime] = field(default_factory=list)
    clock: str = "wall"
    steady_heap: bool = False

    def by_class(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for l in self.layers:
            d = out.setdefault(l.op_class, dict(layers=0, macs=0, bytes=0, predicted_s=0.0, measured_s=0.0))
            d["layers"] += 1
            d["macs"] += l.macs
            d["bytes"] += l.bytes
            d["predicted_s"] += l.predicted_s
            d["measured_s"] += l.measured_s or 0.0
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["name", "kind", "op_class", "macs", "bytes", "predicted_s", "measured_s"])
        for l in self.layers:
            w.writerow([l.name, l.kind, l.op_class, l.macs, l.bytes, f"{l.predicted_s:.4e}",
                        "" if l.measured_s is None else f"{l.measured_s:.4e}"])
        return buf.getvalue()

    def classes_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["op_class", "layers", "macs", "bytes", "predicted_s", "measured_s"])
        for k, d in self.by_class().items():
            w.writerow([k, d["layers"], d["macs"], d["bytes"], f"{d['predicted_s']:.4e}", f"{d['measured_s']:.4e}"])
        return buf.getvalue()

    def to_markdown(self) -> str:
        t = self.total
        measured_sum = sum(l.measured_s or 0.0 for l in self.layers)
        macs = sum(l.macs for l in self.layers) or 1
        lines = [f"# {self.name}: measured forward latency" + (" (deployed graph)" if self.deployed else ""), "",
                 f"{self.device}, batch {self.batch}, {self.threads} thread(s), {self.dtype}"
                 + (", channels-last" if self.channels_last else "") + f", {self.clock} clock"
                 + (", steady heap" if self.steady_heap else "") + f": median {t.median * 1e3:.3f} ms "
                 f"(p10 {t.p10 * 1e3:.3f}, p90 {t.p90 * 1e3:.3f}; {t.runs} runs). Predicted by the roofline "
                 f"at `{self.hardware.name}`: {self.predicted_s * 1e3:.3f} ms ({self.predicted_s / t.median - 1:+.1%}). "
                 f"Per-layer times (profiled) sum to {measured_sum * 1e3:.3f} ms.", "",
                 "## Per op class", "",
                 "| op class | layers | share of MACs | share of bytes | predicted (ms) | measured (ms) | "
                 "share of time |", "|---|---:|---:|---:|---:|---:|---:|"]
        total_bytes = sum(l.bytes for l in self.layers) or 1
        for k, d in sorted(self.by_class().items(), key=lambda kv: -kv[1]["measured_s"]):
            lines.append(f"| {k} | {d['layers']} | {d['macs'] / macs:.1%} | {d['bytes'] / total_bytes:.1%} | "
                         f"{d['predicted_s'] * 1e3:.3f} | {d['measured_s'] * 1e3:.3f} | "
                         f"{d['measured_s'] / (measured_sum or 1):.1%} |")
        ranked = sorted((l for l in self.layers if l.measured_s), key=lambda l: -l.measured_s)[:15]
        lines += ["", "## Slowest layers", "", "| layer | kind | class | share of MACs | predicted (µs) | "
                  "measured (µs) | share of time |", "|---|---|---|---:|---:|---:|---:|"]
        for l in ranked:
            lines.append(f"| {l.name} | {l.kind} | {l.op_class} | {l.macs / macs:.1%} | {l.predicted_s * 1e6:.1f} | "
                         f"{l.measured_s * 1e6:.1f} | {l.measured_s / (measured_sum or 1):.1%} |")
        lines += ["", "Where MACs mislead: compare a class's share of MACs with its share of time.", ""]
        return "\n".join(lines)

    def plot(self, path: Path) -> None:
        """Predicted vs measured time per layer, log-log, one colour per op class."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 6))
        pts = [l for l in self.layers if l.measured_s and l.predicted_s > 0]
        for cls in sorted({l.op_class for l in pts}):
            sel = [l for l in pts if l.op_class == cls]
            ax.scatter([l.predicted_s * 1e6 for l in sel], [l.measured_s * 1e6 for l in sel], s=12, label=cls,
                       alpha=0.75)
        if pts:
            lo = min(min(l.predicted_s, l.measured_s) for l in pts) * 1e6 / 1.5
            hi = max(max(l.predicted_s, l.measured_s) for l in pts) * 1e6 * 1.5
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"predicted (µs, roofline at {self.hardware.name})")
        ax.set_ylabel("measured (µs)")
        ax.set_title(f"{self.name}: per layer, batch {self.batch}, {self.threads} thread(s)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _ranged(spec: ir.Node) -> list[tuple[str, str, ir.Node]]:
    """(module name, report row name, node) of every layer that gets a range."""
    out = []
    for name, node in ir.named(spec):
        t = type(node)
        if t is ir.Op:
            out.append((name, name, node))
        elif t is ir.Parallel:
            out.append((name, f"{name}.{'add' if node.join == 'sum' else 'concat'}", node))
        elif t in _JOIN:
            out.append((name, f"{name}.{_JOIN[t]}", node))
    return out


def _per_layer(net: torch.nn.Module, spec: ir.Node, x: torch.Tensor, runs: int) -> dict[str, float]:
    """Median seconds per report row, from torch.profiler ranges (see the module docstring)."""
    ranged = _ranged(spec)
    stack: list = []
    handles = []
    for mod_name, _, _ in ranged:
        m = net.get_submodule(mod_name)

        def enter(_m, _i, mod_name=mod_name):
            rf = torch.profiler.record_function("archc:" + mod_name)
            rf.__enter__()
            stack.append(rf)

        def leave(_m, _i, _o):
            stack.pop().__exit__(None, None, None)
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # kineto's start/stop lines are not for our users
    try:
        with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                net(x)
    finally:
        for h in handles:
            h.remove()
    times: dict[str, list[float]] = defaultdict(list)
    for ev in prof.events():
        if ev.name.startswith("archc:"):
            times[ev.name[6:]].append(ev.cpu_time_total * 1e-6)
    return _rows(ranged, {k: statistics.median(v) for k, v in times.items()})


def _rows(ranged: list, med: dict[str, float]) -> dict[str, float]:
    """Seconds per report row from median seconds per range: a join is its
    structural module's time less the ranged layers directly inside it."""
    names = [m for m, _, _ in ranged]
    inner: dict[str, float] = defaultdict(float)
    for n in names:
        parent = max((p for p in names if n.startswith(p + ".")), key=len, default=None)
        if parent is not None:
            inner[parent] += med.get(n, 0.0)
    return {row: (med[m] if type(node) is ir.Op else max(med[m] - inner[m], 0.0))
            for m, row, node in ranged if m in med}


def profile(net: torch.nn.Module, spec: ir.Node, report: Report, hardware: Hardware, batch: int = 1,
            dtype: torch.dtype = torch.float32, device: str = "cpu", warmup: int = 5, runs: int = 20,
            layer_runs: int = 5) -> Profile:
    """Measure `net` (built from `spec`) and set its times beside `report`'s predictions."""
    net = net.to(device=device, dtype=dtype).eval()
    x = torch.randn((batch,) + tuple(spec.in_shape), device=device, dtype=dtype)
    clock = "thread" if device == "cpu" and torch.get_num_threads() == 1 else "wall"
    with torch.no_grad():
        total = measure(lambda: net(x), device, warmup=warmup, runs=runs, clock=clock)
    measured = _per_layer(net, spec, x, layer_runs) if device == "cpu" else _per_layer_synced(net, spec, x,
                                                                                             layer_runs)
    layers = [LayerTime(l.name, l.kind, l.op_class, l.macs * batch, l.weight_bytes + l.act_bytes * batch,
                        l.time(hardware, batch), measured.get(l.name)) for l in report.layers]
    predicted = sum(l.predicted_s for l in layers)
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return Profile(report.name, device, batch, torch.get_num_threads(), names.get(dtype, str(dtype)),
                   getattr(net, "channels_last", False), report.deployed, hardware, total, predicted, layers,
                   clock, heap_is_steady())


def _per_layer_synced(net, spec, x, runs: int) -> dict[str, float]:
    """On a GPU: per layer from host timers around each layer, the device synchronized."""
    import time

    device = x.device.type
    ranged = _ranged(spec)
    t: dict[str, list[float]] = defaultdict(list)
    starts: list[float] = []
    handles = []
    for mod_name, _, _ in ranged:
        m = net.get_submodule(mod_name)

        def enter(_m, _i):
            synchronize(device)
            starts.append(time.perf_counter())

        def leave(_m, _i, _o, mod_name=mod_name):
            synchronize(device)
            t[mod_name].append(time.perf_counter() - starts.pop())
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    try:
        with torch.no_grad():
            for _ in range(runs):
                net(x)
    finally:
        for h in handles:
            h.remove()
    return _rows(ranged, {k: statistics.median(v) for k, v in t.items()})
