"""Cheaper construction of the torch modules a network is lowered to.

A small network's build time is mostly Python overhead in torch's module
constructors (a Conv2d or BatchNorm2d costs ~32 us to make, of which its
weight initialization is ~5 us; each attribute goes through
Module.__setattr__'s checks). Three shortcuts, each giving the module a plain
constructor would:

- `adopt` / `sequential` register a child straight into `_modules`, which is
  all Module.__setattr__ / add_module end up doing for a fresh module under a
  fresh name.
- `Replicator` makes a repeat of a layer (same class and arguments, which
  networks are full of) from a snapshot of the first one's state taken right
  after its constructor, with new tensors, then runs the class's own
  `reset_parameters` (convolutions and linear layers make its uniform draws
  directly; BatchNorm, whose initialization is constants, gets a copy of the
  first one's initial tensors instead): the same initialization
  as the constructor's, consuming the random stream in the same order, so a
  seeded build gives the same weights either way (tests/test_construct.py).
  torch's parameterless leaves (activations, pools) and empty containers are
  copied from a first instance's state the same way, with nothing to redo.
- A conv or BN whose arguments the build has not seen is made from its
  class's template (`_Template`: the state with the argument-dependent
  attributes and tensor shapes left open), filled in by a stated rule that is
  checked against the constructor once per process (see "new arguments").

All fall back to the plain path whenever torch's global registration hooks
are in use (they must see every registration).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn
from torch.nn import init
from torch.nn.modules import module as _torch_module

# torch's registries of global registration hooks (dicts it fills in place).
_HOOKS = [getattr(_torch_module, name, None) for name in (
    "_global_module_registration_hooks", "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks")]
_HOOKS_FOUND = all(isinstance(h, dict) for h in _HOOKS)
_MODULE_HOOKS, _PARAMETER_HOOKS, _BUFFER_HOOKS = _HOOKS


def plain_registration() -> bool:
    """True when no global registration hooks are installed (and torch keeps them where we look)."""
    return _HOOKS_FOUND and not (_MODULE_HOOKS or _PARAMETER_HOOKS or _BUFFER_HOOKS)


def adopt(parent: nn.Module, name: str, child: nn.Module | None) -> None:
    """`parent.<name> = child` for a fresh parent and name."""
    if isinstance(child, nn.Module) and plain_registration():
        parent._modules[name] = child
    else:
        setattr(parent, name, child)


def _numbered(container: nn.Module, children: list[nn.Module]) -> nn.Module:
    if plain_registration():
        container._modules.update((str(i), c) for i, c in enumerate(children))
    else:
        for i, c in enumerate(children):
            container.add_module(str(i), c)
    return container


def sequential(children: list[nn.Module]) -> nn.Sequential:
    """nn.Sequential(*children)."""
    return _numbered(_empty(nn.Sequential), children)


def module_list(children: list[nn.Module]) -> nn.ModuleList:
    """nn.ModuleList(children)."""
    return _numbered(_empty(nn.ModuleList), children)


_EMPTY: dict[type, "_Snapshot"] = {}


def _empty(cls: type) -> nn.Module:
    """cls() for a container class (a copy of a fresh one's state: containers are many)."""
    if not plain_registration():
        return cls()
    snap = _EMPTY.get(cls)
    if snap is None:
        m = cls()
        snap = _EMPTY[cls] = _Snapshot(m, True)
        return m
    return snap.replica(cls)


# Leaf classes a Replicator may copy: their constructor's only tensors are
# parameters and buffers, and reset_parameters re-does their initialization
# (also subclasses that change neither, such as a conv with another forward).
REPLICABLE = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
# Of those, the ones whose initialization is constants, no random draws (BN:
# weight 1, bias 0, running mean 0, variance 1): a replica copies the first
# one's initial tensors instead of running reset_parameters again.
CONSTANT_INIT = (nn.BatchNorm2d,)
_PLAIN_VALUES = (bool, int, float, str, tuple, type(None))
_CONTAINERS = (dict, list, set)  # hook registries and the like: copied, never shared
_TENSOR_DICTS = ("_parameters", "_buffers")


@lru_cache(maxsize=None)
def _unchanged_subclass(cls: type, bases: tuple[type, ...]) -> bool:
    for base in bases:
        if issubclass(cls, base):
            return cls.__init__ is base.__init__ and cls.reset_parameters is base.reset_parameters
    return False


# Parameterless leaves (activations, pools, identity, dropout): torch's own
# classes, whose constructors only set attributes; a replica is a copy of the
# first one's state. (Subclasses may do more: they are built plainly.)
STATELESS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
             nn.Mish, nn.Identity, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
             nn.AdaptiveMaxPool2d)


_REPLICABLE: dict[type, bool] = {}


def replicable(cls: type) -> bool:
    answer = _REPLICABLE.get(cls)
    if answer is None:
        answer = _REPLICABLE[cls] = _unchanged_subclass(cls, REPLICABLE) or cls in STATELESS
    return answer


def _copyable_state(m: nn.Module) -> bool:
    """Plain values and containers only, tensors only as parameters and buffers, no children."""
    for k, v in vars(m).items():
        if not isinstance(v, _PLAIN_VALUES + _CONTAINERS):
            return False
        if isinstance(v, dict) and k not in _TENSOR_DICTS and \
                any(isinstance(x, (torch.Tensor, nn.Module)) for x in v.values()):
            return False
    return True


def _split_state(state: dict) -> tuple[dict, list]:
    """A constructed module's plain attributes, and copies of its containers
    (hook registries and the like), its tensors left aside."""
    plain = {k: v for k, v in state.items() if not isinstance(v, _CONTAINERS)}
    containers = [(k, v.copy()) for k, v in state.items() if isinstance(v, _CONTAINERS) and k not in _TENSOR_DICTS]
    return plain, containers


def _fresh_state(plain: dict, containers: list) -> dict:
    """A new module's state from _split_state's parts: containers copied, never shared."""
    state = plain.copy()
    for k, v in containers:
        state[k] = v.copy()
    return state


class _Snapshot:
    """A module's state right after its constructor: what a replica starts from."""

    def __init__(self, m: nn.Module, constant_init: bool):
        state = vars(m)
        self.plain, self.containers = _split_state(state)
        # Constant inits: the initial values (copied now: the module may change
        # later). Otherwise the tensors themselves, for shape, dtype, device and
        # strides only (empty_like).
        self.constant_init = constant_init
        self.make = torch.Tensor.clone if constant_init else torch.empty_like
        self.params, self.buffers = ([(k, None if t is None else t.detach().clone() if constant_init else t,
                                       t is not None and t.requires_grad) for k, t in state[d].items()]
                                     for d in _TENSOR_DICTS)
        self.uniform = None if constant_init else _uniform_draws(type(m), state["_parameters"])

    def replica(self, cls: type) -> nn.Module:
        m = cls.__new__(cls)
        state = _fresh_state(self.plain, self.containers)
        make = self.make
        fresh = [(k, None if t is None else make(t), rg) for k, t, rg in self.params]
        if self.uniform is not None:  # the constructor's draws, made directly
            drawn = {k: t for k, t, _ in fresh}
            for k, bound in self.uniform:
                drawn[k].uniform_(-bound, bound)
        state["_parameters"] = {k: None if t is None else nn.Parameter(t, rg) for k, t, rg in fresh}
        state["_buffers"] = {k: None if t is None else make(t) for k, t, _ in self.buffers}
        m.__dict__.update(state)
        if not self.constant_init and self.uniform is None:
            m.reset_parameters()
        return m


# The reset_parameters of torch's convolutions and linear layers: uniform
# draws, weight then bias (kaiming_uniform_ with a = sqrt(5) on the weight,
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias). A replica makes those
# draws itself, with the bounds computed once by torch's own formulas,
# skipping ~6 us of Python a layer; tests/test_construct.py checks that the
# weights equal the plain constructor's, seeded alike.
_UNIFORM_RESETS = (nn.modules.conv._ConvNd.reset_parameters, nn.Linear.reset_parameters)


def _uniform_draws(cls: type, params: dict) -> list[tuple[str, float]] | None:
    """[(parameter, bound)] that cls.reset_parameters draws from U(-bound, bound), in order; None: run it."""
    weight, bias = params.get("weight"), params.get("bias")
    if cls.reset_parameters not in _UNIFORM_RESETS or set(params) != {"weight", "bias"} or weight is None \
            or not weight.is_contiguous() or weight.dim() < 2:
        return None
    fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
    if fan_in == 0 or 0 in weight.shape:  # torch warns and draws nothing: let it
        return None
    std = init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(fan_in)
    draws = [("weight", math.sqrt(3.0) * std)]
    if bias is not None:
        draws.append(("bias", 1 / math.sqrt(fan_in)))
    return draws


_COPYABLE: dict[type, bool] = {}  # per class: is a constructed instance's state copyable?


def _snapshot(m: nn.Module) -> _Snapshot | None:
    cls = type(m)
    if cls not in _COPYABLE:
        _COPYABLE[cls] = _copyable_state(m)
    if not _COPYABLE[cls]:
        return None
    if cls in STATELESS:  # nothing to initialize: copy the state as it is
        return _Snapshot(m, True) if not (m._parameters or m._buffers or m._modules) else None
    return _Snapshot(m, _unchanged_subclass(cls, CONSTANT_INIT))


# ---------------------------------------------------------------- new arguments
# A layer with arguments the build has not seen yet is still a near copy of
# its class built with other sizes: what the constructor sets from the
# arguments is a few plain attributes and the tensors' shapes. For the plain
# integer arguments of convolutions and batch norms (most layers, e.g.
# ghostnet_100's 95 convs in 61 configurations) `_derive` makes it from a
# template of its class, skipping the constructor's ~25 us of Python.
# The rules below state what torch's constructors set; each is checked
# against the constructor itself once per process (the second configuration
# of a class is built both ways and compared) before it is used, so a torch
# that sets something else just falls back to its constructor.
Fields = tuple[dict, dict]  # (plain attributes, {tensor name: shape or None})


def _conv_fields(args: tuple, kwargs: dict) -> Fields | None:
    """What Conv2d(in, out, k, stride=, padding=, dilation=, groups=, bias=) sets, all integers."""
    if len(args) != 3 or not kwargs.keys() <= {"stride", "padding", "dilation", "groups", "bias"}:
        return None
    cin, cout, k = args
    s, p, d, g = (kwargs.get(n, v) for n, v in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)))
    bias = kwargs.get("bias", True)
    if not all(type(v) is int for v in (cin, cout, k, s, p, d, g)) or type(bias) is not bool \
            or min(cin, cout, k, s, d, g) <= 0 or p < 0 or cin % g or cout % g:
        return None  # unusual arguments: the constructor handles (or rejects) them
    plain = {"in_channels": cin, "out_channels": cout, "kernel_size": (k, k), "stride": (s, s),
             "padding": (p, p), "dilation": (d, d), "transposed": False, "output_padding": (0, 0),
             "groups": g, "padding_mode": "zeros", "_reversed_padding_repeated_twice": (p, p, p, p)}
    return plain, {"weight": (cout, cin // g, k, k), "bias": (cout,) if bias else None}


def _bn_fields(args: tuple, kwargs: dict) -> Fields | None:
    """What BatchNorm2d(n, eps=, momentum=) sets."""
    if len(args) != 1 or not kwargs.keys() <= {"eps", "momentum"}:
        return None
    n, eps, momentum = args[0], kwargs.get("eps", 1e-5), kwargs.get("momentum", 0.1)
    if type(n) is not int or n <= 0 or type(eps) is not float or type(momentum) is not float:
        return None
    plain = {"num_features": n, "eps": eps, "momentum": momentum, "affine": True, "track_running_stats": True}
    return plain, {"weight": (n,), "bias": (n,), "running_mean": (n,), "running_var": (n,),
                   "num_batches_tracked": ()}


_RULES = {nn.Conv2d: _conv_fields, nn.BatchNorm2d: _bn_fields}


@lru_cache(maxsize=None)
def _rule_of(cls: type):
    return next((rule for base, rule in _RULES.items() if _unchanged_subclass(cls, (base,))), None)


class _Template:
    """A class's constructed state with what depends on the arguments left
    open: plain attributes, hook registries, and per tensor its dtype, device,
    and its constant initial value (None: drawn by reset_parameters)."""

    def __init__(self, m: nn.Module):
        state = vars(m)
        self.plain, self.containers = _split_state(state)
        like = next(t for t in (*state["_parameters"].values(), *state["_buffers"].values()) if t is not None)
        self.dtype, self.device = like.dtype, like.device
        self.params = [(k, True if t is None else t.requires_grad, self._fill(t))
                       for k, t in state["_parameters"].items()]
        self.buffers = [(k, None if t is None else t.dtype, self._fill(t)) for k, t in state["_buffers"].items()]
        self.constant_init = _unchanged_subclass(type(m), CONSTANT_INIT)
        self.verified = False

    @staticmethod
    def _fill(t: torch.Tensor | None) -> float | None:
        if t is None or t.numel() == 0:
            return None
        if t.is_meta:  # no values to keep: any fill makes the same meta tensor
            return 0.0
        first = t.reshape(-1)[0]
        return first.item() if bool((t == first).all()) else None

    def make(self, cls: type, fields: Fields, draw: bool) -> nn.Module | None:
        """A module of `cls` with `fields`; its random draws made when `draw`."""
        plain, shapes = fields
        m = cls.__new__(cls)
        state = _fresh_state(self.plain, self.containers)
        state.update(plain)
        tensors = {}
        for k, _, fill in self.params:
            shape = shapes.get(k)
            if shape is None:
                tensors[k] = None
            elif not self.constant_init:
                tensors[k] = torch.empty(shape, dtype=self.dtype, device=self.device)
            elif fill is None:
                return None
            else:
                tensors[k] = torch.full(shape, fill, dtype=self.dtype, device=self.device)
        draws = _uniform_draws(cls, tensors) if draw and not self.constant_init else None
        for k, bound in draws or ():  # reset_parameters' draws, made directly
            tensors[k].uniform_(-bound, bound)
        params = {k: None if t is None else nn.Parameter(t, rg) for (k, rg, _), t in zip(self.params,
                                                                                          tensors.values())}
        buffers = {}
        for k, dtype, fill in self.buffers:
            shape = shapes.get(k)
            if shape is None or dtype is None or fill is None:
                return None  # only constant buffers (BN's statistics) are re-made
            buffers[k] = torch.full(shape, fill, dtype=dtype, device=self.device)
        state["_parameters"], state["_buffers"] = params, buffers
        m.__dict__.update(state)
        if draw and not self.constant_init and draws is None:
            m.reset_parameters()
        return m


def _same_construction(a: nn.Module, b: nn.Module) -> bool:
    """Equal plain state (types included) and tensors of equal shape, dtype,
    device, strides and grad flag: what a template must reproduce."""
    va, vb = vars(a), vars(b)
    if va.keys() != vb.keys():
        return False
    for k, x in va.items():
        y = vb[k]
        if k in _TENSOR_DICTS:
            if list(x) != list(y):
                return False
            for t, u in zip(x.values(), y.values()):
                if (t is None) != (u is None) or t is not None and (
                        type(t) is not type(u) or t.shape != u.shape or t.dtype != u.dtype
                        or t.device != u.device or t.stride() != u.stride() or t.requires_grad != u.requires_grad):
                    return False
        elif type(x) is not type(y) or repr(x) != repr(y):
            return False
    return True


# (class, default dtype, default device) -> its template; None: it cannot be used.
_TEMPLATES: dict[tuple, _Template | None] = {}


def _template_key(cls: type) -> tuple:
    return cls, torch.get_default_dtype(), torch.get_default_device()


def _derive(cls: type, fields: Fields) -> nn.Module | None:
    """`cls` with `fields` from its checked template; None: build it plainly."""
    template = _TEMPLATES.get(_template_key(cls))
    if template is None or not template.verified:
        return None
    return template.make(cls, fields, draw=True)


def _learn(cls: type, m: nn.Module, fields: Fields) -> None:
    """After a plain construction: keep the class's template, or check it against `m`."""
    key = _template_key(cls)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _Template(m) if _copyable_state(m) and (m._parameters or m._buffers) else None
        return
    template = _TEMPLATES[key]
    if template is not None and not template.verified:
        dry = template.make(cls, fields, draw=False)
        if dry is not None and _same_construction(dry, m):
            template.verified = True
        else:
            _TEMPLATES[key] = None


class Replicator:
    """Makes modules for one build: `make(cls, *args, **kwargs)` is `cls(*args, **kwargs)`.

    A replica's tensors are made like the first instance's (same device), so
    one Replicator serves one build under one default device (build_module
    enters its device context before the lowering makes its Replicator).
    """

    def __init__(self) -> None:
        self._seen: dict[tuple, _Snapshot | None] = {}

    def __call__(self, cls: type, *args, **kwargs) -> nn.Module:
        if not replicable(cls):
            return cls(*args, **kwargs)
        # The default dtype decides the tensors' dtype: part of what must repeat.
        key = (cls, args, tuple(kwargs.items()), torch.get_default_dtype())
        try:
            snapshot = self._seen.get(key)
        except TypeError:  # an unhashable argument
            return cls(*args, **kwargs)
        if snapshot is not None and plain_registration():
            return snapshot.replica(cls)
        if key in self._seen:  # seen, but not replicable
            return cls(*args, **kwargs)
        rule = _rule_of(cls)
        fields = rule(args, kwargs) if rule is not None and plain_registration() else None
        m = _derive(cls, fields) if fields is not None else None
        if m is None:
            m = cls(*args, **kwargs)
            if fields is not None:
                _learn(cls, m, fields)
        self._seen[key] = _snapshot(m)
        return m


def construct(cls: type, *args, **kwargs) -> nn.Module:
    """The plain path: what LowerContext.make is outside a build."""
    return cls(*args, **kwargs)
