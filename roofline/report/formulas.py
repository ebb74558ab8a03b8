"""Excel twins of the operator formulas in `roofline/ops.py`, as text over the workbook's cells.

Each builder takes the model (structure: gated MLP, biases, MLA/MoE; fixed when the workbook is written) and
the pass-aggregate cells of a sheet (`PassRefs`) and returns per-instance (flops, bytes_read, bytes_written,
kernels, comm_bytes) expressions; dimensions come from `in_*` defined names of the Inputs sheet. Keep each one
line-for-line with its `ops.py` counterpart: the spreadsheet tests compare both to 1%.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from roofline.specs.models import ModelConfig
from roofline.model.ops import RESIDUAL_MIN_BYTES, counted_norms

Exprs = tuple[str, str, str, float, str]


@dataclass(frozen=True)
class PassRefs:
    """Cells of one pass: new tokens T, sequences S, query-key pairs, KV tokens read, heads and KV heads per GPU,
    embedding bytes per element; `decode` picks the MLA decode (weight-absorbed) or prefill branch."""

    T: str
    S: str
    pairs: str
    reads: str
    heads: str
    kvh: str
    emb: str
    decode: bool


OPERATOR_FORMULAS: dict[str, Callable[[ModelConfig, PassRefs], Exprs]] = {}


def formula(name: str):
    def deco(fn):
        if name in OPERATOR_FORMULAS:
            raise ValueError(f"sheet formula {name!r} is already registered")
        OPERATOR_FORMULAS[name] = fn
        return fn
    return deco


def matmul(m: str, n: str, k: str, wb: str, ib: str, ob: str, bias: bool = False, kernels: float = 1.0) -> Exprs:
    """ops.matmul: 2mnk FLOPs; reads W (k*n) and x (m*k) (+ bias n), writes y (m*n)."""
    read = f"({k})*({n})*{wb}+({m})*({k})*{ib}" + (f"+({n})*{wb}" if bias else "")
    return f"2*({m})*({n})*({k})", read, f"({m})*({n})*{ob}", kernels, "0"


def elementwise(elems: str, flops: float, reads: float, writes: float, eb: str, kernels: float = 1.0) -> Exprs:
    return f"{flops:g}*({elems})", f"{reads:g}*({elems})*{eb}", f"{writes:g}*({elems})*{eb}", kernels, "0"


def _g(m: ModelConfig) -> str:
    return "2" if m.gated_mlp else "1"


def _kv_elems(m: ModelConfig, r: PassRefs) -> str:
    return "(in_kv_lora+in_rope)" if m.is_mla else f"{r.kvh}*(in_d+in_vd)"


@formula("embedding")
def embedding(m, r):
    return "0", f"{r.T}*in_h*{r.emb}", f"{r.T}*in_h*in_a", 1.0, "0"


def _norm(m, r):
    return elementwise(f"{r.T}*in_h", 4, 1, 1, "in_a")


for _name in ("attn_norm", "mlp_norm", "final_norm"):
    formula(_name)(_norm)


@formula("extra_norms")
def extra_norms(m, r):
    """ops.extra_norms: (norms_per_layer - counted) hidden-size norms (Gemma-2), plus Qwen3's per-head q/k norm."""
    extra = m.norms_per_layer - counted_norms(m)
    elems, kernels = f"{extra}*{r.T}*in_h", float(extra)
    if m.qk_norm:
        elems, kernels = f"{elems}+{r.T}*({r.heads}+{r.kvh})*in_d", kernels + 2.0
    return elementwise(elems, 4, 1, 1, "in_a", kernels=kernels)


@formula("qkv_proj")
def qkv_proj(m, r):
    return matmul(r.T, f"{r.heads}*in_d+{r.kvh}*(in_d+in_vd)", "in_h", "in_w", "in_a", "in_a", m.qkv_bias)


@formula("mla_down_proj")
def mla_down_proj(m, r):
    return matmul(r.T, "in_q_lora+in_kv_lora+in_rope", "in_h", "in_w", "in_a", "in_a", kernels=3.0)


@formula("mla_q_up_proj")
def mla_q_up_proj(m, r):
    return matmul(r.T, f"{r.heads}*in_d", "in_q_lora" if m.q_lora_rank else "in_h", "in_w", "in_a", "in_a")


@formula("rotary")
def rotary(m, r):
    if m.is_mla:
        rot = touched = f"({r.heads}+1)*in_rope"
    else:
        rot, touched = f"({r.heads}+{r.kvh})*in_rot", f"({r.heads}+{r.kvh})*in_d"
    return f"3*{r.T}*{rot}", f"{r.T}*{touched}*in_a", f"{r.T}*{touched}*in_a", 1.0, "0"


@formula("kv_cache_write")
def kv_cache_write(m, r):
    e = _kv_elems(m, r)
    return "0", f"{r.T}*{e}*in_a", f"{r.T}*{e}*in_kv", 1.0, "0"


@formula("attn_scores")
def attn_scores(m, r):
    if not m.is_mla:
        read = f"{r.T}*{r.heads}*in_d*in_a+{r.reads}*{r.kvh}*in_d*in_kv"
        return f"2*{r.pairs}*{r.heads}*in_d", read, "0", 1.0, "0"
    lat, q_read = "(in_kv_lora+in_rope)", f"{r.T}*{r.heads}*in_d*in_a"
    if r.decode:
        w = f"in_kv_lora*{r.heads}*in_nope"
        return (f"2*{r.T}*{w}+2*{r.pairs}*{r.heads}*{lat}", f"{w}*in_w+{r.reads}*{lat}*in_kv+{q_read}", "0", 2.0,
                "0")
    w = f"in_kv_lora*{r.heads}*(in_nope+in_vd)"
    return (f"2*{r.reads}*{w}+2*{r.pairs}*{r.heads}*in_d", f"{w}*in_w+{r.reads}*{lat}*in_kv+{q_read}", "0", 2.0,
            "0")


@formula("attn_softmax")
def attn_softmax(m, r):
    return f"5*{r.pairs}*{r.heads}", "0", "0", 0.0, "0"


@formula("attn_context")
def attn_context(m, r):
    out = f"{r.T}*{r.heads}*in_vd*in_a"
    if not m.is_mla:
        return f"2*{r.pairs}*{r.heads}*in_vd", f"{r.reads}*{r.kvh}*in_vd*in_kv", out, 0.0, "0"
    if r.decode:
        w = f"in_kv_lora*{r.heads}*in_vd"
        return f"2*{r.pairs}*{r.heads}*in_kv_lora+2*{r.T}*{w}", f"{w}*in_w", out, 0.0, "0"
    return f"2*{r.pairs}*{r.heads}*in_vd", "0", out, 0.0, "0"


@formula("o_proj")
def o_proj(m, r):
    return matmul(r.T, "in_h", f"{r.heads}*in_vd", "in_w", "in_a", "in_a", m.o_bias)


def _allreduce(m, r):
    return "0", "0", "0", 1.0, f"{r.T}*in_h*MAX(in_a,{RESIDUAL_MIN_BYTES:g})"


for _name in ("allreduce_attn", "allreduce_mlp", "allreduce_moe"):  # the sheet is TP-only: no expert parallelism
    formula(_name)(_allreduce)


def _no_message(m, r):
    """Expert-parallel all-to-alls and pipeline sends: the sheet models TP layouts only, where they are empty."""
    return "0", "0", "0", 1.0, "0"


for _name in ("moe_dispatch", "moe_combine", "pp_send"):
    formula(_name)(_no_message)


@formula("residual_add")
def residual_add(m, r):
    n = 1.0 if m.parallel_attn_mlp else 2.0
    return elementwise(f"{r.T}*in_h", n, 2 * n, n, "in_a", kernels=n)


def _mlp(m, r, inter: str) -> tuple[Exprs, Exprs, Exprs]:
    g, i = _g(m), f"({inter})/in_tp"
    up = matmul(r.T, f"{g}*{i}", "in_h", "in_w", "in_a", "in_a", m.mlp_bias)
    act = (f"4*{r.T}*{i}", f"{g}*{r.T}*{i}*in_a", f"{r.T}*{i}*in_a", 1.0, "0")
    down = matmul(r.T, "in_h", i, "in_w", "in_a", "in_a", m.mlp_bias)
    return up, act, down


formula("mlp_up")(lambda m, r: _mlp(m, r, "in_inter")[0])
formula("mlp_act")(lambda m, r: _mlp(m, r, "in_inter")[1])
formula("mlp_down")(lambda m, r: _mlp(m, r, "in_inter")[2])


@formula("moe_router")
def moe_router(m, r):
    return matmul(r.T, "in_experts", "in_h", "in_a", "in_a", "4", kernels=2.0)


@formula("moe_experts")
def moe_experts(m, r):
    g, i = _g(m), "(in_moe_inter/in_tp)"
    rows, inter = f"({r.T}*in_topk)", f"({r.T}*in_topk*{i}*in_a)"
    touched = f"in_experts*(1-(1-in_topk/in_experts)^{r.T})"
    flops = f"2*{rows}*({g}+1)*in_h*{i}+4*{rows}*{i}"
    read = f"{touched}*({g}+1)*in_h*{i}*in_w+{rows}*in_h*in_a+({g}+1)*{inter}"
    write = f"{rows}*in_h*in_a+({g}+1)*{inter}"
    return flops, read, write, 3.0, "0"


@formula("moe_shared_experts")
def moe_shared_experts(m, r):
    parts = _mlp(m, r, "in_shared*in_moe_inter")
    return tuple("+".join(f"({p[k]})" for p in parts) for k in range(3)) + (3.0, "0")


@formula("lm_head")
def lm_head(m, r):
    return matmul(r.S, "in_vocab/in_tp", "in_h", r.emb, "in_a", "4")
