"""The fixed whitelist of functions a spec may call. Nothing else is reachable."""
from __future__ import annotations

import math
from typing import Any, Callable

_MAX_RANGE = 1_000_000  # a spec cannot ask for unbounded work


class SpecFailure(Exception):
    """Raised by `fail(message)`: the spec's own error, shown at the call."""


def fail(message: str):
    raise SpecFailure(str(message))


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
    """Round v to a multiple of divisor, never dropping more than 10% (timm's rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def quantize(x: float, q: int) -> int:
    """Nearest multiple of q (RegNet's width quantization)."""
    return int(round(x / q) * q)


def runs(values) -> list[tuple[Any, int]]:
    """Run-length encoding: [a, a, b] -> [(a, 2), (b, 1)]."""
    out: list[list] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return [tuple(r) for r in out]


def _range(*args: int) -> list[int]:
    r = range(*args)
    if len(r) > _MAX_RANGE:
        raise ValueError(f"range of {len(r)} elements is larger than {_MAX_RANGE}")
    return list(r)


def _cumsum(values) -> list:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def _round(x: float, ndigits: int | None = None):
    # round(5, -10**18) computes 10**(10**18) first: no number has that many digits anyway.
    if ndigits is not None and isinstance(ndigits, int) and abs(ndigits) > 400:
        raise ValueError(f"ndigits {ndigits} is out of range (-400..400)")
    return round(x, ndigits) if ndigits is not None else round(x)


def _sum(values, start=0):
    """sum(), joining lists in one pass (Python's sum copies the total once per list)."""
    if isinstance(start, (list, tuple)):
        out = list(start)
        for v in values:
            if not isinstance(v, (list, tuple)):
                raise TypeError(f"can only join lists, not {type(v).__name__}")
            out.extend(v)
        return out if isinstance(start, list) else tuple(out)
    return sum(values, start)


def _log(x: float, base: float | None = None) -> float:
    return math.log(x, base) if base is not None else math.log(x)


BUILTINS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "round": _round,
    "ceil": math.ceil, "floor": math.floor, "log": _log, "log2": math.log2, "sqrt": math.sqrt,
    "int": int, "float": float, "bool": bool, "str": str,
    "len": len, "range": _range, "zip": lambda *xs: list(zip(*xs)), "sum": _sum,
    "enumerate": lambda xs, start=0: list(enumerate(xs, start)), "list": list,
    "reversed": lambda xs: list(reversed(xs)), "sorted": sorted, "any": any, "all": all,
    "cumsum": _cumsum, "runs": runs, "make_divisible": make_divisible, "quantize": quantize,
    "fail": fail,
}

# The same functions called with one argument, without the wrappers' frames
# (the compiled form of an expression calls these: bytecode.py).
ONE_ARGUMENT: dict[str, Callable[[Any], Any]] = {"log": math.log, "round": round}
