"""Attention with `torch.nn.functional.scaled_dot_product_attention`, shaped after a catalog model.

* decode: one query per sequence against a KV cache of `context` tokens, over batch x context;
* prefill: causal self-attention of one prompt over its length.
FLOPs and bytes are the model's own (`roofline.ops` attn_scores + attn_softmax + attn_context through a
`Pass`), so the prediction in `validate` and these counts cannot disagree. Decode of llama-3.1-8b
(32 heads, 8 KV heads, d = 128) at batch 8, context 4096, fp32: K and V read = 8 * 4096 * 8 * 128 * 2 * 4 B
= 268 MB, FLOPs = 2 * 2 * 8 * 4097 * 32 * 128 = 537 MFLOP (intensity ~2 FLOP/byte: memory-bound).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from roofline.specs.models import ModelConfig, load_model
from roofline.model.ops import REGISTRY, Pass
from roofline.model.phases import attention_terms
from roofline.specs.precision import bytes_per_element
from roofline.measure.points import BenchContext, PointSpec, randn

ATTENTION_OPS = ("attn_scores", "attn_softmax", "attn_context")


def attention_pass(model: ModelConfig, batch: int, new: int, cached: int, precision: str) -> Pass:
    """The Pass of `batch` sequences adding `new` tokens to `cached` ones (tp = 1), as phases.make_pass."""
    pairs, reads = attention_terms(model, new, cached)
    e = np.asarray(bytes_per_element(precision))
    b = np.asarray(float(batch))
    return Pass(model, b * new, b, b * pairs, b * reads, np.asarray(1.0), e, e, e)


def attention_cost(model: ModelConfig, batch: int, new: int, cached: int, precision: str) -> dict[str, float]:
    """Summed FLOPs / bytes / kernels of the attention operators for one layer."""
    p = attention_pass(model, batch, new, cached, precision)
    costs = [REGISTRY[name].formula(p) for name in ATTENTION_OPS]
    return {"flops": float(sum(np.sum(c.flops) for c in costs)),
            "bytes_read": float(sum(np.sum(c.bytes_read) for c in costs)),
            "bytes_written": float(sum(np.sum(c.bytes_written) for c in costs)),
            "kernels": float(sum(c.kernels for c in costs))}


def grid(ctx: BenchContext) -> tuple[list[tuple[int, int]], list[int], str]:
    """(decode (batch, context) pairs, prefill prompt lengths, precision)."""
    if ctx.device == "cuda":
        return [(b, c) for b in (1, 8, 32, 128) for c in (1024, 4096, 16384)], [512, 2048, 8192], "bf16"
    if ctx.quick:
        return [(b, c) for b in (1, 8) for c in (1024, 4096)], [128, 512, 1024], "fp32"
    return [(b, c) for b in (1, 4, 16) for c in (512, 2048, 8192)], [128, 512, 1024, 2048], "fp32"


def _dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def sdpa(q, k, v):
    """Attention of q [b, H, t, d] over k, v [b, K, s, d] (K divides H), causal when t > 1.

    Decode (t = 1) with grouped KV heads packs each group's H / K queries into the query axis of its KV
    head (as flash-decoding kernels do), so K and V are read once; `enable_gqa=True` on a CPU expands K
    and V per query head first (1.7x slower at batch 8, context 4096). Prefill uses enable_gqa."""
    import torch.nn.functional as F

    b, heads, t, d = q.shape
    kv_heads = k.shape[1]
    if t == 1 and kv_heads != heads:
        packed = q.reshape(b, kv_heads, heads // kv_heads, d)
        return F.scaled_dot_product_attention(packed, k, v).reshape(b, heads, 1, v.shape[-1])
    return F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, enable_gqa=kv_heads != heads)


def sdpa_point(ctx: BenchContext, model: ModelConfig, batch: int, new: int, cached: int,
               precision: str) -> PointSpec:
    """SDPA of `batch` x `new` queries over `cached + new` keys (causal when new > 1)."""
    cost = attention_cost(model, batch, new, cached, precision)
    h, kvh, d = model.num_heads, model.num_kv_heads, model.head_dim
    keys = cached + new
    kind = "decode" if new == 1 else "prefill"

    def setup():
        dt = _dtype(precision)
        q = randn((batch, h, new, d), dt, ctx, 1)
        k = randn((batch, kvh, keys, d), dt, ctx, 2)
        v = randn((batch, kvh, keys, d), dt, ctx, 3)
        return (lambda: sdpa(q, k, v)), (lambda: None)

    return PointSpec(
        id=f"attention/{kind}/{model.name}/b{batch}/new{new}/ctx{cached}/{precision}", family="attention",
        kind=kind, precision=precision, flops=cost["flops"], bytes_read=cost["bytes_read"],
        bytes_written=cost["bytes_written"], kernels=cost["kernels"],
        working_set_bytes=cost["bytes_read"] + cost["bytes_written"], setup=setup,
        params={"model": model.name, "batch": batch, "new": new, "cached": cached}, flush=True)


def attention_model(name: str) -> ModelConfig:
    """The catalog model as one layer with full attention (SDPA here runs without a window)."""
    return replace(load_model(name), sliding_window=None, sliding_window_layers=0, num_layers=1)


def points(ctx: BenchContext) -> list[PointSpec]:
    model = attention_model(ctx.model)
    if model.is_mla:
        return []
    decode, prefill, precision = grid(ctx)
    out = [sdpa_point(ctx, model, b, 1, c, precision) for b, c in decode]
    out += [sdpa_point(ctx, model, 1, s, 0, precision) for s in prefill]
    return out
