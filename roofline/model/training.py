"""Training one model on a GPU type: memory per GPU and step time for a parallel layout and a recipe, vectorized.

A layout is tp (tensor parallel, with sequence parallelism), pp (pipeline stages, v interleaved chunks each),
dp (data parallel), cp (context parallel: the sequence split over cp ranks) and ep (expert parallel, carved out
of dp x cp as in Megatron-Core; experts whole on each EP rank). Every layout argument is a numpy array that
broadcasts, so the layout search evaluates thousands of layouts in one call.

Memory per GPU (the busiest pipeline stage):

- weights, gradients, fp32 master weights and Adam's two moments in the recipe's precisions (16 bytes per
  parameter in the classic bf16 recipe, ZeRO, arXiv:1910.02054), sharded over the dp x cp ranks by the ZeRO
  stage (1: optimizer states, the Megatron distributed optimizer; 2: + gradients; 3 / FSDP: + weights, plus two
  gathered layers in flight). Expert weights are sharded over ep, their ZeRO group is dp x cp / ep.
- activations per layer per micro-batch from Korthikanti et al. 2022 ("Reducing Activation Recomputation in
  Large Transformer Models", arXiv:2205.05198, Section 4), written per tensor so that it generalises to gated
  MLPs, GQA and MoE and reduces to the paper's sbh(34 + 5as/h) for a GPT layer: `none` stores everything
  (scores included, 5as^2b), `selective` recomputes the attention core (what FlashAttention does), `full`
  stores only each layer's input (2sbh). Divided by t with sequence parallelism (else the 10sbh of norms,
  dropout masks and block inputs stay replicated) and the sequence by cp. Dropout masks (1 byte per element)
  only with `dropout`. The first stage holds min(pp, m) micro-batches of its layers under 1F1B, times
  1 + (p-1)/(p v) when interleaved (the paper's rule); the last stage adds the fp32 logits (4 s b V / t).
- the runtime reserve (CUDA context, NCCL buffers; specs/data/training.json) plus a fragmentation fraction.

Step time (one optimizer step, the busiest stage):

- forward per operator on the roofline (engine.op_seconds, the one formula), per micro-batch: the serving
  operators of model/ops.py with training's shapes (every token through the LM head, causal attention pairs
  s(s+1)/2 per sequence, no KV-cache write); backward = 2 x forward (FLOPs and bytes: dgrad and wgrad GEMMs of
  the same shapes, so at the efficiency model's fraction for those shapes; elementwise ops read and write twice).
  The attention core is one fused kernel (FlashAttention, `Recipe.attention_kernel`): on a GPU whose
  architecture has a measured table (specs/data/training.json, FlashAttention-3 paper Figures 5-6 on H100) its
  causal forward and its backward (2.5 x the forward FLOPs, FlashAttention-2 arXiv:2307.08691, recomputing the
  scores inside) run at the table's fraction of the 16-bit peak for the sequence length and head dim; elsewhere
  at the GEMM fraction. Recomputation adds a forward of the layers (`full`); `selective` adds nothing, because
  FlashAttention's recomputation is inside its backward kernel. `attention_kernel="unfused"` is attention before
  FlashAttention (Megatron-LM 2021-2022: Q K^T written to memory, one fused scale-mask-softmax kernel, dropout,
  P V): the whole s x s square is scored (masked, not skipped), the score matrix's traffic is timed on the
  bandwidth roof (written by Q K^T, read and written by the softmax and by dropout with its 1-byte mask, read by
  P V), the backward is 2 x the forward, and `selective` recomputation re-runs the attention core's forward
  (Korthikanti et al. 2022).
- TP / sequence-parallel collectives (2 per layer per pass, 1 with a parallel attention+MLP block), CP
  all-gather of K/V (forward) and reduce-scatter of their gradients (backward), EP all-to-all dispatch and
  combine (forward and backward), timed by model/comm.py with NCCL (no serving custom all-reduce), not
  overlapped with compute.
- the pipeline: (m + (p-1)/v) micro-batch slots, i.e. the bubble is (p-1)/(v m) of the ideal time
  (Narayanan et al. 2021, arXiv:2104.04473), plus the point-to-point sends of activations and gradients.
- data parallelism: gradient all-reduce (ZeRO 0), or reduce-scatter + all-gather of the updated weights
  (ZeRO 1/2), or, under ZeRO 3, two weight all-gathers and a gradient reduce-scatter per micro-batch; up to a
  fraction `dp_overlap` of it hides behind compute (an explicit assumption, `_dp_exposed`: FSDP prefetch hides
  ZeRO 3 traffic behind each micro-batch's forward + backward except the first layer's gathers; ZeRO 0-2
  traffic hides behind one micro-batch's forward + backward; 0 = nothing hidden).
- the optimizer step, memory-bound over the local optimizer shard (read and write master weights and moments,
  read gradients, write weights).

Model FLOPs (MFU) follow the PaLM / Megatron convention: 6 N per token for the N parameters that do matmuls
(active parameters of an MoE, the input embedding table excluded unless tied) plus 6 L s (q + v widths) for
attention over the full sequence; HFU adds the recomputed forward FLOPs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from roofline.errors import RooflineError
from roofline.model.comm import collective_time
from roofline.model.efficiency import Efficiency
from roofline.model.engine import attention_peak, compute_peak, op_seconds, tp_degrees
from roofline.model.ops import OpCost, Pass, matmul, elementwise, operators_for
from roofline.specs.hardware import GPUSpec, load_gpu
from roofline.specs.models import ModelConfig
from roofline.specs.precision import bytes_per_element

DATA_FILE = "training.json"
RECOMPUTE = ("none", "selective", "full")
ZERO_STAGES = (0, 1, 2, 3)
#: fused attention kernels with a measured throughput table (specs/data/training.json, "attention_kernels")
ATTENTION_KERNELS = ("flash2", "flash3", "unfused")
#: the attention of pre-FlashAttention Megatron (2021-2022 runs): Q K^T written to memory, one fused
#: scale-mask-softmax kernel, P V read back (no measured table: timed as GEMMs and memory traffic)
UNFUSED = "unfused"
#: operators of the attention core, recomputed by selective recomputation
ATTENTION_CORE = ("attn_scores", "attn_softmax", "attn_context")
#: serving operators training does not run (the KV-cache write) or times itself (links, the last-token LM head)
_SKIPPED = ("kv_cache_write", "lm_head")


@lru_cache(maxsize=None)
def training_facts() -> dict:
    """The sourced constants of specs/data/training.json (Chinchilla fits, runtime reserve)."""
    path = Path(str(resources.files("roofline.specs") / "data" / DATA_FILE))
    return json.loads(path.read_text())


def fact(section: str, name: str) -> float:
    return training_facts()[section][name]["value"]


def attention_fractions(gpu: GPUSpec, kernel: str, seq, head_dim: float):
    """(forward, backward) fraction of the GPU's dense 16-bit peak the fused causal attention kernel reaches at
    query length `seq` (array) and `head_dim`, from the measured table of specs/data/training.json
    ("attention_kernels": FlashAttention-3 paper, Figures 5 and 6, H100); None where the GPU's architecture has
    no table. Interpolated in log2(seq) and head dim, clamped to the measured range; the causal forward and the
    backward of head dims other than 128 take head dim 128's ratio to the non-causal forward (see the file)."""
    table = training_facts()["attention_kernels"]
    k = table["kernels"][kernel]
    if not gpu.architecture.startswith(k["architecture"]):
        return None
    ref = load_gpu(k["measured_on"]).peak_flops("bf16") / 1e12
    x = np.log2(np.clip(np.asarray(seq, dtype=float), table["seq"][0], table["seq"][-1]))
    xs = np.log2(np.asarray(table["seq"], dtype=float))
    dims = sorted(k["forward"], key=float)
    d = float(np.clip(head_dim, float(dims[0]), float(dims[-1])))
    at = {dim: np.interp(x, xs, np.asarray(k["forward"][dim], dtype=float)) for dim in dims}
    grid = np.asarray([float(v) for v in dims])
    stacked = np.stack([np.broadcast_to(at[dim], np.shape(x)) for dim in dims])
    lo = np.clip(np.searchsorted(grid, d, side="right") - 1, 0, len(grid) - 2)
    w = (d - grid[lo]) / (grid[lo + 1] - grid[lo])
    fwd = stacked[lo] * (1.0 - w) + stacked[lo + 1] * w      # non-causal forward TFLOP/s at (seq, head_dim)
    base = at["128"]
    causal = np.interp(x, xs, np.asarray(k["forward_causal_128"], dtype=float)) / base
    bwd = np.interp(x, xs, np.asarray(k["backward_128"], dtype=float)) / base
    return fwd * causal / ref, fwd * causal * bwd / ref


@dataclass(frozen=True)
class Recipe:
    """How the model is trained: precisions, ZeRO stage, recomputation, pipeline schedule, assumptions."""

    weights: str = "bf16"          # the model-weight copy the GEMMs read
    grads: str = "bf16"            # gradients (Megatron reduces in bf16 or fp32)
    master: str = "fp32"           # master weights kept by the optimizer ("none": train in the weights precision)
    optimizer: str = "fp32"        # Adam's two moments
    compute: str = "bf16"          # GEMM precision (fp8 training: "fp8"); stored activations stay >= 16-bit
    zero: int = 1                  # 0 none, 1 optimizer states (distributed optimizer), 2 + grads, 3 + weights (FSDP)
    recompute: str = "selective"   # none | selective | full
    sequence_parallel: bool = True
    dropout: bool = False          # dropout masks stored (GPT-3-era recipes); modern LLM pretraining has none
    virtual_stages: int = 1        # interleaved schedule: model chunks per GPU (1 = plain 1F1B)
    dp_overlap: float = 1.0        # fraction of data-parallel communication that may hide behind compute (see _dp_exposed)
    attention_kernel: str = "flash2"  # flash2 | flash3 (measured throughput tables) | unfused (pre-FlashAttention)
    reserve_fraction: float = 0.0  # allocator fragmentation: fraction of GPU memory held back
    efficiency: Efficiency = field(default_factory=Efficiency)

    def __post_init__(self) -> None:
        for name in ("weights", "grads", "optimizer", "compute"):
            _precision(getattr(self, name), name)
        if self.master != "none":
            _precision(self.master, "master")
        if self.zero not in ZERO_STAGES:
            raise RooflineError(f"zero must be 0, 1, 2 or 3, got {self.zero}", hint="ZeRO stage: 1 shards the "
                                "optimizer states, 2 also gradients, 3 (FSDP) also weights", exit_code=2,
                                param="zero")
        if self.recompute not in RECOMPUTE:
            raise RooflineError(f"recompute must be one of {', '.join(RECOMPUTE)}, got {self.recompute!r}",
                                hint="none, selective (attention recomputed) or full (whole layers recomputed)", exit_code=2, param="recompute")
        if not (isinstance(self.virtual_stages, int) and self.virtual_stages >= 1):
            raise RooflineError(f"virtual_stages must be an integer >= 1, got {self.virtual_stages!r}",
                                hint="1 = 1F1B; v > 1 = interleaved schedule", exit_code=2, param="virtual_stages")
        if self.attention_kernel not in ATTENTION_KERNELS:
            raise RooflineError(f"attention_kernel must be one of {', '.join(ATTENTION_KERNELS)}, got "
                                f"{self.attention_kernel!r}", hint="flash2 / flash3 (measured throughput tables in "
                                "specs/data/training.json) or unfused (attention before FlashAttention)", exit_code=2,
                                param="attention_kernel")
        for name in ("dp_overlap", "reserve_fraction"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 <= v <= (1.0 if name == "dp_overlap" else 0.9)):
                raise RooflineError(f"{name} must be a fraction in [0, {1.0 if name == 'dp_overlap' else 0.9}], "
                                    f"got {v}", hint="a fraction such as 0.5", exit_code=2, param=name)

    @property
    def state_bytes_per_parameter(self) -> float:
        """Master weights + Adam moments per parameter (12 in the classic recipe)."""
        master = 0.0 if self.master == "none" else bytes_per_element(self.master)
        return master + fact("memory", "adam_moments") * bytes_per_element(self.optimizer)


def _precision(p: str, name: str) -> None:
    if p not in ("fp32", "tf32", "bf16", "fp16", "fp8"):
        raise RooflineError(f"{name} must be a training precision (fp32, bf16, fp16, fp8), got {p!r}", hint="training precisions are fp32, bf16, fp16 and fp8", exit_code=2,
                            param=name)


@dataclass(frozen=True)
class Layout:
    """A parallel layout and batch, as arrays that broadcast (scalars for one layout)."""

    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    cp: np.ndarray
    ep: np.ndarray
    micro_batch: np.ndarray
    global_batch: np.ndarray  # sequences per optimizer step
    seq: np.ndarray           # tokens per sequence

    @classmethod
    def of(cls, tp=1, pp=1, dp=1, cp=1, ep=1, micro_batch=1, global_batch=1, seq=2048) -> "Layout":
        a = [np.asarray(x, dtype=float) for x in (tp, pp, dp, cp, ep, micro_batch, global_batch, seq)]
        return cls(*a)

    @property
    def gpus(self) -> np.ndarray:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def micro_batches(self) -> np.ndarray:
        """Micro-batches per data-parallel rank per step (gradient-accumulation steps x pipeline micro-batches)."""
        return self.global_batch / (self.micro_batch * self.dp)


def check_layout(model: ModelConfig, layout: Layout, recipe: Recipe, gpus: int | None = None) -> None:
    """RooflineError (exit 2, naming the argument) unless the one layout fits the model and the batch."""
    tp, pp, dp, cp, ep = (int(np.asarray(x)) for x in (layout.tp, layout.pp, layout.dp, layout.cp, layout.ep))
    mb, gb, seq = (int(np.asarray(x)) for x in (layout.micro_batch, layout.global_batch, layout.seq))
    for name, v in (("tp", tp), ("pp", pp), ("dp", dp), ("cp", cp), ("ep", ep), ("micro_batch", mb),
                    ("global_batch", gb), ("seq", seq)):
        if v < 1:
            raise RooflineError(f"{name} must be >= 1, got {v}", hint="layout degrees and batch sizes are whole numbers >= 1", exit_code=2, param=name)
    if model.num_heads % tp:
        ok = ", ".join(map(str, tp_degrees(model)))
        raise RooflineError(f"tp={tp} does not divide the {model.num_heads} attention heads of {model.name}",
                            hint=f"valid TP degrees: {ok}", exit_code=2, param="tp")
    v = recipe.virtual_stages
    if pp * v > model.num_layers:
        raise RooflineError(f"pp={pp} x `virtual_stages`={v} exceeds the {model.num_layers} layers of {model.name}",
                            hint="every pipeline chunk needs at least one layer", exit_code=2, param="pp")
    if v > 1 and pp == 1:
        raise RooflineError(f"virtual_stages={v} needs pipeline parallelism (`pp` > 1)", hint="interleaving (`virtual_stages` > 1) applies to pipeline parallelism only", exit_code=2,
                            param="virtual_stages")
    if gpus is not None and tp * pp * dp * cp != gpus:
        raise RooflineError(f"gpus={gpus} is not `tp` x `pp` x `dp` x `cp` = {tp} x {pp} x {dp} x {cp} = "
                            f"{tp * pp * dp * cp}", hint="the layout must use every GPU", exit_code=2, param="gpus")
    if gb % (mb * dp):
        raise RooflineError(f"global_batch={gb} is not a multiple of `micro_batch` x `dp` = {mb} x {dp}",
                            hint="each data-parallel rank runs a whole number of micro-batches", exit_code=2,
                            param="global_batch")
    m = gb // (mb * dp)
    if v > 1 and m % pp:
        raise RooflineError(f"global_batch={gb} gives {m} micro-batches per rank, not a multiple of `pp`={pp}",
                            hint="the interleaved schedule needs micro-batches in multiples of the stages",
                            exit_code=2, param="global_batch")
    if seq % cp:
        raise RooflineError(f"cp={cp} does not divide the sequence of {seq} tokens", hint="pick `cp` dividing the sequence length", exit_code=2, param="cp")
    if ep > 1:
        if not model.num_experts:
            raise RooflineError(f"ep={ep}, but {model.name} has no experts", hint="expert parallelism needs an MoE "
                                "model", exit_code=2, param="ep")
        if model.num_experts % ep or (dp * cp) % ep:
            raise RooflineError(f"ep={ep} must divide the {model.num_experts} experts and `dp` x `cp` = {dp * cp}",
                                hint="expert-parallel ranks are carved out of the data-parallel ones",
                                exit_code=2, param="ep")


def layout_ok(model: ModelConfig, layout: Layout, recipe: Recipe) -> np.ndarray:
    """Vectorized check_layout (without the GPU count): True where the layout fits the model and the batch."""
    L = layout
    v = recipe.virtual_stages
    m = L.micro_batches
    ok = (np.mod(model.num_heads, L.tp) == 0) & (L.pp * v <= model.num_layers) & (np.mod(m, 1) == 0) & (m >= 1)
    ok &= np.mod(L.seq, L.cp) == 0
    if v > 1:
        ok &= (L.pp > 1) & (np.mod(m, L.pp) == 0)
    if model.num_experts:
        ok &= (np.mod(model.num_experts, L.ep) == 0) & (np.mod(L.dp * L.cp, L.ep) == 0)
    else:
        ok &= L.ep == 1
    return ok


# ------------------------------------------------------------------------------------------------ memory


def _stage_layers(model: ModelConfig, pp) -> np.ndarray:
    """Layers on the busiest stage: ceil(L / pp) (an uneven split puts the remainder on some stages)."""
    return np.ceil(model.num_layers / np.asarray(pp, dtype=float))


def parameters_per_gpu(model: ModelConfig, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(dense-part parameters, routed-expert parameters) held by one GPU of the busiest stage, before ZeRO.

    Dense part: attention, norms, dense MLPs, shared experts and routers of the stage's layers, TP-sharded; the
    embedding (first stage) or the LM head (last stage), vocab-parallel over tp; both on one stage when pp = 1.
    Routed experts: E / ep whole experts per GPU with expert parallelism, else TP-sharded."""
    share = _stage_layers(model, layout.pp) / model.num_layers
    b = model.parameter_breakdown()
    layers = b["attention"] + b["mlp"] + b["shared_experts"] + b["router"] + b["norms"]
    vocab = model.embedding_parameters()
    ends = np.where(layout.pp > 1, vocab, vocab + model.lm_head_parameters())
    dense = (layers * share + ends) / layout.tp
    experts = b["routed_experts"] * share / np.where(layout.ep > 1, layout.ep, layout.tp)
    return dense, experts


def activation_bytes_per_layer(model: ModelConfig, layout: Layout, recipe: Recipe) -> np.ndarray:
    """Korthikanti et al. 2022 per-layer activation memory of one micro-batch on one GPU (bytes), per tensor:
    for a GPT layer it is sbh(34 + 5as/h) with dropout, sbh/t (34 + 5as/h) with sequence parallelism, 34sbh/t
    with selective recomputation, 2sbh/t with full recomputation."""
    L = layout
    t = L.tp
    s = L.seq / L.cp
    tokens = L.micro_batch * s
    h = model.hidden_size
    e = 2.0 if bytes_per_element(recipe.compute) <= 2 else bytes_per_element(recipe.compute)  # >= 16-bit storage
    mask = 1.0 if recipe.dropout else 0.0
    rep = 1.0 / t if recipe.sequence_parallel else 1.0  # norms, block inputs and masks: sharded only with SP
    if recipe.recompute == "full":
        return tokens * h * e * rep
    heads = model.num_heads / t
    kvh = model.kv_heads_per_gpu(t)
    # attention: QKV input, Q and K, V, the o_proj input, the dropout mask after o_proj
    attn = (h * e * rep + (heads + kvh) * model.head_dim * e + kvh * model.v_head_dim * e
            + heads * model.v_head_dim * e + h * mask * rep)
    g = 2.0 if model.gated_mlp else 1.0
    if model.num_experts:
        rows = float(model.num_experts_per_tok)
        inter_moe = model.moe_intermediate_size / np.where(L.ep > 1, 1.0, t)
        mlp_moe = h * e * rep + rows * (h * e + inter_moe * (g + 1.0) * e) + h * mask * rep
        shared = model.num_shared_experts * model.moe_intermediate_size / t * (g + 1.0) * e
        inter = model.intermediate_size / t
        mlp_dense = h * e * rep + inter * (g + 1.0) * e + h * mask * rep
        n_moe = model.num_moe_layers / model.num_layers
        mlp = n_moe * (mlp_moe + shared) + (1.0 - n_moe) * mlp_dense
    else:
        inter = model.intermediate_size / t
        mlp = h * e * rep + inter * g * e + inter * e + h * mask * rep  # input, activation input, down input, mask
    norms = 2.0 * h * e * rep
    per_token = attn + mlp + norms
    scores = 0.0
    if recipe.recompute == "none":  # softmax output (2 bytes), its dropout mask and output (1 + 2 bytes)
        scores = L.micro_batch * heads * s * L.seq * (2.0 + 3.0 * mask) / 1.0
    return tokens * per_token + scores


def _sharded(dense, experts, bytes_per_parameter, shard, shard_e, on: bool) -> np.ndarray:
    """Bytes per GPU of one ZeRO-shardable state: the dense part over `shard` ranks and the experts over
    `shard_e` when the stage shards it (`on`), else whole."""
    return (dense * bytes_per_parameter / (shard if on else 1.0)
            + experts * bytes_per_parameter / (shard_e if on else 1.0))


def memory_per_gpu(model: ModelConfig, gpu: GPUSpec, layout: Layout, recipe: Recipe) -> dict:
    """Bytes per GPU of the busiest stage, by component (arrays), and whether it fits."""
    L = layout
    dense, experts = parameters_per_gpu(model, L)
    shard = L.dp * L.cp
    shard_e = shard / L.ep
    w, g = bytes_per_element(recipe.weights), bytes_per_element(recipe.grads)
    z = recipe.zero
    layers = _stage_layers(model, L.pp)
    weights = _sharded(dense, experts, w, shard, shard_e, z >= 3)
    if z >= 3:  # the gathered weights of the layer being computed and the prefetched next one
        weights = weights + 2.0 * ((dense + experts) / layers) * w
    grads = _sharded(dense, experts, g, shard, shard_e, z >= 2)
    optimizer = _sharded(dense, experts, recipe.state_bytes_per_parameter, shard, shard_e, z >= 1)
    per_layer = activation_bytes_per_layer(model, L, recipe)
    v = recipe.virtual_stages
    in_flight = np.minimum(L.pp, L.micro_batches)
    interleave = 1.0 + (L.pp - 1.0) / (L.pp * v) if v > 1 else 1.0
    first = per_layer * layers * in_flight * interleave
    logits = 4.0 * L.micro_batch * L.seq / L.cp * model.vocab_size / L.tp  # fp32 logits for the loss
    last = per_layer * layers + logits
    activations = np.where(L.pp > 1, np.maximum(first, last), first + logits)
    reserve = fact("memory", "runtime_reserve_bytes") + recipe.reserve_fraction * gpu.memory_bytes
    total = weights + grads + optimizer + activations + reserve
    return {"weights_bytes": weights, "gradients_bytes": grads, "optimizer_bytes": optimizer,
            "activations_bytes": activations, "activations_per_layer_bytes": per_layer,
            "reserve_bytes": np.broadcast_to(reserve, np.shape(total)).astype(float), "total_bytes": total,
            "capacity_bytes": float(gpu.memory_bytes), "fits": total <= gpu.memory_bytes}


# ------------------------------------------------------------------------------------------------ FLOPs


def model_flops_per_token(model: ModelConfig, seq) -> np.ndarray:
    """PaLM / Megatron model FLOPs per trained token: 6 N (matmul parameters: active, input embedding table
    excluded unless tied) + 6 L s (q + v widths) for attention over the full sequence."""
    n = model.active_parameters(include_embedding=False)
    width = model.num_heads * (model.head_dim + model.v_head_dim)
    return 6.0 * n + 6.0 * model.num_layers * np.asarray(seq, dtype=float) * width


def _pass(model: ModelConfig, layout: Layout, recipe: Recipe) -> Pass:
    L = layout
    s = L.seq / L.cp
    tokens = L.micro_batch * s
    a = bytes_per_element(recipe.compute)
    moe_ep = np.where(L.ep > 1, L.ep, 1.0)
    # causal pairs s(s+1)/2 per sequence; the unfused kernel scores the whole s x s square and masks it
    pairs = L.seq * L.seq if recipe.attention_kernel == UNFUSED else L.seq * (L.seq + 1.0) / 2.0
    return Pass(model=model, tokens=tokens, seqs=L.micro_batch, attn_pairs=L.micro_batch * pairs / L.cp,
                kv_read_tokens=tokens, tp=L.tp, w_bytes=np.asarray(bytes_per_element(recipe.weights)),
                a_bytes=np.asarray(a), kv_bytes=np.asarray(a), ep=moe_ep, dp=moe_ep)


def forward_flops_per_token(model: ModelConfig, seq) -> np.ndarray:
    """Operator-level FLOPs of one forward pass per token on ONE GPU-equivalent (tp = 1): every matmul, causal
    attention, norms and activations, and the LM head over every token."""
    L = Layout.of(seq=seq)
    p = _pass(model, L, Recipe())
    total = 0.0
    for op, n in operators_for(model):
        if op.unit == "link" or op.name in _SKIPPED:
            continue
        total = total + n * np.asarray(op.formula(p).flops)
    total = total + _lm_head(p, model).flops
    return total / p.tokens


def _lm_head(p: Pass, model: ModelConfig):
    """Logits for every token (training), vocab-parallel: T x h x V/t, fp32 out."""
    emb = np.maximum(p.w_bytes, 2.0)
    return matmul(p.tokens, model.vocab_size / p.tp, model.hidden_size, emb, p.a_bytes, 4.0)


# ------------------------------------------------------------------------------------------------ time


def _op_time(gpu: GPUSpec, unit: str, c, peaks: dict, eff: Efficiency, a_bytes) -> np.ndarray:
    comp, mem, over = op_seconds(unit, c.flops, c.bytes_read + c.bytes_written, c.kernels, peaks[unit],
                                 gpu.memory_bandwidth_bytes_per_s, eff, a_bytes)
    return eff.roofline_s(unit, comp, mem) + over


def _coll(gpu, collective, size, group, span):
    return collective_time(gpu, collective, size, group, np.maximum(span, group), custom_allreduce=False).time_s


def step_time(model: ModelConfig, gpu: GPUSpec, layout: Layout, recipe: Recipe) -> dict:
    """Seconds of one optimizer step and its parts (arrays): compute (forward, backward, recompute), TP/CP/EP
    collectives, pipeline bubble and sends, exposed data-parallel communication, optimizer step."""
    L, eff = layout, recipe.efficiency
    p = _pass(model, L, recipe)
    peak = compute_peak(gpu, recipe.compute, recipe.weights)
    attn_peak = attention_peak(gpu, recipe.compute)
    peaks = {"tensor": peak, "attention": attn_peak, "vector": gpu.peak_flops("fp32")}
    layers = _stage_layers(model, L.pp)
    share = layers / model.num_layers  # the busiest stage's fraction of every layer operator
    unfused = recipe.attention_kernel == UNFUSED
    fractions = None if unfused else attention_fractions(gpu, recipe.attention_kernel, L.seq / L.cp, model.head_dim)
    layer_fwd, attn_fwd, attn_flops, first_extra, last_extra = 0.0, 0.0, 0.0, 0.0, 0.0
    for op, n in operators_for(model):
        if op.unit == "link" or op.name in _SKIPPED:
            continue
        c = op.formula(p)
        if op.name in ATTENTION_CORE and fractions is not None:  # one fused kernel, timed from its table below
            attn_flops = attn_flops + n * np.asarray(c.flops) * share
            continue
        t = n * _op_time(gpu, op.unit, c, peaks, eff, p.a_bytes)
        if op.scope == "model":
            if op.name == "embedding":
                first_extra = first_extra + t
            else:
                last_extra = last_extra + t
            continue
        layer_fwd = layer_fwd + t * share
        if op.name in ATTENTION_CORE:
            attn_fwd = attn_fwd + t * share
    ratio = fact("attention", "backward_flops_ratio")
    if unfused:  # the score matrix crosses memory: written by Q K^T, read and written by the softmax (and by
        # dropout, with its 1-byte mask), read by P V; its backward moves it twice (no recomputation inside)
        scores = p.attn_pairs * p.heads
        mask = 1.0 if recipe.dropout else 0.0  # dropout: one more read and write, and a 1-byte mask
        rw = 1.0 + mask
        mat = OpCost(0.0 * scores, (rw + 1.0) * scores * p.a_bytes, ((rw + 1.0) * p.a_bytes + mask) * scores,
                     kernels=rw)
        t_mat = _op_time(gpu, "vector", mat, peaks, eff, p.a_bytes) * layers
        layer_fwd, attn_fwd = layer_fwd + t_mat, attn_fwd + t_mat
        attn_bwd = 2.0 * attn_fwd
    elif fractions is not None:  # the measured fused kernel: forward and backward at their own fractions of peak
        attn_fwd = attn_flops / (attn_peak * fractions[0])
        attn_bwd = ratio * attn_flops / (attn_peak * fractions[1])
        layer_fwd = layer_fwd + attn_fwd
    else:
        attn_bwd = ratio * attn_fwd
    head = _lm_head(p, model)
    loss = elementwise(p.tokens * model.vocab_size / p.tp, 5.0, 1.0, 1.0, 4.0, kernels=2.0)  # softmax + CE, fp32
    last_extra = last_extra + _op_time(gpu, "tensor", head, peaks, eff, p.a_bytes) \
        + _op_time(gpu, "vector", loss, peaks, eff, p.a_bytes)
    ends = np.where(L.pp > 1, np.maximum(first_extra, last_extra), first_extra + last_extra)
    fwd = layer_fwd + ends
    bwd = 2.0 * (fwd - attn_fwd) + attn_bwd
    # selective = FlashAttention's own recomputation, already inside its backward kernel (2.5x the forward FLOPs);
    # with the unfused kernel it is the attention core's forward, run again (Korthikanti et al. 2022, Section 5)
    selective = attn_fwd if unfused else 0.0 * fwd
    recompute = {"none": 0.0 * fwd, "selective": selective, "full": layer_fwd}[recipe.recompute]
    # collectives per micro-batch on the busiest stage (seconds)
    res = max(bytes_per_element(recipe.compute), 2.0)
    passes = 2.0 + (1.0 if recipe.recompute == "full" else 0.0)  # forward, backward (+ recomputed forward)
    per_layer_tp = 1.0 if model.parallel_attn_mlp else 2.0
    ar = _coll(gpu, "all_reduce", p.tokens * model.hidden_size * res, L.tp, L.tp)
    tp_s = passes * per_layer_tp * layers * ar
    kv = p.tokens * model.kv_heads_per_gpu(L.tp) * (model.head_dim + model.v_head_dim) * res
    cp_s = layers * (_coll(gpu, "all_gather", kv * L.cp, L.cp, L.tp * L.cp)
                     + _coll(gpu, "reduce_scatter", kv * L.cp, L.cp, L.tp * L.cp))
    if recipe.recompute == "full":
        cp_s = cp_s + layers * _coll(gpu, "all_gather", kv * L.cp, L.cp, L.tp * L.cp)
    ep_s = 0.0 * fwd
    if model.num_experts:
        moe_layers = model.num_moe_layers * share
        a2a = _coll(gpu, "all_to_all", p.tokens / L.tp * model.num_experts_per_tok * model.hidden_size * res,
                    L.ep, L.ep * L.tp * L.cp)
        ep_s = 2.0 * passes * moe_layers * a2a  # dispatch + combine per pass
    micro = fwd + bwd + recompute + tp_s + cp_s + ep_s
    m = L.micro_batches
    v = recipe.virtual_stages
    slots = m + (L.pp - 1.0) / v
    pipeline = slots * micro
    bubble = (L.pp - 1.0) / v * micro
    send = _coll(gpu, "send_recv", p.tokens * model.hidden_size * res / np.where(recipe.sequence_parallel, L.tp, 1.0),
                 np.where(L.pp > 1, 2.0, 1.0), L.tp * L.cp * L.dp + 1.0)
    p2p = np.where(L.pp > 1, 2.0 * v * m * send, 0.0)
    # data parallelism over dp x cp (experts over dp x cp / ep); ranks tp apart
    dense, experts = parameters_per_gpu(model, L)
    w, g = bytes_per_element(recipe.weights), bytes_per_element(recipe.grads)
    dp_s = _dp_time(gpu, recipe.zero, dense, w, g, L.dp * L.cp, L.tp, m) \
        + _dp_time(gpu, recipe.zero, experts, w, g, L.dp * L.cp / L.ep, L.tp * L.ep, m)
    dp_exposed = _dp_exposed(recipe, dp_s, m, fwd, bwd + recompute, layers)
    params_opt = _sharded(dense, experts, 1.0, L.dp * L.cp, L.dp * L.cp / L.ep, recipe.zero >= 1)
    opt_bytes = params_opt * (2.0 * recipe.state_bytes_per_parameter + g + w)
    optimizer = opt_bytes / (gpu.memory_bandwidth_bytes_per_s * eff.memory) + 4.0 * eff.kernel_overhead_s
    total = pipeline + p2p + dp_exposed + optimizer
    return {"step_time_s": total, "forward_s": m * fwd, "backward_s": m * bwd, "recompute_s": m * recompute,
            "tp_comm_s": m * tp_s, "cp_comm_s": m * cp_s, "ep_comm_s": m * ep_s, "pipeline_bubble_s": bubble,
            "pipeline_send_s": p2p, "dp_comm_s": dp_s, "dp_comm_exposed_s": dp_exposed, "optimizer_s": optimizer,
            "micro_batches": m, "bubble_fraction": bubble_fraction(L.pp, m, v)}


def bubble_fraction(pp, micro_batches, virtual_stages=1) -> np.ndarray:
    """Pipeline bubble over the ideal time: (p - 1) / (v m) (Narayanan et al. 2021, Section 2.2)."""
    return (np.asarray(pp, dtype=float) - 1.0) / (virtual_stages * np.asarray(micro_batches, dtype=float))


def _dp_exposed(recipe: Recipe, dp_s, m, fwd, bwd, layers) -> np.ndarray:
    """The data-parallel communication not hidden behind compute (the overlap assumption, explicit):

    - ZeRO 3 / FSDP: each layer's weight all-gather is prefetched during the previous layer's compute and its
      gradient reduce-scatter runs during the next layer's backward (PyTorch FSDP forward/backward prefetch), so
      per micro-batch the communication hides behind that micro-batch's forward + backward up to `dp_overlap`
      of it; the first layer's all-gather of each pass (1/layers of a pass's gathers) has nothing to hide behind.
    - ZeRO 0-2 (DDP buckets, Megatron --overlap-grad-reduce / --overlap-param-gather): the gradient reduction
      hides behind the last micro-batch's backward and the weight all-gather behind the first micro-batch's
      forward, again up to `dp_overlap` of it.
    The hidden part never exceeds the compute it hides behind."""
    if recipe.zero == 3:
        window = m * (fwd + bwd)
        first = dp_s / (3.0 * layers) * 2.0  # one layer's gather in each of the two passes (2 of the 3 collectives)
    else:
        window = bwd + fwd
        first = 0.0 * dp_s
    hidden = np.minimum(recipe.dp_overlap * np.maximum(dp_s - first, 0.0), window)
    return dp_s - hidden


def _dp_time(gpu, zero, params, w, g, group, stride, m) -> np.ndarray:
    """Data-parallel communication of one step for `params` per GPU over `group` ranks `stride` GPUs apart."""
    span = stride * (group - 1.0) + 1.0
    if zero == 0:
        return _coll(gpu, "all_reduce", params * g, group, span)
    rs = _coll(gpu, "reduce_scatter", params * g, group, span)
    ag = _coll(gpu, "all_gather", params * w, group, span)
    if zero == 3:  # per micro-batch: gather weights for forward and backward, reduce-scatter the gradients
        return m * (2.0 * ag + rs)
    return rs + ag


# ------------------------------------------------------------------------------------------------ together


def evaluate(model: ModelConfig, gpu: GPUSpec, layout: Layout, recipe: Recipe) -> dict:
    """Memory, step time and throughput of the layouts (arrays): tokens/s, model TFLOP/s per GPU, MFU, HFU."""
    mem = memory_per_gpu(model, gpu, layout, recipe)
    t = step_time(model, gpu, layout, recipe)
    tokens = layout.global_batch * layout.seq
    tokens_per_s = tokens / t["step_time_s"]
    mf = model_flops_per_token(model, layout.seq)
    peak = compute_peak(gpu, recipe.compute, recipe.weights)
    per_gpu = tokens_per_s * mf / layout.gpus
    fwd_share = {"none": 0.0, "full": 1.0 / 3.0}.get(recipe.recompute)
    if fwd_share is None:  # selective: the attention core's forward FLOPs again
        width = model.num_heads * (model.head_dim + model.v_head_dim)
        fwd_share = 2.0 * model.num_layers * np.asarray(layout.seq, dtype=float) * width / mf
    return {**mem, **t, "gpus": layout.gpus, "tokens_per_step": tokens, "tokens_per_s": tokens_per_s,
            "model_flops_per_token": mf, "tflops_per_gpu": per_gpu / 1e12, "mfu": per_gpu / peak,
            "hfu": per_gpu * (1.0 + fwd_share) / peak, "peak_flops_per_s": peak}
