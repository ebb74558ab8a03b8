"""How far the training planner is from published training runs (`roofline published`, the training section).

The dataset (`roofline/measure/data/published_training.json`) holds runs with their full configuration (model or
its config, GPU, GPUs, tp/pp/dp/cp/ep, micro and global batch, sequence, ZeRO stage, recomputation, precision)
and the achieved model TFLOP/s per GPU, each with its source and snippet. Each run is predicted by
`model.training.evaluate` with the default Efficiency and the Recipe the run states (nothing tuned per row); the predicted TFLOP/s
uses the source's FLOP count, 6 N + 12 L d s per token (N = `flops_parameters`, or the model's parameter count),
so that the error is the error on throughput. error = predicted / measured - 1.

Accuracy (40 runs; tests/model/test_training.py guards it): median |error| 11.6%, max 66.5% (goal: median <= 15%).
By source: the nine Megatron-Core GPT rows on H100 (Megatron-LM README table, 1.7B to 462B, TP/PP/DP given,
micro-batch and schedule assumed) median 7.9%, max 29.2% (+29% at 1.7B, -17% at 32B, within 10% from 16B and from
70B up); the ten Megatron-LM GPT rows on A100 from Narayanan et al. 2021 Table 1 (1.7B to 1T, full recomputation,
fp16; micro-batch, interleaving and DDP flavour from the paper's examples/sc21 scripts; the paper's hardware-FLOP
figure converted to the 6 N + 12 L d s count, see each row's notes) median 8.1%, max 11.7%; the four Korthikanti et
al. 2022 rows (22B to 1T, sequence parallelism + selective recomputation, MFU x 312) median 3.5%, max 4.4%; the
BLOOM-176B run (384 A100, TP4 PP12 DP8, full recomputation, logged samples/s) +3.2%; the 13 MPT rows (llm-foundry,
FSDP) median 41.0%, max 66.5%, every one optimistic (+17% to +67%); the three Llama 3 405B rows median 31.6%,
pessimistic (-16% to -33%).

A run states the recipe settings its source gives (`RECIPE_FIELDS`; absent: the Recipe's defaults): the A100 rows
ran Megatron's fused scale-mask-softmax over a materialized score matrix, before FlashAttention
(`attention_kernel: "unfused"`, which took the Narayanan rows from a 19.4% median to 8.1% and Korthikanti's from
8.5% to 3.5%: the score matrix's memory traffic is what small models miss), the SC'21 runs had no sequence
parallelism and, from 39B up, Megatron's local DDP with its all-reduce after the backward pass (`dp_overlap: 0`),
BLOOM had dropout and fp32 gradients. What is not modelled: the MPT H100 runs' 2023 software stack (PyTorch 1.13
image, the older Triton FlashAttention kernel, source in specs/data/training.json) reaches about 0.75x of what the
GEMM fraction and the FlashAttention-2 table give, with no published per-kernel figure to take it from; the Llama 3
rows' interleaving depth and micro-batch size are not published in a source checked here, so they run 1F1B with
micro-batch 1 and a (p-1)/m bubble that the real interleaved schedule makes smaller.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from roofline.errors import RooflineError
from roofline.jsonfile import read_json
from roofline.model.training import Layout, Recipe, check_layout, evaluate
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model, parse_config

DATA_FILE = "published_training.json"
#: recipe settings a run states where its source does (absent: the Recipe's defaults)
RECIPE_FIELDS = ("sequence_parallel", "dp_overlap", "dropout", "grads", "attention_kernel")
CSV_FIELDS = ("id", "model", "gpu", "gpus", "tp", "pp", "dp", "cp", "micro_batch", "global_batch", "seq", "zero",
              "recompute", "measured_tflops_per_gpu", "predicted_tflops_per_gpu", "error", "predicted_mfu",
              "memory_per_gpu_bytes", "fits")


def default_path() -> Path:
    return Path(str(resources.files("roofline.measure") / "data" / DATA_FILE))


def load_runs(path: str | Path | None = None) -> list[dict]:
    p = Path(path) if path is not None else default_path()
    doc = read_json(p, "published training runs", "roofline/measure/data/" + DATA_FILE)
    if not (isinstance(doc, dict) and isinstance(doc.get("entries"), list)):
        raise RooflineError(f"{p}: the published training runs must be an object with an `entries` list",
                            hint="see roofline/measure/data/" + DATA_FILE + " for the format")
    return list(doc["entries"])


def predict_run(e: dict) -> dict:
    """One published run predicted: a CSV_FIELDS row."""
    model = parse_config(e["config"], e["model"]) if e.get("config") else load_model(e["model"])
    gpu = load_gpu(e["gpu"])
    recipe = Recipe(zero=e["zero"], recompute=e["recompute"], compute=e.get("compute", "bf16"),
                    virtual_stages=e.get("virtual_stages", 1), **{k: e[k] for k in RECIPE_FIELDS if k in e})
    layout = Layout.of(tp=e["tp"], pp=e["pp"], dp=e["dp"], cp=e["cp"], ep=e["ep"], micro_batch=e["micro_batch"],
                       global_batch=e["global_batch"], seq=e["seq"])
    check_layout(model, layout, recipe, e["gpus"])
    r = evaluate(model, gpu, layout, recipe)
    n = e.get("flops_parameters") or model.parameters()
    per_token = 6.0 * n + 12.0 * model.num_layers * model.hidden_size * e["seq"]
    predicted = float(r["tokens_per_s"]) / e["gpus"] * per_token / 1e12
    row = {k: e[k] for k in ("id", "model", "gpu", "gpus", "tp", "pp", "dp", "cp", "micro_batch", "global_batch",
                             "seq", "zero", "recompute", "measured_tflops_per_gpu")}
    row.update(predicted_tflops_per_gpu=predicted, error=predicted / e["measured_tflops_per_gpu"] - 1.0,
               predicted_mfu=float(r["mfu"]), memory_per_gpu_bytes=float(r["total_bytes"]), fits=bool(r["fits"]))
    return row


def compare_training(runs: list[dict] | None = None) -> dict:
    """Every run predicted, with the median and max absolute error on achieved TFLOP/s per GPU."""
    rows = [predict_run(e) for e in (load_runs() if runs is None else runs)]
    err = np.abs([r["error"] for r in rows])
    signed = [r["error"] for r in rows]
    return {"rows": rows, "summary": {"runs": len(rows), "median_abs_error": float(np.median(err)) if rows else None,
                                      "max_abs_error": float(np.max(err)) if rows else None,
                                      "bias": float(np.median(signed)) if rows else None, "goal_median": 0.15}}
