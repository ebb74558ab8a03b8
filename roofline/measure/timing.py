"""Timing one benchmark point: warm-up, repetitions derived from a time budget, every sample kept.

Modelled on `triton.testing.do_bench`, with its documentation kept true: `time_fn` returns ALL samples and
`Samples.summary()` reports the median (the figure we use), min, mean and the 10th/90th percentiles.

* CUDA: each repetition is timed with a pair of CUDA events; before each one an L2-sized buffer is zeroed
  (flush) when `flush=True`, so every run starts with a cold L2 (the flush itself is outside the events).
* CPU: `time.perf_counter` around each call (the call is synchronous). No flush: CPU arrays are sized at
  >= 4x the last-level cache where a cold cache matters (STREAM rules).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: L2 flush buffer: max(256 MB, 2x L2), zeroed before each timed CUDA run (triton uses 256 MB)
FLUSH_MIN_BYTES = 256e6


@dataclass(frozen=True)
class TimingBudget:
    """How long to warm up and measure one point, and the repetition bounds."""

    warmup_s: float = 0.05
    measure_s: float = 0.25
    min_reps: int = 5
    max_reps: int = 200


# Per ROUND: a CPU run measures every point in 3 rounds spread over the run (BenchContext.rounds), so a
# few seconds of a noisy neighbour (memory bandwidth on a shared VM jumps between ~36 and ~65 GB/s) land
# in one round of a point, not all of its samples.
QUICK_CPU = TimingBudget(warmup_s=0.02, measure_s=0.12, min_reps=4, max_reps=30)
FULL_CPU = TimingBudget(warmup_s=0.05, measure_s=0.4, min_reps=5, max_reps=100)
FULL_CUDA = TimingBudget(warmup_s=0.2, measure_s=0.4, min_reps=10, max_reps=500)


@dataclass(frozen=True)
class Samples:
    """Wall times of individual repetitions (seconds)."""

    times_s: tuple[float, ...]

    def summary(self, ref: str = "median_s") -> dict[str, float | str]:
        """Quantiles of the samples; `ref` names the one the model is compared with (see REFERENCE)."""
        t = np.asarray(self.times_s, dtype=float)
        return {"median_s": float(np.median(t)), "min_s": float(t.min()), "mean_s": float(t.mean()),
                "p10_s": float(np.quantile(t, 0.1)), "p25_s": float(np.quantile(t, 0.25)),
                "p90_s": float(np.quantile(t, 0.9)), "n": int(t.size), "ref": ref}


#: the statistic compared with the model: the median on a GPU; on a CPU `robust_s` (see `robust_round_s`):
#: other processes on a shared 2-core machine only slow a run down, in bursts of seconds to a minute, and
#: the host's memory bandwidth switches between states (~35 and ~55 GB/s on the shared VM) for seconds at
#: a time, so each point is measured in rounds spread over the run
REFERENCE = {"cuda": "median_s", "cpu": "robust_s"}

#: two rounds "agree" when their 25th percentiles are within this fraction of each other
ROUND_AGREEMENT = 0.10


def robust_round_s(round_p25_s, best: bool = False) -> float:
    """A point's reference time from its rounds (each round: the 25th percentile of its samples).

    Default: the median of the faster half of the rounds (one round: its p25; two or three: the mean of the
    two fastest; six: the second fastest): a burst of contention that slows up to half of the rounds does
    not move it. `best=True` (the streaming points, measured in every round): the fastest round, as STREAM
    reports: the fast memory-bandwidth state is the machine's capability and a point that caught it once
    is compared in it, as its neighbours are (a median or faster-half rule put one fresh run's 512 MiB
    streams at 53 GB/s and its 384 MiB ones at 35 GB/s, as they happened to catch the fast state in two
    rounds or in one)."""
    r = np.sort(np.asarray(round_p25_s, dtype=float))
    if best:
        return float(r[0])
    return float(np.median(r[:max(1, math.ceil(r.size / 2))]))


def round_disagreement(round_p25_s) -> float:
    """How far apart the two fastest rounds are: p25[1] / p25[0] - 1 (0 for a single round). Above
    ROUND_AGREEMENT no two rounds confirm the point's time: the runner re-measures points above twice
    that, and the fit down-weights them."""
    r = np.sort(np.asarray(round_p25_s, dtype=float))
    return float(r[1] / r[0] - 1.0) if r.size >= 2 and r[0] > 0 else 0.0


def reference_s(point: dict) -> float:
    """The point's reference time (its summary's `ref` statistic; the median for older profiles)."""
    s = point["summary"]
    return float(s[s.get("ref") or "median_s"])  # "ref" absent or null: the median, as check_profile reads it


def reps_for(estimate_s: float, budget: TimingBudget) -> tuple[int, int]:
    """(warm-up runs, timed runs) so that each phase takes about its budget, within the bounds.

    e.g. a 10 ms kernel with warmup_s=0.05, measure_s=0.25: 5 warm-up runs, 25 timed runs."""
    est = max(estimate_s, 1e-7)
    warm = max(1, min(budget.max_reps, math.ceil(budget.warmup_s / est)))
    reps = max(budget.min_reps, min(budget.max_reps, math.ceil(budget.measure_s / est)))
    return warm, reps


def time_fn(fn: Callable[[], object], device: str, budget: TimingBudget, flush: bool = False,
            l2_bytes: float = 0.0) -> Samples:
    """Time `fn()` repeatedly on `device` ("cpu" or "cuda"); returns every sample."""
    if device == "cuda":
        return _time_cuda(fn, budget, flush, l2_bytes)
    return _time_cpu(fn, budget)


def _time_cpu(fn: Callable[[], object], budget: TimingBudget) -> Samples:
    t0 = time.perf_counter()
    fn()  # first call: allocations, thread-pool start, page faults
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    second = time.perf_counter() - t0
    warm, reps = reps_for(min(first, second), budget)
    for _ in range(max(0, warm - 2)):
        fn()
    # a kernel that needs no warm-up beyond the first call (one as long as the warm-up budget) keeps its
    # second call as a timed run: on a long layer prefill, 4 timed runs cost 5 calls instead of 6
    times = [second] if warm <= 1 else []
    while len(times) < reps:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Samples(tuple(times))


def flush_buffer(l2_bytes: float):
    """A CUDA byte buffer of max(256 MB, 2x L2) whose zeroing evicts the L2."""
    import torch

    n = int(max(FLUSH_MIN_BYTES, 2.0 * l2_bytes))
    return torch.empty(n, dtype=torch.uint8, device="cuda")


def _time_cuda(fn: Callable[[], object], budget: TimingBudget, flush: bool, l2_bytes: float) -> Samples:
    import torch

    buf = flush_buffer(l2_bytes) if flush else None
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(3):
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = start.elapsed_time(end) / 1e3 / 3  # elapsed_time is in ms
    warm, reps = reps_for(estimate, budget)
    for _ in range(warm):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(starts, ends):
        if buf is not None:
            buf.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return Samples(tuple(s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)))
