"""The model's prediction for a measured point, from a device spec and an Efficiency.

The same formula as `roofline.engine.time_pass` for a single operator:
  t = max(F / (peak * compute_fraction), B / (bandwidth * memory_fraction)) + kernels * kernel_overhead_s
with `peak` the point's precision (tensor: GEMM) or fp32 * vector (stream kernels); attention and the
decoder layer go through the engine itself (`time_pass` on the operators of a `Pass`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from roofline.model.efficiency import Efficiency
from roofline.model.engine import make_setup, op_seconds, time_pass
from roofline.measure.points import STREAM_FAMILIES
from roofline.specs.hardware import GPUSpec

#: families timed as vector kernels at the fp32 peak: the streaming ones and the launch-overhead points
VECTOR_FAMILIES = STREAM_FAMILIES + ("launch",)


def op_time_s(flops: float, bytes_: float, kernels: float, peak: float, bandwidth: float,
              eff: Efficiency, tensor: bool) -> float:
    """One operator, timed by engine.op_seconds (the formula engine.time_pass uses)."""
    unit = "tensor" if tensor else "vector"
    comp, mem, over = op_seconds(unit, flops, bytes_, kernels, peak, bandwidth, eff)
    return float(eff.roofline_s(unit, comp, mem) + over)


def _peak(spec: GPUSpec, precision: str) -> float | None:
    return spec.peak_flops_per_s.get(precision) or (spec.peak_flops_per_s.get("fp32") if precision == "tf32" else None)


def predict_point(p: dict[str, Any], spec: GPUSpec, eff: Efficiency) -> float | None:
    """Predicted seconds for point `p` on `spec` with `eff`; None when the spec lacks the precision."""
    fam = p["family"]
    if fam in ("attention", "layer"):
        if p["precision"] not in spec.peak_flops_per_s or "fp32" not in spec.peak_flops_per_s:
            return None
        return _engine_point(p, spec, eff)
    b = p["bytes_read"] + p["bytes_written"]
    if fam in VECTOR_FAMILIES:
        peak = spec.peak_flops_per_s.get("fp32")
        return None if not peak else op_time_s(p["flops"], b, p["kernels"], peak,
                                               spec.memory_bandwidth_bytes_per_s, eff, tensor=False)
    peak = _peak(spec, p["precision"])
    return None if not peak else op_time_s(p["flops"], b, p["kernels"], peak, spec.memory_bandwidth_bytes_per_s,
                                           eff, tensor=True)


def _engine_point(p: dict[str, Any], spec: GPUSpec, eff: Efficiency) -> float:
    pr, prec = p["params"], p["precision"]
    if p["family"] == "layer":
        from roofline.measure.layer import predicted_layer_ops, scaled_model

        model = scaled_model(pr["model"], pr["factor"], pr["layers"])
        ops = predicted_layer_ops(model, spec, eff, prec, pr["batch"], pr["new"], pr["cached"])
    else:
        from roofline.measure.attention import ATTENTION_OPS, attention_model, attention_pass

        model = attention_model(pr["model"])
        s = make_setup(spec, model, 1, prec, prec, prec, eff)
        ops = [o for o in time_pass(s, attention_pass(model, pr["batch"], pr["new"], pr["cached"], prec))
               if o.name in ATTENTION_OPS]
    return float(sum(np.sum(o.time_s) for o in ops))
