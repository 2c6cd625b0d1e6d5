"""Cheaper construction of the torch modules a network is lowered to.

A small network's build time is mostly Python overhead in torch's module
constructors (a Conv2d or BatchNorm2d costs ~32 us to make, of which its
weight initialization is ~5 us; each attribute goes through
Module.__setattr__'s checks). Two shortcuts, each giving the module a plain
constructor would:

- `adopt` / `sequential` register a child straight into `_modules`, which is
  all Module.__setattr__ / add_module end up doing for a fresh module under a
  fresh name.
- `Replicator` makes a repeat of a layer (same class and arguments, which
  networks are full of) from a snapshot of the first one's state taken right
  after its constructor, with new tensors, then runs the class's own
  `reset_parameters` (BatchNorm, whose initialization is constants, gets a
  copy of the first one's initial tensors instead): the same initialization
  as the constructor's, consuming the random stream in the same order, so a
  seeded build gives the same weights either way (tests/test_construct.py).
  torch's parameterless leaves (activations, pools) and empty containers are
  copied from a first instance's state the same way, with nothing to redo.

Both fall back to the plain path whenever torch's global registration hooks
are in use (they must see every registration).
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.nn.modules import module as _torch_module

# torch's registries of global registration hooks (dicts it fills in place).
_HOOKS = [getattr(_torch_module, name, None) for name in (
    "_global_module_registration_hooks", "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks")]
_HOOKS_FOUND = all(isinstance(h, dict) for h in _HOOKS)


def plain_registration() -> bool:
    """True when no global registration hooks are installed (and torch keeps them where we look)."""
    return _HOOKS_FOUND and not any(_HOOKS)


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


def replicable(cls: type) -> bool:
    return _unchanged_subclass(cls, REPLICABLE) or cls in STATELESS


def _copyable_state(m: nn.Module) -> bool:
    """Plain values and containers only, tensors only as parameters and buffers, no children."""
    for k, v in vars(m).items():
        if not isinstance(v, _PLAIN_VALUES + _CONTAINERS):
            return False
        if isinstance(v, dict) and k not in _TENSOR_DICTS and \
                any(isinstance(x, (torch.Tensor, nn.Module)) for x in v.values()):
            return False
    return True


class _Snapshot:
    """A module's state right after its constructor: what a replica starts from."""

    def __init__(self, m: nn.Module, constant_init: bool):
        state = vars(m)
        self.plain = {k: v for k, v in state.items() if not isinstance(v, _CONTAINERS)}
        self.containers = {k: v.copy() for k, v in state.items()
                           if isinstance(v, _CONTAINERS) and k not in _TENSOR_DICTS}
        # Constant inits: the initial values (copied now: the module may change
        # later). Otherwise the tensors themselves, for shape, dtype, device and
        # strides only (empty_like).
        self.constant_init = constant_init
        self.tensors = {d: {k: None if t is None else (t.detach().clone() if constant_init else t,
                                                       t.requires_grad)
                            for k, t in state[d].items()} for d in _TENSOR_DICTS}

    def replica(self, cls: type) -> nn.Module:
        m = cls.__new__(cls)
        state = dict(self.plain)
        for k, v in self.containers.items():
            state[k] = v.copy()
        make = torch.Tensor.clone if self.constant_init else torch.empty_like
        params = {k: None if s is None else nn.Parameter(make(s[0]), s[1])
                  for k, s in self.tensors["_parameters"].items()}
        state["_parameters"] = params
        state["_buffers"] = {k: None if s is None else make(s[0]) for k, s in self.tensors["_buffers"].items()}
        m.__dict__.update(state)
        if not self.constant_init:
            m.reset_parameters()
        return m


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
        key = (cls, args, tuple(sorted(kwargs.items())), torch.get_default_dtype())
        try:
            snapshot = self._seen.get(key)
        except TypeError:  # an unhashable argument
            return cls(*args, **kwargs)
        if snapshot is not None and plain_registration():
            return snapshot.replica(cls)
        m = cls(*args, **kwargs)
        if key not in self._seen:
            self._seen[key] = _snapshot(m)
        return m


def construct(cls: type, *args, **kwargs) -> nn.Module:
    """The plain path: what LowerContext.make is outside a build."""
    return cls(*args, **kwargs)
