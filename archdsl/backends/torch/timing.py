"""Timing a callable on this machine: warm-up, then the median of repeated
runs (medians resist the stalls of a shared machine better than means).

Two clocks: `wall` (time.perf_counter: latency as a user sees it) and, on a
CPU with one torch thread, `thread` (time.thread_time: the CPU time of the
thread that runs every kernel, user and system, page faults included). They
agree on an idle machine; on a shared one the thread clock leaves out the
time the thread waits for a core, which the wall clock counts at random.

glibc's malloc, by default, gives large freed blocks back to the kernel
(mmap'd blocks, and a trimmed heap top) and page-faults them in again on the
next allocation: on a CPU, a network whose activations are megabytes then
spends up to half its forward pass in page faults, an amount that depends on
the allocator's history rather than on the network. `steady_heap` turns that
off for this process, as the jemalloc or tcmalloc that PyTorch's CPU tuning
guide advises would: memory freed stays in the heap for the next layer.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

CLOCKS = ("wall", "thread")


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Timing:
    median: float  # seconds per call, on the clock asked for
    p10: float
    p90: float
    runs: int
    wall: float = 0.0  # the median on the wall clock (equal to median when that is the clock)


def check_clock(clock: str, device: str, threads: int) -> None:
    """The thread clock times one CPU thread: ValueError elsewhere."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}")
    if clock == "thread" and (not device.startswith("cpu") or threads != 1):
        raise ValueError("the thread clock needs device cpu and 1 thread (it times the calling thread only)")


def measure(fn: Callable[[], object], device: str = "cpu", warmup: int = 3, runs: int = 10,
            min_time: float = 0.0, max_runs: int = 1000, clock: str = "wall",
            before: Callable[[int], object] | None = None) -> Timing:
    """Seconds per call of fn(): `warmup` calls untimed, then at least `runs`
    timed calls (more, up to max_runs, until min_time seconds are spent);
    `before(i)`, untimed, before the i-th call (a context to run it in)."""
    for i in range(warmup):
        if before is not None:
            before(i)
        fn()
    synchronize(device)
    times: list[float] = []
    walls: list[float] = []
    spent = 0.0
    thread = clock == "thread"
    while len(times) < runs or (spent < min_time and len(times) < max_runs):
        if before is not None:
            before(len(times))
            synchronize(device)
        c0 = time.thread_time() if thread else 0.0
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        dt = time.perf_counter() - t0
        walls.append(dt)
        times.append(time.thread_time() - c0 if thread else dt)
        spent += dt
    times.sort()
    return Timing(statistics.median(times), times[len(times) // 10], times[(len(times) * 9) // 10], len(times),
                  statistics.median(walls))


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


_steady = [False]


def steady_heap() -> bool:
    """Keep freed memory in this process's heap from now on (see the module
    docstring): glibc's mallopt, no mmap'd blocks and no trimming. For a
    process that measures (archc calibrate, archc profile, the benchmarks):
    its memory then never shrinks. False where the C library is not glibc
    (nothing changed)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        _steady[0] = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    except (OSError, AttributeError):
        pass
    return _steady[0]


def heap_is_steady() -> bool:
    """Has steady_heap() been called in this process (and worked)?"""
    return _steady[0]
