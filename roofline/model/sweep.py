"""Grids of configurations in one vectorized evaluation: batch x context x TP x precision.

Each row is a full evaluation: prefill of a prompt of `context` tokens, one decode step at `context`,
and the memory model. Large grids are evaluated in chunks that stay cache-friendly.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from roofline.model import memory as mem
from roofline.model.efficiency import Efficiency
from roofline.model.engine import Setup, attention_peak, check_layout, compute_peak
from roofline.errors import RooflineError
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.model.phases import (compute_and_memory_s, critical_batch, decode_step, phase_time_s,
                                   pipeline_bubble_fraction, prefill)
from roofline.specs.precision import PrecisionSet, bytes_per_element

CHUNK = 1 << 16
#: grids larger than this skip the per-row critical-batch bisection (critical_batch is null)
MAX_CRITICAL_ROWS = 200_000


def evaluate(s: Setup, batch, context, ms: mem.MemorySettings | None = None) -> dict[str, np.ndarray]:
    """Evaluate arrays of configurations: the Setup's array fields (TP, precisions, peaks), `batch` and
    `context` broadcast together; returns one flat array per column (`prefill_*`, `decode_*`, memory).
    Memory columns use the same functions as `analyze` (roofline.model.memory)."""
    ms = ms or mem.MemorySettings()
    out = {}
    for phase, ops in (("prefill", prefill(s, batch, np.maximum(context, 1.0))), ("decode", decode_step(s, batch, context))):
        work = [o for o in ops if o.unit != "link"]
        c, m = compute_and_memory_s(ops)
        out[f"{phase}_flops"] = sum(o.flops for o in work)
        out[f"{phase}_bytes"] = sum(o.bytes for o in work)
        out[f"{phase}_compute_bound"] = c >= m
        out[f"{phase}_time_s"] = phase_time_s(s, ops, batch, phase)
    out["pipeline_bubble_fraction"] = np.broadcast_to(pipeline_bubble_fraction(s, batch),
                                                      np.shape(out["decode_time_s"]))
    cap = mem.kv_cache_capacity_bytes(s, ms)
    max_b = mem.max_batch(s, ms, context, cap)
    return {**out, "decode_tokens_per_s": batch / out["decode_time_s"], "weights_bytes": mem.weights_bytes(s),
            "kv_cache_capacity_tokens": mem.kv_cache_capacity_tokens(s, ms, cap), "max_batch": max_b,
            "kv_cache_utilization": mem.kv_cache_utilization(s, ms, batch, context, cap),
            "fits": max_b >= 1, "batch_fits": max_b >= batch}


def sweep(gpu: GPUSpec, model: ModelConfig, batches, contexts, tps=(1,), precisions=("bf16",),
          efficiency: Efficiency | None = None, ms: mem.MemorySettings | None = None, pps=(1,),
          expert_parallel=(False,), dp_attentions=(1,)) -> dict[str, np.ndarray]:
    """The full grid batch x context x tp x pp x expert parallelism x attention-DP x precision, one row per
    valid configuration (flat columns; see `nest_row` for the JSON shape). `precisions`: PrecisionSets or
    their text ('int4', 'int4/bf16/fp8': see PrecisionSet). `expert_parallel`: False (experts TP-sharded)
    and/or True (ep = tp x dp_attention). Layouts the model cannot take (see engine.check_layout) are left
    out (see valid_layouts); none valid is an error. The critical batch is computed once per
    (context, layout, precision)."""
    sets = [p if isinstance(p, PrecisionSet) else PrecisionSet.parse(p) for p in precisions]
    _check_grid(batches, contexts)
    layouts, skipped = valid_layouts(model, tps, pps, expert_parallel, dp_attentions)
    if not layouts:
        raise skipped[0]
    peaks = [compute_peak(gpu, p.activations, p.weights) for p in sets]
    attn_peaks = [attention_peak(gpu, p.activations) for p in sets]
    B, C, L, P = np.meshgrid(np.asarray(batches, float), np.asarray(contexts, float), np.arange(len(layouts)),
                             np.arange(len(sets)), indexing="ij")
    B, C, L, P = (a.ravel() for a in (B, C, L, P))
    L, P = L.astype(int), P.astype(int)
    T, PP, EP, DP = (np.array([lay[i] for lay in layouts], dtype=float)[L] for i in range(4))
    w = np.array([bytes_per_element(p.weights) for p in sets])[P]
    a = np.array([bytes_per_element(p.activations) for p in sets])[P]
    kv = np.array([bytes_per_element(p.kv) for p in sets])[P]
    pk, apk = np.array(peaks)[P], np.array(attn_peaks)[P]
    grid = Setup(gpu, model, T, w, a, kv, pk, efficiency or Efficiency(), apk, PP, EP, DP,
                 costs=(ms or mem.MemorySettings()).pass_costs())
    cols = evaluate_chunked(grid, B, C, ms)
    labels = np.array([p.label for p in sets], dtype=object)[P]
    for ph in ("prefill", "decode"):
        cols[f"{ph}_bound"] = np.where(cols.pop(f"{ph}_compute_bound"), "compute", "memory")
    for k in ("max_batch", "kv_cache_capacity_tokens"):
        cols[k] = cols[k].astype(np.int64)
    crit = critical_batch(grid, C) if len(B) <= MAX_CRITICAL_ROWS else np.full(len(B), -2)
    return {"batch": B.astype(np.int64), "context": C.astype(np.int64), "tp": T.astype(np.int64),
            "precision": labels, "ttft_s": cols["prefill_time_s"], "tpot_s": cols["decode_time_s"], **cols,
            "critical_batch": np.where(crit > 0, crit.astype(object), np.where(crit == -1, "never", None)),
            "pp": PP.astype(np.int64), "ep": EP.astype(np.int64), "dp_attention": DP.astype(np.int64),
            "gpus": (T * PP * DP).astype(np.int64)}


def valid_layouts(model: ModelConfig, tps, pps=(1,), expert_parallel=(False,), dp_attentions=(1,)):
    """([(tp, pp, ep, dp_attention)] the model can take, [RooflineError of each combination it cannot])."""
    layouts, skipped = [], []
    for t in tps:
        for pp in pps:
            for dp in dp_attentions:
                for on in expert_parallel:
                    ep = t * dp if on else 1
                    try:
                        check_layout(model, t, pp, ep, dp)
                    except RooflineError as e:
                        skipped.append(e)
                        continue
                    if (t, pp, ep, dp) not in layouts:
                        layouts.append((t, pp, ep, dp))
    return layouts, skipped


def _check_grid(batches, contexts) -> None:
    for b in batches:
        if b <= 0:
            raise RooflineError(f"batch must be >= 1, got {b}", hint="give batches like 1,8,64", exit_code=2,
                                param="batch")
    for c in contexts:
        if c < 0:
            raise RooflineError(f"context must be >= 0, got {c}", hint="give contexts like 512,4096", exit_code=2,
                                param="context")


_PHASE_KEYS = {"flops": "flops", "bytes": "bytes", "bound": "bound", "time_s": "time_s"}
_MEMORY_KEYS = ("weights_bytes", "kv_cache_capacity_tokens", "max_batch", "kv_cache_utilization", "fits", "batch_fits")


def nest_row(row: dict) -> dict:
    """A flat sweep row in the JSON contract's shape: `prefill` and `decode` summaries with flops, bytes,
    arithmetic_intensity_flops_per_byte, bound, time_s; `memory`; ttft_s, tpot_s, critical_batch on top."""
    out = {k: row[k] for k in ("batch", "context", "tp", "precision", "ttft_s", "tpot_s", "decode_tokens_per_s",
                               "critical_batch", "pp", "ep", "dp_attention", "gpus", "pipeline_bubble_fraction")}
    for ph in ("prefill", "decode"):
        d = {k: row[f"{ph}_{v}"] for k, v in _PHASE_KEYS.items()}
        d["arithmetic_intensity_flops_per_byte"] = d["flops"] / d["bytes"] if d["bytes"] else None
        out[ph] = d
    out["memory"] = {k: row[k] for k in _MEMORY_KEYS}
    return out


def evaluate_chunked(s: Setup, batch: np.ndarray, context: np.ndarray, ms: mem.MemorySettings | None = None,
                     chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """`evaluate` over 1-D arrays (`batch`, `context` and the Setup's array fields, all of one length) in
    chunks, one thread per core (numpy releases the GIL in its loops), concatenated in order."""
    def run(i):
        sl = slice(i, i + chunk)
        return evaluate(slice_setup(s, sl, len(batch)), batch[sl], context[sl], ms)

    starts = range(0, len(batch), chunk)
    if len(starts) > 1:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            parts = list(pool.map(run, starts))
    else:
        parts = [run(0)]
    return {k: np.concatenate([np.broadcast_to(p[k], np.shape(p["decode_time_s"])) for p in parts]) for k in parts[0]}


_ARRAY_FIELDS = ("tp", "w_bytes", "a_bytes", "kv_bytes", "tensor_flops_per_s", "attention_flops_per_s", "pp", "ep", "dp",
                 "ep_imbalance")


def slice_setup(s: Setup, sl: slice, n: int) -> Setup:
    """The Setup of rows `sl`: per-row array fields (length n) sliced, scalars and None kept (chunked sweeps,
    benchmarks)."""
    def cut(v):
        return v[sl] if v is not None and np.ndim(v) == 1 and len(v) == n else v
    return replace(s, **{f: cut(getattr(s, f)) for f in _ARRAY_FIELDS})
