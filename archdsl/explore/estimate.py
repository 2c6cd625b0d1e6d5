"""A RegNet or AnyNet point as AnyNet's per-stage lists, for `archc scale`'s per-stage rules.

It follows recipes/regnet.arch and recipes/anynet.arch step by step (numpy,
as pycls's regnet_cfg_to_anynet_cfg does). It is the last piece of Python
that knows a bundled family; it goes when scaling rules are declared in the
specs themselves. The search no longer uses a closed form: every sample goes
through the compiler (archdsl.explore.search).
"""
from __future__ import annotations

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
