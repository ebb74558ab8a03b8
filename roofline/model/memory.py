"""What sits in HBM: weights, KV cache, activation workspace, runtime reserve; and what is left for the KV
cache, in bytes, per GPU, under the serving engine's rule (`MemorySettings.kv_cache_rule`, from the engine
file, see roofline.specs.engines):

  total_fraction  (vLLM gpu_memory_utilization)        KV = f x total - weights - activations - runtime
  free_fraction   (TensorRT-LLM free_gpu_memory_fraction) KV = f x (total - weights - activations - runtime)
  static_fraction (SGLang mem_fraction_static)          KV = f x total - weights - runtime
                  (SGLang's activations and CUDA graphs live in the 1 - f reserve it sizes for them)

The runtime is the CUDA context, cuBLAS workspace and NCCL buffers; the activations are the peak workspace of
the largest pass. The most sequences a step runs is min(KV-limited, the engine's max_seqs).

Everything is per GPU, for the GPU that holds the most: with pipeline parallelism the stage with ceil(L/pp)
layers (and the embedding or the LM head); with expert parallelism each GPU holds routed experts / ep whole
experts, the rest TP-sharded; with attention data parallelism every DP rank keeps its own sequences' KV
cache, so a replica's KV capacity and max batch are dp times one rank's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from roofline.model.engine import PassCosts, Setup
from roofline.errors import RooflineError
from roofline.specs.engines import DEFAULT_ENGINE, KV_RULES, Admission, EngineSpec, load_engine
from roofline.specs.hardware import GPUSpec
from roofline.specs.precision import bytes_per_element, embedding_bytes_per_element
from roofline.units import GiB, MAX_COUNT

#: tokens per page of the paged KV cache (vLLM's default block_size): a sequence holds whole pages
KV_PAGE_TOKENS = 16


@lru_cache(maxsize=None)
def _default_engine_value(name: str):
    """A GPU-independent figure of the default engine's file (vLLM's, engines/vllm.json), with its source there."""
    return load_engine(DEFAULT_ENGINE).value(name)


@dataclass(frozen=True)
class MemorySettings:
    """The serving engine's settings in effect (defaults: vLLM's on a GPU below 70 GiB; `engine_settings`
    builds them from an engine file, a GPU and the user's knobs).

    memory_utilization: the engine's KV-cache fraction knob, read by `kv_cache_rule` (vLLM
    gpu_memory_utilization, TensorRT-LLM free_gpu_memory_fraction, SGLang mem_fraction_static).
    runtime_reserve_bytes: CUDA context (~300-500 MiB with lazy module loading) plus cuBLAS workspaces and
    NCCL buffers; 1 GiB per GPU process (https://github.com/pytorch/pytorch/issues/107667,
    https://github.com/pytorch/pytorch/issues/109888, https://github.com/verl-project/verl/issues/5979).
    max_batched_tokens: tokens in the largest forward pass (vLLM max_num_batched_tokens, SGLang
    chunked_prefill_size, TensorRT-LLM max_num_tokens): sizes the activation workspace and a step's prefill.
    max_seqs: sequences in one step (vLLM max_num_seqs, TensorRT-LLM max_batch_size) - caps the batch and
    sizes the fp32 logits buffer. admission: the engine's admission rule (`EngineSpec.admission`; None: the one
    `preemption` implies, reserve-all for "none", else optimistic). The rest mirror the engine file's fields of the
    same names."""

    memory_utilization: float = 0.9
    runtime_reserve_bytes: float = 1.0 * GiB
    max_batched_tokens: int = 8192
    max_seqs: int = 256
    kv_cache_rule: str = "total_fraction"
    engine: str = "vllm"
    page_tokens: int = KV_PAGE_TOKENS
    chunked_prefill: bool = True
    cuda_graphs: bool = True
    cuda_graph_max_batch: int = 512
    prefill_launch: str = "piecewise"
    schedule: str = "mixed"
    preemption: str = "recompute"
    preemption_victim: str = "last_admitted"
    prefix_caching: bool = True
    admission: Admission | None = None
    eager_launch_s: float = field(default_factory=lambda: _default_engine_value("eager_launch_s"))
    step_overhead_s: float = field(default_factory=lambda: _default_engine_value("step_overhead_s"))

    def pass_costs(self) -> PassCosts:
        """The fixed costs of a pass these settings imply (roofline.model.phases applies them)."""
        return PassCosts(self.cuda_graphs, float(self.cuda_graph_max_batch), self.prefill_launch,
                         self.eager_launch_s, self.step_overhead_s)

    @property
    def kv_cache_fraction(self) -> float:
        """The engine's KV-cache fraction (stored as memory_utilization, vLLM's name, for compatibility)."""
        return self.memory_utilization

    def to_dict(self) -> dict:
        """Every knob in effect, JSON-ready (the `engine` object of the commands' JSON)."""
        return {"name": self.engine, "kv_cache_rule": self.kv_cache_rule,
                "kv_cache_fraction": self.memory_utilization, "max_seqs": self.max_seqs,
                "max_batched_tokens": self.max_batched_tokens, "page_tokens": self.page_tokens,
                "chunked_prefill": self.chunked_prefill, "cuda_graphs": self.cuda_graphs,
                "cuda_graph_max_batch": self.cuda_graph_max_batch if self.cuda_graphs else 0,
                "prefill_launch": self.prefill_launch if self.cuda_graphs else "eager",
                "schedule": self.schedule, "preemption": self.preemption, "prefix_caching": self.prefix_caching,
                "eager_launch_s": self.eager_launch_s, "step_overhead_s": self.step_overhead_s,
                "runtime_reserve_bytes": self.runtime_reserve_bytes}


@dataclass(frozen=True)
class EngineKnobs:
    """A serving engine and the knobs a user set (None: the engine's default); `settings(gpu, tp, pp)` gives
    the MemorySettings in effect on one deployment (the engine's defaults depend on the GPU and, for SGLang's
    memory reserve, on tp x pp)."""

    spec: EngineSpec
    kv_cache_fraction: float | None = None
    max_seqs: int | None = None
    max_batched_tokens: int | None = None
    page_tokens: int | None = None
    chunked_prefill: bool | None = None
    cuda_graphs: bool | None = None

    def settings(self, gpu: GPUSpec, tp: int = 1, pp: int = 1) -> "MemorySettings":
        return engine_settings(self.spec, gpu, tp, pp, kv_cache_fraction=self.kv_cache_fraction,
                               max_seqs=self.max_seqs, max_batched_tokens=self.max_batched_tokens,
                               page_tokens=self.page_tokens, chunked_prefill=self.chunked_prefill,
                               cuda_graphs=self.cuda_graphs)


def resolve_settings(ms: "MemorySettings | EngineKnobs | None", gpu: GPUSpec, tp: int = 1,
                     pp: int = 1) -> "MemorySettings":
    """The settings in effect on one deployment: `ms` itself, an engine's on this GPU, or the defaults."""
    if ms is None:
        return MemorySettings()
    return ms.settings(gpu, tp, pp) if isinstance(ms, EngineKnobs) else ms


def check_memory_utilization(util: float, name: str = "memory_utilization") -> float:
    """`util` if it is a fraction in (0, 1], else RooflineError (exit 2, param `name`)."""
    if not 0.0 < util <= 1.0:
        raise RooflineError(f"{name} must be in (0, 1], got {util}", hint="vLLM's default is 0.9",
                            exit_code=2, param=name)
    return util


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or not 1 <= value <= MAX_COUNT:
        raise RooflineError(f"{name} must be a whole number >= 1, got {value}", hint="a count of sequences or "
                            "tokens per step", exit_code=2, param=name)
    return int(value)


def engine_settings(spec: EngineSpec, gpu: GPUSpec, tp: int = 1, pp: int = 1, *, kv_cache_fraction=None,
                    max_seqs=None, max_batched_tokens=None, page_tokens=None, chunked_prefill=None,
                    cuda_graphs=None) -> MemorySettings:
    """The engine's settings on `gpu` at tp x pp (its GPU-dependent defaults resolved), each knob that is not
    None replacing the engine's default; RooflineError (exit 2, naming the knob) for a bad value. Without
    chunked prefill a step still holds at most max_batched_tokens tokens, but whole prompts."""
    mbt = spec.value("max_batched_tokens", gpu) if max_batched_tokens is None else \
        _check_count("max_batched_tokens", max_batched_tokens)
    seqs = spec.value("max_seqs", gpu) if max_seqs is None else _check_count("max_seqs", max_seqs)
    graphs = spec.value("cuda_graphs") if cuda_graphs is None else bool(cuda_graphs)
    graph_max = min(spec.value("cuda_graph_max_batch", gpu), spec.value("cuda_graph_batch_per_seq") * seqs, mbt)
    if kv_cache_fraction is None:
        frac = spec.kv_cache_fraction(gpu, tp, pp, mbt, graph_max if graphs else 0)
    else:
        frac = check_memory_utilization(float(kv_cache_fraction), "kv_cache_fraction")
    return MemorySettings(
        memory_utilization=frac, max_batched_tokens=mbt, max_seqs=seqs, kv_cache_rule=spec.value("kv_cache_rule"),
        engine=spec.name, page_tokens=spec.value("page_tokens") if page_tokens is None else
        _check_count("page_tokens", page_tokens),
        chunked_prefill=spec.value("chunked_prefill") if chunked_prefill is None else bool(chunked_prefill),
        cuda_graphs=graphs, cuda_graph_max_batch=graph_max, prefill_launch=spec.value("prefill_launch"),
        schedule=spec.value("schedule"), preemption=spec.value("preemption"),
        preemption_victim=spec.value("preemption_victim"),
        prefix_caching=spec.value("prefix_caching"), admission=spec.admission(),
        eager_launch_s=spec.value("eager_launch_s"),
        step_overhead_s=spec.value("step_overhead_s"))


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


def budget_bytes(memory_bytes: float, ms: MemorySettings, s: Setup | None = None):
    """What the engine may use of a GPU's memory (weights, KV cache and, except SGLang's, activations and
    runtime): fraction x total (vLLM, SGLang), or everything but (1 - fraction) of the memory left free after
    weights, activations and runtime (TensorRT-LLM; needs the Setup `s`)."""
    if ms.kv_cache_rule == "free_fraction":
        if s is None:
            raise RooflineError("budget_bytes needs the deployment `s` under the free_fraction rule",
                                hint="pass the Setup")
        return memory_bytes - (1.0 - ms.memory_utilization) * np.maximum(_non_kv_free(s, ms), 0.0)
    return ms.memory_utilization * memory_bytes


def _non_kv_free(s: Setup, ms: MemorySettings) -> np.ndarray:
    """Memory left after weights, activations and runtime (what TensorRT-LLM's fraction applies to)."""
    return s.gpu.memory_bytes - weights_bytes(s) - activation_bytes(s, ms) - ms.runtime_reserve_bytes


def kv_cache_capacity_bytes(s: Setup, ms: MemorySettings) -> np.ndarray:
    """Bytes left for the KV cache per GPU under the engine's rule (negative when the weights alone do not
    fit). H100 SXM (85.52e9 B), weights 65e9, activations 1.5e9, runtime 1 GiB (1.07e9): total_fraction 0.9 ->
    76.97 - 67.57 = 9.39e9; free_fraction 0.9 -> 0.9 x 17.95 = 16.15e9; static_fraction 0.834 -> 71.32 - 66.07
    = 5.25e9."""
    if ms.kv_cache_rule not in KV_RULES:
        raise RooflineError(f"kv_cache_rule must be one of {', '.join(KV_RULES)}, got {ms.kv_cache_rule!r}",
                            hint="see roofline.specs.engines", param="kv_cache_rule")
    if ms.kv_cache_rule == "free_fraction":
        free = _non_kv_free(s, ms)
        return np.where(free > 0, ms.memory_utilization * free, free)
    if ms.kv_cache_rule == "static_fraction":
        return ms.memory_utilization * s.gpu.memory_bytes - weights_bytes(s) - ms.runtime_reserve_bytes
    return ms.memory_utilization * s.gpu.memory_bytes - weights_bytes(s) - activation_bytes(s, ms) - ms.runtime_reserve_bytes


def _capacity(s: Setup, ms: MemorySettings, cap) -> np.ndarray:
    """The KV capacity in bytes (never negative): `cap` when the caller already has it."""
    return np.maximum(kv_cache_capacity_bytes(s, ms) if cap is None else cap, 0.0)


def kv_cache_capacity_tokens(s: Setup, ms: MemorySettings, cap=None) -> np.ndarray:
    """Tokens the replica's KV cache holds: one GPU's capacity over a token's bytes there, times dp."""
    return np.floor(_capacity(s, ms, cap) / kv_cache_bytes_per_token(s)) * np.asarray(s.dp)


def kv_limited_batch(s: Setup, ms: MemorySettings, context, cap=None) -> np.ndarray:
    """Most sequences of `context` tokens whose KV cache fits at once in the replica (dp ranks, each its own)."""
    per_seq = kv_cache_bytes_per_sequence(s, np.maximum(context, 1))
    return (np.floor(_capacity(s, ms, cap) / per_seq) * np.asarray(s.dp)).astype(np.int64)


def max_batch(s: Setup, ms: MemorySettings, context, cap=None) -> np.ndarray:
    """Most sequences of `context` tokens the engine runs at once: min(KV-limited, max_seqs per dp rank x dp)."""
    return np.minimum(kv_limited_batch(s, ms, context, cap), ms.max_seqs * np.asarray(s.dp).astype(np.int64))


def kv_cache_utilization(s: Setup, ms: MemorySettings, batch, context, cap=None) -> np.ndarray:
    """Fraction of the KV cache that `batch` sequences of `context` tokens occupy (> 1: does not fit)."""
    cap = _capacity(s, ms, cap)
    used = np.asarray(batch, dtype=float) / np.asarray(s.dp) * kv_cache_bytes_per_sequence(s, context)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cap > 0, used / np.where(cap > 0, cap, 1.0), np.inf)
