"""What a process remembers between compiles, and how to make it forget.

A few modules keep dictionaries keyed by what specs and configs say (parsed
files, composed YAML, validated op attributes, elaborated blocks, layer
costs), so that a sweep or a second load repeats no work. Each makes its
dictionary with `process_cache(stage)`, so one call forgets them all:
benchmarks and tests use `forget()` to time or check a load as a new process
would run it. (The on-disk parse cache, archdsl.parsecache, outlives the
process and is not touched here; nor are what is keyed by code rather than
by specs, such as archdsl.construct's per-class templates and op signatures,
which a new process makes once, as it imports.)

Stages: "read" holds what reading files produced (syntax trees, config
data); "elaborated" holds what elaborating configs produced.
"""
from __future__ import annotations

STAGES = ("read", "elaborated")
_CACHES: dict[str, list[dict]] = {stage: [] for stage in STAGES}


def process_cache(stage: str) -> dict:
    """A new in-process cache, emptied by forget(stage) and forget()."""
    cache: dict = {}
    _CACHES[stage].append(cache)
    return cache


def forget(*stages: str) -> None:
    """Empty the in-process caches of `stages` (default: all of them)."""
    for stage in stages or STAGES:
        for cache in _CACHES[stage]:
            cache.clear()
