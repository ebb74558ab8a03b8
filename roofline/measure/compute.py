"""Compute ceilings: square GEMMs per precision, and the per-op launch overhead.

FLOPs and bytes come from `roofline.ops.matmul` (the model's own formula): a square GEMM of size s does
2 s^3 FLOPs and moves s^2 (w + in + out) bytes; s = 2048 fp32: 2 * 2048^3 = 17.2 GFLOP over 48 MiB.
Precisions: fp32, tf32 (CUDA, `torch.backends.cuda.matmul.allow_tf32`), bf16, fp16, fp8 (`torch._scaled_mm`,
compute capability >= 8.9), int8 (`torch._int_mm`). Each is probed on a small GEMM first: one that errors,
or runs below 5% of the fp32 rate (no fast kernel, e.g. fp16 on most CPUs), is recorded as skipped.
"""
from __future__ import annotations

import time
from typing import Callable

from roofline.model.ops import matmul
from roofline.measure.points import BenchContext, PointSpec, randn

#: storage bytes of (weight/B, input/A, output/C) per precision; fp8 writes bf16, int8 accumulates to int32
GEMM_BYTES = {"fp32": (4, 4, 4), "tf32": (4, 4, 4), "bf16": (2, 2, 2), "fp16": (2, 2, 2),
              "fp8": (1, 1, 2), "int8": (1, 1, 4)}
LAUNCH_OPS = 100  # tiny ops per timed launch-overhead call
MIN_RATE_VS_FP32 = 0.05


class Unsupported(Exception):
    """This device cannot run the point (recorded as skipped, with the message as the reason)."""


def precisions(ctx: BenchContext) -> list[str]:
    if ctx.device == "cpu":
        return ["fp32", "bf16"] if ctx.quick else ["fp32", "bf16", "fp16", "int8"]
    import torch

    major, minor = torch.cuda.get_device_capability()
    out = ["fp32", "tf32", "bf16", "fp16"]
    if (major, minor) >= (8, 9):
        out.append("fp8")
    return out + ["int8"]


def gemm_sizes(ctx: BenchContext) -> list[int]:
    if ctx.device == "cuda":
        return [4096, 8192]
    return [1024, 2048] if ctx.quick else [1024, 2048, 4096]


def gemm_callable(ctx: BenchContext, precision: str, m: int, n: int, k: int, salt: int = 0) -> tuple[Callable, Callable]:
    """(fn, teardown) computing C[m,n] = A[m,k] @ B[k,n] in `precision` with preallocated output."""
    import torch

    dev = ctx.torch_device()
    if precision == "fp8":
        if not hasattr(torch, "_scaled_mm") or ctx.device != "cuda":
            raise Unsupported("fp8 GEMM needs torch._scaled_mm on CUDA (compute capability >= 8.9)")
        a = randn((m, k), torch.float32, ctx, salt).to(torch.float8_e4m3fn)
        b = randn((n, k), torch.float32, ctx, salt + 1).to(torch.float8_e4m3fn).t()  # column-major B
        one = torch.tensor(1.0, device=dev)
        return (lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)), _none
    if precision == "int8":
        gen_a = torch.randint(-64, 64, (m, k), dtype=torch.int8).to(dev)
        gen_b = torch.randint(-64, 64, (n, k), dtype=torch.int8).to(dev).t()
        return (lambda: torch._int_mm(gen_a, gen_b)), _none
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a, b = randn((m, k), dtype, ctx, salt), randn((k, n), dtype, ctx, salt + 1)
    c = torch.empty((m, n), dtype=dtype, device=dev)
    teardown = _none
    if ctx.device == "cuda":
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"

        def teardown():
            torch.backends.cuda.matmul.allow_tf32 = old
    return (lambda: torch.mm(a, b, out=c)), teardown


def _none() -> None:
    return None


_PROBES: dict[tuple, float] = {}


def probe_rate(ctx: BenchContext, precision: str, size: int = 256) -> float:
    """FLOP/s of a small GEMM (best of 3, cached per device and precision), or raise Unsupported."""
    key = (ctx.device, precision, size)
    if key not in _PROBES:
        _PROBES[key] = _probe(ctx, precision, size)
    return _PROBES[key]


def _probe(ctx: BenchContext, precision: str, size: int) -> float:
    try:
        fn, teardown = gemm_callable(ctx, precision, size, size, size, salt=99)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise Unsupported(f"{precision} GEMM unavailable: {str(e).splitlines()[0]}") from None
    try:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            _sync(ctx)
            best = min(best, time.perf_counter() - t0)
    except (RuntimeError, NotImplementedError) as e:
        raise Unsupported(f"{precision} GEMM failed: {str(e).splitlines()[0]}") from None
    finally:
        teardown()
    return 2.0 * size**3 / best


def _sync(ctx: BenchContext) -> None:
    if ctx.device == "cuda":
        import torch

        torch.cuda.synchronize()


def gemm_point(ctx: BenchContext, precision: str, m: int, n: int, k: int, kind: str, probe: bool = False) -> PointSpec:
    """One GEMM point, counted with roofline.ops.matmul (2mnk FLOPs; reads k*n*w + m*k*in, writes m*n*out)."""
    w, i, o = GEMM_BYTES[precision]
    cost = matmul(m, n, k, w, i, o)

    def setup():
        if probe and precision != "fp32":
            ref, rate = probe_rate(ctx, "fp32"), probe_rate(ctx, precision)
            if rate < MIN_RATE_VS_FP32 * ref:
                raise Unsupported(f"{precision} GEMM has no fast kernel here: {rate / 1e9:.1f} GFLOP/s "
                                  f"vs {ref / 1e9:.1f} GFLOP/s fp32 on a 256^3 probe")
        return gemm_callable(ctx, precision, m, n, k)

    return PointSpec(
        id=f"gemm/{kind}/{precision}/{m}x{n}x{k}", family="gemm", kind=kind, precision=precision,
        flops=float(cost.flops), bytes_read=float(cost.bytes_read), bytes_written=float(cost.bytes_written),
        kernels=1.0, working_set_bytes=float(cost.bytes_read + cost.bytes_written), setup=setup,
        params={"m": m, "n": n, "k": k}, flush=True)


def launch_point(ctx: BenchContext) -> PointSpec:
    """LAUNCH_OPS back-to-back adds on a 1-element tensor: per-op dispatch (CPU) / launch (CUDA) cost."""
    def setup():
        import torch

        x = torch.ones(1, device=ctx.torch_device())
        y = torch.empty_like(x)

        def fn():
            for _ in range(LAUNCH_OPS):
                torch.add(x, 1.0, out=y)
        return fn, _none

    return PointSpec(id="launch/add", family="launch", kind="launch", precision="fp32",
                     flops=float(LAUNCH_OPS), bytes_read=4.0 * LAUNCH_OPS, bytes_written=4.0 * LAUNCH_OPS,
                     kernels=float(LAUNCH_OPS), working_set_bytes=8.0, setup=setup, params={"ops": LAUNCH_OPS})


#: the reference kernels timed before, between the rounds of and after a run (runner.reference_check): a
#: fixed GEMM (CPU 512^3 fp32 = 268 MFLOP, ~3 ms on 2 cores; GPU 4096^3 bf16 = 137 GFLOP) and a copy of one
#: array (CPU 64 MiB, past a 32 MiB last-level cache; GPU 256 MiB, past any L2)
REFERENCE_GEMM = {"cpu": (512, "fp32"), "cuda": (4096, "bf16")}
REFERENCE_COPY_BYTES = {"cpu": 64 * 2**20, "cuda": 256 * 2**20}


def reference_points(ctx: BenchContext) -> dict[str, PointSpec]:
    """{"gemm": ..., "copy": ...}: the reference GEMM and copy: not part of the plan; the same work at every check, so a change in their
    time is a change in the machine (a neighbour, steal time, a clock), not in what is measured."""
    size, prec = REFERENCE_GEMM[ctx.device]
    gemm = gemm_point(ctx, prec, size, size, size, "reference")
    n = REFERENCE_COPY_BYTES[ctx.device] // 4

    def copy_setup():
        import torch

        a = torch.empty(n, dtype=torch.float32, device=ctx.torch_device()).fill_(1.5)
        c = torch.empty_like(a)
        return (lambda: c.copy_(a)), _none

    copy = PointSpec(id=f"reference/copy/{4 * n}", family="reference", kind="copy", precision="fp32", flops=0.0,
                     bytes_read=4.0 * n, bytes_written=4.0 * n, kernels=1.0, working_set_bytes=8.0 * n,
                     setup=copy_setup, params={"elements": n}, flush=True)
    gemm.family = "reference"
    return {"gemm": gemm, "copy": copy}


def points(ctx: BenchContext) -> list[PointSpec]:
    out: list[PointSpec] = [launch_point(ctx)]
    for p in precisions(ctx):
        out += [gemm_point(ctx, p, s, s, s, "gemm_peak", probe=True) for s in gemm_sizes(ctx)]
    return out

