"""Budgets: how much a spec or config may ask of archc before it refuses.

A spec is a program: `repeat 10**9`, a block that calls itself twice per
level, `"a" * 10**10` or a list nested 1000 deep would otherwise hang archc,
exhaust memory or Python's stack. Each limit below has a default far above
what the bundled presets need (tests/test_hardening.py checks the margin)
and is set with the config key `limits.<name>` (an override
`limits.<name>=N` works too) or the API argument `limits={"<name>": N}`.
A refusal is an ArchError (ConfigError for config-side limits) at the
offending place that names the limit and how to raise it.

Counting is O(1) on paths elaboration walks anyway: a counter per layer, per
block body elaborated and per loop (charged its whole count up front), and a
size check on the arithmetic that can grow a value (`*`, `**`, `+`).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class Limits:
    # Elaboration (archdsl.compiler.elaborate)
    layers: int = 20_000        # layers (ops) of one elaborated network (reports and modules grow with it)
    block_calls: int = 100_000  # block bodies elaborated for one network (recursion breadth)
    block_depth: int = 64       # block calls nested in one another (recursion depth)
    steps: int = 1_000_000      # loop iterations and list elements made while elaborating (~1 s)
    # Values a spec computes (archdsl.language.expr, builtins)
    int_bits: int = 256         # bits of an integer
    length: int = 1_000_000     # elements of a list, characters of a string
    # Syntax (archdsl.language.parser)
    nesting: int = 100          # nesting of brackets, blocks and operator chains in a file
    source_bytes: int = 200_000    # an .arch file
    # Configs (archdsl.configs)
    config_bytes: int = 1_000_000  # a config YAML file
    override_bytes: int = 2_000    # one command-line override (Hydra reads long lists slowly)
    config_nodes: int = 100_000    # values in a config's YAML, aliases expanded
    # Modules (archdsl.api.load); what archc writes grows with `layers`
    module_bytes: int = 0          # a built module's parameters and buffers; 0: half the free memory

    def hint(self, name: str) -> str:
        return (f"raise the limit with the override limits.{name}=N (now {getattr(self, name):,}), "
                f"or archdsl.load/cost(..., limits={{'{name}': N}})")


DEFAULT = Limits()
NAMES = tuple(f.name for f in dataclasses.fields(Limits))

_active: Limits = DEFAULT


def current() -> Limits:
    """The limits of the load in progress (the defaults outside one)."""
    return _active


@contextlib.contextmanager
def active(limits: Limits) -> Iterator[Limits]:
    """Make `limits` current for a load (parsing, composing, elaborating)."""
    global _active
    saved, _active = _active, limits
    try:
        yield limits
    finally:
        _active = saved


def merged(base: Limits, given: dict[str, Any] | Limits | None) -> Limits:
    """`base` with the limits in `given` (a dict from a config or the API) replacing its own."""
    if given is None:
        return base
    if isinstance(given, Limits):
        return given
    from archdsl.language.errors import ConfigError

    for k, v in given.items():
        if k not in NAMES:
            import difflib
            close = difflib.get_close_matches(str(k), NAMES, 1)
            raise ConfigError(f"no limit named '{k}'", key=f"limits.{k}",
                              hint=(f"did you mean '{close[0]}'? " if close else "") + "limits: " + ", ".join(NAMES))
        if type(v) is not int or v < 0:
            raise ConfigError(f"a limit is a non-negative integer, not {v!r}", key=f"limits.{k}")
    return dataclasses.replace(base, **given)


def from_overrides(overrides) -> dict[str, int]:
    """The `limits.<name>=N` overrides, read before the config is composed
    (config size and override size are checked before that)."""
    out = {}
    for o in overrides:
        key, eq, value = str(o).lstrip("+~").partition("=")
        if eq and key.startswith("limits.") and key[7:] in NAMES and value.strip().isdigit() and len(value) < 30:
            out[key[7:]] = int(value)
    return out


class Budget:
    """The counters of one elaboration against its limits."""

    __slots__ = ("limits", "layers", "block_calls", "steps", "block_depth")

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or _active
        self.layers = self.limits.layers
        self.block_calls = self.limits.block_calls
        self.steps = self.limits.steps
        self.block_depth = self.limits.block_depth

    def exceeded(self, el, name: str, what: str, loc) -> Exception:
        return el.error(f"{what}: more than the limit {name}={getattr(self.limits, name):,}", loc,
                        self.limits.hint(name))

    def too_many_layers(self, el, loc) -> Exception:
        """(The elaborator counts `layers` down itself, once per layer: a call costs more.)"""
        return self.exceeded(el, "layers", "too many layers", loc)

    def block(self, el, loc) -> None:
        self.block_calls -= 1
        if self.block_calls < 0:
            raise self.exceeded(el, "block_calls", "too many block bodies elaborated "
                                "(a block calling itself more than once per level?)", loc)

    def enter(self, el, loc) -> int:
        """A block body is about to be elaborated: count it; returns the layers left (what the body takes
        of them is its size, kept with it for `reuse`)."""
        self.block_calls -= 1
        if el.depth >= self.block_depth or self.block_calls < 0:
            if self.block_calls < 0:
                self.block(el, loc)
            raise self.exceeded(el, "block_depth", "blocks nested too deeply (a recursive block?)", loc)
        return self.layers

    def reuse(self, el, layers: int, loc) -> None:
        """A stored body of `layers` layers is used again: its layers are the network's again (lowering
        builds each copy), so `a(n - 1) a(n - 1)` is 2**n layers even though it is elaborated once per level."""
        self.layers -= layers
        if self.layers < 0:
            raise self.exceeded(el, "layers", "too many layers", loc)

    def too_deep(self, el, loc) -> Exception:
        """Python's stack ran out (limits raised past what it holds): a located error all the same."""
        return el.error("the spec nests too deeply for Python's stack (blocks within blocks, "
                        "each with nested statements)", loc,
                        f"nest blocks less deeply: the limits block_depth (now {self.limits.block_depth}) "
                        f"and nesting (now {self.limits.nesting}) bound each alone, not the two together")

    def loop(self, el, n: int, loc) -> None:
        """Charge a loop's whole count (or a list's length) before it runs."""
        self.steps -= n
        if self.steps < 0:
            raise self.exceeded(el, "steps", f"too much work ({n:,} more iterations or elements)", loc)


def value_too_big(v: Any, limits: Limits) -> str | None:
    """Why `v` (a spec value just computed) is over a limit; None when it fits. O(1)."""
    t = type(v)
    if t is int:
        if v.bit_length() > limits.int_bits:
            return f"an integer of {v.bit_length():,} bits is over the limit int_bits={limits.int_bits}"
    elif t is str or t is list or t is tuple:
        if len(v) > limits.length:
            return f"a {t.__name__} of {len(v):,} elements is over the limit length={limits.length:,}"
    return None


def product_too_big(a: Any, b: Any, limits: Limits) -> str | None:
    """Would `a * b` be over a limit? Checked before multiplying (a sequence
    repeated 10**10 times would be made first)."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        bits = a.bit_length() + b.bit_length()
        if bits > limits.int_bits + 1:
            return f"an integer of ~{bits:,} bits would be over the limit int_bits={limits.int_bits}"
        return None
    for s, n in ((a, b), (b, a)):
        if type(s) in (str, list, tuple) and type(n) is int and len(s) * max(n, 0) > limits.length:
            return (f"a {type(s).__name__} of {len(s) * n:,} elements would be over the limit "
                    f"length={limits.length:,}")
    return None


def power_too_big(a: Any, b: Any, limits: Limits) -> str | None:
    """Would `a ** b` be over a limit? (2**10**9 takes minutes to make.)"""
    if type(b) is int and b > 1 and type(a) is int and a not in (0, 1, -1):
        bits = (a.bit_length() - 1) * b
        if bits > limits.int_bits:
            return f"an integer of ~{bits:,} bits would be over the limit int_bits={limits.int_bits}"
    return None


def available_memory(device: str) -> int | None:
    """Bytes free for a module on `device` ("cpu", "cuda:0", ...); None when unknown."""
    if device.startswith("cuda"):
        try:
            import torch
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no CUDA, no answer: no guard
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_module_memory(nbytes: int, device: str, limits: Limits, name: str) -> None:
    """Refuse to build a module whose parameters and buffers take more than the
    limit module_bytes (0: half of what `device` has free) before torch allocates them."""
    from archdsl.language.errors import ConfigError

    limit = limits.module_bytes
    if not limit:
        free = available_memory(device)
        if free is None:
            return
        limit = free // 2
        what = f"half the memory free on {device} ({free / 2**30:.1f} GiB)"
    else:
        what = f"the limit module_bytes={limit:,}"
    if nbytes > limit:
        raise ConfigError(f"network '{name}': its parameters and buffers take about {nbytes / 2**30:,.2f} GiB, more than "
                          f"{what}; nothing was allocated", key="limits.module_bytes",
                          hint="build it on the meta device (archdsl.load(..., device='meta')) for shapes and "
                          "counts, use archdsl.cost for the report, or " + limits.hint("module_bytes"))
