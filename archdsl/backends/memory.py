"""Memory a network needs, read from the IR: inference's peak of live
activations (a liveness analysis) and training's memory per batch size.

Convention (also written into every memory report):
- inference peak: the most bytes of activation tensors alive at once during
  one forward pass of the built module without autograd (torch.no_grad), at
  layer boundaries: the input image (its caller holds it) and every value
  some later layer still reads, plus the output of the layer that just ran.
  A tensor's bytes count once however many views of it there are; layers
  that run in place (activations after a tensor no one else reads, the
  residual add) and views (chunk, transpose, flatten of a contiguous tensor)
  add nothing. Temporaries inside one layer (oneDNN scratch, attention
  scores) and weights are not counted.
- training memory per batch: weights and buffers, one gradient per weight,
  the optimizer's state (SGD with momentum: one tensor per weight; AdamW:
  two), and the tensors autograd saves for the backward pass in train mode:
  each distinct tensor once, weights and buffers left out (they are counted
  as weights). Gradients of activations during the backward pass, and the
  allocator's slack, are not counted. All at the report's dtype (max
  pooling's indices are int64; dropout keeps its scaled mask at the dtype,
  as torch's CPU kernel does).
- the largest batch that fits a budget: the largest B with
  weights + grads + optimizer state + saved tensors(B) <= budget.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from archdsl.compiler import ir
from archdsl.ops import REGISTRY, LowerContext
from archdsl.ops.conv import _same_is_symmetric
from archdsl.ops.registry import hw

CONVENTION = __doc__.split("Convention (also written into every memory report):\n", 1)[1].strip()
OPTIMIZERS = {"sgd": 1, "adamw": 2}  # state tensors per weight (SGD with momentum; AdamW's two moments)
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}

# Layouts of a tensor: contiguous, dense in another order (a permuted tensor,
# channels-last), or a strided view (a slice, a transpose): what decides
# whether a reshape is a view or a copy.
CONTIG, PERMUTED, STRIDED = "c", "p", "s"


@dataclass
class Tensor:
    sid: int  # storage id: views share it
    layout: str = CONTIG
    grad: bool = False  # does autograd track it (it depends on a weight)?


@lru_cache(maxsize=None)
def _runs_in_place(kind: str, attrs, x, y) -> bool:
    """Does the op's module overwrite its input when the lowering allows it?
    (asked of the lowering itself, on the meta device: nothing is allocated)"""
    with torch.device("meta"):
        m = REGISTRY[kind].lower(attrs, x, y, LowerContext(True))
    return bool(getattr(m, "inplace", False))


def _canonical(op: ir.Op) -> tuple[str, str | None]:
    """(op, activation fn): `relu` is act(fn=relu); `act(fn=leaky_relu)` is leaky_relu."""
    kind = REGISTRY[op.kind].canonical or op.kind
    fn = getattr(op.attrs, "fn", None) if kind == "act" else None
    return kind, fn


# What autograd saves for an activation (its derivative formula's inputs):
# its output, else its input. Run in place, those whose formula reads the
# result save it (the input's storage); the rest save a copy of the input.
_SAVES_OUTPUT = {"relu", "sigmoid", "tanh", "softmax"}
_SAVES_NOTHING = {"identity"}
_IN_PLACE_SAVES_RESULT = {"relu", "leaky_relu", "elu", "celu", "selu"}


class _Run:
    """One symbolic forward pass: storages, what is alive, what autograd keeps."""

    def __init__(self, dtype: str, batch: int, training: bool):
        self.item = DTYPE_BYTES[dtype]
        self.batch = batch
        self.training = training
        self.size: list[int] = []  # bytes per storage id
        self.peak = 0
        self.peak_at = ""
        self.saved: dict[int, int] = {}  # storage id -> bytes autograd keeps
        self.macs: list[TrainingMacs] = []  # per layer with MACs, in the order they run

    # ------------------------------------------------------------ storages
    def new(self, elems: int, item: int | None = None, batched: bool = True, layout: str = CONTIG,
            grad: bool = False) -> Tensor:
        self.size.append(elems * (self.batch if batched else 1) * (item or self.item))
        return Tensor(len(self.size) - 1, layout, grad)

    def of(self, shape, *inputs: Tensor, params: bool = False) -> Tensor:
        """A new tensor of `shape` made from `inputs` (a join)."""
        return self.new(ir.numel(shape), grad=params or any(t.grad for t in inputs))

    def note(self, where: str, *groups) -> None:
        """Record the bytes alive now: the union of the storages in groups."""
        live: set[int] = set()
        for g in groups:
            live.update(t.sid if isinstance(t, Tensor) else t for t in g)
        b = sum(self.size[s] for s in live)
        if b > self.peak:
            self.peak, self.peak_at = b, where

    def save(self, *tensors: Tensor) -> None:
        if self.training:
            for t in tensors:
                self.saved[t.sid] = self.size[t.sid]

    # ---------------------------------------------------------------- nodes
    def node(self, n: ir.Node, name: str, x: tuple[Tensor, ...], outer: frozenset, inplace_ok: bool
             ) -> tuple[Tensor, ...]:
        t = type(n)
        if t is ir.Op:
            return self.op(n, name, x, outer, inplace_ok)
        if t is ir.Seq:
            return self.seq(n, name, x, outer)
        dot = name + "." if name else ""
        held = outer | {v.sid for v in x}
        if t is ir.Residual:
            return self.residual(n, dot, x, held)
        if t is ir.Parallel or t is ir.Split:
            return self.branches(n, dot, x, held)
        if t is ir.Gate:
            (g,) = self.seq(n.body, dot + "body", x, held)
            out = self.of(n.out_shape, x[0], g)
            self.note(dot + "mul", held, (g, out))
            self.save(x[0], g)
            return (out,)
        raise TypeError(f"unknown IR node {t.__name__}")

    def seq(self, s: ir.Seq, name: str, x: tuple[Tensor, ...], outer: frozenset) -> tuple[Tensor, ...]:
        dot = name + "." if name else ""
        names = [("blocks." if s.role == "stage" else "") + str(i) for i in range(len(s.children))]
        held = outer | {v.sid for v in x}  # the caller holds the sequence's input throughout
        if s.role == "network":  # the network's head runs layer by layer, holding nothing back
            stem, stages, head = s.children
            y = self.seq(stages, dot + "stages", self.seq(stem, dot + "stem", x, held), held)
            return self.chain(head.children, [f"{dot}head.{i}" for i in range(len(head.children))], y, held)
        if s.wiring is None:
            return self.chain(s.children, [dot + nm for nm in names], x, held)
        w = s.wiring  # a DAG: each value is dropped after its last reader
        values: dict[int, Tensor] = dict(enumerate(x))
        last = {}
        for k, takes in enumerate(w.inputs):
            for i in takes:
                last[i] = k
        n = w.n_inputs
        for k, (c, nm, takes) in enumerate(zip(s.children, names, w.inputs)):
            inp = tuple(values[i] for i in takes)
            live = held | {v.sid for v in values.values()}
            out = self.node(c, dot + nm, inp, live, False)
            for t in out:
                values[n] = t
                n += 1
            for i in takes:
                if last[i] == k and i not in w.outputs and i >= w.n_inputs:
                    values.pop(i, None)
        return tuple(values[i] for i in w.outputs)

    def chain(self, children: list, names: list[str], x: tuple[Tensor, ...], held: frozenset
              ) -> tuple[Tensor, ...]:
        """Children one after the other, as the lowering runs them: in place where the input is fresh."""
        cur, fresh = x, False
        for c, nm in zip(children, names):
            cur = self.node(c, nm, cur, held, fresh)
            if not ir.passes_input(c):
                fresh = ir.fresh(c)
        return cur

    def residual(self, r: ir.Residual, dot: str, x: tuple[Tensor, ...], held: frozenset) -> tuple[Tensor, ...]:
        (y,) = self.seq(r.body, dot + "body", x, held)
        fresh = ir.fresh(r.body)
        if r.gain is not None:
            g = self.of(r.out_shape, y, params=True)
            self.note(dot + "body", held, (y, g))
            self.save(y)
            y, fresh = g, True
        s = x if r.shortcut is None else self.seq(r.shortcut, dot + "shortcut", x, held | {y.sid})
        if fresh and not self.training:  # the module adds into the body's fresh output
            self.note(dot + "add", held, (y,), s)
            return (Tensor(y.sid, y.layout, y.grad or any(t.grad for t in s)),)
        out = self.of(r.out_shape, y, *s)
        self.note(dot + "add", held, (y, out), s)
        return (out,)

    def branches(self, p, dot: str, x: tuple[Tensor, ...], held: frozenset) -> tuple[Tensor, ...]:
        names = [f"{dot}branches.{i}" for i in range(len(p.branches))]
        if type(p) is ir.Split:  # the parts are views of the input
            parts = [(Tensor(x[0].sid, STRIDED if self.batch > 1 else CONTIG, x[0].grad),)] * len(p.branches)
        else:
            parts = [x] * len(p.branches)
        if type(p) is ir.Parallel and p.join == "sum":  # out = out + y, branch by branch
            out = prev = None
            for b, nm, part in zip(p.branches, names, parts):
                keep = {t.sid for t in (out, prev) if t is not None}
                (y,) = self.seq(b, nm, part, held | keep)
                if out is None:
                    out = y
                else:
                    new = self.of(p.out_shape, out, y)
                    self.note(dot + "add", held, (out, y, new))
                    out = new
                prev = y
            return (out,)
        done: list[Tensor] = []  # a list of the branches' outputs, then one cat
        for b, nm, part in zip(p.branches, names, parts):
            done += self.seq(b, nm, part, held | {t.sid for t in done})
        out = self.of(p.out_shape, *done)
        self.note(dot + "concat", held, done, (out,))
        return (out,)

    # ------------------------------------------------------------------ ops
    def op(self, o: ir.Op, name: str, x: tuple[Tensor, ...], outer: frozenset, inplace_ok: bool
           ) -> tuple[Tensor, ...]:
        kind, fn = _canonical(o)
        shape = o.out_shape
        cost = REGISTRY[o.kind].cost(o.attrs, o.in_shape, o.out_shape)
        grad = any(t.grad for t in x) or cost.params > 0
        if cost.macs:
            self.macs.append(_training_macs(name, kind, o, cost.macs, any(t.grad for t in x)))
        out = self._view(kind, o, x)
        if out is not None:  # a view or the input itself: nothing new
            self.note(name, outer, x, out)
            return tuple(Tensor(t.sid, t.layout, grad) for t in out)
        in_place = inplace_ok and _runs_in_place(o.kind, o.attrs, o.in_shape, o.out_shape)
        if in_place:
            out = (Tensor(x[0].sid, x[0].layout, grad),)
        else:
            layout = x[0].layout if kind in _FOLLOWS_LAYOUT and x[0].layout == PERMUTED else CONTIG
            if kind == "layer_norm" and ir.shapes(o.in_shape)[0][2] != 1:
                layout = PERMUTED  # LayerNorm2d returns a channels-last tensor
            out = tuple(self.new(ir.numel(s), layout=layout, grad=grad) for s in ir.shapes(shape))
        self.note(name, outer, x, out)
        if self.training:
            self._saves(kind, fn, o, x, out, in_place)
        return out

    def _view(self, kind: str, o: ir.Op, x: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        """The output when the op returns its input or a view of it, else None."""
        t = x[0]
        if kind == "identity" or (kind == "dropout" and (o.attrs.p == 0 or not self.training)) \
                or (kind == "act" and o.attrs.fn == "identity"):
            return x
        if kind in ("chunk", "slice_channels"):  # channel slices: contiguous only for one sample
            lay = STRIDED if self.batch > 1 and t.layout != PERMUTED else t.layout
            return tuple(Tensor(t.sid, lay) for _ in ir.shapes(o.out_shape))
        if kind in ("transpose", "take_token"):
            return (Tensor(t.sid, STRIDED),)
        if kind in ("reshape", "unflatten", "tokens") and t.layout == CONTIG:
            return (Tensor(t.sid, CONTIG),)
        return None

    def _saves(self, kind: str, fn: str | None, o: ir.Op, x: tuple[Tensor, ...], out: tuple[Tensor, ...],
               in_place: bool) -> None:
        """What autograd keeps for the op's backward (see the convention)."""
        shp = ir.shapes(o.in_shape)[0]
        c, h, w = shp
        if kind == "conv" and o.attrs.padding == "same" and not _same_is_symmetric(o.attrs):
            self.save(self.new(c * _same_padded(h, w, o.attrs)))  # TF's "same": the padded copy
        elif kind in ("conv", "linear", "avg_pool", "gelu", "layer_scale", "matmul", "mul"):
            self.save(*x)  # conv/linear: input (and the weight); matmul, mul: both operands
        elif kind == "ws_conv":
            self.save(x[0])  # and the standardization of the weight: a batch-norm over filters
            oc = o.out_shape[0]
            per = ir.numel(shp) // (h * w) * _kernel(o.attrs) // max(o.attrs.groups, 1)
            self.save(self.new(oc * per, batched=False))  # the standardized weight (conv's weight)
            self.save(*(self.new(oc, batched=False) for _ in range(2)))  # its mean and 1/std
            if o.attrs.gain:
                self.save(self.new(oc, batched=False))  # gain * scale
        elif kind == "bn":
            self.save(x[0], self.new(c, batched=False), self.new(c, batched=False))  # + batch mean, 1/std
        elif kind == "layer_norm":
            n = h * w  # one mean and 1/std per position
            self.save(x[0], self.new(n, 4), self.new(n, 4))
        elif kind == "max_pool":
            self.save(x[0], self.new(ir.numel(o.out_shape), 8))  # + int64 indices
        elif kind == "global_pool" and o.attrs.kind != "avg":
            self.save(x[0], self.new(c, 8))
            if o.attrs.kind == "avgmax":
                self.save(self.new(c))
        elif kind == "dropout":
            self.save(self.new(ir.numel(o.out_shape)))  # CPU's kernel keeps its scaled mask, at the dtype
        elif kind == "grn":
            # x (for its L2 norm over H, W and for x * n), the norm, its mean
            # over channels + eps, n, and x * n (for the weight)
            self.save(x[0], self.new(c), self.new(1), self.new(c), self.new(c * h * w))
        elif kind == "act" or kind in _ACTIVATIONS:
            f = fn or kind
            if f in _SAVES_NOTHING:
                return
            if in_place:
                self.save(out[0] if f in _IN_PLACE_SAVES_RESULT else self.new(ir.numel(shp)))
            else:
                self.save(out[0] if f in _SAVES_OUTPUT else x[0])
        elif kind == "mhsa":
            self._mhsa_saves(o, x[0])
        elif kind == "mqa":
            self._mqa_saves(o, x[0])

    # Attention as torch 2's CPU kernels run it: SDPA's fused kernel keeps q,
    # k, v (views of the projection's output), its output and the
    # log-sum-exp; the unfused math (attention biases, or keys shared by all
    # heads) keeps contiguous copies of q, kᵀ, v, the softmax and the output.
    def _tokens(self, x: Tensor, stride: tuple[int, int], pool: str, n: int, c: int) -> None:
        """The (B, N, C) tokens the projection reads: a copy, unless the map is channels-last."""
        if stride == (1, 1):
            self.save(x if x.layout == PERMUTED else self.new(n * c))
            return
        if pool != "subsample":
            self.save(x)  # avg_pool2d keeps its input
        self.save(self.new(n * c))

    def _mhsa_saves(self, o: ir.Op, x: Tensor) -> None:
        from archdsl.ops.mhsa import _grid, _head_dim, _stride

        a = o.attrs
        c, h, w = o.in_shape
        hd = _head_dim(a, c)
        vd, heads = a.value_dim or hd, a.heads
        qs, ks = _stride(a.q_stride, h, w), _stride(a.kv_stride, h, w)
        nq, nk = o.out_shape[1] * o.out_shape[2], _grid(ks, h, w)[0] * _grid(ks, h, w)[1]
        self._tokens(x, qs, a.pool, nq, c)
        if ks != qs:
            self._tokens(x, ks, a.pool, nk, c)
        if a.attn_bias == "relative":
            self.save(*(self.new(n) for n in (heads * nq * hd, heads * nk * hd, heads * nq * nk,
                                              heads * nk * vd, nq * heads * vd)))
            return
        if ks == qs:
            self.save(self.new(nq * heads * (2 * hd + vd)))  # q, k, v: one projection
        else:
            self.save(self.new(nq * heads * hd), self.new(nk * heads * (hd + vd)))
        self.save(self.new(heads * nq, 4), self.new(nq * heads * vd))  # log-sum-exp, output

    def _mqa_saves(self, o: ir.Op, x: Tensor) -> None:
        from archdsl.ops.attention import _vd, kv_size

        a = o.attrs
        c, h, w = o.in_shape
        kh, kw = kv_size(a, h, w)
        n, m, heads, kd, vd = h * w, kh * kw, a.heads, a.key_dim, _vd(a)
        self.save(x)  # the 1x1 (or depthwise) convs read the map
        if a.kv_stride > 1:  # keys and values: a depthwise conv and a BN each
            for _ in range(2):
                self.save(self.new(c * m), self.new(c * m), self.new(c, batched=False),
                          self.new(c, batched=False))
        self.save(*(self.new(k) for k in (heads * n * kd, heads * m * kd, heads * n * m, heads * m * vd,
                                          heads * vd * n)))


_ACTIVATIONS = {"leaky_relu", "prelu", "elu", "celu", "gelu", "hard_tanh", "softplus", "softmax"}
# Element-wise ops keep their input's memory order (a channels-last input gives a channels-last output).
_FOLLOWS_LAYOUT = {"act", "bn", "scale", "layer_scale", "grn", "gelu", "add", "mul", "dropout", "conv",
                   "ws_conv", "pos_embed"} | _ACTIVATIONS


def _same_padded(h: int, w: int, a) -> int:
    """Positions of the input SamePadConv2d pads for TF's "same" padding."""
    out = 1
    for size, k, st, d in zip((h, w), hw(a.k), hw(a.stride), hw(a.dilation)):
        out *= size + max((-(-size // st) - 1) * st + (k - 1) * d + 1 - size, 0)
    return out


def _kernel(a) -> int:
    k = a.k if isinstance(a.k, tuple) else (a.k, a.k)
    return k[0] * k[1]


@dataclass
class TrainingMacs:
    """One layer's MACs in a training step: the forward pass, the gradient of
    its inputs (when autograd tracks them) and of its weights."""

    name: str
    kind: str
    forward: int
    input_grad: int
    weight_grad: int

    @property
    def total(self) -> int:
        return self.forward + self.input_grad + self.weight_grad


def _pairwise_macs(kind: str, o: ir.Op) -> int:
    """MACs of products of two activations (q·kᵀ, attention·v, matmul): no
    weight gradient, a gradient for each operand."""
    if kind == "matmul":
        return REGISTRY["matmul"].cost(o.attrs, o.in_shape, o.out_shape).macs
    if kind == "mhsa":
        from archdsl.ops.mhsa import _grid, _head_dim, _stride

        a = o.attrs
        c, h, w = o.in_shape
        hd = _head_dim(a, c)
        kh, kw = _grid(_stride(a.kv_stride, h, w), h, w)
        return a.heads * o.out_shape[1] * o.out_shape[2] * kh * kw * (hd + (a.value_dim or hd))
    if kind == "mqa":
        from archdsl.ops.attention import _vd, kv_size

        a = o.attrs
        kh, kw = kv_size(a, o.in_shape[1], o.in_shape[2])
        return a.heads * o.in_shape[1] * o.in_shape[2] * kh * kw * (a.key_dim + _vd(a))
    return 0


def _training_macs(name: str, kind: str, o: ir.Op, macs: int, input_grad: bool) -> TrainingMacs:
    # A product with a weight W·x costs as much again for dx (when x needs
    # one) and for dW; a product of two activations a·b (their q, k, v come
    # from weights) costs as much again for each of da and db.
    pair = _pairwise_macs(kind, o)
    weighted = macs - pair
    return TrainingMacs(name, kind, macs, (weighted if input_grad else 0) + 2 * pair, weighted)


# ---------------------------------------------------------------- the API
@dataclass
class InferencePeak:
    bytes: int
    at: str  # the layer after which it is reached
    batch: int
    dtype: str


def inference_peak(spec: ir.Node, dtype: str = "fp32", batch: int = 1) -> InferencePeak:
    """The peak of live activation bytes in one forward pass (see the convention)."""
    run = _Run(dtype, batch, training=False)
    x = tuple(run.of(s) for s in ir.shapes(spec.in_shape))
    run.note("input", x)
    run.node(spec, "", x, frozenset(), False)
    return InferencePeak(run.peak, run.peak_at, batch, dtype)


def saved_bytes(spec: ir.Node, dtype: str = "fp32", batch: int = 1) -> int:
    """Bytes of the tensors autograd saves in one training forward pass."""
    run = _Run(dtype, batch, training=True)
    x = tuple(run.of(s) for s in ir.shapes(spec.in_shape))
    run.node(spec, "", x, frozenset(), False)
    return sum(run.saved.values())


def buffer_bytes(spec: ir.Node, dtype: str = "fp32") -> int:
    """Bytes of the module's buffers (BN running statistics, fixed position
    tables, index tables): a floating-point buffer at the dtype, an integer one
    as it is. Each distinct layer is lowered once, on the meta device (nothing
    is allocated), as archdsl.load's memory guard runs this for every module.
    A layer whose tensors torch cannot even describe raises ValueError."""
    scale = DTYPE_BYTES[dtype] / 4
    uses: dict[tuple, int] = {}
    first: dict[tuple, ir.Op] = {}
    for o in ir.ops(spec):
        key = (o.kind, o.attrs, o.in_shape, o.out_shape)
        uses[key] = uses.get(key, 0) + 1
        first.setdefault(key, o)
    made = []
    with torch.device("meta"):
        for key, o in first.items():
            try:
                made.append((REGISTRY[o.kind].lower(o.attrs, o.in_shape, o.out_shape, LowerContext(False)), uses[key]))
            except (RuntimeError, ValueError, OverflowError) as e:
                raise ValueError(f"a {o.kind} layer on {o.in_shape} has tensors too large to make ({e})") from None
    # Counted outside the meta context: there every tensor method goes through its hook.
    return int(sum(n * sum(b.numel() * (b.element_size() * scale if b.is_floating_point() else b.element_size())
                           for b in m.buffers()) for m, n in made))


@dataclass
class TrainingMemory:
    batch: int
    dtype: str
    optimizer: str
    weights: int  # parameters
    buffers: int
    grads: int
    optimizer_state: int
    saved: int  # tensors autograd keeps for the backward pass

    @property
    def fixed(self) -> int:
        """What does not grow with the batch."""
        return self.weights + self.buffers + self.grads + self.optimizer_state

    @property
    def total(self) -> int:
        return self.fixed + self.saved


def training_memory(spec: ir.Node, params: int, dtype: str = "fp32", batch: int = 1,
                    optimizer: str = "sgd", buffers: int | None = None) -> TrainingMemory:
    """Memory of one training step at `batch` (see the convention); `params`:
    the report's parameter count."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
    item = DTYPE_BYTES[dtype]
    w = params * item
    return TrainingMemory(batch, dtype, optimizer, w, buffer_bytes(spec, dtype) if buffers is None else buffers,
                          w, OPTIMIZERS[optimizer] * w, saved_bytes(spec, dtype, batch))


def fit_batch(spec: ir.Node, params: int, budget: float, dtype: str = "fp32", optimizer: str = "sgd"
              ) -> tuple[int, TrainingMemory | None]:
    """The largest training batch whose memory fits `budget` bytes (0 when
    none does), and its memory. Saved bytes grow linearly with the batch
    (BN's per-channel statistics are the constant part), so two batch sizes
    give the line; the answer is then checked at its batch."""
    buffers = buffer_bytes(spec, dtype)
    at2, at3 = (training_memory(spec, params, dtype, b, optimizer, buffers) for b in (2, 3))
    slope = at3.saved - at2.saved
    start = at2.total - 2 * slope
    if slope <= 0:
        raise ValueError("the saved tensors do not grow with the batch")
    b = max(int((budget - start) // slope), 0)
    while b > 0:
        m = training_memory(spec, params, dtype, b, optimizer, buffers)
        if m.total <= budget:
            return b, m
        b -= 1
    return 0, None


def training_macs(spec: ir.Node) -> list[TrainingMacs]:
    """Per layer with MACs: forward, input-gradient and weight-gradient MACs of
    one training step (FlopCounterMode's count over forward and backward,
    divided by 2). The gradients' own products: torch's fused attention
    kernels (SDPA's flash kernels on CPU and GPU) also recompute q·kᵀ in
    their backward, heads·Nq·Nk·head_dim MACs more per attention layer."""
    run = _Run("fp32", 1, training=True)
    x = tuple(run.of(s) for s in ir.shapes(spec.in_shape))
    run.node(spec, "", x, frozenset(), False)
    return run.macs


def parse_bytes(text: str) -> float:
    """'16GB' (10^9), '16GiB' (2^30), '512MB', '2e9' -> bytes; ValueError otherwise."""
    units = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
             "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "TIB": 2 ** 40}
    t = text.strip().upper()
    num = t.rstrip("KMGTIB")
    unit = t[len(num):]
    try:
        value = float(num) * units[unit]
    except (KeyError, ValueError):
        raise ValueError(f"not a size: {text!r} (say e.g. 16GB, 16GiB, 512MB)") from None
    if value <= 0:
        raise ValueError(f"not a size: {text!r} (it must be positive)")
    return value


def _mb(b: float) -> str:
    """MB to 4 significant digits, whole MB from 10,000 on (40,190, never 4.019e+04):
    a BN's buffers (KBs) and a batch's saved tensors (GBs) alike."""
    mb = b / 1e6
    return f"{mb:,.0f}" if mb >= 1e4 else f"{mb:,.4g}"


def markdown(spec: ir.Node, params: int, dtype: str = "fp32", batches=(1, 32, 256)) -> str:
    """The report's memory section: what training holds whatever the batch
    (weights, buffers, gradients, each optimizer's state), then per batch the
    inference peak, the tensors saved for backward and each optimizer's total."""
    buffers = buffer_bytes(spec, dtype)
    rows = []
    for b in batches:
        sgd = training_memory(spec, params, dtype, b, "sgd", buffers)
        rows.append((b, sgd, replace(sgd, optimizer="adamw", optimizer_state=OPTIMIZERS["adamw"] * sgd.weights)))
    _, sgd, adamw = rows[0]
    lines = ["## Memory", "", f"At {dtype}, in MB (10^6 bytes). Training holds, whatever the batch:", "",
             "| weights | buffers | gradients | SGD-momentum state | AdamW state |", "|---:|---:|---:|---:|---:|",
             f"| {_mb(sgd.weights)} | {_mb(sgd.buffers)} | {_mb(sgd.grads)} | {_mb(sgd.optimizer_state)} | "
             f"{_mb(adamw.optimizer_state)} |", "",
             "| batch | inference peak | saved for backward | training, SGD-momentum | training, AdamW |",
             "|---:|---:|---:|---:|---:|"]
    for b, sgd, adamw in rows:
        lines.append(f"| {b} | {_mb(inference_peak(spec, dtype, b).bytes)} | {_mb(sgd.saved)} | "
                     f"{_mb(sgd.total)} | {_mb(adamw.total)} |")
    peak = inference_peak(spec, dtype, 1)
    lines += ["", f"Inference peak reached after `{peak.at}`. Training MACs per image (forward + "
              f"input gradients + weight gradients): {sum(r.total for r in training_macs(spec)) / 1e9:.3f} G.",
              "", "Memory convention:", "", CONVENTION, ""]
    return "\n".join(lines)


def fit_line(spec: ir.Node, params: int, budget: float, dtype: str = "fp32", optimizer: str = "sgd") -> str:
    b, m = fit_batch(spec, params, budget, dtype, optimizer)
    if m is None:
        need = training_memory(spec, params, dtype, 1, optimizer)
        return (f"no training batch fits {budget / 1e9:.3g} GB with {optimizer}: batch 1 needs "
                f"{need.total / 1e9:.3g} GB")
    return (f"largest training batch in {budget / 1e9:.3g} GB ({optimizer}, {dtype}): {b} — "
            f"{m.total / 1e9:.3g} GB: weights {m.weights / 1e9:.3g}, buffers {m.buffers / 1e9:.3g}, grads "
            f"{m.grads / 1e9:.3g}, optimizer state {m.optimizer_state / 1e9:.3g}, saved activations "
            f"{m.saved / 1e9:.3g}")
