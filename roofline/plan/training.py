"""Planning a training run on top of model/training.py: one layout end to end (memory, step time, time and
GPU-hours for N tokens, energy at TDP, checkpoints), the best layouts for a GPU count, and compute-optimal
sizing for a budget.

Checkpoints: size = every parameter's weights + master weights + Adam moments (what a restart needs); write
time = size / storage bandwidth; Young's interval sqrt(2 C M) for write time C and job MTBF M (Young 1974,
first-order optimal per Daly 2006) and its overhead C / interval + interval / (2 M) (time writing plus the
expected work lost to a failure, half an interval).

Compute-optimal sizing (Hoffmann et al. 2022, arXiv:2203.15556; constants in specs/data/training.json):
`parametric` minimises L(N, D) = E + A / N^alpha + B / D^beta under C = 6 N D, giving
N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6) / N_opt with G = (alpha A / (beta B))^(1/(alpha+beta));
`tokens_per_parameter` takes D = 20 N (approaches 1 and 2), N = sqrt(C / (6 x 20)).
"""
from __future__ import annotations

import math

import numpy as np

from roofline.errors import RooflineError
from roofline.model.training import Layout, Recipe, check_layout, evaluate, fact, layout_ok
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.specs.precision import bytes_per_element

SIZING_METHODS = ("parametric", "tokens_per_parameter")
#: the degrees the layout search tries
TP_CHOICES = (1, 2, 4, 8)
CP_CHOICES = (1, 2, 4, 8, 16)
MICRO_BATCH_CHOICES = (1, 2, 4, 8)


def _scalar(d: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in d.items()}


def plan(model: ModelConfig, gpu: GPUSpec, layout: Layout, recipe: Recipe, gpus: int | None = None,
         tokens: float | None = None, storage_bytes_per_s: float | None = None, mtbf_s: float | None = None) -> dict:
    """One layout end to end (a JSON-ready dict): memory, step time, throughput, MFU/HFU, time, GPU-hours and
    energy for `tokens`, checkpoint size, write time and Young interval. RooflineError for a layout that does not
    divide the model, the batch or the GPUs."""
    check_layout(model, layout, recipe, gpus)
    r = _scalar(evaluate(model, gpu, layout, recipe))
    out = {"model": model.name, "gpu": gpu.name, "gpus": int(r["gpus"]), "tp": int(layout.tp), "pp": int(layout.pp),
           "dp": int(layout.dp), "cp": int(layout.cp), "ep": int(layout.ep), "micro_batch": int(layout.micro_batch),
           "global_batch": int(layout.global_batch), "seq": int(layout.seq), "zero": recipe.zero,
           "recompute": recipe.recompute, "virtual_stages": recipe.virtual_stages, "dp_overlap": recipe.dp_overlap,
           "attention_kernel": recipe.attention_kernel,
           "precision": {"weights": recipe.weights, "grads": recipe.grads, "master": recipe.master,
                         "optimizer": recipe.optimizer, "compute": recipe.compute},
           "parameters": model.parameters(), **{k: v for k, v in r.items() if k != "gpus"}}
    out["memory_per_gpu_bytes"] = out.pop("total_bytes")
    out["fits"] = bool(out["fits"])
    out["micro_batches"] = int(out["micro_batches"])
    if tokens is not None:
        out.update(training_time(tokens, out["tokens_per_s"], out["gpus"], gpu.tdp_w))
    out["checkpoint"] = checkpoint(model, recipe, storage_bytes_per_s, mtbf_s)
    return out


#: the most training tokens planned: 1e20 is 10,000x the largest runs published (~1.5e16 tokens)
MAX_TOKENS = 1e20


def training_time(tokens: float, tokens_per_s: float, gpus: int, tdp_w: float) -> dict:
    """Time, GPU-hours and energy at TDP to train on `tokens`."""
    if not (math.isfinite(tokens) and 0 < tokens <= MAX_TOKENS):
        raise RooflineError(f"tokens must be a positive number up to {MAX_TOKENS:g}, got {tokens:g}",
                            hint="give the number of training tokens, e.g. 1e12", exit_code=2, param="tokens")
    s = tokens / tokens_per_s
    return {"train_tokens": tokens, "train_time_s": s, "train_days": s / 86400.0, "gpu_hours": s * gpus / 3600.0,
            "energy_j": s * gpus * tdp_w, "energy_mwh": s * gpus * tdp_w / 3.6e9}


def checkpoint(model: ModelConfig, recipe: Recipe, storage_bytes_per_s: float | None = None,
               mtbf_s: float | None = None) -> dict:
    """Checkpoint size (weights + master weights + moments of every parameter), write time, Young interval and
    overhead (fraction of wall time)."""
    size = model.parameters() * (bytes_per_element(recipe.weights) + recipe.state_bytes_per_parameter)
    out = {"size_bytes": size}
    if storage_bytes_per_s is None:
        return out
    if not (math.isfinite(storage_bytes_per_s) and storage_bytes_per_s > 0):
        raise RooflineError(f"storage_bytes_per_s must be positive, got {storage_bytes_per_s}", hint="give the storage write bandwidth, e.g. 10 GB/s", exit_code=2,
                            param="storage_bytes_per_s")
    write = size / storage_bytes_per_s
    if not math.isfinite(write):
        raise RooflineError(f"a storage bandwidth of {storage_bytes_per_s:g} bytes/s makes the {size:.3g}-byte "
                            "checkpoint's write time overflow", hint="give the storage write bandwidth, e.g. 10 GB/s",
                            exit_code=2, param="storage_bytes_per_s")
    out["write_time_s"] = write
    if mtbf_s is not None:
        if not (math.isfinite(mtbf_s) and mtbf_s > 0):
            raise RooflineError(f"mtbf_s must be positive, got {mtbf_s}", hint="give the mean time between failures of the whole job, e.g. 24 h", exit_code=2, param="mtbf_s")
        interval = young_interval_s(write, mtbf_s)
        out.update({"mtbf_s": mtbf_s, "interval_s": interval, "overhead": write / interval + interval / (2 * mtbf_s)})
    return out


def young_interval_s(write_s: float, mtbf_s: float) -> float:
    """sqrt(2 C M): the checkpoint interval minimising expected lost work (Young 1974, Daly 2006)."""
    return math.sqrt(2.0 * write_s * mtbf_s)


#: the FLOP budgets the Chinchilla fit is evaluated for: below 1e12 FLOPs the optimal model has under ~100
#: parameters, above 1e35 it is ~1e16 parameters (far outside the fit's 7e18-6e23 FLOP range either way)
MIN_BUDGET_FLOPS, MAX_BUDGET_FLOPS = 1e12, 1e35


def compute_optimal(budget_flops: float, method: str = "parametric") -> dict:
    """Chinchilla-optimal parameters and tokens for a FLOP budget (Hoffmann et al. 2022), with the predicted loss."""
    if not (math.isfinite(budget_flops) and MIN_BUDGET_FLOPS <= budget_flops <= MAX_BUDGET_FLOPS):
        raise RooflineError(f"budget_flops must be between {MIN_BUDGET_FLOPS:g} and {MAX_BUDGET_FLOPS:g}, got "
                            f"{budget_flops:g}", hint="give a FLOP budget, e.g. 1e24", exit_code=2,
                            param="budget_flops")
    if method not in SIZING_METHODS:
        raise RooflineError(f"method must be one of {', '.join(SIZING_METHODS)}, got {method!r}", hint="choose one of the listed sizing methods", exit_code=2,
                            param="method")
    E, A, B = (fact("chinchilla", k) for k in ("E", "A", "B"))
    a, b = fact("chinchilla", "alpha"), fact("chinchilla", "beta")
    k = fact("chinchilla", "flops_per_parameter_token")
    if method == "parametric":
        g = (a * A / (b * B)) ** (1.0 / (a + b))
        n = g * (budget_flops / k) ** (b / (a + b))
    else:
        n = math.sqrt(budget_flops / (k * fact("chinchilla", "tokens_per_parameter")))
    d = budget_flops / (k * n)
    return {"method": method, "budget_flops": budget_flops, "parameters": n, "tokens": d, "tokens_per_parameter": d / n,
            "loss": E + A / n ** a + B / d ** b}


def fleet_days(flops: float, gpus: int, peak_flops_per_s: float, mfu: float) -> dict:
    """What a FLOP count means on `gpus` GPUs at `mfu` of the dense peak: days and GPU-hours."""
    s = flops / (gpus * peak_flops_per_s * mfu)
    return {"gpus": gpus, "mfu": mfu, "days": s / 86400.0, "gpu_hours": s * gpus / 3600.0}


def search(model: ModelConfig, gpu: GPUSpec, gpus: int, global_batch: int, seq: int, recipe: Recipe,
           top: int = 10, ep: int = 1) -> list[dict]:
    """The layouts of `gpus` GPUs (tp x pp x dp x cp, micro-batch) that divide the model and the batch and fit in
    memory, ranked by predicted tokens/s (one vectorized evaluation of the whole grid)."""
    if gpus < 1:
        raise RooflineError(f"gpus must be >= 1, got {gpus}", hint="give a GPU count >= 1", exit_code=2, param="gpus")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise RooflineError(f"top must be a whole number >= 1, got {top}", hint="how many layouts to show, e.g. 10",
                            exit_code=2, param="top")
    pps = [p for p in range(1, model.num_layers + 1) if gpus % p == 0]
    grid = np.array([(t, p, c, mb) for t in TP_CHOICES for p in pps for c in CP_CHOICES for mb in MICRO_BATCH_CHOICES
                     if gpus % (t * p * c) == 0], dtype=float)
    if grid.size == 0:
        raise RooflineError(f"no layout of {gpus} GPUs to search", hint="use a GPU count divisible by the tensor/pipeline/context degrees searched (e.g. a multiple of 8)", exit_code=2, param="gpus")
    tp, pp, cp, mb = grid.T
    dp = gpus / (tp * pp * cp)
    full = Layout.of(tp=tp, pp=pp, dp=dp, cp=cp, ep=np.full_like(tp, ep), micro_batch=mb, global_batch=global_batch,
                     seq=seq)
    keep = layout_ok(model, full, recipe)  # only these are timed: an ep that does not divide dp x cp has no groups
    if not keep.any():
        return []
    tp, pp, cp, mb, dp = tp[keep], pp[keep], cp[keep], mb[keep], dp[keep]
    lay = Layout.of(tp=tp, pp=pp, dp=dp, cp=cp, ep=np.full_like(tp, ep), micro_batch=mb, global_batch=global_batch,
                    seq=seq)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = evaluate(model, gpu, lay, recipe)
    good = r["fits"] & np.isfinite(r["step_time_s"])
    idx = np.flatnonzero(good)
    idx = idx[np.argsort(-r["tokens_per_s"][idx], kind="stable")][:top]
    cols = ("tokens_per_s", "step_time_s", "tflops_per_gpu", "mfu", "hfu", "total_bytes", "bubble_fraction")
    return [{"tp": int(tp[i]), "pp": int(pp[i]), "dp": int(dp[i]), "cp": int(cp[i]), "ep": ep,
             "micro_batch": int(mb[i]), **{("memory_per_gpu_bytes" if c == "total_bytes" else c): float(r[c][i])
                                           for c in cols}} for i in idx]
