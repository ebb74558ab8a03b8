"""Arithmetic-intensity sweeps that trace the roofline with real GEMMs.

* K sweep: C[M,N] = A[M,K] @ B[K,N] with M = N fixed and K doubling. Intensity (FLOP per compulsory byte)
  = 2MNK / (s (MK + KN + MN)); fp32 with M = N = 4096: K = 1 -> 2*4096^2 / (4 * (2*4096 + 4096^2)) = 0.50,
  K = 512 -> 2*4096^2*512 / (4 * (2*4096*512 + 4096^2)) = 102.4, so the points run from far below the
  ridge (~6 FLOP/byte on a 2-core CPU, ~300 on an H100 in bf16) to the compute plateau.
* M sweep: y[M,N] = x[M,K] @ W[N,K]^T (the layout of `F.linear`, as a model's linear layers run) on a weight larger than
  the last-level cache, M from 1 (GEMV, intensity ~ 2 FLOP per weight element = 0.5 FLOP/byte in fp32)
  upward: the decode-step shape.
"""
from __future__ import annotations

import math

from roofline.model.ops import matmul
from roofline.measure.compute import GEMM_BYTES, gemm_point
from roofline.measure.points import BenchContext, PointSpec, randn


def k_sweep(ctx: BenchContext) -> tuple[int, list[int], list[str]]:
    """(M = N, the K values, precisions)."""
    if ctx.device == "cuda":
        return 8192, [2**i for i in range(4, 14)], ["bf16", "fp32"]
    if ctx.quick:
        return 4096, [2**i for i in range(0, 10)], ["fp32"]
    return 4096, [2**i for i in range(0, 12)], ["fp32", "bf16"]


def m_sweep(ctx: BenchContext) -> tuple[list[tuple[int, int]], list[int], list[str]]:
    """(weight shapes (N, K), the M values, precisions). Shapes span a model's linear layers: on a CPU
    1024 x 1024, 4096 x 2048 and 8192 x 4096 fp32 (4, 32 and 128 MiB); on a GPU up to 28672 x 8192 bf16."""
    if ctx.device == "cuda":
        return [(4096, 4096), (14336, 4096), (28672, 8192)], [2**i for i in range(0, 13)], ["bf16"]
    ms = [2**i for i in range(0, 10)]
    if ctx.quick:
        return [(1024, 1024), (4096, 2048), (8192, 4096)], ms, ["fp32"]
    return [(1024, 1024), (4096, 2048), (8192, 4096)], ms, ["fp32", "bf16"]


def gemv_shapes(ctx: BenchContext) -> list[tuple[int, int]]:
    """Extra GEMV (M = 1) weights between the M-sweep's, every doubling of size: a decode step is mostly
    GEMVs, so their efficiency is sampled densely (CPU fp32: 2, 8, 16 and 64 MiB; GPU bf16: 8 to 1024 MiB)."""
    if ctx.device == "cuda":
        return [(1024, 4096), (2048, 4096), (8192, 4096), (8192, 8192), (16384, 8192), (28672, 16384)]
    return [(512, 1024), (2048, 1024), (2048, 2048), (4096, 4096)]


def cold_copies(ctx: BenchContext, weight_bytes: float) -> int:
    """Weight copies to cycle through so each call reads it from DRAM: sum >= 8x the LLC (CPU; a GPU
    flushes its L2 instead)."""
    if ctx.device == "cuda":
        return 1
    return max(1, min(64, math.ceil(8.0 * ctx.cache_bytes / weight_bytes)))


_WEIGHTS: dict[tuple, list] = {}


def _weights(ctx: BenchContext, precision: str, dtype, n: int, k: int, copies: int) -> list:
    """The `copies` transposed random weights of one (n, k) shape, shared by the M-sweep points of that
    shape (consecutive in the plan; cloning 8x the LLC of weights for each of them cost ~0.5 s a point).
    The runner calls `release` after every point that is not an M-sweep point."""
    key = (ctx.device, precision, n, k, copies)
    if key not in _WEIGHTS:
        release()
        weight = randn((n, k), dtype, ctx, 2)
        _WEIGHTS[key] = [weight.t()] + [weight.clone().t() for _ in range(copies - 1)]
    return _WEIGHTS[key]


def release() -> None:
    """Free the shared M-sweep weights."""
    _WEIGHTS.clear()


def linear_point(ctx: BenchContext, precision: str, m: int, n: int, k: int) -> PointSpec:
    """y[m,n] = x[m,k] @ W[n,k]^T (what F.linear runs, into a preallocated y), W read cold (cycling through
    copies on a CPU, as in a model whose layers' weights exceed the cache); counted by ops.matmul."""
    w, i, o = GEMM_BYTES[precision]
    cost = matmul(m, n, k, w, i, o)
    copies = cold_copies(ctx, n * k * w)

    def setup():
        import torch

        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        x = randn((m, k), dtype, ctx, 1)
        weights = _weights(ctx, precision, dtype, n, k, copies)
        y = torch.empty((m, n), dtype=dtype, device=ctx.torch_device())
        state = [0]

        def fn():
            state[0] = (state[0] + 1) % copies
            return torch.mm(x, weights[state[0]], out=y)
        return fn, (lambda: None)

    return PointSpec(
        id=f"gemm/msweep/{precision}/{m}x{n}x{k}", family="gemm", kind="gemv" if m == 1 else "msweep",
        precision=precision, flops=float(cost.flops), bytes_read=float(cost.bytes_read),
        bytes_written=float(cost.bytes_written), kernels=1.0,
        working_set_bytes=float(copies * (cost.bytes_read + cost.bytes_written)), setup=setup,
        params={"m": m, "n": n, "k": k, "cold_copies": copies}, flush=True)


def points(ctx: BenchContext) -> list[PointSpec]:
    out: list[PointSpec] = []
    mn, ks, precs = k_sweep(ctx)
    for p in precs:
        out += [gemm_point(ctx, p, mn, mn, k, "ksweep", probe=True) for k in ks]
    shapes, ms, precs = m_sweep(ctx)
    for p in precs:
        out += [linear_point(ctx, p, m, n, k) for (n, k) in shapes for m in ms]
        out += [linear_point(ctx, p, 1, n, k) for (n, k) in gemv_shapes(ctx)]
    return out
