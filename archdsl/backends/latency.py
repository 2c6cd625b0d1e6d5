"""The calibrated roofline: the seconds of one layer on a machine that
`archc calibrate` measured (cost.Hardware with efficiencies; the cost report's
Layer.time and Part.times call it, so a report and a sweep agree).

    time = max(MACs / (peak · e) · (1 + (p / pixels)²), (bytes - weights) / (bw(bytes) · m)) · a
           + weights / w + overhead

bw(bytes): the machine's copy bandwidth when `bytes` are moved, read from its
measured curve (caches hold a small layer's tensors: a few MB move several
times faster than a stream from memory), or mem_bw without one. e, m, p, w and
overhead are those of the layer's op class (cost.OP_CLASSES): e the share of
peak MAC/s its kernels reach; m the share of bw; p the output pixels per
image (H·W; tokens) at which its kernels compute at half their speed on
large maps: small maps run far below peak on CPUs, and squared as measured
(oneDNN's 1x1 convs, one thread of an EPYC: 3.3 GMAC/s on 2x2 maps, 20 on
4x4, 31 on 7x7, 40 on large ones, at batch 1 and 8 alike; a 1x1 map, as
in squeeze-excite, is a matrix product: 9 GMAC/s); w the bytes/s at which
its kernels read and prepare their weights on every call, whatever the batch,
apart from the activations (oneDNN reorders a 3x3 conv's weights into its
blocked layout, at 3-5 GB/s on one EPYC thread: 3 ms of a 512-channel 3x3
conv's 3.1 ms on a 2x2 map, at batch 1 and 8 alike; a weight-standardized
conv standardizes them first); a class without w (a preset of an earlier
`archc calibrate`) keeps its weights in `bytes`; a the class's slowdown
when the layer's vector channels (cost.vector_channels: a depthwise conv's
channels, a group's input channels) are not a multiple of the class's
channel alignment, 1 when they are (oneDNN's depthwise convs on one EPYC
thread with AVX-512: 2.5x as long per element on 24, 40 or 56 channels as on
16, 32 or 48; grouped convs of 12 or 20 channels a group, 2.7x those of 16).
overhead: the seconds a layer costs whatever its size (module call,
dispatch, launch).
"""
from __future__ import annotations

import math

# Classes whose kernels are others on channels-last tensors, measured so (one
# EPYC or Xeon thread, oneDNN and ATen): 1x1 convs run 5x faster there on 2x2
# maps, depthwise convs 1.3-4x; exp/erf activations (GELU) 1.5-2x slower.
# Such a layer takes the `_cl` class (cost.channels_last_class).
CHANNELS_LAST_CLASSES = {"conv1x1": "conv1x1_cl", "depthwise": "depthwise_cl", "smooth_act": "smooth_act_cl"}
# ...and among the norms, by kind: the layer norm over channels runs 1.6-8x
# faster channels-last, ConvNeXt V2's GRN, whose statistics are over each
# channel's pixels, 1.5-4.7x slower (the other norms: unmeasured so, as plain)
CHANNELS_LAST_KINDS = {"norm": {"layer_norm": "norm_cl", "grn": "spatial_norm_cl"}}
# Each channels-last class with the plain class it is a variant of: a preset
# measured before it existed predicts its layers with that class's figures.
PLAIN_OF = {**{cl: plain for plain, cl in CHANNELS_LAST_CLASSES.items()},
            **{cl: plain for plain, kinds in CHANNELS_LAST_KINDS.items() for cl in kinds.values()}}


def pixels(shape) -> int:
    """Output positions per image and channel: H·W of (C, H, W), the rest of other layouts."""
    s = shape if type(shape[0]) is int else shape[0]
    n = 1
    for d in s[1:]:
        n *= d
    return max(n, 1)


def small_map(p: float, px: int) -> float:
    """How many times longer a kernel computes on `px` output pixels than on a
    large map, p its class's half-speed pixels; a 1x1 map runs as a matrix
    product (oneDNN's inner product), at its own speed."""
    return 1 + (p / px) ** 2 if px > 1 else 1.0


def bandwidth_at(moved: float, curve: tuple, default: float) -> float:
    """Bytes/s when `moved` bytes are moved: `curve` ((bytes, bytes/s), ...
    by size) interpolated in log(bytes), its ends held beyond it."""
    if not curve:
        return default
    if moved <= curve[0][0]:
        return curve[0][1]
    for (s0, b0), (s1, b1) in zip(curve, curve[1:]):
        if moved <= s1:
            return b0 + (b1 - b0) * math.log(moved / s0) / math.log(s1 / s0)
    return curve[-1][1]


def machine(peak: float, bw: float, efficiency: dict, mem_efficiency: dict, overhead: dict,
            half_pixels: dict, bw_curve=(), weight_bw: dict | None = None, channel_align: dict | None = None,
            misaligned: dict | None = None) -> tuple:
    """What seconds() takes (absent classes: e = 1, m = e, p = 0, no weight
    preparation, a = 1, overhead 0; a channels-last class absent from a
    calibrated machine, as from presets measured before it existed: its plain
    class's figures)."""
    figures = [efficiency, mem_efficiency, overhead, half_pixels, weight_bw or {}, channel_align or {}, misaligned or {}]
    if efficiency:
        figures = [_with_plain(d, efficiency) for d in figures]
    eff, mem, over, half, wbw, align, slow = figures
    return peak, bw, eff, mem, over, half, tuple(sorted(bw_curve)), wbw, align, slow


def _with_plain(figures: dict, efficiency: dict) -> dict:
    """`figures` with each channels-last class the machine was not measured
    for given its plain class's figure."""
    missing = [(cl, plain) for cl, plain in PLAIN_OF.items() if cl not in efficiency and plain in figures]
    return {**figures, **{cl: figures[plain] for cl, plain in missing}} if missing else figures


def seconds(macs: float, moved: float, op_class: str, out_shape, m: tuple, weights: float = 0.0,
            vector_channels: int = 0) -> float:
    """One layer's seconds (`macs` and `moved`: the batch's; `weights`: its
    weight bytes, part of `moved`; `vector_channels`: cost.vector_channels; see
    the module docstring); a layer that does nothing (identity: no MACs, no
    bytes) runs no kernel and costs nothing."""
    if not macs and not moved:
        return 0.0
    peak, bw, eff, mem, over, half, curve, wbw, align, slow = m
    e = eff.get(op_class, 1.0)
    compute = macs / (peak * e)
    p = half.get(op_class)
    if p:
        compute *= small_map(p, pixels(out_shape))
    w = wbw.get(op_class)
    acts, prepare = (moved - weights, weights / w) if w else (moved, 0.0)
    kernel = max(compute, acts / (bandwidth_at(moved, curve, bw) * mem.get(op_class, e)))
    a = align.get(op_class)
    if a and vector_channels % a:
        kernel *= slow.get(op_class, 1.0)
    return kernel + prepare + over.get(op_class, 0.0)
