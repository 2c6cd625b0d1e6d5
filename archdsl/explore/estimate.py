"""Closed-form costs of many RegNet / AnyNet points at once (numpy), before anything is built.

`archc search` rejects most samples of a design space on their MACs, params,
activations or stage count; elaborating each (~2 ms) would make 100,000
samples take minutes. For the recipes whose structure is simple enough —
regnet.arch and anynet.arch: a 3x3 stem, stages of regnet_bottleneck
blocks, a linear head — these functions compute the same totals the cost
model reports, vectorized over samples, following the recipes step by step
(tests/test_search.py checks equality against elaboration). They only
pre-filter: every point the search keeps is elaborated and checked exactly.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Params = dict[str, np.ndarray]  # each value: shape (N,) (scalars) or (N, S) (per-stage lists)


def _col(p: Params, k: str, n: int, dtype=float) -> np.ndarray:
    """A parameter as an (N, 1) column."""
    return np.broadcast_to(np.asarray(p[k], dtype=dtype).reshape(-1), (n,)).reshape(n, 1)


def _regnet_blocks(p: Params, n: int):
    """Per-block raw width, bottleneck, group width, stage start, validity (recipes/regnet.arch)."""
    depth = np.broadcast_to(np.asarray(p["depth"]).reshape(-1), (n,)).astype(np.int64)
    j = np.arange(max(int(depth.max(initial=0)), 1))
    w0, wa, wm = _col(p, "w0", n), _col(p, "wa", n), _col(p, "wm", n)
    with np.errstate(all="ignore"):
        # exps = [round(log((w0 + wa * j) / w0) / log(wm)) ...]; widths = [quantize(w0 * wm ** k, 8) ...]
        k = np.round(np.log((w0 + wa * j) / w0) / np.log(wm))
        w = np.round(w0 * wm ** k / 8) * 8
    valid = j < depth[:, None]
    start = valid & np.concatenate([np.ones((n, 1), bool), w[:, 1:] != w[:, :-1]], axis=1)
    return w, _col(p, "bottleneck", n), _col(p, "group_w", n), start, valid


def _anynet_blocks(p: Params, n: int):
    """The same for explicit per-stage lists (recipes/anynet.arch)."""
    def lists(k):
        a = np.asarray(p[k], dtype=float)
        return np.broadcast_to(a if a.ndim == 2 else a.reshape(1, -1), (n, a.shape[-1]))

    d, w, b, g = lists("depths").astype(np.int64), lists("widths"), lists("bottlenecks"), lists("group_ws")
    s = min(d.shape[1], w.shape[1], b.shape[1], g.shape[1])  # zip() stops at the shortest
    d, w, b, g = d[:, :s], w[:, :s], b[:, :s], g[:, :s]
    ends = d.cumsum(1)
    j = np.arange(max(int(ends[:, -1].max(initial=0)), 1))
    stage = (j[None, :, None] >= ends[:, None, :]).sum(-1)  # the stage each block is in
    valid = stage < s
    si = np.minimum(stage, s - 1)
    rows = np.arange(n)[:, None]
    start = valid & (j[None, :] == (ends - d)[rows, si])
    return w[rows, si], b[rows, si], g[rows, si], start, valid


def _compatible(w_raw, b, gw):
    """Stage widths and group widths made compatible, as both recipes do (pycls's rule)."""
    with np.errstate(all="ignore"):
        inner0 = np.trunc(w_raw * b)
        g = np.minimum(gw, inner0)
        width = np.trunc(np.round(inner0 / g) * g / b)
    return width.astype(np.int64), g.astype(np.int64)


def _xblock_costs(p: Params, n: int, w_raw, b, gw, start, valid) -> dict[str, np.ndarray]:
    """Totals of stem + regnet_bottleneck blocks (blocks/regnet.arch) + head."""
    i64 = np.int64
    with np.errstate(all="ignore"):
        ok = np.where(valid, np.isfinite(w_raw) & (w_raw > 0), True).all(1)
        w_raw = np.where(valid & np.isfinite(w_raw), w_raw, 8)
    width, g = _compatible(w_raw, b, gw)
    # Inside the block: inner width, groups, and the 3x3's inputs per output.
    inner = np.round(width * b).astype(i64)
    per_out = inner // np.maximum(inner // np.maximum(g, 1), 1) * 9
    stem = _col(p, "stem_width", n).astype(i64)
    w_in = np.concatenate([stem, width[:, :-1]], axis=1)
    res = _col(p, "res", n).astype(i64)
    h0 = (res - 1) // 2 + 1  # after the 3x3 stride-2 stem
    stage = np.cumsum(start, axis=1) - 1
    h_out = -(-h0 // (2 ** (stage + 1)))  # each stage halves: ceil(h / 2)
    h_in = np.where(start, -(-h0 // (2 ** np.maximum(stage, 0))), h_out)
    a_in, a_out = h_in * h_in, h_out * h_out
    short = start | (w_in != width)
    se = _col(p, "se", n)
    se_w = np.where(se > 0, np.round(w_in * se), 0).astype(i64)

    macs = w_in * inner * a_in + per_out * inner * a_out + inner * width * a_out \
        + short * w_in * width * a_out + 2 * se_w * inner
    params = w_in * inner + per_out * inner + inner * width + 2 * inner + 2 * inner + 2 * width \
        + short * (w_in * width + 2 * width) + (se_w > 0) * (2 * se_w * inner + se_w + inner)
    acts = inner * a_in + inner * a_out + width * a_out + short * width * a_out + (se_w > 0) * (se_w + inner)

    def total(x):
        return np.where(valid, x, 0).sum(1)

    nblocks = valid.sum(1)
    last = np.where(nblocks > 0, width[np.arange(n), np.maximum(nblocks - 1, 0)], stem[:, 0])
    classes = _col(p, "classes", n).astype(i64)[:, 0]
    s0, a0 = stem[:, 0], (h0 * h0)[:, 0]
    return {
        "ok": ok,
        "stages": start.sum(1),
        "macs": total(macs) + 27 * s0 * a0 + last * classes,
        "params": total(params) + 27 * s0 + 2 * s0 + last * classes + classes,
        "activations": total(acts) + s0 * a0 + classes,
        # For de-duplicating: the blocks a point builds (width, group width, stage starts).
        "_width": np.where(valid, width, 0), "_g": np.where(valid, g, 0), "_start": start,
    }


def regnet(p: Params, n: int) -> dict[str, np.ndarray]:
    return _xblock_costs(p, n, *_regnet_blocks(p, n))


def anynet(p: Params, n: int) -> dict[str, np.ndarray]:
    return _xblock_costs(p, n, *_anynet_blocks(p, n))


def stage_lists(network: str, params: dict) -> dict[str, list]:
    """One RegNet/AnyNet point as AnyNet's per-stage lists (pycls's regnet_cfg_to_anynet_cfg)."""
    p = {k: np.asarray([v]) for k, v in params.items()}
    w_raw, b, gw, start, valid = (_regnet_blocks if network == "regnet" else _anynet_blocks)(p, 1)
    b, gw = np.broadcast_to(b, w_raw.shape), np.broadcast_to(gw, w_raw.shape)
    width, g = _compatible(w_raw, b, gw)
    starts = np.flatnonzero(start[0]).tolist()
    ends = starts[1:] + [int(valid[0].sum())]
    return {"depths": [e - s for s, e in zip(starts, ends)], "widths": [int(width[0, s]) for s in starts],
            "group_ws": [int(g[0, s]) for s in starts], "bottlenecks": [float(b[0, s]) for s in starts]}


# network name -> estimator; the search uses one only when its network is listed here.
ESTIMATORS: dict[str, Callable[[Params, int], dict[str, np.ndarray]]] = {"regnet": regnet, "anynet": anynet}
NEEDS = {"regnet": ("depth", "w0", "wa", "wm", "group_w", "bottleneck", "se", "res", "classes", "stem_width"),
         "anynet": ("depths", "widths", "group_ws", "bottlenecks", "se", "res", "classes", "stem_width")}


def structure_key(est: dict[str, np.ndarray], i: int, extra: tuple = ()) -> tuple:
    """What point i builds (its blocks, plus `extra`: the other sampled values); equal keys, equal networks."""
    return (tuple(est["_width"][i].tolist()), tuple(est["_g"][i].tolist()),
            tuple(np.flatnonzero(est["_start"][i]).tolist())) + extra


# The parameters an estimate's block structure already accounts for.
SHAPE_PARAMS = {"regnet": {"depth", "w0", "wa", "wm", "group_w"}, "anynet": {"depths", "widths", "group_ws"}}
