"""Timing a forward pass on a GPU: per-operator roofline times, vectorized.

time_op = count * (combine(flops / (peak * compute_fraction), bytes / (bandwidth * memory_fraction))
                   + kernels * kernel_overhead_s)
combine: max for elementwise, attention and collective operators; for tensor operators (GEMMs) the p-norm of
Efficiency.overlap_p (`efficiency.roofline_s`: a GEMM near the ridge cannot hide one time behind the other).
Collectives (TP all-reduces, expert-parallel all-to-alls, pipeline send/recv) are timed by the communication
model (roofline.model.comm: latency + size / achieved link bandwidth, the algorithm the library or the
serving engine picks by size, the link the group crosses); no overlap with compute is assumed. `tensor` operators run at the activations (compute) precision's dense peak, `attention` ones at
the 16-bit peak when the activations are 8-bit (see attention_peak), `vector` ones at the fp32 peak.

The serving engine's fixed costs of a pass (`PassCosts`, from the engine file: kernels launched outside a CUDA
graph, the per-step scheduler and input preparation) ride on the Setup; `roofline.model.phases` applies them to
prefill and decode. A Setup without them (`costs=None`) is the bare GPU (the microbenchmarks' picture).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from roofline.model.efficiency import Efficiency, roofline_s
from roofline.errors import RooflineError
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.model.comm import CommTime, collective_time, group_link
from roofline.model.ops import OpCost, Pass, operators_for
from roofline.specs.precision import bytes_per_element


@dataclass(frozen=True)
class Setup:
    """Everything that stays fixed while batch and context vary; array fields broadcast (sweeps)."""

    gpu: GPUSpec
    model: ModelConfig
    tp: np.ndarray
    w_bytes: np.ndarray
    a_bytes: np.ndarray
    kv_bytes: np.ndarray
    tensor_flops_per_s: np.ndarray
    efficiency: Efficiency = field(default_factory=Efficiency)
    attention_flops_per_s: np.ndarray | None = None  # default: the tensor peak
    pp: np.ndarray | float = 1.0     # pipeline stages
    ep: np.ndarray | float = 1.0     # expert-parallel degree: 1 (experts TP-sharded) or tp x dp
    dp: np.ndarray | float = 1.0     # attention data-parallel degree
    ep_imbalance: np.ndarray | float = 1.0  # busiest expert-parallel GPU's load over the mean
    custom_allreduce: bool = True    # small all-reduces use the serving engine's one-/two-shot kernels
    costs: "PassCosts | None" = None  # the serving engine's fixed costs of a pass (None: none)

    @property
    def gpus(self) -> np.ndarray:
        """GPUs of one replica: tp x pp x dp."""
        return np.asarray(self.tp) * np.asarray(self.pp) * np.asarray(self.dp)

    @property
    def attention_rate_flops_per_s(self) -> np.ndarray:
        return self.tensor_flops_per_s if self.attention_flops_per_s is None else self.attention_flops_per_s

    @property
    def vector_flops_per_s(self) -> float:
        return self.gpu.peak_flops("fp32")



@dataclass(frozen=True)
class PassCosts:
    """A serving engine's fixed costs of one forward pass (one engine step), from its engine file.

    cuda_graphs: decode steps (and, per `prefill_launch`, prefill passes) of at most `graph_max_tokens` tokens
    per rank replay a captured CUDA graph; larger ones, and every pass without graphs, launch their kernels
    eagerly. prefill_launch: "graph" (prefill replays graphs like decode), "piecewise" (vLLM: everything but
    attention replays a graph up to `graph_max_tokens`; attention always runs eagerly) or "eager".
    eager_launch_s: host cost of launching one kernel outside a graph (driver, runtime and framework dispatch),
    on top of the per-kernel gap `Efficiency.kernel_overhead_s` every kernel pays.
    step_overhead_s: host work between two passes that the GPU waits for (scheduling, input preparation,
    sampling's host side, output processing); 0 where the engine overlaps it with the GPU."""

    cuda_graphs: bool = True
    graph_max_tokens: float = 512.0
    prefill_launch: str = "piecewise"
    eager_launch_s: float = 0.0
    step_overhead_s: float = 0.0


def make_setup(gpu: GPUSpec, model: ModelConfig, tp=1, weights="bf16", activations="bf16", kv="bf16",
               efficiency: Efficiency | None = None, pp: int = 1, ep: int = 1, dp: int = 1,
               ep_imbalance: float = 1.0, costs: PassCosts | None = None) -> Setup:
    """A Setup for one deployment (scalars), with the serving engine's fixed costs `costs` (None: none). Raises
    RooflineError for a layout the model cannot take (see check_layout) or a compute precision the GPU lacks."""
    check_layout(model, tp, pp, ep, dp, ep_imbalance)
    peak = compute_peak(gpu, activations, weights)
    return Setup(gpu, model, np.asarray(float(tp)), np.asarray(bytes_per_element(weights)),
                 np.asarray(bytes_per_element(activations)), np.asarray(bytes_per_element(kv)),
                 np.asarray(peak), efficiency or Efficiency(), np.asarray(attention_peak(gpu, activations)),
                 np.asarray(float(pp)), np.asarray(float(ep)), np.asarray(float(dp)),
                 np.asarray(float(ep_imbalance)), costs=costs)


def reachable(gpu: GPUSpec, gpus: int) -> bool:
    """Whether `gpus` GPUs can hold one replica: one GPU, one node, or a network between nodes."""
    return gpus <= 1 or gpu.scaleout_bandwidth_bytes_per_s > 0 or group_link(gpu, gpus) != "network"


def check_reach(gpu: GPUSpec, gpus: int) -> None:
    """RooflineError (exit 2, param "tp") when a replica of `gpus` GPUs spans nodes on a device with no network
    between them (a CPU profile is one device; a spec file without `scaleout_bandwidth_bytes_per_s`): its
    collectives would take forever, and every time and rate would be infinite or zero."""
    if not reachable(gpu, gpus):
        one = gpu.gpus_per_node <= 1 and gpu.scaleup_domain_gpus <= 1
        raise RooflineError(f"{gpu.display_name} " + ("is one device with no network to another" if one else
                            f"has {gpu.gpus_per_node} GPUs per node and no network between nodes") + ": a layout of "
                            f"{gpus} GPUs (`tp` x `pp` x `dp_attention`) cannot run on it",
                            hint="use `tp=1`" if one else f"a layout of at most {gpu.gpus_per_node} GPUs, or add "
                            "scaleout_bandwidth_bytes_per_s to the spec file", exit_code=2, param="tp")


def attention_peak(gpu: GPUSpec, activations: str) -> float:
    """Peak for attention: the activations' peak, but 16-bit when those are 8 bits or narrower
    (FlashAttention in serving engines computes in bf16/fp16, dequantising an FP8 KV cache)."""
    if bytes_per_element(activations) > 1:
        return gpu.peak_flops(activations)
    wide = [p for p in ("bf16", "fp16") if p in gpu.peak_flops_per_s]
    return gpu.peak_flops(wide[0]) if wide else gpu.peak_flops(activations)


#: the tensor-parallel degrees deployments use (powers of two up to 64)
TP_DEGREES = (1, 2, 4, 8, 16, 32, 64)


def tp_degrees(model: ModelConfig, max_tp: int = TP_DEGREES[-1]) -> list[int]:
    """The degrees of TP_DEGREES up to `max_tp` that divide the model's attention heads."""
    return [t for t in TP_DEGREES if t <= max_tp and model.num_heads % t == 0]


def check_tp(model: ModelConfig, tp: int) -> None:
    """RooflineError (exit 2, param "tp") unless tp >= 1 divides the attention heads."""
    hint = "valid TP degrees: " + ", ".join(map(str, tp_degrees(model)))
    if tp < 1:
        raise RooflineError(f"tp must be >= 1, got {tp}", hint=hint, exit_code=2, param="tp")
    if model.num_heads % tp:
        raise RooflineError(f"tp={tp} does not divide the {model.num_heads} attention heads of {model.name}",
                            hint=hint, exit_code=2, param="tp")


def check_layout(model: ModelConfig, tp: int, pp: int = 1, ep: int = 1, dp: int = 1,
                 ep_imbalance: float = 1.0) -> None:
    """RooflineError (exit 2, naming the parameter) unless the layout fits the model: tp divides the attention
    heads; 1 <= pp <= layers; attention data parallelism (dp > 1) only with expert parallelism on an MoE model
    (plain data parallelism of a dense model is replicas); ep is 1 (experts TP-sharded) or tp x dp (experts
    spread whole over every GPU of a stage, as vLLM's --enable-expert-parallel and SGLang's EP do);
    ep_imbalance >= 1."""
    check_tp(model, tp)
    if not 1 <= pp <= model.num_layers:
        raise RooflineError(f"pp must be between 1 and the {model.num_layers} layers of {model.name}, got {pp}",
                            hint="pipeline stages split the layers", exit_code=2, param="pp")
    if dp < 1:
        raise RooflineError(f"dp_attention must be >= 1, got {dp}", hint="1 = no attention data parallelism",
                            exit_code=2, param="dp_attention")
    if ep not in (1, tp * dp):
        raise RooflineError(f"ep must be 1 or `tp` x `dp_attention` = {tp * dp}, got {ep}",
                            hint="expert parallelism spreads the experts over every GPU of a stage",
                            exit_code=2, param="ep")
    if ep > 1 and not model.num_experts:
        raise RooflineError(f"ep={ep}, but {model.name} has no experts", hint="expert parallelism needs an MoE "
                            "model", exit_code=2, param="ep")
    if dp > 1 and ep == 1:
        raise RooflineError(f"dp_attention={dp} needs expert parallelism (`ep` = `tp` x `dp_attention` = {tp * dp})",
                            hint="for a dense model, serve more replicas instead", exit_code=2,
                            param="dp_attention")
    if not (math.isfinite(ep_imbalance) and ep_imbalance >= 1.0):
        raise RooflineError(f"ep_imbalance must be a number >= 1, got {ep_imbalance}",
                            hint="the busiest expert GPU's load over the mean; 1 = uniform routing",
                            exit_code=2, param="ep_imbalance")


def compute_peak(gpu: GPUSpec, activations: str, weights: str) -> float:
    """Dense peak of the compute precision (= activations precision) on this GPU."""
    if activations not in gpu.peak_flops_per_s:
        have = ", ".join(sorted(gpu.peak_flops_per_s))
        hint = f"{gpu.name} computes in: {have}"
        if weights in ("fp8", "int8", "int4", "fp4"):
            hint += f"; weight-only quantisation is `weights={weights}` `activations=bf16`"
        raise RooflineError(f"{gpu.display_name} has no {activations} matrix throughput", hint=hint, exit_code=2)
    return gpu.peak_flops(activations)


@dataclass(frozen=True)
class OpTime:
    """One operator's totals over its `count` repetitions in a pass (per GPU). `cost` is one repetition;
    the FLOP and byte totals are derived on demand (a sweep needs only the times)."""

    name: str
    unit: str
    count: int
    cost: OpCost
    compute_s: np.ndarray
    memory_s: np.ndarray
    overhead_s: np.ndarray
    comm: CommTime | None = None  # link operators: one message's time, algorithm and link
    group: np.ndarray | None = None  # link operators: ranks in the collective
    overlap_p: float | None = None  # tensor operators: how compute and memory combine (Efficiency.overlap_p)

    @cached_property
    def flops(self) -> np.ndarray:
        return self.count * np.asarray(self.cost.flops)

    @cached_property
    def bytes_read(self) -> np.ndarray:
        return self.count * np.asarray(self.cost.bytes_read)

    @cached_property
    def bytes_written(self) -> np.ndarray:
        return self.count * np.asarray(self.cost.bytes_written)

    @cached_property
    def bytes(self) -> np.ndarray:
        return self.count * (np.asarray(self.cost.bytes_read) + self.cost.bytes_written)

    @cached_property
    def time_s(self) -> np.ndarray:
        return roofline_s(self.compute_s, self.memory_s, self.overlap_p) + self.overhead_s

    @property
    def bound(self) -> np.ndarray:
        if self.unit == "link":
            return np.full(np.shape(self.time_s), "interconnect", dtype=object)
        if self.unit == "host":
            return np.full(np.shape(self.time_s), "host", dtype=object)
        return np.where(self.compute_s >= self.memory_s, "compute", "memory")


def collective_s(s: Setup, op, c: OpCost, p: Pass) -> CommTime:
    """One message of a link operator: its collective over its group, on the link the group's span crosses."""
    return collective_time(s.gpu, op.collective, c.comm_bytes, op.group(p), op.span(p),
                           custom_allreduce=s.custom_allreduce)


def op_seconds(unit: str, flops, bytes_, kernels, peak_flops_per_s, bandwidth_bytes_per_s, eff: Efficiency,
               a_bytes=2.0):
    """(compute_s, memory_s, overhead_s) of ONE operator instance: the roofline formula every prediction uses.
    `peak_flops_per_s` is the ceiling of the operator's unit (tensor: compute precision; attention: 16-bit when
    the activations are 8-bit; vector: fp32)."""
    if unit == "attention":
        rate = peak_flops_per_s * eff.attention_compute_fraction(flops, bytes_)
        mem_rate = bandwidth_bytes_per_s * eff.attention_memory_fraction(flops, bytes_)
        return flops / rate, bytes_ / mem_rate, kernels * eff.kernel_overhead_s
    if unit == "tensor":
        rate = peak_flops_per_s * eff.tensor_fraction(flops, bytes_, a_bytes)
    else:
        rate = peak_flops_per_s * eff.vector
    mem_rate = bandwidth_bytes_per_s * eff.memory_fraction(flops, bytes_)
    return flops / rate, bytes_ / mem_rate, kernels * eff.kernel_overhead_s


def time_pass(s: Setup, p: Pass) -> list[OpTime]:
    """Per-operator times of one forward pass of one micro-batch through the whole model: with pipeline
    parallelism each GPU runs its stage's layers, and the operator's count is over every stage the
    micro-batch passes (its latency); `pp_send` carries it between stages."""
    eff, out = s.efficiency, []
    peaks = {"tensor": s.tensor_flops_per_s, "attention": s.attention_rate_flops_per_s,
             "vector": s.vector_flops_per_s}
    bw = s.gpu.memory_bandwidth_bytes_per_s
    timed: list = []  # (op, message size, CommTime): a collective repeated with the same message is timed once
    for op, n in operators_for(s.model):
        c = op.formula(p)
        if op.unit == "link":
            ct = next((t for o, size, t in timed if o.collective == op.collective and o.group is op.group
                       and o.span is op.span and np.array_equal(size, c.comm_bytes)), None)
            if ct is None:
                ct = collective_s(s, op, c, p)
                timed.append((op, c.comm_bytes, ct))
            comm = n * c.kernels * ct.time_s
            zero = np.zeros(np.shape(comm))  # not 0 x comm: an unreachable link's time is inf, and 0 x inf is NaN
            out.append(OpTime(op.name, op.unit, n, c, zero, zero, comm, ct, op.group(p)))
            continue
        comp, mem, over = op_seconds(op.unit, c.flops, c.bytes_read + c.bytes_written, c.kernels, peaks[op.unit],
                                     bw, eff, s.a_bytes)
        out.append(OpTime(op.name, op.unit, n, c, n * comp, n * mem, np.asarray(n * over),
                          overlap_p=eff.overlap_p if op.unit == "tensor" else None))
    return out


def total_time_s(ops: list[OpTime]) -> np.ndarray:
    return sum(o.time_s for o in ops)
