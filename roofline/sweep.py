"""Grids of configurations in one vectorized evaluation: batch x context x TP x precision.

Each row is a full evaluation: prefill of a prompt of `context` tokens, one decode step at `context`,
and the memory model. Large grids are evaluated in chunks that stay cache-friendly.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import memory as mem
from .efficiency import Efficiency
from .engine import Setup, attention_peak, check_tp, compute_peak
from .errors import RooflineError
from .hardware import GPUSpec
from .models import ModelConfig
from .phases import compute_and_memory_s, decode_step, prefill
from .precision import bytes_per_element, check_precision
from .engine import total_time_s

CHUNK = 1 << 16


@dataclass(frozen=True)
class PrecisionSet:
    """Weights / activations (compute) / KV-cache precisions, written 'bf16' (all three) or 'int4/bf16/fp8'."""

    weights: str
    activations: str
    kv: str

    @classmethod
    def parse(cls, text: str) -> "PrecisionSet":
        parts = [p.strip() for p in text.split("/")]
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise RooflineError(f"bad precision {text!r}", hint="write one name (bf16) or weights/activations/kv "
                                "(int4/bf16/fp8)", exit_code=2)
        return cls(check_precision(parts[0], "weights"), check_precision(parts[1], "activations"),
                   check_precision(parts[2], "kv"))

    @property
    def label(self) -> str:
        return self.weights if self.weights == self.activations == self.kv else \
            f"{self.weights}/{self.activations}/{self.kv}"


def evaluate(gpu: GPUSpec, model: ModelConfig, batch, context, tp, w_bytes, a_bytes, kv_bytes, peak,
             efficiency: Efficiency | None = None, ms: mem.MemorySettings | None = None,
             attn_peak=None) -> dict[str, np.ndarray]:
    """Evaluate arrays of configurations (all arguments broadcast); returns one array per column.
    `attn_peak` is the attention operators' peak (engine.attention_peak), default `peak`."""
    s = Setup(gpu, model, tp, w_bytes, a_bytes, kv_bytes, peak, efficiency or Efficiency(), attn_peak)
    ms = ms or mem.MemorySettings()
    pre, dec = prefill(s, batch, np.maximum(context, 1.0)), decode_step(s, batch, context)
    d_flops = sum(o.flops for o in dec)
    d_bytes = sum(o.bytes for o in dec)
    c, m = compute_and_memory_s(dec)
    pc, pm = compute_and_memory_s(pre)
    tpot, ttft = total_time_s(dec), total_time_s(pre)
    weights = mem.weights_bytes(s)
    cap = np.maximum(ms.memory_utilization * gpu.memory_bytes - weights - mem.activation_bytes(s, ms)
                     - ms.runtime_reserve_bytes, 0.0)
    per_seq = mem.kv_cache_bytes_per_sequence(s, np.maximum(context, 1.0))
    max_b = np.floor(cap / per_seq)
    return {"ttft_s": ttft, "prefill_compute_bound": pc >= pm, "tpot_s": tpot, "decode_compute_bound": c >= m,
            "decode_flops": d_flops, "decode_bytes": d_bytes,
            "arithmetic_intensity_flops_per_byte": d_flops / d_bytes,
            "output_tokens_per_s": batch / tpot, "weights_bytes": weights,
            "kv_cache_capacity_tokens": np.floor(cap / mem.kv_cache_bytes_per_token(s)),
            "max_batch": max_b, "kv_cache_utilization": batch * per_seq / np.maximum(cap, 1.0),
            "fits": (max_b >= batch)}


def sweep(gpu: GPUSpec, model: ModelConfig, batches, contexts, tps=(1,), precisions=("bf16",),
          efficiency: Efficiency | None = None, ms: mem.MemorySettings | None = None) -> dict[str, np.ndarray]:
    """The full grid batch x context x tp x precision, one row per configuration."""
    sets = [p if isinstance(p, PrecisionSet) else PrecisionSet.parse(p) for p in precisions]
    for t in tps:
        check_tp(model, t)
    for b in batches:
        if b <= 0:
            raise RooflineError(f"batch must be >= 1, got {b}", hint="give batches like 1,8,64", exit_code=2)
    for c in contexts:
        if c < 0:
            raise RooflineError(f"context must be >= 0, got {c}", hint="give contexts like 512,4096", exit_code=2)
    peaks = [compute_peak(gpu, p.activations, p.weights) for p in sets]
    attn_peaks = [attention_peak(gpu, p.activations) for p in sets]
    B, C, T, P = np.meshgrid(np.asarray(batches, float), np.asarray(contexts, float), np.asarray(tps, float),
                             np.arange(len(sets)), indexing="ij")
    B, C, T, P = (a.ravel() for a in (B, C, T, P))
    P = P.astype(int)
    w = np.array([bytes_per_element(p.weights) for p in sets])[P]
    a = np.array([bytes_per_element(p.activations) for p in sets])[P]
    kv = np.array([bytes_per_element(p.kv) for p in sets])[P]
    pk, apk = np.array(peaks)[P], np.array(attn_peaks)[P]
    cols = evaluate_chunked(gpu, model, B, C, T, w, a, kv, pk, efficiency, ms, attn_peak=apk)
    labels = np.array([p.label for p in sets], dtype=object)[P]
    bounds = {f"{ph}_bound": np.where(cols.pop(f"{ph}_compute_bound"), "compute", "memory") for ph in ("prefill", "decode")}
    return {"batch": B.astype(np.int64), "context": C.astype(np.int64), "tp": T.astype(np.int64),
            "precision": labels, **bounds, **cols}


def evaluate_chunked(gpu, model, batch, context, tp, w, a, kv, peak, efficiency=None, ms=None, chunk=CHUNK,
                     attn_peak=None):
    """`evaluate` over 1-D arrays in chunks, one thread per core (numpy releases the GIL in its loops),
    concatenated in order."""
    def run(i):
        sl = slice(i, i + chunk)
        ap = None if attn_peak is None else attn_peak[sl]
        return evaluate(gpu, model, batch[sl], context[sl], tp[sl], w[sl], a[sl], kv[sl], peak[sl], efficiency, ms, ap)

    starts = range(0, len(batch), chunk)
    if len(starts) > 1:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            parts = list(pool.map(run, starts))
    else:
        parts = [run(0)]
    return {k: np.concatenate([np.broadcast_to(p[k], np.shape(p["tpot_s"])) for p in parts]) for k in parts[0]}
