"""What sits in HBM: weights, KV cache, activation workspace, runtime reserve; and what is left for the KV
cache, in bytes, per GPU.

Budget semantics follow vLLM's `gpu_memory_utilization`: the engine may use `memory_utilization x total`;
out of that come the weights, the peak activation workspace of the largest pass and the runtime's own
memory (CUDA context, cuBLAS workspace, NCCL buffers); the rest is KV cache.
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


def weights_bytes(s: Setup) -> np.ndarray:
    """Weights per GPU: linear layers at the weights precision, embeddings/LM head at >= 16 bit, all / tp."""
    br = s.model.parameter_breakdown()
    emb = br.get("embedding", 0) + br.get("lm_head", 0)
    rest = s.model.parameters() - emb
    return (rest * s.w_bytes + emb * embedding_bytes_per_element(s.w_bytes)) / s.tp


def kv_bytes_per_token_layer(s: Setup) -> np.ndarray:
    """KV bytes one token adds to one layer on one GPU."""
    return s.model.kv_cache_elements_per_token_per_layer(s.tp) * s.kv_bytes


def kv_cache_bytes_per_token(s: Setup) -> np.ndarray:
    """KV bytes one token adds on one GPU over all layers (Llama-2-7B fp16: 2*32*4096*2 = 524,288)."""
    return s.model.num_layers * kv_bytes_per_token_layer(s)


def kv_cache_bytes_per_sequence(s: Setup, context) -> np.ndarray:
    """KV bytes of one sequence of `context` tokens on one GPU; windowed layers keep at most the window."""
    return s.model.kv_cache_token_layers(np.asarray(context, dtype=float)) * kv_bytes_per_token_layer(s)


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
    return np.floor(_capacity(s, ms, cap) / kv_cache_bytes_per_token(s))


def max_batch(s: Setup, ms: MemorySettings, context, cap=None) -> np.ndarray:
    """Most sequences of `context` tokens whose KV cache fits at once."""
    per_seq = kv_cache_bytes_per_sequence(s, np.maximum(context, 1))
    return np.floor(_capacity(s, ms, cap) / per_seq).astype(np.int64)


def kv_cache_utilization(s: Setup, ms: MemorySettings, batch, context, cap=None) -> np.ndarray:
    """Fraction of the KV cache that `batch` sequences of `context` tokens occupy (> 1: does not fit)."""
    cap = _capacity(s, ms, cap)
    used = batch * kv_cache_bytes_per_sequence(s, context)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cap > 0, used / np.where(cap > 0, cap, 1.0), np.inf)
