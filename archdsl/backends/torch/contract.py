"""timm's model contract beyond forward_features/forward_head: the data
config (pretrained_cfg), feature maps per reduction (feature_info,
forward_intermediates, prune_intermediate_layers, features_only), gradient
checkpointing and parameter groups for layer-wise decay.

A network runs as a list of units — the stem's layers (when the stem is a
chain), then each stage — and a unit is a *feature point* when it is the
last at its reduction, as timm indexes its models' feature_info. A feature
must be a map: a unit that gives tokens, or several tensors (parallel
streams), is not one.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from archdsl.compiler import ir
from archdsl.ops import REGISTRY

# timm's defaults for ImageNet models (timm.data.constants), when a config gives none.
DEFAULT_DATA = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=0.875,
                    crop_mode="center", interpolation="bicubic")


class FeatureError(ValueError):
    """Feature maps asked for that the network does not give (an index out of range; no map at all)."""


class FeatureInfo(list):
    """feature_info as timm's models give it: a list of dicts (num_chs,
    reduction, module), one per feature point, with timm's accessors over
    the points a features-only network returns (`out_indices`)."""

    def __init__(self, entries: list[dict], out_indices: list[int] | None = None):
        super().__init__(entries)
        self.out_indices = list(range(len(entries))) if out_indices is None else list(out_indices)

    def get(self, key: str, idx: int | list[int] | None = None):
        if idx is None:
            return [self[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self[i][key] for i in idx]
        return self[idx][key]

    def get_dicts(self, keys: list[str] | None = None, idx: int | list[int] | None = None):
        pick = self.out_indices if idx is None else ([idx] if isinstance(idx, int) else list(idx))
        out = [dict(self[i]) if keys is None else {k: self[i][k] for k in keys} for i in pick]
        return out[0] if isinstance(idx, int) else out

    def channels(self, idx=None):
        return self.get("num_chs", idx)

    def reduction(self, idx=None):
        return self.get("reduction", idx)

    def module_name(self, idx=None):
        return self.get("module", idx)


def resolve_indices(n: int, indices: int | list[int] | tuple[int, ...] | None) -> list[int]:
    """timm's `indices` argument: None: all n; an int k: the last k; a list:
    those (negative ones from the end)."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise FeatureError(f"indices={indices}: the network has {n} feature maps")
        return list(range(n - indices, n))
    out = []
    for i in indices:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise FeatureError(f"feature index {i} is out of range: the network has {n} feature maps")
        out.append(j)
    return out


def _is_map(shape, in_shape) -> bool:
    """One (C, H, W) map, not tokens ((C, N, 1) of an input wider than 1) nor several tensors."""
    return not ir.is_multi(shape) and len(shape) == 3 and not (shape[2] == 1 and in_shape[2] > 1)


def _grid(node: ir.Node, in_shape) -> tuple[int, int] | None:
    """(h, w) of the last map an op inside `node` gives: the grid its tokens were flattened from."""
    grid = None
    for op in ir.ops(node):
        if _is_map(op.out_shape, in_shape):
            grid = op.out_shape[1:]
    return grid


class Unit:
    """A piece forward_features runs before the head: a stem layer (the
    stem when it is a graph), a stage, or a stage's block (isotropic networks)."""

    __slots__ = ("name", "node", "stage", "block")

    def __init__(self, name: str, node: ir.Node, stage: int | None = None, block: int | None = None):
        self.name, self.node, self.stage, self.block = name, node, stage, block


def units_of(spec: ir.Seq, stem_is_chain: bool, stages_split: list[bool]) -> list[Unit]:
    stem, stages, _ = spec.children
    out = ([Unit(f"stem.{i}", c) for i, c in enumerate(stem.children)] if stem_is_chain
           else [Unit("stem", stem)] if stem.children else [])
    for i, s in enumerate(stages.children):
        if stages_split[i]:
            out += [Unit(f"stages.{i}.blocks.{j}", b, i, j) for j, b in enumerate(s.children)]
        else:
            out.append(Unit(f"stages.{i}", s, i))
    return out


def feature_points(units: list[Unit], in_shape) -> list[tuple[int, dict, tuple | None]]:
    """(unit index, feature_info entry, tokens -> map: (prefix tokens, h, w) or None) per
    feature point: the last unit at each reduction; every block when the
    network is isotropic (its units split into blocks: timm indexes ViTs so)."""
    facts, grid = [], None
    for u in units:
        shape, to_map = u.node.out_shape, None
        if _is_map(shape, in_shape):
            grid = shape[1:]
        else:
            grid = _grid(u.node, in_shape) or grid
            if ir.is_multi(shape) or len(shape) != 3 or grid is None or shape[1] < grid[0] * grid[1]:
                facts.append(None)
                continue
            to_map = (shape[1] - grid[0] * grid[1], grid[0], grid[1])
        r = 2 ** round(math.log2(in_shape[1] / grid[0]))  # nominal, as timm states it
        facts.append((dict(num_chs=shape[0], reduction=r, module=u.name), to_map))
    points = []
    for i, f in enumerate(facts):
        if f is None:
            continue
        nxt = next((g for g in facts[i + 1:] if g is not None), None)
        if units[i].block is not None or nxt is None or nxt[0]["reduction"] != f[0]["reduction"]:
            points.append((i, f[0], f[1]))
    return points


def isotropic(spec: ir.Seq) -> bool:
    """Do all stages keep the stem's grid (a ViT: one reduction throughout)?"""
    stem, stages, _ = spec.children
    if not stages.children or not stem.children:
        return False
    first = _grid(stem, spec.in_shape)
    return first is not None and all(_grid(s, spec.in_shape) in (None, first) for s in stages.children)


def _cut(seq: ir.Seq, n: int) -> ir.Seq:
    """A chain's first n children."""
    return ir.Seq(seq.in_shape, seq.children[n - 1].out_shape, seq.loc, seq.path, seq.children[:n], seq.role,
                  seq.name)


class TimmContract:
    """Mixed into Network (lower.py): needs `stem`, `stages`, `head` and
    `spec`, and keeps `_data` (the data config) and `grad_checkpointing`."""

    # ------------------------------------------------------------ data config
    @property
    def pretrained_cfg(self) -> dict:
        cfg = dict(DEFAULT_DATA, **self._data)
        spec = self.spec
        pre = self.feature_info[-1]["reduction"] if self.feature_info else 1
        first = next((n for n, node in ir.named(spec) if isinstance(node, ir.Op) and node.in_shape == spec.in_shape
                      and REGISTRY[node.kind].cost(node.attrs, node.in_shape, node.out_shape).params), None)
        cls = self._classifier_name()
        cfg.update(input_size=tuple(spec.in_shape), fixed_input_size=False, num_classes=self.num_classes,
                   pool_size=(max(1, spec.in_shape[1] // pre), max(1, spec.in_shape[2] // pre)),
                   first_conv=first, classifier=cls)
        cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
        return cfg

    @pretrained_cfg.setter
    def pretrained_cfg(self, value: dict) -> None:  # timm's helpers may set it; data keys are kept
        self._data = {k: v for k, v in dict(value or {}).items() if k in DEFAULT_DATA or k in (
            "architecture", "tag", "reference", "hf_hub_id", "license")}

    default_cfg = pretrained_cfg

    # ------------------------------------------------------------ features
    def _read_units(self) -> None:
        """The units and feature points of the module as built (or pruned)."""
        split = isotropic(self.spec)
        self._split = [split and isinstance(st.blocks, nn.Sequential) for st in self.stages]
        self._unit_list = units_of(self.spec, isinstance(self.stem, nn.Sequential), self._split)
        self._points = feature_points(self._unit_list, self.spec.in_shape)

    def _units(self) -> list[tuple[str, nn.Module]]:
        """(module name, module) per unit, in the order forward_features runs them."""
        out = []
        for u in self._unit_list:
            if u.stage is None:
                out.append((u.name, self.stem if u.name == "stem" else self.stem[int(u.name.split(".")[1])]))
            elif u.block is None:
                out.append((u.name, self.stages[u.stage]))
            else:
                out.append((u.name, self.stages[u.stage].blocks[u.block]))
        return out

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """timm 1.0's forward_intermediates: the feature maps at `indices`
        (feature_info's indexing) and, unless intermediates_only, the final
        features. `norm` has no effect: an archdsl network's features end
        with its last stage, as its feature maps do."""
        if output_fmt != "NCHW":
            raise ValueError("archdsl networks give feature maps as NCHW only")
        points = self._points
        take = resolve_indices(len(points), indices)
        wanted = {points[i][0]: points[i][2] for i in take}  # unit -> tokens to map, or None
        last = max(wanted) if wanted else -1
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = []
        units = self._units()
        ran_all = True
        for i, (_, module) in enumerate(units):
            x = module(x)
            if i in wanted:
                to_map = wanted[i]
                # tokens (N, C, prefix + h * w, 1) -> the map (N, C, h, w), prefix tokens dropped
                out.append(x if to_map is None else x[:, :, to_map[0]:, 0].reshape(
                    x.shape[0], x.shape[1], to_map[1], to_map[2]))
            if i == last and (intermediates_only or stop_early) and i < len(units) - 1:
                ran_all = False
                break
        if intermediates_only:
            return out
        return (self._head_features(x) if ran_all else x), out

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the units after the last feature map `indices` names (and the
        head: classifier, pool, and the layers before the pool unless they are
        a final norm and not prune_norm); returns the indices kept, as timm
        does. The module's spec is cut alike (deploy still works)."""
        points = self._points
        take = resolve_indices(len(points), indices)
        keep = max(points[i][0] for i in take) + 1
        if keep < len(self._unit_list) and not prune_head:
            raise ValueError("pruning layers leaves the head without its input: use prune_head=True")
        last = self._unit_list[keep - 1]
        stem, stages, head = self.spec.children
        kept = []
        if last.stage is None:  # a cut inside the stem (a chain): its later layers go, and every stage
            if last.name != "stem":
                self.stem = nn.Sequential(*list(self.stem)[:keep])
                stem = _cut(stem, keep)
            self.stages = nn.Sequential()
        else:
            self.stages = self.stages[:last.stage + 1]
            kept = stages.children[:last.stage + 1]
            if last.block is not None:  # inside a stage: its later blocks go
                st = self.stages[last.stage]
                st.blocks = st.blocks[:last.block + 1]
                kept[-1] = _cut(kept[-1], last.block + 1)
        out = kept[-1].out_shape if kept else stem.out_shape
        stages = ir.Seq(stem.out_shape, out, stages.loc, stages.path, kept, stages.role)
        if prune_head:
            # timm keeps a final norm unless prune_norm: so do the head's layers before its pool
            # when they keep the shape (a norm) and still fit; anything else there goes
            pre = head.children[:self._pool_at]
            if prune_norm or not pre or head.in_shape != out or any(c.in_shape != c.out_shape for c in pre):
                pre = []
            head = ir.Seq(out, out, head.loc, head.path, pre, head.role)
            self.head = nn.Sequential(*list(self.head)[:len(pre)])
        self.spec = ir.Seq(self.spec.in_shape, head.out_shape, self.spec.loc, self.spec.path,
                           [stem, stages, head], self.spec.role, self.spec.name)
        self._read_head()
        self._read_units()
        n = len(self._points)
        self.feature_info = FeatureInfo([e for _, e, _ in self._points],
                                        [i for i in self.feature_info.out_indices if i < n])
        return take

    def make_features_only(self, out_indices: list[int] | tuple[int, ...] | None = None) -> None:
        """timm's features_only, in place: forward returns the feature maps at
        out_indices (None: all); the layers after the last one and the head go."""
        if not self._points:
            raise FeatureError("the network gives no feature map (its stages give tokens or several tensors)")
        indices = resolve_indices(len(self._points), out_indices)
        self.prune_intermediate_layers(indices)
        self.feature_info.out_indices = indices
        self.features_only = True

    # ------------------------------------------------------------ training
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them."""
        self.grad_checkpointing = enable

    def _run_stages(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and torch.is_grad_enabled()):
            return self.stages(x)
        for stage in self.stages:
            blocks = stage.blocks if isinstance(stage.blocks, nn.Sequential) else [stage]
            for b in blocks:
                x = checkpoint(b, x, use_reentrant=False)
        return x

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise decay: the stem, each block
        (each stage when coarse), then the head (unmatched: timm's last group)."""
        return dict(stem=r"^stem\.", blocks=r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.blocks\.(\d+)")

    @property
    def head_hidden_size(self) -> int:
        """Width of the features the classifier takes (pre_logits')."""
        i = self._classifier_at
        return self.spec.children[2].children[i].in_shape[0] if i is not None else self.num_features
