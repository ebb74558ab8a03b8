"""`roofline plot`, `roofline report`, `roofline spreadsheet`: parse, call roofline.plots / report / spreadsheet,
print the paths written (stdout is data: one path per line)."""
from __future__ import annotations

import math
import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from roofline.model.analysis import Scenario, analyze
from roofline.cli.common import (DEFAULT_GPU, ActOpt, BatchOpt, ContextOpt, GpuOpt, KvOpt, MemOpt, ModelOpt, OutputOpt,
                                  ProfileOpt, PromptOpt, TpOpt, WeightsOpt, comma_list, load_device, memory_settings,
                                  out, warn)
from roofline.cli.train import (TrainBatchOpt, TrainGpusOpt, TrainPrecisionOpt, TrainRecomputeOpt, TrainSeqOpt,
                                 TrainZeroOpt, report_training)
from roofline.cli.engine_options import engine_options
from roofline.errors import RooflineError
from roofline.model.memory import EngineKnobs
from roofline.specs.engines import list_engines
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.precision import PRECISION_SET_RULE, PrecisionSet

GpusOpt = Annotated[str, typer.Option("--gpus", help="GPUs to compare / draw, comma-separated (the --gpu is "
                                      "always included).")]
SloTpotOpt = Annotated[float, typer.Option("--slo-tpot-ms", help="TPOT service-level objective (ms).")]

DEFAULT_COMPARE = "h100-sxm,a100-sxm-80gb,h200-sxm"


class PlotKind(str, Enum):
    roofline = "roofline"
    regime = "regime"
    latency = "latency"
    memory = "memory"
    compare = "compare"


def _setup(gpu, model, batch, prompt, output, context, tp, weights, activations, kv, mem_util, profile):
    """(GPUSpec, ModelConfig, Scenario, Efficiency|None, profile dict|None); `mem_util` is the engine and its
    knobs (EngineKnobs) or a bare vLLM memory fraction."""
    g, eff = load_device(gpu, profile, activations)
    m = load_model(model)
    ms = mem_util.settings(g, tp) if isinstance(mem_util, EngineKnobs) else memory_settings(mem_util)
    sc = Scenario(batch, prompt, output, context, tp, weights, activations, kv, ms).checked(m)
    prof = None
    if profile is not None:
        from roofline.measure.profile import load_profile
        prof = load_profile(profile)
    return g, m, sc, eff, prof


def _positive(flag: str, value: float, hint: str, scale: float = 1.0) -> None:
    """Reject a value that is not a finite number > 0 (NaN and inf included), or that becomes 0 once converted
    to SI units (value x scale, e.g. milliseconds to seconds), with exit code 2."""
    if not (math.isfinite(value) and value > 0 and value * scale > 0):
        raise RooflineError(f"{flag} must be a positive number, got {value}", hint=hint, exit_code=2)


SLO_HINT = "the TPOT target in milliseconds, e.g. 50"


def _gpus(text: str, first) -> list:
    return [first] + [load_gpu(n) for n in comma_list(text) if n.lower() != first.name.lower()]


def _command(name: str, **opts) -> str:
    """The exact command line, every option spelled out (defaults included) so the result does not drift."""
    parts = ["roofline", name]
    for k, v in opts.items():
        if isinstance(v, EngineKnobs):  # --engine and the knobs set
            parts += ["--engine", v.spec.name if v.spec.name in list_engines() else v.spec.path]
            for knob in ("max_seqs", "max_batched_tokens", "kv_cache_fraction", "page_tokens"):
                if getattr(v, knob) is not None:
                    parts += [f"--{knob.replace('_', '-')}", str(getattr(v, knob))]
            for knob in ("chunked_prefill", "cuda_graphs"):
                if getattr(v, knob) is not None:
                    parts.append(f"--{'' if getattr(v, knob) else 'no-'}{knob.replace('_', '-')}")
            continue
        if v is None:
            continue
        parts += [f"--{k.replace('_', '-')}", str(v.value if isinstance(v, Enum) else v)]
    return shlex.join(parts)


def register(app: typer.Typer) -> None:
    app.command("plot")(plot)
    app.command("report")(report)
    app.command("spreadsheet")(spreadsheet)


def plot(
    kind: Annotated[PlotKind, typer.Argument(help="roofline, regime, latency, memory or compare.")],
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b", batch: BatchOpt = 1, prompt: PromptOpt = 1024,
    output: OutputOpt = 256, context: ContextOpt = None, tp: TpOpt = 1, weights: WeightsOpt = "bf16",
    activations: ActOpt = "bf16", kv: KvOpt = "bf16", memory_utilization: MemOpt = 0.9, profile: ProfileOpt = None,
    gpus: GpusOpt = DEFAULT_COMPARE,
    precisions: Annotated[str, typer.Option("--precisions", help="latency: precision sets to draw on the --gpu, "
                                            f"comma-separated: {PRECISION_SET_RULE}.")] = "bf16,fp8",
    metric: Annotated[str, typer.Option("--metric", help="regime: intensity or time.")] = "intensity",
    axis: Annotated[str, typer.Option("--axis", help="memory: batch or context.")] = "batch",
    slo_tpot_ms: SloTpotOpt = 50.0,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (.png or .svg) "
                                                     "[default: reports/plots/<kind>-<model>-<gpu>.png]; "
                                                     "replaced if it exists.")] = None,
) -> None:
    """Write one plot (PNG or SVG, slide-sized) and print its path."""
    from roofline.report import plots

    _positive("--slo-tpot-ms", slo_tpot_ms, SLO_HINT, 1e-3)
    if kind == PlotKind.latency and not comma_list(precisions):
        raise RooflineError(f"--precisions {precisions!r} names no precision set", exit_code=2,
                            hint="comma-separated sets such as bf16,fp8 or int4/bf16/fp8")
    g, m, sc, eff, prof = _setup(gpu, model, batch, prompt, output, context, tp, weights, activations, kv,
                                 memory_utilization, profile)
    if kind == PlotKind.roofline:
        fig = plots.roofline_chart(g, m, sc, eff, prof)
    elif kind == PlotKind.regime:
        fig = plots.regime_map(g, m, sc, eff, metric)
    elif kind == PlotKind.latency:
        sets = [PrecisionSet.parse(p) for p in comma_list(precisions)]
        usable = [p for p in sets if p.activations in g.peak_flops_per_s]  # e.g. no fp8 on an A100
        if not usable:
            raise RooflineError(f"{g.display_name} computes in none of --precisions {precisions}",
                                hint="it computes in: " + ", ".join(sorted(g.peak_flops_per_s)), exit_code=2)
        series = [(f"{g.name} {p.label}", g, p.label) for p in usable]
        prec = f"{weights}/{activations}/{kv}"
        series += [(f"{o.name} {prec}", o, prec) for o in _gpus(gpus, g)[1:]]
        fig = plots.latency_throughput(series, m, sc, eff, slo_tpot_ms / 1e3)
    elif kind == PlotKind.memory:
        fig = plots.memory_breakdown(g, m, sc, axis, None, eff)
    else:
        fig = plots.gpu_comparison(_gpus(gpus, g), m, sc, eff)
    from roofline.report.document import default_name
    path = plots.save(fig, out_path or Path("reports") / "plots" / f"{kind.value}-{default_name(m, g)}.png")
    out.print(str(path), highlight=False, soft_wrap=True)


@engine_options
def report(
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b", batch: BatchOpt = 1, prompt: PromptOpt = 1024,
    output: OutputOpt = 256, context: ContextOpt = None, tp: TpOpt = 1, weights: WeightsOpt = "bf16",
    activations: ActOpt = "bf16", kv: KvOpt = "bf16", engine: EngineKnobs = None, profile: ProfileOpt = None,
    gpus: GpusOpt = DEFAULT_COMPARE, slo_tpot_ms: SloTpotOpt = 50.0,
    train_gpus: TrainGpusOpt = None, train_global_batch: TrainBatchOpt = 512, train_seq: TrainSeqOpt = 4096,
    train_zero: TrainZeroOpt = 1, train_recompute: TrainRecomputeOpt = "selective", train_precision: TrainPrecisionOpt = "bf16",
    name: Annotated[Optional[str], typer.Option("--name", help="Report folder name [default: <model>-<gpu>].")] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Parent folder of the reports (an existing report "
                                          "folder of the same name is regenerated: its report files are "
                                          "replaced, other files kept).")] = Path("reports"),
) -> None:
    """Write reports/<name>/: index.html (self-contained: plots, tables, inputs, the command that reproduces
    it), report.md, plots as PNG and SVG, analysis.json and sweep.csv (with --train-gpus: a training section and
    training.json). Prints the index.html path."""
    from roofline.report.document import ReportSpec, default_name, write_report

    _positive("--slo-tpot-ms", slo_tpot_ms, SLO_HINT, 1e-3)
    g, m, sc, eff, prof = _setup(gpu, model, batch, prompt, output, context, tp, weights, activations, kv,
                                 engine, profile)
    cmd = _command("report", gpu=gpu or (None if profile else DEFAULT_GPU), model=model, batch=batch, prompt=prompt,
                   output=output, context=context,
                   tp=tp, weights=weights, activations=activations, kv=kv, engine=engine,
                   profile=profile, gpus=gpus, slo_tpot_ms=slo_tpot_ms, **({} if train_gpus is None else dict(
                       train_gpus=train_gpus, train_global_batch=train_global_batch, train_seq=train_seq,
                       train_zero=train_zero, train_recompute=train_recompute, train_precision=train_precision)))
    training = report_training(m, g, train_gpus, train_global_batch, train_seq, train_zero, train_recompute,
                               train_precision)
    spec = ReportSpec(g, m, sc, cmd, eff, prof, str(profile) if profile else None, _gpus(gpus, g)[1:],
                      slo_tpot_ms / 1e3, training)
    path = write_report(out_dir / _safe(name or default_name(m, g)), spec)
    out.print(str(path), highlight=False, soft_wrap=True)


def _safe(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RooflineError(f"bad report name {name!r}", hint="a plain folder name such as llama-h100", exit_code=2)
    return name


@engine_options
def spreadsheet(
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b", batch: BatchOpt = 32, prompt: PromptOpt = 1024,
    output: OutputOpt = 256, context: ContextOpt = None, tp: TpOpt = 1, weights: WeightsOpt = "bf16",
    activations: ActOpt = "bf16", kv: KvOpt = "bf16", engine: EngineKnobs = None, profile: ProfileOpt = None,
    requests_per_s: Annotated[float, typer.Option("--requests-per-s", help="Traffic: requests per second.")] = 10.0,
    slo_ttft_ms: Annotated[float, typer.Option("--slo-ttft-ms", help="TTFT service-level objective (ms).")] = 500.0,
    slo_tpot_ms: SloTpotOpt = 50.0,
    gpu_hour_usd: Annotated[float, typer.Option("--gpu-hour-usd", help="Price of one GPU-hour (USD; an "
                                                "illustrative default, set your own).")] = 2.5,
    train_gpus: TrainGpusOpt = None, train_global_batch: TrainBatchOpt = 512, train_seq: TrainSeqOpt = 4096,
    train_zero: TrainZeroOpt = 1, train_recompute: TrainRecomputeOpt = "selective", train_precision: TrainPrecisionOpt = "bf16",
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Workbook to write (.xlsx) "
                                                     "[default: reports/<model>-<gpu>/capacity.xlsx]; it and <name>-sweep.csv "
                                                     "beside it are replaced if they exist.")] = None,
) -> None:
    """Write a capacity-sizing workbook whose figures are live Excel formulas of its Inputs sheet (KV bytes/token,
    KV capacity, max batch, per-operator decode step, TPOT, throughput per GPU, GPUs needed, $/1M tokens), and
    the batch x context sweep beside it as CSV. Prints both paths."""
    from roofline.outfile import check_target, write_text
    from roofline.report.render import rows_to_csv
    from roofline.report.document import SWEEP_BATCHES, SWEEP_CONTEXTS, default_name
    from roofline.report.render import columns_to_rows
    from roofline.report.spreadsheet import Traffic, write_workbook
    from roofline.model.sweep import sweep

    for flag, v, hint, scale in (("--requests-per-s", requests_per_s, "the arrival rate of requests, e.g. 10", 1.0),
                                 ("--slo-ttft-ms", slo_ttft_ms, "the TTFT target in milliseconds, e.g. 500", 1e-3),
                                 ("--slo-tpot-ms", slo_tpot_ms, SLO_HINT, 1e-3),
                                 ("--gpu-hour-usd", gpu_hour_usd, "the price of one GPU-hour in USD, e.g. 2.5", 1.0)):
        _positive(flag, v, hint, scale)
    g, m, sc, eff, _ = _setup(gpu, model, batch, prompt, output, context, tp, weights, activations, kv,
                              engine, profile)
    warn(analyze(g, m, sc, eff)["warnings"])  # a deployment that does not fit says so here and in the workbook
    rows = columns_to_rows(sweep(g, m, SWEEP_BATCHES, SWEEP_CONTEXTS, [sc.tp],
                                 [f"{sc.weights}/{sc.activations}/{sc.kv}"], eff, sc.memory))
    traffic = Traffic(requests_per_s, slo_ttft_ms / 1e3, slo_tpot_ms / 1e3, gpu_hour_usd)
    path = out_path or Path("reports") / default_name(m, g) / "capacity.xlsx"
    csv_path = path.with_name(path.stem + "-sweep.csv")
    check_target(csv_path, True, "sweep CSV")  # both paths checked before either file is written
    training = report_training(m, g, train_gpus, train_global_batch, train_seq, train_zero, train_recompute,
                               train_precision)
    path, _ = write_workbook(path, g, m, sc, eff, traffic, rows, training=training)
    write_text(csv_path, rows_to_csv(rows), True, "sweep CSV")
    out.print(str(path), highlight=False, soft_wrap=True)
    out.print(str(csv_path), highlight=False, soft_wrap=True)
