"""Timing a callable on this machine: warm-up, then the median of repeated
runs (medians resist the stalls of a shared machine better than means)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Timing:
    median: float  # seconds per call
    p10: float
    p90: float
    runs: int


def measure(fn: Callable[[], object], device: str = "cpu", warmup: int = 3, runs: int = 10,
            min_time: float = 0.0, max_runs: int = 1000) -> Timing:
    """Seconds per call of fn(): `warmup` calls untimed, then at least `runs`
    timed calls (more, up to max_runs, until min_time seconds are spent)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    spent = 0.0
    while len(times) < runs or (spent < min_time and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    times.sort()
    return Timing(statistics.median(times), times[len(times) // 10], times[(len(times) * 9) // 10], len(times))


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
