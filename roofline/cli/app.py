"""The `roofline` command line: parse, call the library, render. No model math lives here."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from roofline import __version__
from roofline.report import views
from roofline.model.analysis import Scenario, analyze as run_analysis, decode_batching
from roofline.report.verdict import analyze_verdict, headline
from roofline.errors import RooflineError
from roofline.cli.common import (DEPRECATED, BatchOpt, ContextOpt, DpAttentionOpt, EpImbalanceOpt, EpOpt,
                                  FormatOpt, GpuOpt, ModelOpt, OptActOpt, OptKvOpt, OptWeightsOpt, OutputOpt, PpOpt,
                                  PrecisionsOpt, ProfileOpt, PromptOpt, ScenarioPrecisionOpt, TpOpt, LimitOpt, WideOpt,
                                  alias, check_rows, comma_list, err, flag_text, ints, load_device, out,
                                  precision_list, scenario_device, set_table_width, warn)
from roofline.cli.engine_options import engine_options
from roofline.model.memory import EngineKnobs
from roofline.specs.hardware import list_gpus, load_gpu
from roofline.specs.models import list_models, load_model
from roofline.report.render import Format, columns_to_rows, emit
from roofline.model.sweep import nest_row, sweep as run_sweep, valid_layouts

def _typer_exception(name: str) -> type:
    """The click exception class `name` as typer raises it, found through typer's public `BadParameter`:
    typer < 0.29 re-exports click's classes, typer >= 0.29 carries its own copy of click (so importing
    click directly would catch nothing and may not even be installed)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise ImportError(f"typer.BadParameter does not derive from {name}")  # pragma: no cover - typer changed


_USAGE_ERROR = _typer_exception("UsageError")

app = typer.Typer(help="Roofline model of LLM inference: memory- vs compute-bound, latency, capacity, cost.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  add_completion=False)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"roofline {__version__}", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Roofline model of LLM inference: memory- vs compute-bound, latency, capacity, cost."""

def _name_argument(name: Optional[str], what: str, example: str) -> Optional[str]:
    """The NAME argument of `gpus` / `models`; RooflineError (exit 2) for an empty one, which would otherwise
    list everything."""
    if name is not None and not name.strip():
        raise RooflineError(f"the {what} name is empty", hint=f"name one (e.g. roofline {what}s {example}), or "
                            f"leave it out to list them all", exit_code=2)
    return name


@app.command()
def gpus(name: Annotated[Optional[str], typer.Argument(help="Show one GPU's spec with sources.")] = None,
         fmt: FormatOpt = Format.table, wide: WideOpt = False) -> None:
    """List the GPU spec files (dense peaks, bandwidth, ridge points), or show one with its sources."""
    set_table_width(wide)
    name = _name_argument(name, "gpu", "h100-sxm")
    specs = [load_gpu(name)] if name else [load_gpu(n) for n in list_gpus()]
    if name:
        g = specs[0]
        emit(views.gpu_detail(g), fmt, out,
             lambda: views.gpu_detail_table(g), lambda: [views.gpu_row(g)])
    else:
        emit([views.gpu_row(g) for g in specs], fmt, out, lambda: views.gpus_table(specs),
             lambda: [views.gpu_row(g) for g in specs])


@app.command()
def models(name: Annotated[Optional[str], typer.Argument(help="Show one model (name or config.json path).")] = None,
           fmt: FormatOpt = Format.table, wide: WideOpt = False) -> None:
    """List the built-in model catalog, or show one model's dimensions and parameter count."""
    set_table_width(wide)
    if _name_argument(name, "model", "llama-3.1-8b"):
        m = load_model(name)
        d = {**m.to_dict(), "parameters": m.parameters(), "active_parameters": m.active_parameters(),
             "parameter_breakdown": m.parameter_breakdown()}
        emit(d, fmt, out, lambda: views.model_detail_table(d), lambda: [views.model_row(m)])
    else:
        ms = [load_model(n) for n in list_models()]
        emit([views.model_row(m) for m in ms], fmt, out, lambda: views.models_table(ms),
             lambda: [views.model_row(m) for m in ms])


@app.command()
@engine_options
def analyze(
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b",
    batch: BatchOpt = 1, prompt: PromptOpt = 1024, output: OutputOpt = 256, context: ContextOpt = None,
    tp: TpOpt = 1, precision: ScenarioPrecisionOpt = None, weights: OptWeightsOpt = None,
    activations: OptActOpt = None, kv: OptKvOpt = None,
    engine: EngineKnobs = None, profile: ProfileOpt = None, fmt: FormatOpt = Format.table,
    pp: PpOpt = 1, ep: EpOpt = 1, dp_attention: DpAttentionOpt = 1, ep_imbalance: EpImbalanceOpt = 1.0,
    wide: WideOpt = False,
) -> None:
    """Per-operator FLOPs, bytes, intensity, bound and time for prefill and a decode step; TTFT, TPOT,
    end-to-end latency, throughput, memory and KV-cache capacity; collectives (message, group, link,
    algorithm, time) for a multi-GPU layout (--tp, --pp, --ep, --dp-attention)."""
    set_table_width(wide)
    g, eff, (weights, activations, kv) = scenario_device(gpu, profile, precision, weights, activations, kv)
    m = load_model(model)
    sc = Scenario(batch, prompt, output, context, tp, weights, activations, kv, engine.settings(g, tp, pp),
                  pp=pp, ep=ep, dp_attention=dp_attention, ep_imbalance=ep_imbalance)
    r = run_analysis(g, m, sc, eff)
    warn(r["warnings"])
    r = {"verdict": analyze_verdict(r, decode_batching(g, m, sc, eff)), **r}
    emit(r, fmt, out, lambda: [headline(r["verdict"]), *views.analyze_tables(r)], lambda: views.analyze_csv_rows(r))


@app.command()
@engine_options
def sweep(
    gpu: GpuOpt = None, model: ModelOpt = "llama-3.1-8b",
    batch: Annotated[str, typer.Option(help="Batches, comma-separated.")] = "1,2,4,8,16,32,64,128,256",
    context: Annotated[str, typer.Option(help="Contexts (decode position = prompt length), comma-separated.")] = "512,2048,8192",
    tp: Annotated[str, typer.Option(help="Tensor-parallel degrees, comma-separated.")] = "1",
    precision: PrecisionsOpt = "bf16",
    engine: EngineKnobs = None, profile: ProfileOpt = None, fmt: FormatOpt = Format.table,
    pp: Annotated[str, typer.Option(help="Pipeline-parallel stages, comma-separated.")] = "1",
    ep: Annotated[Optional[str], typer.Option("--ep", help="Expert parallelism for MoE models, comma-separated: "
                                              "1 (off: experts TP-sharded) and/or on (ep = tp x dp-attention of "
                                              "each layout) [default: 1].")] = None,
    dp_attention: Annotated[str, typer.Option(help="Attention data-parallel ranks, comma-separated (> 1 needs "
                                              "expert parallelism on).")] = "1",
    limit: LimitOpt = None, wide: WideOpt = False,
    expert_parallel: Annotated[Optional[str], typer.Option("--expert-parallel", hidden=True,
                                                           help="Old name of --ep.")] = None,
) -> None:
    """Evaluate a grid batch x context x layout (TP x PP x expert parallelism x attention-DP) x precision in
    one vectorized pass. Layouts the model cannot take are left out with a warning. A grid of more rows than
    --limit is refused before it is evaluated, with its row count."""
    set_table_width(wide)
    eps = alias(None if ep is None else _on_off(ep, "--ep"),
                None if expert_parallel is None else _on_off(expert_parallel, "--expert-parallel"),
                "--ep", "--expert-parallel") or [False]
    g, eff = load_device(gpu, profile)
    m = load_model(model)
    tps, pps, dps = ints(tp, "--tp"), ints(pp, "--pp"), ints(dp_attention, "--dp-attention")
    layouts, skipped = valid_layouts(m, tps, pps, eps, dps)
    batches, contexts, precisions = ints(batch, "--batch"), ints(context, "--context"), precision_list(precision)
    check_rows({"batches": len(batches), "contexts": len(contexts), "layouts": len(layouts),
                "precisions": len(precisions)}, limit, fmt)
    cols = run_sweep(g, m, batches, contexts, tps, precisions, eff, engine.settings(g, min(tps), min(pps)), pps, eps, dps)
    if skipped:
        warn([f"{len(skipped)} layout(s) left out, e.g. " + flag_text(skipped[0].message, skipped[0].param)])
    rows = columns_to_rows(cols)
    emit([nest_row(r) for r in rows], fmt, out, lambda: views.sweep_table(rows), lambda: rows)


def _on_off(text: str, flag: str = "--ep") -> list[bool]:
    """'1,on' (or 'off,on') -> [False, True] (RooflineError, exit 2, for anything else)."""
    values = {"off": False, "1": False, "on": True}
    items = comma_list(text)
    if not items or any(x.lower() not in values for x in items):
        raise RooflineError(f"{flag} takes off and/or on (1 = off), got {text!r}", hint=f"e.g. {flag} 1,on (on: "
                            "ep = tp x dp-attention of each layout)", exit_code=2)
    return list(dict.fromkeys(values[x.lower()] for x in items))


def _register_commands() -> None:
    """Commands that live beside their libraries: bench/validate, capacity/simulate, plot/report/spreadsheet,
    published."""
    from roofline.cli.bench import register as register_bench
    from roofline.cli.capacity import register as register_capacity
    from roofline.cli.published import register as register_published
    from roofline.cli.report import register as register_reports
    from roofline.cli.search import register as register_search
    from roofline.cli.train import register as register_train

    for register in (register_reports, register_bench, register_capacity, register_published, register_train,
                     register_search):
        register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user mistakes become one `Error:` line and a `Hint:` on stderr, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    set_table_width()
    DEPRECATED.clear()
    try:
        app(args=args or ["--help"], prog_name="roofline", standalone_mode=False)
        warn(DEPRECATED)
    except RooflineError as e:  # the library names its arguments; the user reads the flags (flag_text)
        err.print(f"Error: {flag_text(e.message, e.param)}", highlight=False, markup=False, soft_wrap=True)
        if e.hint:
            err.print(f"Hint: {flag_text(e.hint)}", highlight=False, markup=False, soft_wrap=True)
        return e.exit_code
    except _USAGE_ERROR as e:
        err.print(f"Error: {e.format_message()}", highlight=False, markup=False, soft_wrap=True)
        ctx = getattr(e, "ctx", None)
        err.print(f"Hint: see `{ctx.command_path if ctx else 'roofline'} --help`", highlight=False, markup=False,
                  soft_wrap=True)
        return 2
    except typer.Abort:
        err.print("Error: aborted", highlight=False)
        return 130
    except KeyboardInterrupt:
        err.print("Error: interrupted", highlight=False)
        return 130
    except OSError as e:  # a file we were asked to read or write: say which, no traceback
        where = f" {e.filename}" if e.filename else ""
        err.print(f"Error: cannot access{where}: {e.strerror or e}", highlight=False, markup=False, soft_wrap=True)
        err.print("Hint: check the path exists and is writable", highlight=False, markup=False)
        return 1
    return 0


def entry() -> None:
    sys.exit(main())
