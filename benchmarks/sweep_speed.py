"""How many full configurations (prefill + decode step per operator + memory) the model evaluates per second.

    python benchmarks/sweep_speed.py [--n 1000000] [--repeat 5] [--gpu h100-sxm] [--model llama-3.1-8b]

Prints "N configurations/s" for the best of --repeat runs (as timeit does: the least disturbed run), with
the median run beside it, twice: for the single-GPU / TP grid of --model (target: >= 2,000,000/s on a
2-core machine), and for a multi-GPU layout grid TP x PP x expert parallelism of --moe-model (collectives
timed by the communication model).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.model.efficiency import Efficiency
from roofline.model.engine import Setup
from roofline.model.sweep import evaluate_chunked, slice_setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--moe-model", default="mixtral-8x7b")
    args = ap.parse_args()
    gpu, model = load_gpu(args.gpu), load_model(args.model)
    rng = np.random.default_rng(0)
    n = args.n
    batch = rng.integers(1, 513, n).astype(float)
    context = rng.integers(0, 32769, n).astype(float)
    tp = rng.choice([1.0, 2.0, 4.0, 8.0], n)
    prec = rng.integers(0, 3, n)  # bf16 / fp8 / int4-weights-bf16
    w = np.array([2.0, 1.0, 0.5])[prec]
    a = np.array([2.0, 1.0, 2.0])[prec]
    kv = np.array([2.0, 1.0, 2.0])[prec]
    peak = np.array([gpu.peak_flops("bf16"), gpu.peak_flops("fp8"), gpu.peak_flops("bf16")])[prec]
    attn = np.full(n, gpu.peak_flops("bf16"))  # attention computes in 16 bits (engine.attention_peak)
    grid = Setup(gpu, model, tp, w, a, kv, peak, Efficiency(), attn)
    _report(grid, batch, context, args.repeat, f"{model.name} on {gpu.name}, TP 1-8")
    moe = load_model(args.moe_model)
    pp = rng.choice([1.0, 2.0, 4.0], n)
    ep = np.where(rng.integers(0, 2, n) == 1, tp, 1.0)  # expert parallelism off, or over the TP group
    layout = Setup(gpu, moe, tp, w, a, kv, peak, Efficiency(), attn, pp, ep, np.ones(n))
    _report(layout, batch, context, args.repeat, f"{moe.name} on {gpu.name}, TP x PP x EP layouts")


def _report(grid: Setup, batch, context, repeat: int, what: str) -> None:
    n = len(batch)
    evaluate_chunked(slice_setup(grid, slice(0, 1000), n), batch[:1000], context[:1000])  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = evaluate_chunked(grid, batch, context)
        times.append(time.perf_counter() - t0)
        assert len(out["decode_time_s"]) == n and np.all(np.isfinite(out["decode_time_s"]))
    best, median = min(times), float(np.median(times))
    print(f"{n / best:,.0f} configurations/s (best of {repeat}; median {n / median:,.0f}/s; "
          f"{n:,} configurations of {what})")


if __name__ == "__main__":
    main()
