"""A real decoder-layer stack, built with torch ops from a catalog ModelConfig with random weights.

On a CPU the model is scaled down (hidden, heads, KV heads and MLP width divided by `factor`, head_dim kept,
2 layers) so that a point takes milliseconds, yet its weights (llama-3.1-8b / 4: 13.6 M parameters per layer,
54 MB in fp32, x 2 layers = 109 MB) still exceed a 32 MB last-level cache. The prediction runs the model's
engine on the SAME scaled ModelConfig (`scaled_model`), summing the per-layer operators (embedding, final
norm and LM head are not built, so not counted).

Per layer: norm -> fused QKV linear -> rotary (rotary_dim of each head) -> KV-cache write -> SDPA
(causal for prefill) -> O linear -> residual -> norm -> up(+gate) linear -> SiLU/GELU (x gate) -> down
linear -> residual; parallel attention + MLP (GPT-J, NeoX) share the residual. Dense GQA/MHA models only.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from roofline.model.engine import make_setup
from roofline.errors import RooflineError
from roofline.specs.models import ModelConfig, load_model
from roofline.model.ops import REGISTRY
from roofline.model.phases import decode_step, prefill
from roofline.measure.attention import sdpa
from roofline.measure.points import BenchContext, PointSpec, randn


def scaled_model(name: str, factor: int, layers: int) -> ModelConfig:
    """`name` with hidden, heads, KV heads and MLP width divided by `factor`; `layers` layers; full attention."""
    m = load_model(name)
    if m.is_moe or m.is_mla:
        raise RooflineError(f"the layer benchmark builds dense GQA/MHA models; {m.name} is MoE or MLA",
                            hint="use e.g. `model=llama-3.1-8b`")
    if m.hidden_size % factor or m.num_heads % factor or m.intermediate_size % factor:
        raise RooflineError(f"cannot scale {m.name} down by {factor}", hint="use a factor dividing its widths")
    heads = m.num_heads // factor
    return replace(m, name=f"{m.name}/{factor}x{layers}L", hidden_size=m.hidden_size // factor,
                   num_heads=heads, num_kv_heads=max(1, min(heads, m.num_kv_heads // factor)),
                   intermediate_size=m.intermediate_size // factor, num_layers=layers,
                   sliding_window=None, sliding_window_layers=0)


def tiny_model(name: str, layers: int = 2) -> ModelConfig:
    """`name`'s structure at the smallest width (one head, hidden = head_dim, MLP 4x): its time is the
    per-kernel overhead of running the layer, with almost no FLOPs or bytes."""
    m = scaled_model(name, 1, layers)
    return replace(m, name=f"{m.name.split('/')[0]}/tiny{layers}L", hidden_size=m.head_dim, num_heads=1,
                   num_kv_heads=1, intermediate_size=4 * m.head_dim)


def layer_plan(ctx: BenchContext) -> tuple[int, int, str, list[tuple[int, int]], list[tuple[int, int]]]:
    """(factor, layers, precision, decode (batch, context) pairs, prefill (batch, prompt) pairs)."""
    if ctx.device == "cuda":
        return 1, 2, "bf16", [(b, c) for b in (1, 8, 32, 128) for c in (512, 4096)], [(1, 512), (1, 2048), (4, 2048)]
    if ctx.quick:
        return 4, 2, "fp32", [(b, c) for b in (1, 4, 16) for c in (256, 2048)], [(1, 64), (1, 256), (1, 512)]
    return 4, 2, "fp32", [(b, c) for b in (1, 2, 4, 8, 16, 32) for c in (256, 1024, 4096)], \
        [(1, 32), (1, 128), (1, 512), (2, 512), (1, 1024)]


def predicted_layer_ops(model: ModelConfig, gpu, efficiency, precision: str, batch: int, new: int,
                        cached: int):
    """The engine's OpTimes for the per-layer operators of the pass (all layers; no embedding / LM head)."""
    s = make_setup(gpu, model, 1, precision, precision, precision, efficiency)
    ops = prefill(s, batch, new) if cached == 0 and new > 1 else decode_step(s, batch, cached)
    return [o for o in ops if REGISTRY[o.name].scope != "model"]


def layer_cost(model: ModelConfig, precision: str, batch: int, new: int, cached: int) -> dict[str, float]:
    """FLOPs, bytes and kernel launches of the layer stack, from the model's operator formulas (the kernel
    count is the overhead time with a 1 s per-kernel overhead)."""
    from roofline.model.efficiency import Efficiency
    from roofline.measure.device import unit_spec

    ops = predicted_layer_ops(model, unit_spec(precision), Efficiency(kernel_overhead_s=1.0), precision,
                              batch, new, cached)
    return {"flops": float(sum(np.sum(o.flops) for o in ops)),
            "bytes_read": float(sum(np.sum(o.bytes_read) for o in ops)),
            "bytes_written": float(sum(np.sum(o.bytes_written) for o in ops)),
            "kernels": float(sum(np.sum(o.overhead_s) for o in ops))}


class DecoderStack:
    """`model.num_layers` decoder layers with random weights and a preallocated KV cache."""

    def __init__(self, model: ModelConfig, ctx: BenchContext, precision: str, batch: int, max_tokens: int):
        import torch

        self.m, self.ctx = model, ctx
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        h, d, H, K = model.hidden_size, model.head_dim, model.num_heads, model.num_kv_heads
        g = 2 if model.gated_mlp else 1
        self.layers: list[dict[str, Any]] = []
        for i in range(model.num_layers):
            s = 100 * (i + 1)
            w = {
                "qkv": self._w((H * d + K * (d + model.v_head_dim), h), s),
                "o": self._w((h, H * model.v_head_dim), s + 1),
                "up": self._w((g * model.intermediate_size, h), s + 2),
                "down": self._w((h, model.intermediate_size), s + 3),
                "k_cache": self._w((batch, K, max_tokens, d), s + 4, 1.0),
                "v_cache": self._w((batch, K, max_tokens, model.v_head_dim), s + 5, 1.0),
            }
            w["qkv_b"] = self._w((w["qkv"].shape[0],), s + 6, 0.02) if model.qkv_bias else None
            w["o_b"] = self._w((h,), s + 7, 0.02) if model.o_bias else None
            w["up_b"] = self._w((w["up"].shape[0],), s + 8, 0.02) if model.mlp_bias else None
            w["down_b"] = self._w((h,), s + 9, 0.02) if model.mlp_bias else None
            for n in ("norm1", "norm2"):
                w[n] = (1.0 + self._w((h,), s + 10, 0.1), self._w((h,), s + 11, 0.1) if model.norm == "layernorm"
                        else None)
            self.layers.append(w)
        rot = model.rotary_dim or d
        inv = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot))
        ang = torch.outer(torch.arange(max_tokens, dtype=torch.float32), inv)
        self.cos = torch.cat([ang.cos(), ang.cos()], -1).to(ctx.device).to(self.dtype)
        self.sin = torch.cat([ang.sin(), ang.sin()], -1).to(ctx.device).to(self.dtype)

    def _w(self, shape, salt: int, scale: float | None = None):
        std = scale if scale is not None else shape[-1] ** -0.5
        return randn(shape, self.dtype, self.ctx, salt) * std

    def _norm(self, x, wb):
        import torch.nn.functional as F

        w, b = wb
        if self.m.norm == "layernorm":
            return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)
        return F.rms_norm(x, (x.shape[-1],), w, 1e-6)

    def _rotary(self, x, pos: int):
        """Rotate the first rotary_dim channels of each head (half-split rotary, as Llama)."""
        import torch

        rot = self.m.rotary_dim or self.m.head_dim
        t = x.shape[2]
        cos, sin = self.cos[pos:pos + t], self.sin[pos:pos + t]
        xr, xp = x[..., :rot], x[..., rot:]
        half = rot // 2
        rotated = torch.cat([-xr[..., half:], xr[..., :half]], -1)
        out = xr * cos + rotated * sin
        return torch.cat([out, xp], -1) if xp.shape[-1] else out

    def _mlp(self, y, w):
        import torch.nn.functional as F

        u = F.linear(y, w["up"], w["up_b"])
        act = F.silu if self.m.hidden_act in ("silu", "swish", "") else (lambda t: F.gelu(t, approximate="tanh"))
        if self.m.gated_mlp:
            gate, up = u.chunk(2, dim=-1)
            u = act(gate) * up
        else:
            u = act(u)
        return F.linear(u, w["down"], w["down_b"])

    def _attention(self, y, w, pos: int):
        import torch.nn.functional as F

        m = self.m
        b, t, _ = y.shape
        H, K, d, dv = m.num_heads, m.num_kv_heads, m.head_dim, m.v_head_dim
        qkv = F.linear(y, w["qkv"], w["qkv_b"])
        q, k, v = qkv.split([H * d, K * d, K * dv], dim=-1)
        q = self._rotary(q.view(b, t, H, d).transpose(1, 2), pos)
        k = self._rotary(k.view(b, t, K, d).transpose(1, 2), pos)
        w["k_cache"][:, :, pos:pos + t] = k
        w["v_cache"][:, :, pos:pos + t] = v.view(b, t, K, dv).transpose(1, 2)
        keys, vals = w["k_cache"][:, :, :pos + t], w["v_cache"][:, :, :pos + t]
        o = sdpa(q, keys, vals)
        return F.linear(o.transpose(1, 2).reshape(b, t, H * dv), w["o"], w["o_b"])

    def forward(self, x, pos: int):
        """x: [batch, new, hidden]; `pos` tokens are already cached (0 for a prefill)."""
        for w in self.layers:
            y = self._norm(x, w["norm1"])
            a = self._attention(y, w, pos)
            if self.m.parallel_attn_mlp:
                z = y if self.m.model_type == "gptj" else self._norm(x, w["norm2"])
                x = x + a + self._mlp(z, w)
            else:
                x = x + a
                x = x + self._mlp(self._norm(x, w["norm2"]), w)
        return x


def layer_point(ctx: BenchContext, base: str, factor: int, layers: int, precision: str, batch: int,
                new: int, cached: int, tiny: bool = False) -> PointSpec:
    """A prefill (cached = 0) or decode step (new = 1) of the layer stack; `tiny`: the overhead point."""
    model = tiny_model(base, layers) if tiny else scaled_model(base, factor, layers)
    cost = layer_cost(model, precision, batch, new, cached)
    kind = "layer_overhead" if tiny else ("decode" if new == 1 else "prefill")

    def setup():
        import torch

        stack = DecoderStack(model, ctx, precision, batch, cached + new)
        x = randn((batch, new, model.hidden_size), stack.dtype, ctx, 7)

        def fn():
            with torch.inference_mode():
                return stack.forward(x, cached)
        return fn, stack.layers.clear

    return PointSpec(
        id=f"{'launch' if tiny else 'layer'}/{kind}/{model.name}/b{batch}/new{new}/ctx{cached}/{precision}",
        family="launch" if tiny else "layer", kind=kind, precision=precision, flops=cost["flops"],
        bytes_read=cost["bytes_read"], bytes_written=cost["bytes_written"], kernels=cost["kernels"],
        working_set_bytes=cost["bytes_read"] + cost["bytes_written"], setup=setup,
        params={"model": base, "factor": 0 if tiny else factor, "layers": layers, "batch": batch, "new": new,
                "cached": cached, "tiny": tiny}, graph=ctx.device == "cuda" and new == 1)


def overhead_point(ctx: BenchContext) -> PointSpec:
    """Decode step of the tiny stack (batch 1, 16 cached tokens): time per model kernel = overhead."""
    _, layers, precision, _, _ = layer_plan(ctx)
    return layer_point(ctx, ctx.model, 0, layers, precision, 1, 1, 16, tiny=True)


def points(ctx: BenchContext) -> list[PointSpec]:
    factor, layers, precision, decode, pre = layer_plan(ctx)
    out = [overhead_point(ctx)]
    out += [layer_point(ctx, ctx.model, factor, layers, precision, b, 1, c) for b, c in decode]
    out += [layer_point(ctx, ctx.model, factor, layers, precision, b, p, 0) for b, p in pre]
    return out
