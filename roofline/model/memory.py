"""What sits in HBM: weights, KV cache, activation workspace, runtime reserve; and what is left for the KV
cache, in bytes, per GPU.

Budget semantics follow vLLM's `gpu_memory_utilization`: the engine may use `memory_utilization x total`;
out of that come the weights, the peak activation workspace of the largest pass and the runtime's own
memory (CUDA context, cuBLAS workspace, NCCL buffers); the rest is KV cache.

Everything is per GPU, for the GPU that holds the most: with pipeline parallelism the stage with ceil(L/pp)
layers (and the embedding or the LM head); with expert parallelism each GPU holds routed experts / ep whole
experts, the rest TP-sharded; with attention data parallelism every DP rank keeps its own sequences' KV
cache, so a replica's KV capacity and max batch are dp times one rank's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roofline.model.engine import Setup
from roofline.errors import RooflineError
from roofline.specs.precision import bytes_per_element, embedding_bytes_per_element
from roofline.units import GiB

#: tokens per page of the paged KV cache (vLLM's default block_size): a sequence holds whole pages
KV_PAGE_TOKENS = 16


@dataclass(frozen=True)
class MemorySettings:
    """Serving-engine memory settings (vLLM's meanings and defaults).

    runtime_reserve_bytes: CUDA context (~300-500 MiB with lazy module loading) plus cuBLAS workspaces and
    NCCL buffers; 1 GiB per GPU process (https://github.com/pytorch/pytorch/issues/107667,
    https://github.com/pytorch/pytorch/issues/109888, https://github.com/verl-project/verl/issues/5979).
    max_batched_tokens: tokens in the largest forward pass (vLLM max_num_batched_tokens, 8192).
    max_seqs: sequences in the largest pass (vLLM max_num_seqs, 256) - sizes the fp32 logits buffer."""

    memory_utilization: float = 0.9
    runtime_reserve_bytes: float = 1.0 * GiB
    max_batched_tokens: int = 8192
    max_seqs: int = 256


def check_memory_utilization(util: float) -> float:
    """`util` if it is a fraction in (0, 1], else RooflineError (exit 2, param "memory_utilization")."""
    if not 0.0 < util <= 1.0:
        raise RooflineError(f"memory_utilization must be in (0, 1], got {util}", hint="vLLM's default is 0.9",
                            exit_code=2, param="memory_utilization")
    return util


def stage_layer_share(s: Setup) -> np.ndarray:
    """Share of the layers on the fullest pipeline stage: ceil(L / pp) / L (1 without pipelining)."""
    return np.ceil(s.model.num_layers / np.asarray(s.pp, dtype=float)) / s.model.num_layers


def weights_bytes(s: Setup) -> np.ndarray:
    """Weights per GPU: linear layers at the weights precision, embeddings/LM head at >= 16 bit. Layers: the
    fullest stage's share; routed experts / ep with expert parallelism, else / tp; the rest / tp. Embedding
    and LM head / tp, both on one GPU without pipelining, else the larger one (first or last stage)."""
    br = s.model.parameter_breakdown()
    emb, head = br.get("embedding", 0), br.get("lm_head", 0)
    experts = br.get("routed_experts", 0)
    rest = s.model.parameters() - emb - head - experts
    tp, ep = np.asarray(s.tp, dtype=float), np.asarray(s.ep, dtype=float)
    layers = (rest / tp + experts / np.where(ep > 1, ep, tp)) * s.w_bytes * stage_layer_share(s)
    ends = np.where(np.asarray(s.pp) > 1, max(emb, head), emb + head) / tp
    return layers + ends * embedding_bytes_per_element(s.w_bytes)


def kv_bytes_per_token_layer(s: Setup) -> np.ndarray:
    """KV bytes one token adds to one layer on one GPU."""
    return s.model.kv_cache_elements_per_token_per_layer(s.tp) * s.kv_bytes


def kv_cache_bytes_per_token(s: Setup) -> np.ndarray:
    """KV bytes one token adds on one GPU over its stage's layers (Llama-2-7B fp16, one stage:
    2*32*4096*2 = 524,288)."""
    return s.model.num_layers * stage_layer_share(s) * kv_bytes_per_token_layer(s)


def kv_cache_bytes_per_sequence(s: Setup, context) -> np.ndarray:
    """KV bytes of one sequence of `context` tokens on one GPU (its stage's layers); windowed layers keep at
    most the window."""
    return (s.model.kv_cache_token_layers(np.asarray(context, dtype=float)) * stage_layer_share(s)
            * kv_bytes_per_token_layer(s))


def activation_bytes(s: Setup, ms: MemorySettings) -> np.ndarray:
    """Peak transient activations of the largest pass: per token the residual stream and its copies (4h),
    the QKV output, the MLP intermediate (gate, up, product), and the fp32 logits of max_seqs sequences."""
    m = s.model
    heads, kvh = m.num_heads / s.tp, m.kv_heads_per_gpu(s.tp)
    inter = max(m.intermediate_size, m.moe_intermediate_size * max(m.num_experts_per_tok, 1)) / s.tp
    per_token = 4 * m.hidden_size + heads * m.head_dim + kvh * (m.head_dim + m.v_head_dim) + 3 * inter
    logits = ms.max_seqs * m.vocab_size / s.tp * bytes_per_element("fp32")
    return ms.max_batched_tokens * per_token * s.a_bytes + logits


def budget_bytes(memory_bytes: float, ms: MemorySettings) -> float:
    """What the engine may use of a GPU's memory: memory_utilization x total (vLLM's meaning)."""
    return ms.memory_utilization * memory_bytes


def kv_cache_capacity_bytes(s: Setup, ms: MemorySettings) -> np.ndarray:
    """Bytes left for the KV cache per GPU (negative when the weights alone do not fit)."""
    return budget_bytes(s.gpu.memory_bytes, ms) - weights_bytes(s) - activation_bytes(s, ms) - ms.runtime_reserve_bytes


def _capacity(s: Setup, ms: MemorySettings, cap) -> np.ndarray:
    """The KV capacity in bytes (never negative): `cap` when the caller already has it."""
    return np.maximum(kv_cache_capacity_bytes(s, ms) if cap is None else cap, 0.0)


def kv_cache_capacity_tokens(s: Setup, ms: MemorySettings, cap=None) -> np.ndarray:
    """Tokens the replica's KV cache holds: one GPU's capacity over a token's bytes there, times dp."""
    return np.floor(_capacity(s, ms, cap) / kv_cache_bytes_per_token(s)) * np.asarray(s.dp)


def max_batch(s: Setup, ms: MemorySettings, context, cap=None) -> np.ndarray:
    """Most sequences of `context` tokens whose KV cache fits at once in the replica (dp ranks, each its own)."""
    per_seq = kv_cache_bytes_per_sequence(s, np.maximum(context, 1))
    return (np.floor(_capacity(s, ms, cap) / per_seq) * np.asarray(s.dp)).astype(np.int64)


def kv_cache_utilization(s: Setup, ms: MemorySettings, batch, context, cap=None) -> np.ndarray:
    """Fraction of the KV cache that `batch` sequences of `context` tokens occupy (> 1: does not fit)."""
    cap = _capacity(s, ms, cap)
    used = np.asarray(batch, dtype=float) / np.asarray(s.dp) * kv_cache_bytes_per_sequence(s, context)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cap > 0, used / np.where(cap > 0, cap, 1.0), np.inf)
