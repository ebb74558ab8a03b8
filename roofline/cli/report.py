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
from roofline.cli.common import (DEFAULT_GPU, BatchOpt, ContextOpt, GpuOpt, ModelOpt, OptActOpt, OptKvOpt,
                                  OptWeightsOpt, OutputOpt, ProfileOpt, PromptOpt, ScenarioPrecisionOpt, TpOpt, alias,
                                  comma_list, out, path_option, scenario_device, status, strict_list, warn)
from roofline.cli.train import (TrainBatchOpt, TrainGpusOpt, TrainPrecisionOpt, TrainRecomputeOpt, TrainSeqOpt,
                                 TrainZeroOpt, report_training)
from roofline.cli.engine_options import engine_options
from roofline.cli.capacity import RateOpt, WorkloadOpt, parse_prices
from roofline.errors import RooflineError
from roofline.model.memory import EngineKnobs
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.precision import PRECISION_SET_RULE, PrecisionSet
from roofline.specs.workload import workload_from_options

GpusOpt = Annotated[str, typer.Option("--gpus", help="GPUs to compare / draw, comma-separated (the --gpu is "
                                      "always included; a GPU that lacks the compute precision is left out with a "
                                      "warning; empty: none).")]
TpotOpt = Annotated[Optional[float], typer.Option("--tpot-p99-s", help="SLO: p99 time per output token (s) "
                                                  "[default: 0.05].")]
TtftOpt = Annotated[Optional[float], typer.Option("--ttft-p99-s", help="SLO: p99 time to first token (s) "
                                                  "[default: 0.5].")]
OldTpotOpt = Annotated[Optional[float], typer.Option("--slo-tpot-ms", hidden=True, help="Old name of --tpot-p99-s, "
                                                     "in ms.")]
DEFAULT_TPOT_S = 0.05
DEFAULT_TTFT_S = 0.5
#: the spreadsheet's traffic (requests/s) and price (USD per GPU-hour) when none is given
DEFAULT_RATE = 10.0
DEFAULT_PRICE = 2.5


def _or(value, default):
    return default if value is None else value


def _usd(price: Optional[str]) -> Optional[float]:
    """The USD of the spreadsheet's --price, written USD or GPU=USD (the GPU is checked against --gpu later)."""
    if price is None:
        return None
    text = price.partition("=")[2] if "=" in price else price
    try:
        return float(text)
    except ValueError:
        raise RooflineError(f"--price takes USD per GPU-hour, got {price!r}", hint="e.g. --price 2.5 or --price "
                            "h100-sxm=2.5", exit_code=2) from None

DEFAULT_COMPARE = "h100-sxm,a100-sxm-80gb,h200-sxm"
#: the report's Capacity section (`roofline capacity` over the report's GPUs): its traffic, TTFT SLO and prices
ReportTtftOpt = Annotated[Optional[float], typer.Option("--ttft-p99-s", help="SLO of the Capacity section: p99 time "
                                                        "to first token (s) [default: the workload file's, else "
                                                        "none].")]
PriceOpt = Annotated[Optional[list[str]], typer.Option("--price", help="GPU=USD per GPU-hour (repeat) for the "
                                                       "Capacity section.")]


class PlotKind(str, Enum):
    roofline = "roofline"
    regime = "regime"
    latency = "latency"
    memory = "memory"
    compare = "compare"


def _setup(gpu, model, batch, prompt, output, context, tp, precision, weights, activations, kv, engine, profile):
    """(GPUSpec, ModelConfig, Scenario, Efficiency|None, profile dict|None); `precision` is one precision set
    whose parts --weights/--activations/--kv override (see common.scenario_device); `engine` the engine and its
    knobs (EngineKnobs)."""
    g, eff, (weights, activations, kv) = scenario_device(gpu, profile, precision, weights, activations, kv)
    m = load_model(model)
    ms = engine.settings(g, tp)
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


TPOT_HINT = "the p99 TPOT target in seconds, e.g. 0.05"


def _tpot_s(tpot_p99_s: Optional[float], slo_tpot_ms: Optional[float]) -> float:
    """--tpot-p99-s, or the old --slo-tpot-ms (milliseconds), each checked under the flag the user wrote."""
    if slo_tpot_ms is not None:
        _positive("--slo-tpot-ms", slo_tpot_ms, "the TPOT target in milliseconds, e.g. 50", 1e-3)
    if tpot_p99_s is not None:
        _positive("--tpot-p99-s", tpot_p99_s, TPOT_HINT)
    t = alias(tpot_p99_s, slo_tpot_ms, "--tpot-p99-s", "--slo-tpot-ms", 1e-3)
    return DEFAULT_TPOT_S if t is None else t


def _gpus(text: str, first) -> list:
    """The --gpu and the --gpus to compare with it (each once)."""
    others = [load_gpu(n) for n in strict_list(text, "--gpus", "h100-sxm,h200-sxm")]
    return [first] + [o for o in dict((o.name, o) for o in others).values() if o.name != first.name]


def _left_out(gpus: list, activations: str) -> list[str]:
    """The note for GPUs that do not compute in `activations` (an A100 has no fp8); empty when all do."""
    left = [o.name for o in gpus if activations not in o.peak_flops_per_s]
    return [f"left out of the GPU comparison: {', '.join(left)} (no {activations} compute); compare them with "
            "--activations bf16"] if left else []


def _computing(gpus: list, activations: str) -> list:
    """The GPUs that compute in `activations`: the others are left out with a warning (_left_out)."""
    warn(_left_out(gpus, activations))
    return [o for o in gpus if activations in o.peak_flops_per_s]


def _command(name: str, **opts) -> str:
    """The exact command line, every option spelled out (defaults included) so the result does not drift."""
    parts = ["roofline", name]
    for k, v in opts.items():
        if isinstance(v, EngineKnobs):  # --engine and the knobs set
            from roofline.report.document import engine_args
            parts += engine_args(v)
            continue
        if v is None:
            continue
        if isinstance(v, list):  # a repeated option (--price)
            parts += [x for item in v for x in (f"--{k.replace('_', '-')}", str(item))]
            continue
        parts += [f"--{k.replace('_', '-')}", str(v.value if isinstance(v, Enum) else v)]
    return shlex.join(parts)


def register(app: typer.Typer) -> None:
    app.command("plot")(plot)
    app.command("report")(report)
    app.command("spreadsheet")(spreadsheet)


@engine_options
def plot(
    kind: Annotated[PlotKind, typer.Argument(help="roofline, regime, latency, memory or compare.")],
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b", batch: BatchOpt = 1, prompt: PromptOpt = 1024,
    output: OutputOpt = 256, context: ContextOpt = None, tp: TpOpt = 1,
    precision: Annotated[Optional[str], typer.Option("--precision", help="Precision sets, comma-separated: "
                                                     f"{PRECISION_SET_RULE}. The first is the scenario's (a "
                                                     "--weights, --activations or --kv beside it overrides its "
                                                     "part); latency draws each on the --gpu [default: bf16; "
                                                     "latency: bf16,fp8].")] = None,
    weights: OptWeightsOpt = None, activations: OptActOpt = None, kv: OptKvOpt = None,
    engine: EngineKnobs = None, profile: ProfileOpt = None,
    gpus: GpusOpt = DEFAULT_COMPARE,
    metric: Annotated[str, typer.Option("--metric", help="regime: intensity or time.")] = "intensity",
    axis: Annotated[str, typer.Option("--axis", help="memory: batch or context.")] = "batch",
    tpot_p99_s: TpotOpt = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (.png or .svg) "
                                                     "[default: reports/plots/<kind>-<model>-<gpu>.png]; "
                                                     "replaced if it exists.")] = None,
    precisions: Annotated[Optional[str], typer.Option("--precisions", hidden=True,
                                                      help="Old name of --precision.")] = None,
    slo_tpot_ms: OldTpotOpt = None,
) -> None:
    """Write one plot (PNG or SVG, slide-sized) and print its path."""
    from roofline.report import plots

    slo_s = _tpot_s(tpot_p99_s, slo_tpot_ms)
    flag = "--precisions" if precisions is not None and precision is None else "--precision"
    precision = alias(precision, precisions, "--precision", "--precisions")
    sets = None
    if precision is not None:
        sets = comma_list(precision)
        if not sets:
            raise RooflineError(f"{flag} {precision!r} names no precision set", exit_code=2,
                                hint="comma-separated sets such as bf16,fp8 or int4/bf16/fp8")
        if len(sets) > 1 and kind != PlotKind.latency:
            raise RooflineError(f"{flag} takes one precision set for plot {kind.value}, got {precision!r}",
                                hint="several sets are drawn by plot latency", exit_code=2)
    g, m, sc, eff, prof = _setup(gpu, model, batch, prompt, output, context, tp, sets[0] if sets else None,
                                 weights, activations, kv, engine, profile)
    if kind == PlotKind.roofline:
        fig = plots.roofline_chart(g, m, sc, eff, prof)
    elif kind == PlotKind.regime:
        fig = plots.regime_map(g, m, sc, eff, metric)
    elif kind == PlotKind.latency:
        drawn = [PrecisionSet.parse(p) for p in (sets or ["bf16", "fp8"])]
        usable = [p for p in drawn if p.activations in g.peak_flops_per_s]  # e.g. no fp8 on an A100
        if not usable:
            raise RooflineError(f"{g.display_name} computes in none of {flag} {precision or 'bf16,fp8'}",
                                hint="it computes in: " + ", ".join(sorted(g.peak_flops_per_s)), exit_code=2)
        series = [(f"{g.name} {p.label}", g, p.label) for p in usable]
        prec = f"{sc.weights}/{sc.activations}/{sc.kv}"
        series += [(f"{o.name} {prec}", o, prec) for o in _computing(_gpus(gpus, g)[1:], sc.activations)]
        fig = plots.latency_throughput(series, m, sc, eff, slo_s)
    elif kind == PlotKind.memory:
        fig = plots.memory_breakdown(g, m, sc, axis, None, eff)
    else:
        fig = plots.gpu_comparison([g, *_computing(_gpus(gpus, g)[1:], sc.activations)], m, sc, eff)
    from roofline.report.document import default_name
    path = plots.save(fig, out_path or Path("reports") / "plots" / f"{kind.value}-{default_name(m, g)}.png")
    out.print(str(path), highlight=False, soft_wrap=True)


@engine_options
def report(
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b", batch: BatchOpt = 1, prompt: PromptOpt = 1024,
    output: OutputOpt = 256, context: ContextOpt = None, tp: TpOpt = 1, precision: ScenarioPrecisionOpt = None,
    weights: OptWeightsOpt = None, activations: OptActOpt = None, kv: OptKvOpt = None,
    engine: EngineKnobs = None, profile: ProfileOpt = None,
    gpus: GpusOpt = DEFAULT_COMPARE, tpot_p99_s: TpotOpt = None,
    workload: WorkloadOpt = None, rate: RateOpt = None, ttft_p99_s: ReportTtftOpt = None, price: PriceOpt = None,
    train_gpus: TrainGpusOpt = None, train_global_batch: TrainBatchOpt = 512, train_seq: TrainSeqOpt = 4096,
    train_zero: TrainZeroOpt = 1, train_recompute: TrainRecomputeOpt = "selective", train_precision: TrainPrecisionOpt = "bf16",
    name: Annotated[Optional[str], typer.Option("--name", help="Report folder name [default: <model>-<gpu>].")] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Parent folder of the reports (an existing report "
                                          "folder of the same name is regenerated: its report files are "
                                          "replaced, other files kept).")] = Path("reports"),
    slo_tpot_ms: OldTpotOpt = None,
) -> None:
    """Write reports/<name>/: index.html (self-contained: plots, tables, inputs, the command that reproduces
    it), report.md, plots as PNG and SVG, analysis.json and sweep.csv (with --train-gpus: a training section and
    training.json; with --workload or --rate: a Capacity section first, `roofline capacity` over the report's
    GPUs with its verdict at the top, and capacity.json). Prints the index.html path."""
    from roofline.report.document import ReportSpec, default_name, write_report

    slo_s = _tpot_s(tpot_p99_s, slo_tpot_ms)
    g, m, sc, eff, prof = _setup(gpu, model, batch, prompt, output, context, tp, precision, weights, activations,
                                 kv, engine, profile)
    workload = path_option(workload, "--workload")
    w = None
    if workload is not None or rate is not None:  # the report's request unless a workload file says otherwise
        explicit = tpot_p99_s is not None or slo_tpot_ms is not None
        w = workload_from_options(workload, rate, None if workload else str(sc.prompt),
                                  None if workload else str(sc.output), None, None, ttft_p99_s,
                                  slo_s if explicit or workload is None else None)
        slo_s = w.slo.tpot_p99_s or slo_s  # one TPOT SLO on the whole page: the workload's
    elif ttft_p99_s is not None or price:
        raise RooflineError("--ttft-p99-s and --price size the Capacity section, which needs traffic", exit_code=2,
                            hint="add --rate N (requests per second) or --workload FILE")
    others = _gpus(gpus, g)[1:]
    compare = _computing(others, sc.activations)
    cmd = _command("report", gpu=gpu or (None if profile else DEFAULT_GPU), model=model, batch=batch, prompt=prompt,
                   output=output, context=context,
                   tp=tp, weights=sc.weights, activations=sc.activations, kv=sc.kv, engine=engine,
                   profile=profile, gpus=",".join(o.name for o in compare), tpot_p99_s=slo_s, workload=workload,
                   rate=rate, ttft_p99_s=ttft_p99_s, price=price, **({} if train_gpus is None else dict(
                       train_gpus=train_gpus, train_global_batch=train_global_batch, train_seq=train_seq,
                       train_zero=train_zero, train_recompute=train_recompute, train_precision=train_precision)))
    training = report_training(m, g, train_gpus, train_global_batch, train_seq, train_zero, train_recompute,
                               train_precision)
    spec = ReportSpec(g, m, sc, cmd, eff, prof, str(profile) if profile else None, compare, slo_s, training,
                      workload=w, workload_path=None if workload is None else str(workload),
                      prices=parse_prices(price or []), engine=engine,
                      notes=tuple(_left_out(others, sc.activations)))
    with status(f"Writing the report for {m.name} on {g.display_name}: analysis, plots, comparison, sweep"):
        path = write_report(out_dir / _safe(name or default_name(m, g)), spec)
    out.print(str(path), highlight=False, soft_wrap=True)


def _safe(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RooflineError(f"bad report name {name!r}", hint="a plain folder name such as llama-h100", exit_code=2)
    return name


@engine_options
def spreadsheet(
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b", batch: BatchOpt = 32, prompt: PromptOpt = 1024,
    output: OutputOpt = 256, context: ContextOpt = None, tp: TpOpt = 1, precision: ScenarioPrecisionOpt = None,
    weights: OptWeightsOpt = None, activations: OptActOpt = None, kv: OptKvOpt = None,
    engine: EngineKnobs = None, profile: ProfileOpt = None,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Traffic: requests per second "
                                                  f"[default: {DEFAULT_RATE:g}].")] = None,
    ttft_p99_s: TtftOpt = None, tpot_p99_s: TpotOpt = None,
    price: Annotated[Optional[str], typer.Option("--price", help="USD per GPU-hour of the --gpu: USD or GPU=USD "
                                                 "as capacity takes it (an illustrative default, set your own) "
                                                 f"[default: {DEFAULT_PRICE:g}].")] = None,
    train_gpus: TrainGpusOpt = None, train_global_batch: TrainBatchOpt = 512, train_seq: TrainSeqOpt = 4096,
    train_zero: TrainZeroOpt = 1, train_recompute: TrainRecomputeOpt = "selective", train_precision: TrainPrecisionOpt = "bf16",
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Workbook to write (.xlsx) "
                                                     "[default: reports/<model>-<gpu>/capacity.xlsx]; it and <name>-sweep.csv "
                                                     "beside it are replaced if they exist.")] = None,
    requests_per_s: Annotated[Optional[float], typer.Option("--requests-per-s", hidden=True,
                                                            help="Old name of --rate.")] = None,
    slo_ttft_ms: Annotated[Optional[float], typer.Option("--slo-ttft-ms", hidden=True, help="Old name of "
                                                         "--ttft-p99-s, in ms.")] = None,
    slo_tpot_ms: OldTpotOpt = None,
    gpu_hour_usd: Annotated[Optional[float], typer.Option("--gpu-hour-usd", hidden=True,
                                                          help="Old name of --price.")] = None,
) -> None:
    """Write a capacity-sizing workbook whose figures are live Excel formulas of its Inputs sheet (KV bytes/token,
    KV capacity, max batch, per-operator decode step, TPOT, throughput per GPU, GPUs needed, $/1M tokens), and
    the batch x context sweep beside it as CSV. Prints both paths."""
    from roofline.outfile import check_target, write_text
    from roofline.report.render import rows_to_csv
    from roofline.report.document import SWEEP_BATCHES, SWEEP_CONTEXTS, default_name
    from roofline.report.render import columns_to_rows
    from roofline.report.spreadsheet import Traffic, capacity_figure, workbook_answer, write_workbook
    from roofline.model.sweep import sweep

    for flag, v, hint, scale in (("--rate", rate, "the arrival rate of requests per second, e.g. 10", 1.0),
                                 ("--requests-per-s", requests_per_s, "the arrival rate of requests, e.g. 10", 1.0),
                                 ("--ttft-p99-s", ttft_p99_s, "the p99 TTFT target in seconds, e.g. 0.5", 1.0),
                                 ("--slo-ttft-ms", slo_ttft_ms, "the TTFT target in milliseconds, e.g. 500", 1e-3),
                                 ("--price", _usd(price), "the price of one GPU-hour in USD, e.g. 2.5", 1.0),
                                 ("--gpu-hour-usd", gpu_hour_usd, "the price of one GPU-hour in USD, e.g. 2.5", 1.0)):
        if v is not None:
            _positive(flag, v, hint, scale)
    slo_tpot_s = _tpot_s(tpot_p99_s, slo_tpot_ms)
    rate = _or(alias(rate, requests_per_s, "--rate", "--requests-per-s"), DEFAULT_RATE)
    slo_ttft_s = _or(alias(ttft_p99_s, slo_ttft_ms, "--ttft-p99-s", "--slo-ttft-ms", 1e-3), DEFAULT_TTFT_S)
    price_gpu = price.partition("=")[0].strip() if price is not None and "=" in price else None
    price = _or(alias(_usd(price), gpu_hour_usd, "--price", "--gpu-hour-usd"), DEFAULT_PRICE)
    g, m, sc, eff, _ = _setup(gpu, model, batch, prompt, output, context, tp, precision, weights, activations, kv,
                              engine, profile)
    if price_gpu is not None and load_gpu(price_gpu).name != g.name:
        raise RooflineError(f"--price names {price_gpu}, but the workbook sizes {g.name}",
                            hint=f"--price {g.name}=USD, or just --price USD", exit_code=2)
    result = analyze(g, m, sc, eff)
    warn(result["warnings"])  # a deployment that does not fit says so here and in the workbook
    rows = columns_to_rows(sweep(g, m, SWEEP_BATCHES, SWEEP_CONTEXTS, [sc.tp],
                                 [f"{sc.weights}/{sc.activations}/{sc.kv}"], eff, sc.memory))
    traffic = Traffic(rate, slo_ttft_s, slo_tpot_s, price)
    path = out_path or Path("reports") / default_name(m, g) / "capacity.xlsx"
    csv_path = path.with_name(path.stem + "-sweep.csv")
    check_target(csv_path, True, "sweep CSV")  # both paths checked before either file is written
    training = report_training(m, g, train_gpus, train_global_batch, train_seq, train_zero, train_recompute,
                               train_precision)
    cap = capacity_figure(g, m, sc, eff, traffic)
    path, _ = write_workbook(path, g, m, sc, eff, traffic, rows, training=training, capacity=cap)
    write_text(csv_path, rows_to_csv(rows), True, "sweep CSV")
    from roofline.cli.common import err
    # the verdict first, on stderr (stdout is the paths): the Summary sheet's answer and capacity's beside it
    err.print(workbook_answer(result, g, traffic)["verdict"], style="bold", highlight=False, markup=False,
              soft_wrap=True)
    err.print(f"roofline capacity (p99 queueing model) for the same inputs: {cap['verdict']}", highlight=False,
              markup=False, soft_wrap=True)
    out.print(str(path), highlight=False, soft_wrap=True)
    out.print(str(csv_path), highlight=False, soft_wrap=True)
