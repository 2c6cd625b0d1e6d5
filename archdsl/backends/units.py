"""Numbers for people: times in the unit that fits, floats to the digits they mean."""
from __future__ import annotations

import math

_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def fmt_seconds(s: float) -> str:
    """3 significant digits in s, ms, µs or ns: 0.000342 -> '342 µs', 0.0096 -> '9.60 ms'."""
    s = significant(s, 3)  # first: 999.96 µs is 1.00 ms
    if s == 0 or not math.isfinite(s):
        return f"{s:g} s"
    scale, unit = next(((f, u) for f, u in _TIME_UNITS if abs(s) >= f), _TIME_UNITS[-1])
    v = s / scale
    return f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f} {unit}"


def significant(x: float, digits: int) -> float:
    """`x` rounded to `digits` significant digits (an estimate's digits, not float noise)."""
    return float(f"{x:.{digits}g}") if x and math.isfinite(x) else x
