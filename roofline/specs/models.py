"""Transformer model descriptions parsed from Hugging Face ``config.json`` files.

``load_model(name_or_path)`` accepts a built-in catalog name (``roofline/model_catalog/<name>.json``,
case-insensitive), a path to a ``config.json`` or a directory that contains one.  The result is a frozen
:class:`ModelConfig` with the shapes ops.py needs and exact parameter / KV-cache element counts.

Counting conventions (every count is a number of elements, not bytes):

* ``parameters()`` counts every weight, bias and norm of the main model.  Tied input/output embeddings
  are counted once.  DeepSeek multi-token-prediction (MTP) modules are excluded unless
  ``include_mtp=True`` (they are not used for plain next-token decoding).
* ``active_parameters()`` is ``parameters()`` minus the routed experts a token does not visit
  (per MoE layer: ``num_experts - num_experts_per_tok`` experts).  ``include_embedding=False`` also
  drops the input-embedding table (a lookup, not a matmul) unless it is tied to the LM head.
* ``kv_cache_elements_per_token_per_layer(tp)`` is what one token adds to one layer's KV cache on one GPU
  of a tp-way group: ``max(num_kv_heads / tp, 1) * (head_dim + v_head_dim)`` for MHA/GQA/MQA,
  ``kv_lora_rank + qk_rope_head_dim`` for MLA (the compressed latent that DeepSeek-style engines cache,
  whole on every rank); tp = 1 gives the model's count.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from roofline.errors import RooflineError
from roofline.jsonfile import parse_json, read_json, show

CATALOG_DIR = "model_catalog"
CONFIG_FILE = "config.json"
#: a complete config.json to copy from (named in error hints)
EXAMPLE_FILE = "roofline/specs/model_catalog/llama-3.1-8b.json"
#: the largest width or count a config.json field may hold (hidden size, heads, layers, experts, vocabulary,
#: LoRA ranks): 2**24, far beyond any model (DeepSeek-V3: hidden 7168, vocabulary 129280, 256 experts), so
#: products of a few of them stay exact in float64
MAX_WIDTH = 2**24
#: the largest position count (max_position_embeddings, sliding_window): 2**31 - 1, as roofline's token counts
MAX_POSITIONS = 2**31 - 1


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    """Elements of an ``n_in -> n_out`` linear layer (weight plus optional bias)."""
    return n_in * n_out + (n_out if bias else 0)


@dataclass(frozen=True)
class ModelConfig:
    """One decoder-only transformer, as far as FLOP, byte and memory models care."""

    name: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int  # query/key width per head (MLA: qk_nope_head_dim + qk_rope_head_dim)
    v_head_dim: int  # value width per head (equals head_dim except for MLA)
    intermediate_size: int  # dense MLP width
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    gated_mlp: bool = True  # 3-matrix SwiGLU/GeGLU; False = 2-matrix (up, down)
    parallel_attn_mlp: bool = False  # attention and MLP read the same input (GPT-J, NeoX)
    qkv_bias: bool = False
    mlp_bias: bool = False
    o_bias: bool = False
    norm: str = "rmsnorm"  # "rmsnorm" (weight) | "layernorm" (weight + bias)
    sliding_window: int | None = None
    sliding_window_layers: int = 0  # how many of num_layers attend within sliding_window
    num_experts: int = 0  # routed experts per MoE layer; 0 = dense model
    num_experts_per_tok: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    first_k_dense_layers: int = 0  # leading layers with a dense MLP in an MoE model
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    rotary_dim: int = 0  # rotary width per head (partial rotary: GPT-J 64, Pythia 32)
    mtp_layers: int = 0  # DeepSeek num_nextn_predict_layers
    # --- additional structure ---
    hidden_act: str = ""
    norms_per_layer: int = 2  # hidden-size norms per layer (GPT-J 1, Gemma 2: 4)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
    lm_head_bias: bool = False
    router_bias: bool = False  # DeepSeek-V3 e_score_correction_bias
    moe_layer_freq: int = 1
    # --- provenance ---
    display_name: str = ""
    published_parameters: int | None = None
    parameters_source: str = ""
    path: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    # ----- structure -----
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (HF rule: index >= first_k_dense and index % freq == 0)."""
        if not self.is_moe:
            return 0
        return sum(1 for i in range(self.first_k_dense_layers, self.num_layers) if i % self.moe_layer_freq == 0)

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def full_attention_layers(self) -> int:
        return self.num_layers - self.sliding_window_layers

    # ----- per-layer parameter counts -----
    def _norm(self, width: int) -> int:
        return 2 * width if self.norm == "layernorm" else width

    def attention_parameters_per_layer(self) -> int:
        """Projection weights and biases of one attention block (norms excluded)."""
        return self._mla_attention() if self.is_mla else self._gqa_attention()

    def _gqa_attention(self) -> int:
        h, b = self.hidden_size, self.qkv_bias
        q = _linear(h, self.num_heads * self.head_dim, b)
        k = _linear(h, self.num_kv_heads * self.head_dim, b)
        v = _linear(h, self.num_kv_heads * self.v_head_dim, b)
        return q + k + v + _linear(self.num_heads * self.v_head_dim, h, self.o_bias)

    def _mla_attention(self) -> int:
        h, b, heads = self.hidden_size, self.qkv_bias, self.num_heads
        q_out = heads * self.head_dim
        if self.q_lora_rank is None:
            q = _linear(h, q_out, b)
        else:  # q_a_proj (optional bias) then q_b_proj (no bias)
            q = _linear(h, self.q_lora_rank, b) + self.q_lora_rank * q_out
        kv_a = _linear(h, self.kv_lora_rank + self.qk_rope_head_dim, b)
        kv_b = self.kv_lora_rank * heads * (self.qk_nope_head_dim + self.v_head_dim)
        return q + kv_a + kv_b + _linear(heads * self.v_head_dim, h, self.o_bias)

    def mlp_parameters(self, intermediate_size: int | None = None) -> int:
        """One MLP (or one expert) of width ``intermediate_size`` (default: the dense width)."""
        h = self.hidden_size
        i = self.intermediate_size if intermediate_size is None else intermediate_size
        matrices = 3 if self.gated_mlp else 2
        bias = ((2 if self.gated_mlp else 1) * i + h) if self.mlp_bias else 0
        return matrices * h * i + bias

    def router_parameters_per_layer(self) -> int:
        return self.hidden_size * self.num_experts + (self.num_experts if self.router_bias else 0)

    def norm_parameters_per_layer(self) -> int:
        """Hidden-size norms plus q/k norms (Qwen3) and MLA's latent norms."""
        total = self.norms_per_layer * self._norm(self.hidden_size)
        if self.qk_norm:
            total += 2 * self._norm(self.head_dim)
        if self.is_mla:
            total += self._norm(self.kv_lora_rank) + (self._norm(self.q_lora_rank) if self.q_lora_rank else 0)
        return total

    def _moe_mlp_per_layer(self) -> int:
        experts = (self.num_experts + self.num_shared_experts) * self.mlp_parameters(self.moe_intermediate_size)
        return experts + self.router_parameters_per_layer()

    # ----- totals -----
    def embedding_parameters(self) -> int:
        """The input embedding table (vocab_size x hidden_size)."""
        return self.vocab_size * self.hidden_size

    def lm_head_parameters(self) -> int:
        """The output projection; 0 when tied to the input embedding (counted there once)."""
        if self.tie_word_embeddings:
            return 0
        return _linear(self.hidden_size, self.vocab_size, self.lm_head_bias)

    def parameter_breakdown(self, include_mtp: bool = False) -> dict[str, int]:
        """Parameter counts by component; the values sum to ``parameters(include_mtp)``."""
        expert = self.mlp_parameters(self.moe_intermediate_size)
        moe_layers = self.num_moe_layers
        parts = {
            "embedding": self.embedding_parameters(),
            "lm_head": self.lm_head_parameters(),
            "attention": self.num_layers * self.attention_parameters_per_layer(),
            "mlp": self.num_dense_layers * self.mlp_parameters(),
            "shared_experts": moe_layers * self.num_shared_experts * expert,
            "routed_experts": moe_layers * self.num_experts * expert,
            "router": moe_layers * self.router_parameters_per_layer(),
            "norms": self.num_layers * self.norm_parameters_per_layer() + self._norm(self.hidden_size),
        }
        if include_mtp:
            parts["mtp"] = self.mtp_parameters()
        return parts

    def parameters(self, include_mtp: bool = False) -> int:
        """Total parameter count (tied embeddings once; MTP modules only when asked)."""
        return sum(self.parameter_breakdown(include_mtp).values())

    def non_embedding_parameters(self) -> int:
        """``parameters()`` without the embedding table and the (untied) LM head."""
        return self.parameters() - self.embedding_parameters() - self.lm_head_parameters()

    def active_parameters(self, include_embedding: bool = True) -> int:
        """Parameters one token uses: total minus the routed experts it skips.

        ``include_embedding=False`` drops the input embedding table unless it doubles as the LM head.
        Mixtral's published 12.9B counts the embedding; DeepSeek-V3's 36.6B (quoted as 37B) does not.
        """
        idle = self.num_moe_layers * (self.num_experts - self.num_experts_per_tok)
        total = self.parameters() - idle * self.mlp_parameters(self.moe_intermediate_size)
        if not include_embedding and not self.tie_word_embeddings:
            total -= self.embedding_parameters()
        return total

    def mtp_parameters(self, include_shared_copies: bool = True) -> int:
        """Parameters of the DeepSeek multi-token-prediction modules as stored in the checkpoint.

        Each module holds enorm, hnorm, eh_proj (2h -> h), one MoE decoder layer and a final norm,
        plus its own stored copies of the embedding and LM head (``include_shared_copies``).
        """
        h = self.hidden_size
        layer = self.attention_parameters_per_layer() + self.norm_parameters_per_layer()
        layer += self._moe_mlp_per_layer() if self.is_moe else self.mlp_parameters()
        unique = 3 * self._norm(h) + 2 * h * h + layer
        copies = 2 * self.vocab_size * h if include_shared_copies else 0
        return self.mtp_layers * (unique + copies)

    # ----- KV cache -----
    def kv_heads_per_gpu(self, tp=1):
        """KV heads each GPU of a ``tp``-way tensor-parallel group holds: max(num_kv_heads / tp, 1) (a KV head
        is replicated when tp exceeds them). Array-friendly."""
        return np.maximum(self.num_kv_heads / tp, 1.0)

    def kv_cache_elements_per_token_per_layer(self, tp=1):
        """Elements one token adds to one layer's KV cache on one GPU of a ``tp``-way group (multiply by bytes
        per element): K and V of its KV heads, or the MLA latent, which every rank keeps whole. At tp 1: the
        model's count (llama-2-7b: 2 x 4096 = 8192). Array-friendly in ``tp``."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.kv_heads_per_gpu(tp) * (self.head_dim + self.v_head_dim)

    def kv_cache_token_layers(self, context_tokens):
        """(token, layer) entries one sequence of ``context_tokens`` keeps in the KV cache: every token in the
        full-attention layers, at most the window in the sliding-window ones. Array-friendly."""
        if not self.sliding_window:
            return self.num_layers * context_tokens
        return (self.full_attention_layers * context_tokens
                + self.sliding_window_layers * np.minimum(context_tokens, self.sliding_window))

    def kv_cache_elements(self, context_tokens: int) -> int:
        """KV elements for one sequence of ``context_tokens``; sliding-window layers keep at most the window."""
        return int(self.kv_cache_elements_per_token_per_layer() * self.kv_cache_token_layers(context_tokens))

    # ----- export -----
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description: every field plus the derived counts."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "metadata"}
        out.update(
            is_moe=self.is_moe,
            is_mla=self.is_mla,
            parameters=self.parameters(),
            active_parameters=self.active_parameters(),
            embedding_parameters=self.embedding_parameters(),
            mtp_parameters=self.mtp_parameters(),
            parameter_breakdown=self.parameter_breakdown(),
            kv_cache_elements_per_token_per_layer=int(self.kv_cache_elements_per_token_per_layer()),
            metadata=dict(self.metadata),
        )
        return out


# ======================================================================================
# config.json field access
# ======================================================================================
_REQUIRED = object()


class _Fields:
    """Typed, ranged access to one config.json dict; errors name the file, the model_type and the field."""

    def __init__(self, raw: Mapping[str, Any], source: str, model_type: str):
        self.raw, self.source, self.model_type = raw, source, model_type

    def _lookup(self, keys: tuple[str, ...]) -> tuple[str, Any]:
        for key in keys:
            if self.raw.get(key) is not None:
                return key, self.raw[key]
        return keys[0], None

    def _missing(self, keys: tuple[str, ...]) -> RooflineError:
        alts = " or ".join(f"'{k}'" for k in keys)
        return RooflineError(
            f"{self.source}: required field {alts} is missing (model_type '{self.model_type}')",
            hint="this field sets a tensor shape; add it to the config.json",
        )

    def bad(self, key: str, expected: str, value: Any) -> RooflineError:
        return RooflineError(f"{self.source}: field '{key}' must be {expected}, got {show(value)}",
                             hint=f"fix the value in the config.json; {EXAMPLE_FILE} is a complete example")

    def integer(self, *keys: str, default: Any = _REQUIRED, lo: int = 0, hi: int = MAX_WIDTH) -> Any:
        """A whole number in [lo, hi] (a float such as 4096.0 is accepted; true/false are not numbers)."""
        key, value = self._lookup(keys)
        if value is None:
            if default is _REQUIRED:
                raise self._missing(keys)
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
                or not float(value).is_integer():  # NaN fails the comparison; a huge int is never converted
            raise self.bad(key, f"a whole number from {lo:,} to {hi:,}", value)
        return int(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.bad(key, "true or false", value)
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        """A finite number in [lo, hi]."""
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self.bad(key, f"a number from {lo:g} to {hi:g}", value)  # NaN fails the comparison too
        return float(value)

    def text(self, *keys: str, default: str = "") -> str:
        key, value = self._lookup(keys)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.bad(key, "a string", value)
        return value


# ======================================================================================
# one parser per family: each returns ModelConfig keyword arguments
# ======================================================================================
def _decoder_common(f: _Fields, max_positions: int, tie: bool = False) -> dict[str, Any]:
    """Fields shared by the Llama-style configs (names as in LlamaConfig)."""
    hidden, heads = f.integer("hidden_size", lo=1), f.integer("num_attention_heads", lo=1)
    head_dim = f.integer("head_dim", default=None) or _divide(f, hidden, heads, "hidden_size", "num_attention_heads")
    return dict(
        hidden_size=hidden,
        num_layers=f.integer("num_hidden_layers", lo=1),
        num_heads=heads,
        num_kv_heads=f.integer("num_key_value_heads", default=heads, lo=1),
        head_dim=head_dim,
        v_head_dim=head_dim,
        intermediate_size=f.integer("intermediate_size", lo=1),
        vocab_size=f.integer("vocab_size", lo=1),
        max_position_embeddings=f.integer("max_position_embeddings", default=max_positions, lo=1, hi=MAX_POSITIONS),
        tie_word_embeddings=f.flag("tie_word_embeddings", tie),
        rotary_dim=int(head_dim * f.number("partial_rotary_factor", 1.0, lo=0.0, hi=1.0)),
        hidden_act=f.text("hidden_act", default="silu"),
    )


def _divide(f: _Fields, a: int, b: int, a_name: str, b_name: str) -> int:
    if b == 0 or a % b:
        raise RooflineError(f"{f.source}: '{a_name}' ({a}) is not a multiple of '{b_name}' ({b})",
                            hint="check both fields against the model's published config.json")
    return a // b


def _layer_types_window(f: _Fields, num_layers: int) -> tuple[int | None, int] | None:
    """Newer transformers write an explicit per-layer list (one attention type per layer); it wins over family
    rules."""
    types = f.raw.get("layer_types")
    if types is None:
        return None
    if not (isinstance(types, list) and len(types) == num_layers and all(isinstance(t, str) for t in types)):
        raise f.bad("layer_types", f"a list of {num_layers} attention types (one per layer)", types)
    count = sum(1 for t in types if t == "sliding_attention")
    return (f.integer("sliding_window", lo=1, hi=MAX_POSITIONS), count) if count else (None, 0)


def _window(f: _Fields, num_layers: int, rule: Callable[[int], int], default: int | None) -> dict[str, Any]:
    """sliding_window / sliding_window_layers from layer_types, else from the family's rule.

    ``default`` is the transformers config-class default, used only when the key is absent
    (an explicit ``null`` means no window).
    """
    explicit = _layer_types_window(f, num_layers)
    if explicit is not None:
        window, layers = explicit
    else:
        window = f.integer("sliding_window", default=None, hi=MAX_POSITIONS) if "sliding_window" in f.raw else default
        layers = rule(num_layers) if window else 0
    return dict(sliding_window=window if layers else None, sliding_window_layers=layers)


def _parse_llama(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=2048)
    bias = f.flag("attention_bias", False)
    kw.update(qkv_bias=bias, o_bias=bias, mlp_bias=f.flag("mlp_bias", False))
    return kw


def _parse_mistral(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=4096 * 32)
    kw.update(_window(f, kw["num_layers"], rule=lambda n: n, default=4096))  # v0.1: every layer
    return kw


def _parse_mixtral(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=4096 * 32)
    kw.update(
        **_window(f, kw["num_layers"], rule=lambda n: n, default=None),
        num_experts=f.integer("num_local_experts", lo=1),
        num_experts_per_tok=f.integer("num_experts_per_tok", lo=1),
        moe_intermediate_size=kw["intermediate_size"],
    )
    return kw


def _qwen_window(f: _Fields, num_layers: int) -> dict[str, Any]:
    """Qwen2/3: the window applies only if use_sliding_window, and only to layers >= max_window_layers."""
    if not f.flag("use_sliding_window", False):
        return dict(sliding_window=None, sliding_window_layers=0)
    first = f.integer("max_window_layers", default=28)
    return _window(f, num_layers, rule=lambda n: max(0, n - first), default=4096)


def _parse_qwen2(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=32768)
    kw.update(qkv_bias=True, **_qwen_window(f, kw["num_layers"]))
    return kw


def _parse_qwen3(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=32768)
    bias = f.flag("attention_bias", False)
    kw.update(qkv_bias=bias, o_bias=bias, qk_norm=True, **_qwen_window(f, kw["num_layers"]))
    return kw


def _parse_gemma2(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=8192, tie=True)
    bias = f.flag("attention_bias", False)
    kw.update(
        qkv_bias=bias,
        o_bias=bias,
        norms_per_layer=4,  # pre/post attention, pre/post feed-forward
        hidden_act=f.text("hidden_activation", "hidden_act", default="gelu_pytorch_tanh"),
        **_window(f, kw["num_layers"], rule=lambda n: (n + 1) // 2, default=4096),  # even layers slide
    )
    return kw


def _parse_gptj(f: _Fields) -> dict[str, Any]:
    hidden, heads = f.integer("n_embd", "hidden_size", lo=1), f.integer("n_head", "num_attention_heads", lo=1)
    head_dim = _divide(f, hidden, heads, "n_embd", "n_head")
    return dict(
        hidden_size=hidden,
        num_layers=f.integer("n_layer", "num_hidden_layers", lo=1),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=head_dim,
        v_head_dim=head_dim,
        intermediate_size=f.integer("n_inner", default=4 * hidden, lo=1),
        vocab_size=f.integer("vocab_size", lo=1),
        max_position_embeddings=f.integer("n_positions", "max_position_embeddings", default=2048, lo=1,
                                          hi=MAX_POSITIONS),
        tie_word_embeddings=f.flag("tie_word_embeddings", False),
        gated_mlp=False,
        parallel_attn_mlp=True,
        mlp_bias=True,
        norm="layernorm",
        norms_per_layer=1,  # one ln_1 feeds both attention and MLP
        lm_head_bias=True,
        rotary_dim=f.integer("rotary_dim", default=head_dim),
        hidden_act=f.text("activation_function", default="gelu_new"),
    )


def _parse_gpt_neox(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=2048)
    bias = f.flag("attention_bias", True)
    kw.update(
        gated_mlp=False,
        parallel_attn_mlp=f.flag("use_parallel_residual", True),
        qkv_bias=bias,
        o_bias=bias,
        mlp_bias=True,
        norm="layernorm",
        rotary_dim=int(kw["head_dim"] * f.number("rotary_pct", 0.25, lo=0.0, hi=1.0)),
        hidden_act=f.text("hidden_act", default="gelu"),
    )
    return kw


def _parse_deepseek_v3(f: _Fields) -> dict[str, Any]:
    kw = _decoder_common(f, max_positions=4096)
    nope, rope = f.integer("qk_nope_head_dim"), f.integer("qk_rope_head_dim")
    bias = f.flag("attention_bias", False)
    kw.update(
        head_dim=nope + rope,
        v_head_dim=f.integer("v_head_dim", lo=1),
        q_lora_rank=f.integer("q_lora_rank", default=None, lo=1),
        kv_lora_rank=f.integer("kv_lora_rank", lo=1),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        rotary_dim=rope,
        qkv_bias=bias,
        o_bias=bias,
        mtp_layers=f.integer("num_nextn_predict_layers", default=0),
        **_deepseek_moe(f),
    )
    return kw


def _deepseek_moe(f: _Fields) -> dict[str, Any]:
    experts = f.integer("n_routed_experts", default=0)
    if not experts:
        return {}
    return dict(
        num_experts=experts,
        num_experts_per_tok=f.integer("num_experts_per_tok", lo=1),
        num_shared_experts=f.integer("n_shared_experts", default=0),
        moe_intermediate_size=f.integer("moe_intermediate_size", lo=1),
        first_k_dense_layers=f.integer("first_k_dense_replace", default=0),
        moe_layer_freq=max(1, f.integer("moe_layer_freq", default=1)),
        router_bias=f.text("topk_method") == "noaux_tc",
    )


_FAMILIES: dict[str, Callable[[_Fields], dict[str, Any]]] = {
    "llama": _parse_llama,
    "mistral": _parse_mistral,
    "mixtral": _parse_mixtral,
    "qwen2": _parse_qwen2,
    "qwen3": _parse_qwen3,
    "gemma2": _parse_gemma2,
    "gptj": _parse_gptj,
    "gpt_neox": _parse_gpt_neox,
    "deepseek_v3": _parse_deepseek_v3,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_FAMILIES))


# ======================================================================================
# public entry points
# ======================================================================================
def parse_config(config: Mapping[str, Any], name: str, source: str | None = None) -> ModelConfig:
    """Build a ModelConfig from a config.json dict; keys starting with ``_`` are ignored.

    ``source`` names the file in error messages (defaults to ``name``).  A ``_roofline`` block, when
    present, supplies display_name / published_parameters / parameters_source.
    """
    source = source or name
    if not isinstance(config, Mapping):
        raise RooflineError(f"{source}: expected a JSON object, got {type(config).__name__}",
                            hint="a Hugging Face config.json holds one object {...} of the model's fields")
    model_type = config.get("model_type")
    if model_type is None:
        raise RooflineError(f"{source}: required field 'model_type' is missing",
                            hint=f"supported model_type values: {', '.join(SUPPORTED_MODEL_TYPES)}")
    parser = _FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if parser is None:
        raise RooflineError(
            f"{source}: unsupported model_type {show(model_type)}",
            hint=f"supported model_type values: {', '.join(SUPPORTED_MODEL_TYPES)}",
        )
    raw = {k: v for k, v in config.items() if not str(k).startswith("_")}
    kwargs = parser(_Fields(raw, source, str(model_type)))
    _check(kwargs, source)
    return ModelConfig(name=name, model_type=str(model_type), **kwargs, **_provenance(config, name, source))


def _check(kw: Mapping[str, Any], source: str) -> None:
    """Consistency checks a shape model relies on."""
    hint = "fix the config.json: the shapes of a model must agree"
    for key in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab_size"):
        if kw[key] <= 0:
            raise RooflineError(f"{source}: {key} must be positive, got {kw[key]}", hint=hint)
    if kw["num_heads"] % kw["num_kv_heads"]:
        raise RooflineError(
            f"{source}: num_attention_heads ({kw['num_heads']}) is not a multiple of "
            f"num_key_value_heads ({kw['num_kv_heads']})", hint=hint
        )
    if kw.get("num_experts_per_tok", 0) > kw.get("num_experts", 0):
        raise RooflineError(
            f"{source}: num_experts_per_tok ({kw['num_experts_per_tok']}) exceeds the "
            f"number of experts ({kw.get('num_experts', 0)})", hint=hint
        )
    if kw.get("rotary_dim", 0) > kw["head_dim"]:
        raise RooflineError(f"{source}: rotary_dim ({kw['rotary_dim']}) exceeds the head dimension ({kw['head_dim']})",
                            hint=hint)


def _provenance(config: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    """The `_roofline` block: display_name and parameters_source (strings), published_parameters (a whole
    number >= 1)."""
    meta = config.get("_roofline")
    if meta is not None and not isinstance(meta, Mapping):
        raise _provenance_error(source, "_roofline", "an object", meta)
    meta = dict(meta or {})
    for key in ("display_name", "parameters_source"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise _provenance_error(source, f"_roofline.{key}", "a string", meta[key])
    published = meta.get("published_parameters")
    if published is not None and (isinstance(published, bool) or not isinstance(published, int)
                                  or not 1 <= published <= 10**15):
        raise _provenance_error(source, "_roofline.published_parameters", "a whole number from 1 to 10**15",
                                published)
    return dict(
        display_name=meta.get("display_name") or name,
        published_parameters=published,
        parameters_source=meta.get("parameters_source") or "",
        path=source,
        metadata=meta,
    )


def _provenance_error(source: str, key: str, expected: str, value: Any) -> RooflineError:
    return RooflineError(f"{source}: field '{key}' must be {expected}, got {show(value)}",
                         hint=f"fix the value in the config.json; {EXAMPLE_FILE} is a complete example")


def _catalog() -> Any:
    return resources.files("roofline.specs") / CATALOG_DIR


def list_models() -> list[str]:
    """Short names of the built-in catalog models, sorted."""
    return sorted(p.name[: -len(".json")] for p in _catalog().iterdir() if p.name.endswith(".json"))


def load_config_file(path: str | Path, name: str | None = None) -> ModelConfig:
    """Parse a config.json file (or a directory holding one); read by `jsonfile.read_json`, so a path that is
    not a regular file, a file that is too large, not UTF-8 or not valid JSON is one RooflineError."""
    if not str(path).strip():
        raise RooflineError("model config: the path is empty", exit_code=2,
                            hint=f"pass the path of a config.json or of a directory holding one, e.g. {EXAMPLE_FILE}")
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise RooflineError(
                f"{path}: directory has no {CONFIG_FILE}",
                hint="pass a Hugging Face model directory or the config.json itself",
            )
        path = path / CONFIG_FILE
    config = read_json(path, "model config", EXAMPLE_FILE)
    default_name = path.parent.name if path.name == CONFIG_FILE else path.stem
    return parse_config(config, name or default_name or str(path), source=str(path))


def _load_catalog(name: str) -> ModelConfig:
    entry = _catalog() / f"{name}.json"
    source = str(entry)
    return parse_config(parse_json(entry.read_text(encoding="utf-8"), source, EXAMPLE_FILE), name, source=source)


def load_model(name_or_path: str | Path) -> ModelConfig:
    """Load a catalog model by short name (case-insensitive) or a config.json path / model directory.

    An existing file or directory wins over a catalog name of the same spelling.
    """
    text = str(name_or_path)
    if not text.strip():  # Path("") is the current directory: never read that by accident
        raise RooflineError("model is empty: neither a catalog name nor a path", exit_code=2, param="model",
                            hint="pass a catalog name (`roofline models` lists them) or the path of a config.json")
    path = Path(text).expanduser()
    if path.is_file() or (path / CONFIG_FILE).is_file():
        return load_config_file(path)
    catalog = {n.lower(): n for n in list_models()}
    key = text.strip().lower().removesuffix(".json")
    if key in catalog:
        return _load_catalog(catalog[key])
    if path.exists():
        return load_config_file(path)  # a directory without config.json: reports that
    raise _unknown_model(text, list(catalog.values()))


def _unknown_model(text: str, names: list[str]) -> RooflineError:
    looks_like_path = "/" in text or "\\" in text or text.endswith(".json")
    if looks_like_path:
        return RooflineError(
            f"model config not found: {text}",
            hint="pass a path to a config.json or a directory containing one, or a catalog name "
            "(`roofline models` lists them); Hugging Face Hub ids are not downloaded",
        )
    close = difflib.get_close_matches(text.lower(), names, n=3, cutoff=0.5)
    suggestion = f"did you mean {', '.join(close)}? " if close else ""
    return RooflineError(
        f"unknown model '{text}'",
        hint=f"{suggestion}Run `roofline models` to list the built-in models, or pass a path to a config.json",
    )
