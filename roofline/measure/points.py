"""What a benchmark point is: an id, a family, its counted FLOPs and bytes, and how to build the timed call.

Families (what `validate` groups by):
  stream       streaming kernels on arrays >= 4x the last-level cache (CPU) / max(1 GiB, 8x L2) (GPU)
  cache_sweep  the same kernel over a working-set sweep: shows the cache and DRAM/HBM plateaus
  copy_engine  `tensor.copy_` on a GPU (cudaMemcpy path), reported apart from the streaming ceiling
  launch       back-to-back tiny ops: the per-kernel (per-op) overhead
  gemm         GEMM ceilings per precision, the K-growing sweep (M = N fixed) and the M sweep (M = 1: GEMV)
  attention    SDPA: decode over batch x context, prefill over prompt length
  layer        a decoder layer stack built from a catalog model: prefill and decode steps
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

from roofline.measure.timing import FULL_CPU, FULL_CUDA, QUICK_CPU, TimingBudget

FAMILIES = ("stream", "cache_sweep", "copy_engine", "launch", "gemm", "attention", "layer")
#: the streaming families: compared by their best round, and they share their arrays between points
STREAM_FAMILIES = ("stream", "cache_sweep", "copy_engine")

TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16",
                "fp8": "float8_e4m3fn", "int8": "int8"}


@dataclass(frozen=True)
class BenchContext:
    """Where and how thoroughly to measure."""

    device: str  # "cpu" | "cuda"
    quick: bool
    cache_bytes: float  # CPU: last-level cache; GPU: L2
    memory_bytes: float  # RAM (CPU) or device memory (GPU)
    model: str = "llama-3.1-8b"  # catalog model the attention and layer points are shaped after
    seed: int = 0
    n_rounds: int = 0  # 0: the device's default (see `rounds`)

    @property
    def rounds(self) -> int:
        """Passes over the plan (CPU: 6: streaming points in each, the others in every second; GPU: 1)."""
        if self.n_rounds:
            return self.n_rounds
        return 1 if self.device == "cuda" else 6

    @property
    def budget(self) -> TimingBudget:
        if self.device == "cuda":
            return FULL_CUDA
        return QUICK_CPU if self.quick else FULL_CPU

    def torch_device(self):
        import torch

        return torch.device(self.device)


@dataclass
class PointSpec:
    """One measurement: counts by the model's formulas, plus a builder returning the call to time.

    `setup()` allocates the inputs and returns (fn, teardown); fn() runs the measured work once.
    """

    id: str
    family: str
    kind: str
    precision: str
    flops: float
    bytes_read: float
    bytes_written: float
    kernels: float
    working_set_bytes: float
    setup: Callable[[], tuple[Callable[[], Any], Callable[[], None]]]
    params: dict[str, Any] = field(default_factory=dict)
    flush: bool = False  # flush L2 before each timed run (CUDA)
    graph: bool = False  # capture in a CUDA graph (launch-bound work on CUDA)
    every_round: bool = False  # measured in every round (streams: most exposed to a noisy neighbour)

    def planned_rounds(self, rounds: int) -> int:
        """Rounds this point is measured in: all for `every_round` points, else rounds 0, 2, 4, ..."""
        return rounds if self.every_round else (rounds + 1) // 2

    def in_round(self, r: int) -> bool:
        return self.every_round or r % 2 == 0

    def record(self) -> dict[str, Any]:
        """The JSON fields of the point (no timing yet)."""
        return {"id": self.id, "family": self.family, "kind": self.kind, "precision": self.precision,
                "params": dict(self.params), "flops": float(self.flops), "bytes_read": float(self.bytes_read),
                "bytes_written": float(self.bytes_written), "kernels": float(self.kernels),
                "working_set_bytes": float(self.working_set_bytes)}


def no_teardown() -> None:
    return None


def seeded_generator(ctx: BenchContext, salt: int = 0):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(ctx.seed * 1000003 + salt)
    return g


def randn(shape, dtype, ctx: BenchContext, salt: int = 0):
    """Random normal inputs (never zeros: a GEMM on zeros runs faster), made on CPU then moved."""
    import torch

    t = torch.randn(shape, generator=seeded_generator(ctx, salt), dtype=torch.float32)
    if ctx.device != "cpu":
        t = t.to(ctx.device)
    return t.to(dtype)


def set_cpu_threads() -> int:
    """Use every CPU the process may run on."""
    import torch

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n
