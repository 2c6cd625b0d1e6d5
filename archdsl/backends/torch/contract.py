"""timm's model contract beyond forward_features/forward_head: the data
config (pretrained_cfg), feature maps per reduction (feature_info,
forward_intermediates, prune_intermediate_layers, features_only), gradient
checkpointing and parameter groups for layer-wise decay.

A network runs as a list of units — the stem's layers (when the stem is a
chain), then each stage — and a unit is a *feature point* when it is the
last at its reduction, as timm indexes most of its models' feature_info. A
feature must be a map: a unit that gives tokens, or several tensors
(parallel streams), is not one. A network whose reference lists its maps by
another rule marks them in its spec with `feature_map` (blocks/features.arch):
then its feature points are exactly the marked values, read at the end of
their unit or, inside one, by a forward hook on the mark's (empty) module.
Pruning (features_only) after a map inside a unit keeps only what runs up to
that mark, and the cut unit gives its input: the network's features are then
the last whole unit's, as timm's HRNet gives its streams once its head goes.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from archdsl.backends.torch.modules import Graph
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


TAP = "feature_map"  # the block (blocks/features.arch) whose calls mark feature maps


def _is_tap(node: ir.Node) -> bool:
    return type(node) is ir.Seq and node.name == TAP


def _ends_with(node: ir.Node, tap: ir.Node) -> bool:
    """Is `tap` the last thing a chain `node` runs (its value the node's output)?"""
    while node is not tap:
        if type(node) is not ir.Seq or node.wiring is not None or not node.children:
            return False
        node = node.children[-1]
    return True


class Read:
    """How forward_intermediates reads one feature map: the output of its
    unit, or of a mark inside it (`tap`, a module name); tokens (C, N, 1) are
    folded back into the (h, w) map they came from, prefix tokens dropped."""

    __slots__ = ("tap", "shape", "tokens")

    def __init__(self, tap: str | None, shape, tokens: tuple[int, int, int] | None):
        self.tap, self.shape, self.tokens = tap, shape, tokens  # tokens: (prefix, h, w)


def _entry(shape, grid, in_shape, module: str) -> tuple[dict, tuple | None] | None:
    """(feature_info entry, tokens -> map) for a value of `shape` last seen as a map on `grid`;
    None when it is no map (several tensors, or tokens of no known grid)."""
    tokens = None
    if _is_map(shape, in_shape):
        grid = shape[1:]
    elif ir.is_multi(shape) or len(shape) != 3 or grid is None or shape[1] < grid[0] * grid[1]:
        return None
    else:
        tokens = (shape[1] - grid[0] * grid[1], grid[0], grid[1])
    r = 2 ** round(math.log2(in_shape[1] / grid[0]))  # nominal, as timm states it
    return dict(num_chs=shape[0], reduction=r, module=module), tokens


def feature_points(units: list[Unit], in_shape) -> list[tuple[int, dict, Read]]:
    """(unit index, feature_info entry, how to read it) per feature point:
    the values the spec marks with feature_map when it marks any; else the
    last unit at each reduction, or every block when the network is isotropic
    (its units split into blocks: timm indexes ViTs so)."""
    marks = [[(n, t) for n, t in ir.named(u.node, u.name) if _is_tap(t)]
             if any(_is_tap(n) for n in ir.walk(u.node)) else [] for u in units]  # names only where needed
    facts, grid, points = [], None, []
    for i, u in enumerate(units):
        shape = u.node.out_shape
        grid = shape[1:] if _is_map(shape, in_shape) else _grid(u.node, in_shape) or grid
        for name, tap in marks[i]:  # a mark inside a unit: the unit's grid is the best known
            inside = not _ends_with(u.node, tap)
            got = _entry(tap.in_shape, grid, in_shape, name if inside else u.name)
            if got is not None:
                points.append((i, got[0], Read(name if inside else None, tap.in_shape, got[1])))
        got = _entry(shape, grid, in_shape, u.name)
        facts.append(None if got is None else (got[0], Read(None, shape, got[1])))
    if any(marks):
        return points
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


def _with_last(seq: ir.Seq, child: ir.Node) -> ir.Seq:
    """A chain with its last child replaced."""
    return replace(seq, children=[*seq.children[:-1], child], out_shape=child.out_shape)


def _child_names(seq: ir.Seq, prefix: str) -> list[str]:
    """The module names of a sequence's children, as ir.named gives them."""
    dot = (prefix + "." if prefix else "") + ("blocks." if seq.role == "stage" else "")
    return [dot + str(i) for i in range(len(seq.children))]


def cut_after(seq: ir.Seq, prefix: str, tap: str) -> ir.Seq:
    """The part of `seq` (named `prefix`) that runs up to the mark named
    `tap` inside it, giving its input: the children after the one holding
    the mark go, and that one is cut alike when it is a sequence (a residual,
    sum, split or gate holding it stays whole). Children keep their indices,
    so their module names (and weights) stay."""
    names = _child_names(seq, prefix)
    k = next(i for i, n in enumerate(names) if tap == n or tap.startswith(n + "."))
    kids = list(seq.children[:k + 1])
    if type(kids[k]) is ir.Seq and names[k] != tap:
        kids[k] = cut_after(kids[k], names[k], tap)
    w = seq.wiring or ir.chain_wiring(seq)
    wiring = ir.Wiring(list(w.inputs[:k + 1]), w.n_inputs, tuple(range(w.n_inputs)))
    ranks = None if seq.ranks is None else seq.ranks[:k + 1]
    return ir.Seq(seq.in_shape, seq.in_shape, seq.loc, seq.path, kids, seq.role, seq.name, wiring, ranks)


def _cut_module(module: nn.Module, seq: ir.Seq, cut: ir.Seq) -> Graph:
    """`module` (the lowering of `seq`) as `cut` (cut_after's) runs it: its kept children, in a Graph."""
    kids = [module.get_submodule(str(i)) for i in range(len(cut.children))]
    k = len(kids) - 1
    if cut.children[k] is not seq.children[k]:  # cut in turn
        kids[k] = _cut_module(kids[k], seq.children[k], cut.children[k])
    w = cut.wiring
    return Graph(kids, w.inputs, [len(ir.shapes(c.out_shape)) for c in cut.children], w.n_inputs, w.outputs,
                 cut.registered())


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
        (feature_info's indexing), in the order they run, and, unless
        intermediates_only, the final features. norm=True applies the final
        norm (the head's layers before its pool, when they keep the shape) to
        every map it fits, as timm does: the last (EfficientFormer), or every
        block's (ViT); a network without one is unchanged."""
        if output_fmt != "NCHW":
            raise ValueError("archdsl networks give feature maps as NCHW only")
        points = self._points
        take = sorted(set(resolve_indices(len(points), indices)))
        by_unit: dict[int, list[int]] = {}
        for k in take:
            by_unit.setdefault(points[k][0], []).append(k)
        last = max(by_unit) if by_unit else -1
        normed = self._final_norm_input() if norm else None
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out, seen = [], {}
        hooks = [self.get_submodule(points[k][2].tap).register_forward_hook(
                 lambda m, args, y, k=k: seen.__setitem__(k, y)) for k in take if points[k][2].tap is not None]
        units = self._units()
        # Stopping early at a map inside a unit that gives later maps not asked for: the
        # features are the unit's input, the last whole unit's output (timm's HRNet: its streams).
        final = max(take) if take else None
        inside = stop_early and final is not None and points[final][2].tap is not None and any(
            p[0] == points[final][0] for p in points[final + 1:])
        ran_all = True
        try:
            for i, (_, module) in enumerate(units):
                before, x = x, module(x)
                for k in by_unit.get(i, ()):
                    read = points[k][2]
                    out.append(self._as_map(x if read.tap is None else seen.pop(k), read, normed))
                if i == last and inside:
                    x, ran_all = before, False
                    break
                if i == last and (intermediates_only or stop_early) and i < len(units) - 1:
                    ran_all = False
                    break
        finally:
            for h in hooks:
                h.remove()
        if intermediates_only:
            return out
        return (self._head_features(x) if ran_all else x), out

    def _final_norm_input(self):
        """The shape the network's final norm takes (the head's layers before
        its pool, when they keep the shape); None when it has none."""
        head = self.spec.children[2]
        pre = head.children[:self._pool_at]
        return head.in_shape if pre and all(c.in_shape == c.out_shape for c in pre) else None

    def _as_map(self, y: torch.Tensor, read: Read, normed) -> torch.Tensor:
        if normed is not None and tuple(read.shape) == tuple(normed):
            y = self._head_features(y)
        if read.tokens is None:
            return y
        # tokens (N, C, prefix + h * w, 1) -> the map (N, C, h, w), prefix tokens dropped
        prefix, h, w = read.tokens
        return y[:, :, prefix:, 0].reshape(y.shape[0], y.shape[1], h, w)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the units after the last feature map `indices` names (and the
        head: classifier, pool, and the layers before the pool unless they are
        a final norm and not prune_norm); returns the indices kept, as timm
        does. A map inside its unit (a mark) cuts the unit after it too
        (cut_after), with the head. The module's spec is cut alike (deploy still works)."""
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
        tap = points[max(take)][2].tap
        if tap is not None and prune_head and type(last.node) is ir.Seq:
            stem, kept = self._cut_unit(last, tap, stem, kept)
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

    def _cut_unit(self, unit: Unit, tap: str, stem: ir.Seq, kept: list[ir.Seq]) -> tuple[ir.Seq, list[ir.Seq]]:
        """Cut the last unit left after the mark `tap` (cut_after), module and
        spec; returns the stem's and the kept stages' specs."""
        if unit.stage is None and unit.name == "stem":  # the stem as one unit (a graph)
            cut = cut_after(stem, unit.name, tap)
            self.stem = _cut_module(self.stem, stem, cut)
            return cut, kept
        if unit.stage is None:  # the stem's last layer left
            node = stem.children[-1]
            cut = cut_after(node, unit.name, tap)
            self.stem[len(stem.children) - 1] = _cut_module(self.stem[len(stem.children) - 1], node, cut)
            return _with_last(stem, cut), kept
        st = self.stages[unit.stage]
        if unit.block is None:
            cut = cut_after(kept[-1], unit.name, tap)
            st.blocks = _cut_module(st.blocks, kept[-1], cut)
        else:  # a stage's last block left (an isotropic network)
            node = kept[-1].children[-1]
            block = cut_after(node, unit.name, tap)
            st.blocks[len(kept[-1].children) - 1] = _cut_module(st.blocks[len(kept[-1].children) - 1], node, block)
            cut = _with_last(kept[-1], block)
        return stem, [*kept[:-1], cut]

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
