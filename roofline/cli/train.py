"""`roofline train`: plan a training run (roofline/model/training.py, roofline/plan/training.py): one layout's memory,
step time, MFU and checkpoints; `--search` for the best layouts; `--budget-flops` / `--budget-gpu-hours` for
compute-optimal sizing."""
from __future__ import annotations

import math
from typing import Annotated, Optional

import typer

from roofline.cli.common import FormatOpt, GpuOpt, ModelOpt, out
from roofline.errors import RooflineError
from roofline.report.render import Format, emit, table
from roofline.specs.hardware import load_gpu, DEFAULT_GPU
from roofline.specs.models import load_model
from roofline.units import GB, format_bytes, format_count, format_time_s

#: the training section of `roofline report` and the training sheets of `roofline spreadsheet` (opt-in by --train-gpus)
TrainGpusOpt = Annotated[Optional[int], typer.Option(
    "--train-gpus", help="Add a training section: the fastest layout of this many GPUs that fits the model (as "
    "`roofline train --search`), with the --train-* recipe; the spreadsheet gets live Training sheets for it.")]
TrainBatchOpt = Annotated[int, typer.Option("--train-global-batch", help="Training: sequences per optimizer step.")]
TrainSeqOpt = Annotated[int, typer.Option("--train-seq", help="Training: sequence length in tokens.")]
TrainZeroOpt = Annotated[int, typer.Option("--train-zero", help="Training: ZeRO stage 0-3.")]
TrainRecomputeOpt = Annotated[str, typer.Option("--train-recompute", help="Training: activation recomputation "
                                                "(none, selective or full).")]
TrainPrecisionOpt = Annotated[str, typer.Option("--train-precision", help="Training: compute (GEMM) precision "
                                                "(bf16, fp16 or fp8).")]


def report_training(model, gpu, gpus: int | None, global_batch: int, seq: int, zero: int, recompute: str,
                    precision: str):
    """The report's / workbook's training layout (`report.training_section.TrainingReport`), None without
    --train-gpus."""
    if gpus is None:
        return None
    from roofline.model.training import Recipe
    from roofline.report.training_section import best_training
    for flag, v in (("--train-gpus", gpus), ("--train-global-batch", global_batch), ("--train-seq", seq)):
        if v < 1:
            raise RooflineError(f"{flag} must be >= 1, got {v}", hint="give a positive whole number", exit_code=2)
    return best_training(model, gpu, gpus, global_batch, seq, Recipe(zero=zero, recompute=recompute,
                                                                      compute=precision))


_RUN_KEYS = ("model", "gpu", "gpus", "tp", "pp", "dp", "cp", "ep", "micro_batch", "global_batch", "seq", "zero",
             "recompute", "memory_per_gpu_bytes", "fits", "step_time_s", "tokens_per_s", "tflops_per_gpu", "mfu",
             "hfu", "bubble_fraction")


def _run_tables(r: dict) -> list:
    rows = [("layout", f"tp {r['tp']} x pp {r['pp']} x dp {r['dp']} x cp {r['cp']} (ep {r['ep']}) = {r['gpus']} "
             f"{r['gpu']}"),
            ("batch", f"{r['global_batch']} x {r['seq']} tokens, micro-batch {r['micro_batch']}, "
                      f"{r['micro_batches']} micro-batches per rank"),
            ("recipe", f"ZeRO {r['zero']}, recompute {r['recompute']}, w/g/master/opt/compute "
                       + "/".join(r["precision"].values())),
            ("memory per GPU", f"{format_bytes(r['memory_per_gpu_bytes'])} of {format_bytes(r['capacity_bytes'])}"
                               f" ({'fits' if r['fits'] else 'DOES NOT FIT'})"),
            ("  weights / grads / optimizer", " / ".join(format_bytes(r[k]) for k in
                                                         ("weights_bytes", "gradients_bytes", "optimizer_bytes"))),
            ("  activations / reserve", f"{format_bytes(r['activations_bytes'])} / {format_bytes(r['reserve_bytes'])}"),
            ("step time", format_time_s(r["step_time_s"])),
            ("  fwd / bwd / recompute", " / ".join(format_time_s(r[k]) for k in ("forward_s", "backward_s",
                                                                                  "recompute_s"))),
            ("  tp / cp / ep comm", " / ".join(format_time_s(r[k]) for k in ("tp_comm_s", "cp_comm_s", "ep_comm_s"))),
            ("  bubble / pp sends", f"{format_time_s(r['pipeline_bubble_s'])} ({r['bubble_fraction']:.1%}) / "
                                    f"{format_time_s(r['pipeline_send_s'])}"),
            ("  dp comm (exposed) / optimizer", f"{format_time_s(r['dp_comm_s'])} "
                                                f"({format_time_s(r['dp_comm_exposed_s'])}) / "
                                                f"{format_time_s(r['optimizer_s'])}"),
            ("tokens/s", format_count(r["tokens_per_s"])),
            ("TFLOP/s per GPU, MFU, HFU", f"{r['tflops_per_gpu']:.0f}, {r['mfu']:.1%}, {r['hfu']:.1%}")]
    if "train_time_s" in r:
        rows += [("train on tokens", f"{format_count(r['train_tokens'])}: {r['train_days']:.1f} days, "
                                     f"{format_count(r['gpu_hours'])} GPU-hours, {r['energy_mwh']:.1f} MWh at TDP")]
    c = r["checkpoint"]
    ck = format_bytes(c["size_bytes"])
    if "write_time_s" in c:
        ck += f", write {format_time_s(c['write_time_s'])}"
    if "interval_s" in c:
        ck += f", every {format_time_s(c['interval_s'])} (Young), overhead {c['overhead']:.1%}"
    rows.append(("checkpoint", ck))
    return [table(f"Training {r['model']}", ["", ""], rows, justify_right=False)]


def _search_tables(rows: list[dict], title: str) -> list:
    return [table(title, ["tp", "pp", "dp", "cp", "micro-batch", "tokens/s", "step", "TFLOP/s/GPU", "MFU", "memory",
                          "bubble"],
                  [(r["tp"], r["pp"], r["dp"], r["cp"], r["micro_batch"], format_count(r["tokens_per_s"]),
                    format_time_s(r["step_time_s"]), f"{r['tflops_per_gpu']:.0f}", f"{r['mfu']:.1%}",
                    format_bytes(r["memory_per_gpu_bytes"]), f"{r['bubble_fraction']:.1%}") for r in rows])]


def _sizing_tables(s: dict) -> list:
    rows = [("budget", f"{s['budget_flops']:.3g} FLOPs"), ("method", s["method"]),
            ("parameters", format_count(s["parameters"])), ("tokens", format_count(s["tokens"])),
            ("tokens per parameter", f"{s['tokens_per_parameter']:.1f}"), ("predicted loss", f"{s['loss']:.3f}")]
    if "fleet" in s:
        f = s["fleet"]
        rows.append(("on the fleet", f"{f['gpus']} GPUs at MFU {f['mfu']:.1%}: {f['days']:.1f} days, "
                                     f"{format_count(f['gpu_hours'])} GPU-hours"))
    return [table("Compute-optimal size (Hoffmann et al. 2022)", ["", ""], rows, justify_right=False)]


def _gpu_hours_flops(gpu_hours: float, r: dict) -> float:
    """The FLOPs that --budget-gpu-hours buys at the planned layout's MFU, refused (naming --budget-gpu-hours, not
    the --budget-flops it converts to) unless a positive number inside the sizing fit's FLOP range."""
    from roofline.plan.training import MAX_BUDGET_FLOPS, MIN_BUDGET_FLOPS
    per_hour = 3600.0 * r["peak_flops_per_s"] * r["mfu"]
    flops = gpu_hours * per_hour if math.isfinite(gpu_hours) and gpu_hours > 0 else math.nan
    if not (math.isfinite(flops) and MIN_BUDGET_FLOPS <= flops <= MAX_BUDGET_FLOPS):
        lo, hi = (b / per_hour if per_hour > 0 else math.inf for b in (MIN_BUDGET_FLOPS, MAX_BUDGET_FLOPS))
        raise RooflineError(f"--budget-gpu-hours must be between {lo:.3g} and {hi:.3g} here ({MIN_BUDGET_FLOPS:g} "
                            f"to {MAX_BUDGET_FLOPS:g} FLOPs at MFU {r['mfu']:.1%}), got {gpu_hours:g}",
                            hint="give the GPU-hours of the training budget, e.g. 1e6", exit_code=2)
    return flops


def register(app: typer.Typer) -> None:
    """Add `roofline train` to `app`."""

    @app.command("train")
    def train(
        model: ModelOpt = "llama-3.1-8b", gpu: GpuOpt = None,
        gpus: Annotated[Optional[int], typer.Option("--gpus", help="GPUs in the job [default: tp x pp x dp x cp].")] = None,
        tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree (with sequence parallelism).")] = 1,
        pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel stages.")] = 1,
        dp: Annotated[Optional[int], typer.Option("--dp", help="Data-parallel degree [default: gpus / (tp x pp x cp)].")] = None,
        cp: Annotated[int, typer.Option("--cp", help="Context-parallel degree (the sequence split over cp GPUs).")] = 1,
        ep: Annotated[int, typer.Option("--ep", help="Expert-parallel degree (MoE; divides dp x cp).")] = 1,
        micro_batch: Annotated[int, typer.Option("--micro-batch", help="Sequences per micro-batch.")] = 1,
        global_batch: Annotated[int, typer.Option("--global-batch", help="Sequences per optimizer step.")] = 512,
        seq: Annotated[int, typer.Option("--seq", help="Sequence length in tokens.")] = 4096,
        zero: Annotated[int, typer.Option("--zero", help="ZeRO stage: 0 none, 1 optimizer states (distributed "
                                          "optimizer), 2 + gradients, 3 + weights (FSDP).")] = 1,
        recompute: Annotated[str, typer.Option("--recompute", help="Activation recomputation: none, selective "
                                               "(attention core, as FlashAttention) or full.")] = "selective",
        precision: Annotated[str, typer.Option("--precision", help="Compute (GEMM) precision: bf16, fp16 or fp8.")] = "bf16",
        weights: Annotated[str, typer.Option("--weights", help="Weights precision.")] = "bf16",
        grads: Annotated[str, typer.Option("--grads", help="Gradients precision.")] = "bf16",
        master: Annotated[str, typer.Option("--master", help="Master weights precision (or none).")] = "fp32",
        optimizer: Annotated[str, typer.Option("--optimizer-states", help="Adam moments precision.")] = "fp32",
        virtual_stages: Annotated[int, typer.Option("--virtual-stages", help="Interleaved pipeline: model chunks "
                                                    "per GPU (1 = 1F1B).")] = 1,
        dp_overlap: Annotated[float, typer.Option("--dp-overlap", help="Assumed fraction of data-parallel "
                                                  "communication that may hide behind compute (0-1; FSDP prefetch "
                                                  "under ZeRO 3).")] = 1.0,
        attention_kernel: Annotated[str, typer.Option("--attention-kernel", help="Attention kernel: flash2 or "
                                                      "flash3 (timed from their measured throughput), or unfused "
                                                      "(before FlashAttention: the score matrix through memory, as "
                                                      "2021-2022 Megatron).")] = "flash2",
        tokens: Annotated[Optional[float], typer.Option("--tokens", help="Train on this many tokens: time, "
                                                        "GPU-hours, energy.")] = None,
        storage_bandwidth_gbps: Annotated[Optional[float], typer.Option("--storage-bandwidth-gbps", help="Checkpoint "
                                                                        "write bandwidth, GB/s.")] = None,
        mtbf_h: Annotated[Optional[float], typer.Option("--mtbf-h", help="Job mean time between failures, hours "
                                                        "(Young checkpoint interval).")] = None,
        search: Annotated[bool, typer.Option("--search", help="Rank the layouts of --gpus GPUs that fit, by "
                                             "throughput.")] = False,
        top: Annotated[int, typer.Option("--top", help="Layouts --search shows.")] = 10,
        budget_flops: Annotated[Optional[float], typer.Option("--budget-flops", help="Compute-optimal size for "
                                                              "this many training FLOPs.")] = None,
        budget_gpu_hours: Annotated[Optional[float], typer.Option("--budget-gpu-hours", help="Compute-optimal size "
                                                                  "for GPU-hours at the layout's predicted MFU.")] = None,
        sizing: Annotated[str, typer.Option("--sizing", help="Chinchilla fit: parametric (approach 3) or "
                                            "tokens_per_parameter (20 tokens per parameter).")] = "parametric",
        fmt: FormatOpt = Format.table,
    ) -> None:
        """Plan a training run: memory per GPU (weights, gradients, optimizer, activations), step time on the
        roofline with TP/PP/DP/CP/EP communication, tokens/s, MFU/HFU, time and GPU-hours for --tokens, and
        checkpoints; --search ranks layouts; --budget-flops / --budget-gpu-hours size the model (Chinchilla)."""
        from roofline.model.training import Layout, Recipe
        from roofline.plan import training as tr
        g = load_gpu(gpu or DEFAULT_GPU)
        m = load_model(model)
        recipe = Recipe(weights=weights, grads=grads, master=master, optimizer=optimizer, compute=precision,
                        zero=zero, recompute=recompute, virtual_stages=virtual_stages, dp_overlap=dp_overlap,
                        attention_kernel=attention_kernel)
        if search:
            if gpus is None:
                raise RooflineError("--search needs --gpus", hint="e.g. --search --gpus 64", exit_code=2)
            rows = tr.search(m, g, gpus, global_batch, seq, recipe, top=top, ep=ep)
            if not rows:
                raise RooflineError(f"no layout of {gpus} {g.name} fits {m.name} at a global batch of {global_batch} "
                                    f"x {seq} tokens", hint="more GPUs, a higher --zero, --recompute full, or a "
                                    "batch that divides", exit_code=1)
            emit({"model": m.name, "gpu": g.name, "gpus": gpus, "layouts": rows}, fmt, out,
                 lambda: _search_tables(rows, f"Best layouts: {m.name} on {gpus} {g.name}"), lambda: rows)
            return
        if dp is None:  # derived from --gpus: the degrees it divides by must be whole numbers >= 1 first
            for flag, v in (("--tp", tp), ("--pp", pp), ("--cp", cp), ("--gpus", gpus)):
                if v is not None and v < 1:
                    raise RooflineError(f"{flag} must be >= 1, got {v}", hint="layout degrees and GPU counts are "
                                        "whole numbers >= 1", exit_code=2)
            base = tp * pp * cp
            total = gpus if gpus is not None else base
            if total % base:
                raise RooflineError(f"--gpus {total} is not a multiple of --tp x --pp x --cp = {base}", hint="pick --gpus as --tp x --pp x --cp x a data-parallel degree, or leave --gpus out", exit_code=2)
            dp = total // base
        layout = Layout.of(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, micro_batch=micro_batch, global_batch=global_batch,
                           seq=seq)
        storage = None if storage_bandwidth_gbps is None else storage_bandwidth_gbps * GB
        r = tr.plan(m, g, layout, recipe, gpus=gpus, tokens=tokens, storage_bytes_per_s=storage,
                    mtbf_s=None if mtbf_h is None else mtbf_h * 3600.0)
        if budget_flops is not None or budget_gpu_hours is not None:
            if budget_flops is not None and budget_gpu_hours is not None:
                raise RooflineError("give --budget-flops or --budget-gpu-hours, not both", hint="one budget at a time: a FLOP count or GPU-hours", exit_code=2)
            flops = budget_flops if budget_flops is not None else _gpu_hours_flops(budget_gpu_hours, r)
            s = tr.compute_optimal(flops, sizing)
            s["fleet"] = tr.fleet_days(flops, r["gpus"], r["peak_flops_per_s"], r["mfu"])
            emit(s, fmt, out, lambda: _sizing_tables(s), lambda: [{k: v for k, v in s.items() if k != "fleet"}])
            return
        emit(r, fmt, out, lambda: _run_tables(r), lambda: [{k: r[k] for k in _RUN_KEYS}])
