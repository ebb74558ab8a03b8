"""One deployment, end to end: memory, prefill, a decode step, a whole generation, as a JSON-ready dict.

Key names are a contract (spreadsheets and other tools read them): ridge_point_flops_per_byte,
weights_bytes, kv_cache_bytes_per_token, kv_cache_capacity_tokens, max_batch, kv_cache_utilization, flops,
bytes, arithmetic_intensity_flops_per_byte, bound, time_s, ttft_s, tpot_s, e2e_latency_s,
output_tokens_per_s, critical_batch; phase summaries under `prefill` and `decode`. SI units throughout.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from roofline.model import memory as mem
from roofline.model.efficiency import Efficiency
from roofline.model.ops import REGISTRY
from roofline.model.engine import (TP_DEGREES, OpTime, Setup, check_layout, check_reach, make_setup, reachable,
                                   tp_degrees)
from roofline.errors import RooflineError
from roofline.units import MAX_COUNT
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.model.phases import (critical_batch, decode_step, decode_time_sum, phase_time_s,
                                   pipeline_bubble_fraction, prefill)
from roofline.specs.precision import COMPUTE_PRECISIONS, check_precision


@dataclass(frozen=True)
class Scenario:
    """The knobs of `roofline analyze` (defaults are the CLI's)."""

    batch: int = 1
    prompt: int = 1024
    output: int = 256
    context: int | None = None  # decode position; default prompt + output (the last, longest step)
    tp: int = 1
    weights: str = "bf16"
    activations: str = "bf16"
    kv: str = "bf16"
    memory: mem.MemorySettings = field(default_factory=mem.MemorySettings)
    pp: int = 1                 # pipeline stages
    ep: int = 1                 # expert-parallel degree: 1 or tp x dp_attention
    dp_attention: int = 1       # attention data-parallel ranks (with expert parallelism)
    ep_imbalance: float = 1.0   # busiest expert GPU's load over the mean (1 = uniform routing)

    @property
    def gpus(self) -> int:
        """GPUs of one replica: tp x pp x dp_attention."""
        return self.tp * self.pp * self.dp_attention

    @property
    def decode_context(self) -> int:
        return self.prompt + self.output if self.context is None else self.context

    def checked(self, model: ModelConfig) -> "Scenario":
        """Validate ranges (RooflineError, exit code 2) and normalise precision names."""
        _positive("batch", self.batch, "a batch of at least 1 sequence")
        _positive("prompt", self.prompt, "a prompt of at least 1 token")
        _positive("output", self.output, "at least 1 output token")
        if self.context is not None and self.context < 0:
            raise RooflineError(f"context must be >= 0, got {self.context}", hint="the decode position in tokens",
                                exit_code=2, param="context")
        for name in ("batch", "prompt", "output", "context"):
            value = getattr(self, name)
            if value is not None and value > MAX_COUNT:
                raise RooflineError(f"{name} must be <= {MAX_COUNT:,}, got {value}", hint="a count of sequences or "
                                    "tokens that fits a 32-bit integer", exit_code=2, param=name)
        mem.check_memory_utilization(self.memory.memory_utilization)
        check_layout(model, self.tp, self.pp, self.ep, self.dp_attention, self.ep_imbalance)
        return replace(self, weights=check_precision(self.weights, "weights"),
                       activations=check_precision(self.activations, "activations"),
                       kv=check_precision(self.kv, "kv"))




def _positive(name: str, value: int, what: str) -> None:
    if value <= 0:
        raise RooflineError(f"{name} must be >= 1, got {value}", hint=f"give {what}", exit_code=2, param=name)


def _f(x) -> float:
    return float(np.asarray(x))


def op_summary(o: OpTime) -> dict:
    flops, nbytes = _f(o.flops), _f(o.bytes)
    return {"name": o.name, "unit": o.unit, "count": o.count, "flops": flops, "bytes_read": _f(o.bytes_read),
            "bytes_written": _f(o.bytes_written), "bytes": nbytes,
            "arithmetic_intensity_flops_per_byte": flops / nbytes if nbytes else None,
            "bound": str(np.asarray(o.bound)), "time_s": _f(o.time_s), "compute_s": _f(o.compute_s),
            "memory_s": _f(o.memory_s), "overhead_s": _f(o.overhead_s)}


def collective_summary(o: OpTime) -> dict:
    """A collective: the nccl-tests message size S, messages per repetition, bytes over all repetitions,
    the group, the link it crosses, the algorithm picked for its size, and its time (all repetitions)."""
    per_rep = float(np.asarray(o.cost.kernels))
    return {"name": o.name, "unit": o.unit, "collective": REGISTRY[o.name].collective, "count": o.count,
            "messages": int(round(o.count * per_rep)), "message_bytes": _f(o.cost.comm_bytes),
            "bytes": float(o.count * per_rep * np.asarray(o.cost.comm_bytes)), "group": int(_f(o.group)),
            "link": str(np.asarray(o.comm.link)), "algorithm": str(np.asarray(o.comm.algorithm)),
            "time_s": _f(o.time_s), "limiter": "interconnect"}


def phase_summary(ops: list[OpTime], time_s) -> dict:
    """Totals of a phase taking `time_s` (phases.phase_time_s: with pipeline parallelism more than the
    summed operators of one micro-batch). bound: 'compute' when the compute times (efficiency-adjusted)
    summed over the operators exceed the memory times, else 'memory'. Collectives are listed apart under
    `communication` (their time, `communication_s`, is part of `time_s`; their bytes cross links, not HBM)."""
    rows = [op_summary(o) for o in ops if o.unit != "link"]
    comms = [collective_summary(o) for o in ops if o.unit == "link" and _f(o.time_s) > 0]  # none on one GPU
    flops, nbytes = sum(r["flops"] for r in rows), sum(r["bytes"] for r in rows)
    compute_s, memory_s = sum(r["compute_s"] for r in rows), sum(r["memory_s"] for r in rows)
    return {"flops": flops, "bytes": nbytes,
            "arithmetic_intensity_flops_per_byte": flops / nbytes if nbytes else None,
            "bound": "compute" if compute_s >= memory_s else "memory", "time_s": _f(time_s),
            "compute_s": compute_s, "memory_s": memory_s, "overhead_s": sum(r["overhead_s"] for r in rows),
            "communication_s": sum(c["time_s"] for c in comms), "operators": rows, "communication": comms}


def ridge_points(gpu: GPUSpec) -> dict:
    return {p: {"peak_flops_per_s": gpu.peak_flops(p), "ridge_point_flops_per_byte": gpu.ridge_point_flops_per_byte(p)}
            for p in COMPUTE_PRECISIONS if p in gpu.peak_flops_per_s}


def memory_summary(s: Setup, sc: Scenario, gpu: GPUSpec, model: ModelConfig) -> dict:
    ms, ctx = sc.memory, sc.decode_context
    cap = _f(mem.kv_cache_capacity_bytes(s, ms))
    mb = int(mem.max_batch(s, ms, ctx, cap))
    return {"memory_bytes": gpu.memory_bytes, "memory_budget_bytes": _f(mem.budget_bytes(gpu.memory_bytes, ms, s)),
            "weights_bytes": _f(mem.weights_bytes(s)), "activation_bytes": _f(mem.activation_bytes(s, ms)),
            "runtime_reserve_bytes": ms.runtime_reserve_bytes,
            "kv_cache_bytes_per_token": _f(mem.kv_cache_bytes_per_token(s)),
            "kv_cache_bytes_per_sequence": _f(mem.kv_cache_bytes_per_sequence(s, ctx)),
            "kv_cache_capacity_bytes": max(cap, 0.0), "kv_cache_capacity_tokens": int(mem.kv_cache_capacity_tokens(s, ms, cap)),
            "max_batch": mb, "kv_limited_batch": int(mem.kv_limited_batch(s, ms, ctx, cap)),
            "kv_cache_utilization": _f(mem.kv_cache_utilization(s, ms, sc.batch, ctx, cap)),
            "fits": mb >= 1, "batch_fits": sc.batch <= mb,
            "min_tp_that_fits": min_tp_that_fits(gpu, model, sc) if mb < 1 else sc.tp}


def min_tp_that_fits(gpu: GPUSpec, model: ModelConfig, sc: Scenario) -> int | None:
    """Smallest TP degree (dividing the heads) at which one sequence of the decode context fits; None if none."""
    for t in tp_degrees(model):
        if not reachable(gpu, t * sc.pp * sc.dp_attention):  # a CPU is one device
            break
        ep = t * sc.dp_attention if sc.ep > 1 else 1
        s = make_setup(gpu, model, t, sc.weights, sc.activations, sc.kv, pp=sc.pp, ep=ep, dp=sc.dp_attention)
        if int(mem.max_batch(s, sc.memory, sc.decode_context)) >= 1:
            return t
    return None


def analyze(gpu: GPUSpec, model: ModelConfig, sc: Scenario | None = None,
            efficiency: Efficiency | None = None) -> dict:
    """The full report for one deployment and scenario."""
    sc = (sc or Scenario()).checked(model)
    check_reach(gpu, sc.tp * sc.pp * sc.dp_attention)
    s = make_setup(gpu, model, sc.tp, sc.weights, sc.activations, sc.kv, efficiency, pp=sc.pp, ep=sc.ep,
                   dp=sc.dp_attention, ep_imbalance=sc.ep_imbalance, costs=sc.memory.pass_costs())
    ctx = sc.decode_context
    pre_ops, dec_ops = prefill(s, sc.batch, sc.prompt), decode_step(s, sc.batch, ctx)
    pre = phase_summary(pre_ops, phase_time_s(s, pre_ops, sc.batch, "prefill"))
    dec = phase_summary(dec_ops, phase_time_s(s, dec_ops, sc.batch, "decode"))
    ttft = pre["time_s"]
    steps = _f(decode_time_sum(s, sc.batch, sc.prompt, sc.output)) if sc.output > 1 else 0.0
    e2e = ttft + steps
    crit = int(critical_batch(s, ctx))
    memory = memory_summary(s, sc, gpu, model)
    return {
        "gpu": gpu.name, "gpu_display_name": gpu.display_name, "model": model.name,
        "parameters": model.parameters(),
        "config": {"batch": sc.batch, "prompt": sc.prompt, "output": sc.output, "context": ctx, "tp": sc.tp,
                   "weights": sc.weights, "activations": sc.activations, "kv": sc.kv,
                   "memory_utilization": sc.memory.memory_utilization, "pp": sc.pp, "ep": sc.ep,
                   "dp_attention": sc.dp_attention, "ep_imbalance": sc.ep_imbalance, "gpus": sc.gpus},
        "pipeline_bubble_fraction": _f(pipeline_bubble_fraction(s, sc.batch)),
        "ridge_point_flops_per_byte": gpu.ridge_point_flops_per_byte(sc.activations),
        "ridge_points": ridge_points(gpu), "memory": memory, "engine": sc.memory.to_dict(),
        "prefill": pre, "decode": dec, "ttft_s": ttft, "tpot_s": dec["time_s"],
        "mean_tpot_s": steps / (sc.output - 1) if sc.output > 1 else dec["time_s"],
        "e2e_latency_s": e2e, "output_tokens_per_s": sc.batch * sc.output / e2e,
        "critical_batch": crit if crit > 0 else "never", "efficiency": s.efficiency.to_dict(),
        "warnings": warnings_for(model, sc, memory),
    }


def decode_batching(gpu: GPUSpec, model: ModelConfig, sc: Scenario | None = None, efficiency: Efficiency | None = None,
                    slo_tpot_s: float | None = None) -> dict:
    """How far batching takes decode at the scenario's decode context: the largest batch whose KV cache fits
    (and, with `slo_tpot_s`, whose decode step meets that TPOT), its TPOT and decode tokens/s, and the gain
    over the scenario's own batch (tokens/s at `batch` over tokens/s at sc.batch). `limited_by`: "memory"
    (the KV cache), "slo" (the TPOT target) or "does not fit" (not one sequence fits: batch is 0 and the
    figures are None). The step time is the same one `analyze` reports as `tpot_s`."""
    sc = (sc or Scenario()).checked(model)
    check_reach(gpu, sc.tp * sc.pp * sc.dp_attention)
    s = make_setup(gpu, model, sc.tp, sc.weights, sc.activations, sc.kv, efficiency, pp=sc.pp, ep=sc.ep,
                   dp=sc.dp_attention, ep_imbalance=sc.ep_imbalance, costs=sc.memory.pass_costs())
    ctx = sc.decode_context
    mb = int(mem.max_batch(s, sc.memory, ctx))
    base_s = _f(phase_time_s(s, decode_step(s, sc.batch, ctx), sc.batch, "decode"))
    base = {"batch": sc.batch, "tpot_s": base_s, "decode_tokens_per_s": sc.batch / base_s}
    if mb < 1:
        return {"context": ctx, "max_batch": mb, "slo_tpot_s": slo_tpot_s, "limited_by": "does not fit",
                "batch": 0, "tpot_s": None, "decode_tokens_per_s": None, "gain": None, "base": base}
    # every batch up to 4096, then 512 log-spaced ones: the step time grows with the batch, so the largest
    # batch within the SLO is found on this grid (exactly up to 4096, within 2% beyond)
    grid = np.unique(np.r_[np.arange(1, min(mb, 4096) + 1),
                           np.geomspace(1, mb, 512).astype(np.int64), mb]).astype(float)
    t = np.asarray(phase_time_s(s, decode_step(s, grid, float(ctx)), grid, "decode"), dtype=float)
    ok = np.ones(len(grid), bool) if slo_tpot_s is None else t <= slo_tpot_s
    if not ok.any():
        return {"context": ctx, "max_batch": mb, "slo_tpot_s": slo_tpot_s, "limited_by": "slo", "batch": 0,
                "tpot_s": float(t[0]), "decode_tokens_per_s": None, "gain": None, "base": base}
    i = int(np.flatnonzero(ok)[-1])
    b = int(grid[i])
    return {"context": ctx, "max_batch": mb, "slo_tpot_s": slo_tpot_s,
            "limited_by": "memory" if b == mb else "slo", "batch": b, "tpot_s": float(t[i]),
            "decode_tokens_per_s": b / float(t[i]), "gain": b / float(t[i]) / base["decode_tokens_per_s"],
            "base": base}


def _layout_text(sc: Scenario) -> str:
    """The non-TP parts of the layout, as flags (empty for plain TP)."""
    parts = [f"--pp {sc.pp}"] * (sc.pp > 1) + [f"--ep {sc.ep}"] * (sc.ep > 1) + \
        [f"--dp-attention {sc.dp_attention}"] * (sc.dp_attention > 1)
    return (" " + " ".join(parts)) if parts else ""


def warnings_for(model: ModelConfig, sc: Scenario, memory: dict) -> list[str]:
    """What the user should know before trusting the numbers: context beyond the model, batch that does not fit."""
    out = []
    longest = max(sc.decode_context, sc.prompt + sc.output)
    if longest > model.max_position_embeddings:
        out.append(f"context {longest} exceeds {model.name}'s maximum of {model.max_position_embeddings} positions")
    if not memory["fits"]:
        tp = memory["min_tp_that_fits"]
        out.append(f"{model.name} does not fit at --tp {sc.tp}{_layout_text(sc)}: not even one sequence of {sc.decode_context} tokens "
                   "(times are for a GPU with enough memory); " + (f"the smallest TP that fits is {tp}" if tp else
                                                                  f"no TP degree up to {TP_DEGREES[-1]} fits"))
    elif not memory["batch_fits"] and memory["kv_limited_batch"] >= sc.batch:
        out.append(f"batch {sc.batch} is more than the engine runs at once: {sc.memory.engine} runs at most "
                   f"{sc.memory.max_seqs * sc.dp_attention} sequences per step (`max_seqs`)")
    elif not memory["batch_fits"]:
        out.append(f"batch {sc.batch} does not fit: the KV cache holds {memory['max_batch']} sequences of "
                   f"{sc.decode_context} tokens (KV utilisation {memory['kv_cache_utilization']:.0%})")
    return out
