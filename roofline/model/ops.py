"""Operator registry: one small pure function per operator of a transformer forward pass.

Every formula gives, PER GPU (after tensor-parallel sharding) and for ONE repetition of the operator
(one layer, or once per model), the FLOPs, the HBM bytes read and written, the number of kernels launched
and, for collectives, the bytes each GPU contributes to an all-reduce. All inputs are numpy arrays that
broadcast together, so a grid of a million configurations is one call.

A forward pass is described by aggregates over the sequences in the batch (see `Pass`): the linear layers
only care how many new tokens there are; attention cares how many query-key pairs are scored and how many
cached tokens' K/V are read (FlashAttention-style: Q, K, V, O move through HBM once, never an S x S matrix).

Approximations, stated once: 2*m*n*k FLOPs per matmul (ignores the -1 of 2k-1); norm/activation/rotary
FLOP counts are per-element constants (4, 4, 3); biases' FLOPs are ignored, their bytes are not.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from roofline.errors import RooflineError
from roofline.specs.models import ModelConfig
from roofline.specs.precision import embedding_bytes_per_element

#: bytes of one fp32 logit, written by the LM head whatever the activation precision
LOGIT_BYTES = 4.0


@dataclass(frozen=True)
class Pass:
    """One forward pass of a batch, as numpy arrays (or scalars) that broadcast together.

    tokens:          new tokens processed, summed over sequences (T)
    seqs:            sequences in the pass (S); the LM head runs on one token per sequence
    attn_pairs:      query-key pairs scored, summed over sequences, averaged over layers
    kv_read_tokens:  tokens whose K/V are read from the cache, summed over sequences, averaged over layers
    tp:              tensor-parallel degree
    w_bytes, a_bytes, kv_bytes: bytes per element of weights, activations, KV cache
    pp, ep, dp:      pipeline stages, expert-parallel degree (1: experts TP-sharded; > 1: = tp x dp, whole
                     experts spread over the GPUs) and attention data-parallel degree. tokens, seqs,
                     attn_pairs and kv_read_tokens are those of ONE attention-DP rank (the replica's / dp)
    ep_imbalance:    load of the busiest expert-parallel GPU over the mean (>= 1; 1 = uniform routing)
    """

    model: ModelConfig
    tokens: np.ndarray
    seqs: np.ndarray
    attn_pairs: np.ndarray
    kv_read_tokens: np.ndarray
    tp: np.ndarray
    w_bytes: np.ndarray
    a_bytes: np.ndarray
    kv_bytes: np.ndarray
    pp: np.ndarray | float = 1.0
    ep: np.ndarray | float = 1.0
    dp: np.ndarray | float = 1.0
    ep_imbalance: np.ndarray | float = 1.0

    @cached_property
    def expert_parallel(self) -> np.ndarray:
        """True where MoE experts are spread whole over the EP group (not TP-sharded)."""
        return np.asarray(self.ep) > 1

    @cached_property
    def decode(self) -> np.ndarray:
        """True where every sequence adds exactly one token (a decode step)."""
        return np.asarray(self.tokens <= self.seqs)

    @cached_property
    def heads(self) -> np.ndarray:
        """Query heads per GPU."""
        return self.model.num_heads / self.tp

    @cached_property
    def kv_heads(self) -> np.ndarray:
        """KV heads per GPU: max(kv_heads / tp, 1) (a KV head is replicated when tp exceeds them)."""
        return self.model.kv_heads_per_gpu(self.tp)

    @cached_property
    def emb_bytes(self) -> np.ndarray:
        """Embedding / LM-head weights stay 16-bit when linear weights are quantised below 16 bits."""
        return embedding_bytes_per_element(self.w_bytes)


@dataclass(frozen=True)
class OpCost:
    """Cost of one operator instance on one GPU."""

    flops: np.ndarray
    bytes_read: np.ndarray
    bytes_written: np.ndarray
    kernels: float = 1.0
    comm_bytes: np.ndarray | float = 0.0


@dataclass(frozen=True)
class Operator:
    name: str
    formula: Callable[[Pass], OpCost]
    unit: str  # "tensor" (matrix units at the compute precision), "attention" (matrix units, >= 16-bit),
    #            "vector" (fp32 cores), "link" (collective)
    scope: str  # "layer", "dense_mlp", "moe_mlp", "model"
    applies: Callable[[ModelConfig], bool]
    collective: str | None = None  # link operators: the collective (roofline.model.comm.COLLECTIVES)
    group: Callable[[Pass], np.ndarray] | None = None  # link operators: ranks in the collective
    span: Callable[[Pass], np.ndarray] | None = None   # link operators: consecutive GPUs the group covers

    def count(self, m: ModelConfig) -> int:
        """How many times the operator runs in one forward pass."""
        if not self.applies(m):
            return 0
        return {"layer": m.num_layers, "model": 1, "moe_mlp": m.num_moe_layers,
                "dense_mlp": m.num_dense_layers}[self.scope]


REGISTRY: dict[str, Operator] = {}
_UNITS = ("tensor", "attention", "vector", "link")
_SCOPES = ("layer", "dense_mlp", "moe_mlp", "model")


def register(name: str, unit: str, scope: str, applies: Callable[[ModelConfig], bool] = lambda m: True,
             collective: str | None = None, group: Callable[[Pass], np.ndarray] | None = None,
             span: Callable[[Pass], np.ndarray] | None = None):
    """Decorator adding a formula to REGISTRY; registering a name twice is an error. A `link` operator names
    its collective and its group (and the GPUs the group spans, default the group); its formula gives the
    nccl-tests message size S in `comm_bytes` and the number of messages in `kernels`."""
    if unit not in _UNITS or scope not in _SCOPES:
        raise ValueError(f"operator {name}: bad unit {unit!r} or scope {scope!r}")
    if (unit == "link") != (collective is not None and group is not None):
        raise ValueError(f"operator {name}: a link operator, and only one, names its collective and group")

    def deco(fn: Callable[[Pass], OpCost]) -> Callable[[Pass], OpCost]:
        if name in REGISTRY:
            raise ValueError(f"operator {name!r} is already registered")
        REGISTRY[name] = Operator(name, fn, unit, scope, applies, collective, group, span or group)
        return fn

    return deco


def get_operator(name: str) -> Operator:
    try:
        return REGISTRY[name]
    except KeyError:
        raise RooflineError(f"unknown operator {name!r}", hint="known: " + ", ".join(REGISTRY)) from None


def operators_for(model: ModelConfig) -> list[tuple[Operator, int]]:
    """The operators a forward pass of `model` runs, with their repetition counts, in execution order."""
    return [(op, op.count(model)) for op in REGISTRY.values() if op.count(model) > 0]


# ---------------------------------------------------------------------------------------------------------
# shared shapes

def matmul(m, n, k, w_elem_bytes, in_bytes, out_bytes, bias: bool = False) -> OpCost:
    """y[m,n] = x[m,k] @ W[k,n]: 2*m*n*k FLOPs; reads W (k*n) and x (m*k), writes y (m*n). Compulsory bytes."""
    read = k * n * w_elem_bytes + m * k * in_bytes + (n * w_elem_bytes if bias else 0.0)
    return OpCost(flops=2.0 * m * n * k, bytes_read=read, bytes_written=m * n * out_bytes)


def elementwise(elems, flops_per_elem, reads_per_elem, writes_per_elem, elem_bytes, kernels: float = 1.0) -> OpCost:
    """A streaming kernel over `elems` elements, each read `reads_per_elem` and written `writes_per_elem` times."""
    return OpCost(flops=flops_per_elem * elems, bytes_read=reads_per_elem * elems * elem_bytes,
                  bytes_written=writes_per_elem * elems * elem_bytes, kernels=kernels)


def _gqa(m: ModelConfig) -> bool:
    return not m.is_mla


def _separate_mlp_norm(m: ModelConfig) -> bool:
    return not m.parallel_attn_mlp or m.model_type == "gpt_neox"


def _gated(m: ModelConfig) -> float:
    return 2.0 if m.gated_mlp else 1.0


# ---------------------------------------------------------------------------------------------------------
# operators, in execution order

@register("embedding", "vector", "model")
def embedding(p: Pass) -> OpCost:
    """Gather T rows of the (vocab-sharded) embedding table: reads T*h weights, writes T*h activations."""
    h = p.model.hidden_size
    return OpCost(0.0 * p.tokens, p.tokens * h * p.emb_bytes, p.tokens * h * p.a_bytes)


@register("attn_norm", "vector", "layer")
def attn_norm(p: Pass) -> OpCost:
    """RMSNorm/LayerNorm over T*h elements (~4 FLOPs each), activations replicated on every TP rank."""
    return elementwise(p.tokens * p.model.hidden_size, 4.0, 1.0, 1.0, p.a_bytes)


def counted_norms(m: ModelConfig) -> int:
    """Hidden-size norms per layer that attn_norm and mlp_norm already count (1 with GPT-J's shared norm)."""
    return 2 if _separate_mlp_norm(m) else 1


@register("extra_norms", "vector", "layer", lambda m: m.norms_per_layer > counted_norms(m) or m.qk_norm)
def extra_norms(p: Pass) -> OpCost:
    """Norms beyond the pre-attention and pre-MLP ones: Gemma-2's post-attention and post-MLP norms over
    T*h, and Qwen3's per-head RMSNorm on Q and K over T*(heads + kv_heads)*d; one kernel each."""
    m = p.model
    extra = m.norms_per_layer - counted_norms(m)
    elems = extra * p.tokens * m.hidden_size
    kernels = float(extra)
    if m.qk_norm:
        elems = elems + p.tokens * (p.heads + p.kv_heads) * m.head_dim
        kernels += 2.0
    return elementwise(elems, 4.0, 1.0, 1.0, p.a_bytes, kernels=kernels)


@register("qkv_proj", "tensor", "layer", _gqa)
def qkv_proj(p: Pass) -> OpCost:
    """Fused Q, K, V projection: h -> heads*d + kv_heads*(d + v_d) columns per GPU."""
    m = p.model
    n = p.heads * m.head_dim + p.kv_heads * (m.head_dim + m.v_head_dim)
    return matmul(p.tokens, n, m.hidden_size, p.w_bytes, p.a_bytes, p.a_bytes, m.qkv_bias)


@register("mla_down_proj", "tensor", "layer", lambda m: m.is_mla)
def mla_down_proj(p: Pass) -> OpCost:
    """MLA: h -> q_lora_rank (Q down) and h -> kv_lora_rank + rope (KV latent); replicated on every rank.

    Includes the two latent RMSNorms as kernels (their bytes are negligible against the weights)."""
    m = p.model
    n = (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim
    c = matmul(p.tokens, n, m.hidden_size, p.w_bytes, p.a_bytes, p.a_bytes)
    return OpCost(c.flops, c.bytes_read, c.bytes_written, kernels=3.0)


@register("mla_q_up_proj", "tensor", "layer", lambda m: m.is_mla)
def mla_q_up_proj(p: Pass) -> OpCost:
    """MLA: q_lora_rank (or h when there is no Q LoRA) -> heads*(nope + rope) per GPU."""
    m = p.model
    k = m.q_lora_rank or m.hidden_size
    return matmul(p.tokens, p.heads * m.head_dim, k, p.w_bytes, p.a_bytes, p.a_bytes)


@register("rotary", "vector", "layer")
def rotary(p: Pass) -> OpCost:
    """Rotary embedding on Q and K in place: 3 FLOPs per rotated element, reads and writes Q and K."""
    m = p.model
    if m.is_mla:
        rot = (p.heads + 1.0) * m.qk_rope_head_dim
        touched = rot
    else:
        rot = (p.heads + p.kv_heads) * m.rotary_dim
        touched = (p.heads + p.kv_heads) * m.head_dim
    return OpCost(3.0 * p.tokens * rot, p.tokens * touched * p.a_bytes, p.tokens * touched * p.a_bytes)


@register("kv_cache_write", "vector", "layer")
def kv_cache_write(p: Pass) -> OpCost:
    """Store the new tokens' K/V (or MLA latent) in the paged cache, converting to the KV precision."""
    e = p.model.kv_cache_elements_per_token_per_layer(p.tp)
    return OpCost(0.0 * p.tokens, p.tokens * e * p.a_bytes, p.tokens * e * p.kv_bytes)


@register("attn_scores", "attention", "layer")
def attn_scores(p: Pass) -> OpCost:
    """Q K^T over the scored pairs: 2*pairs*heads*d FLOPs; reads Q and the cached K once (fused kernel).

    MLA decode uses weight absorption (DeepSeek-V3 inference): Q is projected into the latent space
    (kv_lora_rank) and scored against the compressed cache (kv_lora + rope per token, shared by all heads).
    MLA prefill expands K/V per head from the latent (the up-projection weights are read here)."""
    m = p.model
    if not m.is_mla:
        flops = 2.0 * p.attn_pairs * p.heads * m.head_dim
        read = p.tokens * p.heads * m.head_dim * p.a_bytes + p.kv_read_tokens * p.kv_heads * m.head_dim * p.kv_bytes
        return OpCost(flops, read, 0.0 * read)
    lat = m.kv_cache_elements_per_token_per_layer()  # the latent one cached token holds
    absorb_w = m.kv_lora_rank * p.heads * m.qk_nope_head_dim
    dec_flops = 2.0 * p.tokens * absorb_w + 2.0 * p.attn_pairs * p.heads * lat
    dec_read = absorb_w * p.w_bytes + p.kv_read_tokens * lat * p.kv_bytes
    exp_w = m.kv_lora_rank * p.heads * (m.qk_nope_head_dim + m.v_head_dim)
    pre_flops = 2.0 * p.kv_read_tokens * exp_w + 2.0 * p.attn_pairs * p.heads * m.head_dim
    pre_read = exp_w * p.w_bytes + p.kv_read_tokens * lat * p.kv_bytes
    q_read = p.tokens * p.heads * m.head_dim * p.a_bytes
    return OpCost(np.where(p.decode, dec_flops, pre_flops), np.where(p.decode, dec_read, pre_read) + q_read,
                  0.0 * q_read, kernels=2.0)


@register("attn_softmax", "vector", "layer")
def attn_softmax(p: Pass) -> OpCost:
    """Online softmax inside the fused attention kernel: ~5 FLOPs per score, no HBM traffic, no launch."""
    return OpCost(5.0 * p.attn_pairs * p.heads, 0.0 * p.tokens, 0.0 * p.tokens, kernels=0.0)


@register("attn_context", "attention", "layer")
def attn_context(p: Pass) -> OpCost:
    """P V: 2*pairs*heads*v_d FLOPs; reads the cached V once, writes the per-head output.

    MLA decode: context in the latent space (V is the latent read in attn_scores) then W_UV up-projection."""
    m = p.model
    out = p.tokens * p.heads * m.v_head_dim * p.a_bytes
    if not m.is_mla:
        flops = 2.0 * p.attn_pairs * p.heads * m.v_head_dim
        return OpCost(flops, p.kv_read_tokens * p.kv_heads * m.v_head_dim * p.kv_bytes, out, kernels=0.0)
    uv_w = m.kv_lora_rank * p.heads * m.v_head_dim
    dec_flops = 2.0 * p.attn_pairs * p.heads * m.kv_lora_rank + 2.0 * p.tokens * uv_w
    pre_flops = 2.0 * p.attn_pairs * p.heads * m.v_head_dim
    read = np.where(p.decode, uv_w * p.w_bytes, 0.0 * out)
    return OpCost(np.where(p.decode, dec_flops, pre_flops), read, out, kernels=0.0)


@register("o_proj", "tensor", "layer")
def o_proj(p: Pass) -> OpCost:
    """Output projection heads*v_d -> h (row-parallel: partial sums, all-reduced after)."""
    m = p.model
    return matmul(p.tokens, m.hidden_size, p.heads * m.v_head_dim, p.w_bytes, p.a_bytes, p.a_bytes, m.o_bias)


#: bytes per element of the hidden states that cross links: serving engines keep the residual stream in 16
#: bits (FP8 GEMMs write bf16), so all-reduces, combines and pipeline sends move >= 2 bytes per element
RESIDUAL_MIN_BYTES = 2.0


def _residual_bytes(p: Pass) -> np.ndarray:
    return np.maximum(p.a_bytes, RESIDUAL_MIN_BYTES)


def _tp_group(p: Pass) -> np.ndarray:
    return np.asarray(p.tp, dtype=float)


def _message(p: Pass, size_bytes, messages=1.0) -> OpCost:
    """A link operator's cost: no FLOPs, no HBM bytes; `messages` collectives of `size_bytes` each."""
    z = 0.0 * p.tokens
    return OpCost(z, z, z, kernels=messages, comm_bytes=size_bytes)


@register("allreduce_attn", "link", "layer", collective="all_reduce", group=_tp_group)
def allreduce_attn(p: Pass) -> OpCost:
    """TP all-reduce of the attention output (T*h activations per rank); with parallel attention+MLP (GPT-J)
    the one all-reduce of the layer carries both branches."""
    return _message(p, p.tokens * p.model.hidden_size * _residual_bytes(p))


@register("residual_add", "vector", "layer")
def residual_add(p: Pass) -> OpCost:
    """Residual adds (2 per layer, 1 with parallel attention+MLP): read 2, write 1 per element."""
    n = 1.0 if p.model.parallel_attn_mlp else 2.0
    return elementwise(p.tokens * p.model.hidden_size, n, 2.0 * n, n, p.a_bytes, kernels=n)


@register("mlp_norm", "vector", "layer", _separate_mlp_norm)
def mlp_norm(p: Pass) -> OpCost:
    """The norm in front of the MLP (absent when GPT-J's attention and MLP share one)."""
    return elementwise(p.tokens * p.model.hidden_size, 4.0, 1.0, 1.0, p.a_bytes)


def _mlp_up(p: Pass, inter: int) -> OpCost:
    m = p.model
    return matmul(p.tokens, _gated(m) * inter / p.tp, m.hidden_size, p.w_bytes, p.a_bytes, p.a_bytes, m.mlp_bias)


def _mlp_act(p: Pass, inter: int) -> OpCost:
    return elementwise(p.tokens * inter / p.tp, 4.0, _gated(p.model), 1.0, p.a_bytes)


def _mlp_down(p: Pass, inter: int) -> OpCost:
    m = p.model
    return matmul(p.tokens, m.hidden_size, inter / p.tp, p.w_bytes, p.a_bytes, p.a_bytes, m.mlp_bias)


@register("mlp_up", "tensor", "dense_mlp")
def mlp_up(p: Pass) -> OpCost:
    """Up (and gate, fused) projection h -> (2 if gated else 1) * intermediate / tp."""
    return _mlp_up(p, p.model.intermediate_size)


@register("mlp_act", "vector", "dense_mlp")
def mlp_act(p: Pass) -> OpCost:
    """SiLU/GELU (times the gate): ~4 FLOPs per intermediate element."""
    return _mlp_act(p, p.model.intermediate_size)


@register("mlp_down", "tensor", "dense_mlp")
def mlp_down(p: Pass) -> OpCost:
    """Down projection intermediate / tp -> h."""
    return _mlp_down(p, p.model.intermediate_size)


@register("moe_router", "tensor", "moe_mlp")
def moe_router(p: Pass) -> OpCost:
    """Router logits h -> experts (replicated) plus top-k selection (a second kernel)."""
    m = p.model
    c = matmul(p.tokens, m.num_experts, m.hidden_size, p.a_bytes, p.a_bytes, LOGIT_BYTES)
    return OpCost(c.flops, c.bytes_read, c.bytes_written, kernels=2.0)


def experts_touched(tokens, experts: int, top_k: int) -> np.ndarray:
    """Expected number of distinct experts that T tokens route to, for uniform routing:
    E * (1 - (1 - k/E)^T). One token touches k; many tokens touch all E."""
    return experts * (1.0 - (1.0 - top_k / experts) ** np.asarray(tokens, dtype=float))


@register("moe_experts", "tensor", "moe_mlp")
def moe_experts(p: Pass) -> OpCost:
    """Routed experts (fused-MoE): T*k token-expert rows through a gated MLP. Reads the weights of every
    expert touched (see experts_touched) once, plus the gathered activations and the intermediate (written
    and read back between the two grouped GEMMs).

    Experts TP-sharded (ep = 1): every GPU runs all T*k rows on intermediate / tp. Expert parallelism
    (ep > 1): each GPU holds E / ep whole experts and runs the rows routed to them: of the replica's
    T*dp tokens, T*dp*k / ep rows on average, times `ep_imbalance` on the busiest GPU (which sets the pace);
    it reads the weights of its touched experts (touched over the replica's tokens / ep)."""
    m, g = p.model, _gated(p.model)
    ep = p.expert_parallel
    i = np.where(ep, float(m.moe_intermediate_size), m.moe_intermediate_size / p.tp)
    tokens_all = p.tokens * np.asarray(p.dp, dtype=float)
    rows = np.where(ep, tokens_all * m.num_experts_per_tok / np.asarray(p.ep, dtype=float) * p.ep_imbalance,
                    p.tokens * m.num_experts_per_tok)
    touched = np.where(ep, experts_touched(tokens_all, m.num_experts, m.num_experts_per_tok)
                       / np.asarray(p.ep, dtype=float),
                       experts_touched(p.tokens, m.num_experts, m.num_experts_per_tok))
    per_expert_w = (g + 1.0) * m.hidden_size * i * p.w_bytes
    flops = 2.0 * rows * (g + 1.0) * m.hidden_size * i + 4.0 * rows * i
    inter = rows * i * p.a_bytes
    read = touched * per_expert_w + rows * m.hidden_size * p.a_bytes + (g + 1.0) * inter
    write = rows * m.hidden_size * p.a_bytes + (g + 1.0) * inter
    return OpCost(flops, read, write, kernels=3.0)


@register("moe_shared_experts", "tensor", "moe_mlp", lambda m: m.num_shared_experts > 0)
def moe_shared_experts(p: Pass) -> OpCost:
    """Shared experts: a dense gated MLP of num_shared * moe_intermediate that every token goes through."""
    inter = p.model.num_shared_experts * p.model.moe_intermediate_size
    up, act, down = _mlp_up(p, inter), _mlp_act(p, inter), _mlp_down(p, inter)
    return OpCost(up.flops + act.flops + down.flops, up.bytes_read + act.bytes_read + down.bytes_read,
                  up.bytes_written + act.bytes_written + down.bytes_written, kernels=3.0)


@register("allreduce_mlp", "link", "dense_mlp", lambda m: not m.parallel_attn_mlp, collective="all_reduce",
          group=_tp_group)
def allreduce_mlp(p: Pass) -> OpCost:
    """TP all-reduce of a dense MLP's output (T*h activations per rank)."""
    return allreduce_attn(p)


@register("allreduce_moe", "link", "moe_mlp", lambda m: not m.parallel_attn_mlp, collective="all_reduce",
          group=_tp_group)
def allreduce_moe(p: Pass) -> OpCost:
    """TP all-reduce of an MoE layer's output when the experts are TP-sharded; none with expert parallelism
    (the combine all-to-all returns each token's expert outputs to its rank)."""
    return _message(p, np.where(p.expert_parallel, 0.0, p.tokens * p.model.hidden_size * _residual_bytes(p)))


def _ep_group(p: Pass) -> np.ndarray:
    return np.asarray(p.ep, dtype=float)


def _dispatch_bytes(p: Pass, elem_bytes) -> np.ndarray:
    """All-to-all send buffer per GPU: its share of the rank's tokens (the TP ranks of an attention-DP rank
    split its T tokens), k expert copies each of h elements. 0 without expert parallelism."""
    m = p.model
    return np.where(p.expert_parallel, p.tokens / p.tp * m.num_experts_per_tok * m.hidden_size * elem_bytes, 0.0)


@register("moe_dispatch", "link", "moe_mlp", collective="all_to_all", group=_ep_group)
def moe_dispatch(p: Pass) -> OpCost:
    """Expert parallelism: send every token to the GPUs holding its top-k experts (all-to-all over EP), at the
    activations precision (DeepEP dispatches FP8 under FP8 compute)."""
    return _message(p, _dispatch_bytes(p, p.a_bytes))


@register("moe_combine", "link", "moe_mlp", collective="all_to_all", group=_ep_group)
def moe_combine(p: Pass) -> OpCost:
    """Expert parallelism: return the k expert outputs of every token to its rank (all-to-all over EP), in
    16 bits (the residual stream's precision)."""
    return _message(p, _dispatch_bytes(p, _residual_bytes(p)))


@register("final_norm", "vector", "model")
def final_norm(p: Pass) -> OpCost:
    """Final norm over all T tokens."""
    return elementwise(p.tokens * p.model.hidden_size, 4.0, 1.0, 1.0, p.a_bytes)


def _stage_pair(p: Pass) -> np.ndarray:
    return np.where(np.asarray(p.pp) > 1, 2.0, 1.0)


def _stage_pair_span(p: Pass) -> np.ndarray:
    """Two adjacent pipeline stages, each tp x dp consecutive GPUs."""
    return 2.0 * np.asarray(p.tp) * np.asarray(p.dp)


@register("pp_send", "link", "model", collective="send_recv", group=_stage_pair, span=_stage_pair_span)
def pp_send(p: Pass) -> OpCost:
    """Pipeline parallelism: each of the pp - 1 stage boundaries sends the rank's T*h activations to the next
    stage (send/recv; over the network when the two stages sit on different nodes)."""
    return _message(p, np.where(np.asarray(p.pp) > 1, p.tokens * p.model.hidden_size * _residual_bytes(p), 0.0),
                    messages=np.maximum(np.asarray(p.pp, dtype=float) - 1.0, 0.0))


@register("lm_head", "tensor", "model")
def lm_head(p: Pass) -> OpCost:
    """Logits for the LAST token of each sequence only (as serving engines do): S x h x vocab/tp, fp32 out."""
    m = p.model
    return matmul(p.seqs, m.vocab_size / p.tp, m.hidden_size, p.emb_bytes, p.a_bytes, LOGIT_BYTES)
