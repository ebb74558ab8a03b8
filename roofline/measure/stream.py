"""Memory-streaming ceilings: read, write, copy, scale, add, triad; a working-set sweep; copy_ apart.

Bytes counted STREAM-style (compulsory traffic, no write-allocate): with n elements of s bytes,
  read  (sum)              n*s read,             1 FLOP/elem
  write (fill_)            n*s written
  copy  (copy_)            n*s read, n*s written
  scale (c = 3 a)          n*s read, n*s written, 1 FLOP/elem
  add   (c = a + b)        2 n*s read, n*s written, 1 FLOP/elem
  triad (c = b + 3 a)      2 n*s read, n*s written, 2 FLOP/elem
On a GPU, `copy_` of a contiguous tensor goes through cudaMemcpyAsync, which reaches ~67-75% of HBM on
Hopper (https://github.com/NVIDIA/cccl/issues/1672: 67% of H200 HBM; https://github.com/NVIDIA/nccl/issues/1264),
so it is family `copy_engine`, not a streaming ceiling; on a CPU it is a plain streaming loop and belongs to `stream`.
"""
from __future__ import annotations

from roofline.measure.points import BenchContext, PointSpec, seeded_generator

GiB = 2.0**30
MiB = 2.0**20

# kernel -> (arrays read, arrays written, FLOPs per element, arrays allocated)
KERNELS: dict[str, tuple[int, int, int, int]] = {
    "read": (1, 0, 1, 1), "write": (0, 1, 0, 1), "copy": (1, 1, 0, 2),
    "scale": (1, 1, 1, 2), "add": (2, 1, 1, 3), "triad": (2, 1, 2, 3),
}
ELEM_BYTES = 4  # fp32


def stream_array_bytes(ctx: BenchContext) -> list[float]:
    """Bytes per array for the `stream` family: GPU max(1 GiB, 8x L2) and twice that; CPU 6x, 8x, 12x and
    16x the LLC (32 MiB LLC: 192, 256, 384 and 512 MiB per array; all >= 4x the LLC, STREAM rules), and
    32x for the full run. Four sizes per kernel so that `validate` holds out two of each (sizes alternate
    between calibration and held out), interpolated as well as extrapolated."""
    if ctx.device == "cuda":
        base = max(GiB, 8.0 * ctx.cache_bytes)
        return [base, 2.0 * base]
    base = max(8.0 * ctx.cache_bytes, 128 * MiB)
    sizes = [0.75 * base, base, 1.5 * base, 2.0 * base]
    return sizes if ctx.quick else sizes + [4.0 * base]


def sweep_array_bytes(ctx: BenchContext) -> list[float]:
    """Working-set sweep (bytes per array, 3 arrays for triad): from well inside L2/LLC to past it."""
    top = max(8.0 * ctx.cache_bytes, 64 * MiB)
    sizes, s = [], 64 * 1024.0 if ctx.device == "cpu" else 1 * MiB
    step = 4.0 if ctx.quick else 2.0
    while s < top:
        sizes.append(s)
        s *= step
    return sizes


_SHARED: dict[tuple, list] = {}
_HOLD: list = []  # non-empty: keep every size's arrays (the runner's interleaved stream block)


class hold_sizes:
    """Within the block, arrays of a new size do not free the previous sizes' (CPU quick: 4 GiB in all)."""

    def __enter__(self):
        _HOLD.append(True)

    def __exit__(self, *exc):
        _HOLD.pop()


def _make_arrays(ctx: BenchContext, n: int, count: int):
    """`count` random fp32 arrays of n elements: a random 1 Mi-element block tiled (randn of 256 MB takes
    0.4 s on a 2-core CPU; streaming does not care that the values repeat, only that they are not zeros).
    The kernels of one size share their arrays (see `release`)."""
    import torch

    key = (ctx.device, n)
    if key not in _SHARED:
        if not _HOLD:
            release()
        block = torch.randn(min(n, 1 << 20), generator=seeded_generator(ctx, 0), dtype=torch.float32)
        reps = -(-n // block.numel())
        _SHARED[key] = []
        for i in range(3):
            t = (block * (1.0 + 0.25 * i)).repeat(reps)[:n].contiguous()
            _SHARED[key].append(t.to(ctx.device) if ctx.device != "cpu" else t)
    return _SHARED[key][:count]


def release() -> None:
    """Free the shared stream arrays (the runner calls it after every non-streaming point)."""
    _SHARED.clear()


def _kernel_fn(kind: str, arrays):
    import torch

    if kind == "read":
        a, = arrays
        acc = torch.empty((), dtype=a.dtype, device=a.device)
        return lambda: torch.sum(a, dim=0, out=acc)
    if kind == "write":
        c, = arrays
        return lambda: c.fill_(1.5)
    if kind == "copy":
        a, c = arrays
        return lambda: c.copy_(a)
    if kind == "scale":
        a, c = arrays
        return lambda: torch.mul(a, 3.0, out=c)
    if kind == "add":
        a, b, c = arrays
        return lambda: torch.add(a, b, out=c)
    if kind == "triad":
        a, b, c = arrays
        return lambda: torch.add(b, a, alpha=3.0, out=c)
    raise ValueError(kind)


def stream_point(ctx: BenchContext, kind: str, array_bytes: float, family: str) -> PointSpec:
    n = int(array_bytes // ELEM_BYTES)
    reads, writes, flops, count = KERNELS[kind]

    def setup():
        return _kernel_fn(kind, _make_arrays(ctx, n, count)), (lambda: None)

    return PointSpec(
        id=f"{family}/{kind}/{n * ELEM_BYTES}", family=family, kind=kind, precision="fp32",
        flops=float(flops * n), bytes_read=float(reads * n * ELEM_BYTES), bytes_written=float(writes * n * ELEM_BYTES),
        kernels=1.0, working_set_bytes=float(count * n * ELEM_BYTES), setup=setup,
        params={"elements": n, "array_bytes": n * ELEM_BYTES}, flush=family != "cache_sweep", every_round=True)


def points(ctx: BenchContext) -> list[PointSpec]:
    out = []
    for size in stream_array_bytes(ctx):
        for kind in KERNELS:
            if kind == "copy" and ctx.device == "cuda":
                out.append(stream_point(ctx, "copy", size, "copy_engine"))
            else:
                out.append(stream_point(ctx, kind, size, "stream"))
    out += [stream_point(ctx, "triad", s, "cache_sweep") for s in sweep_array_bytes(ctx)]
    return out
