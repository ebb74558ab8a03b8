"""`roofline search`: parse the axes, run the search (roofline.plan.executors) locally or on Ray, render."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from roofline.cli.capacity import fmt_or_dash, layout_label, parse_prices
from roofline.cli.common import FormatOpt, comma_list, err, ints, out, path_option
from roofline.errors import RooflineError
from roofline.plan.executors import run_search
from roofline.plan.options import DEFAULT_GPUS
from roofline.plan.search import SearchSpace
from roofline.report.render import Format, emit, table
from roofline.specs.engines import DEFAULT_ENGINE, load_engine
from roofline.specs.fleet import load_fleet
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import load_workload

#: CSV columns: one row per simulated candidate
CSV_COLUMNS = ("model", "workload", "pareto", "cheapest", "gpu", "tp", "pp", "ep", "dp_attention", "gpus_per_replica",
               "precision", "engine", "max_seqs", "max_batched_tokens", "kv_cache_fraction", "price_per_gpu_hour",
               "feasible", "sim_rate", "sim_replicas", "sim_cost_per_hour", "sim_cost_per_million_output_tokens",
               "sim_ttft_p99_s", "sim_tpot_p99_s", "sim_latency_s", "sim_output_tokens_per_s_per_gpu",
               "sim_limited_by", "screen_rate", "limited_by", "simulations", "seed")


def _floats_or_default(text: Optional[str], flag: str, cast) -> tuple:
    if not text:
        return (None,)
    try:
        return tuple(cast(x) for x in comma_list(text))
    except ValueError:
        raise RooflineError(f"{flag} takes comma-separated numbers, got {text!r}", hint="see roofline search --help",
                            exit_code=2) from None


def _tables(doc: dict) -> list:
    tables = []
    for res in doc["results"]:
        front = set(res["pareto"])
        rows = [[("* " if r["index"] in front else "  ") + r["gpu"], layout_label(r), r["precision"], r["engine"],
                 r["max_seqs"], r["max_batched_tokens"], fmt_or_dash(r["kv_cache_fraction"], ".3g"), fmt_or_dash(r["sim_rate"]),
                 fmt_or_dash(r["screen_rate"]), r.get("sim_replicas") or "-",
                 (r["sim_replicas"] or 0) * r["gpus_per_replica"] or "-", fmt_or_dash(r["sim_cost_per_hour"], ".2f"),
                 fmt_or_dash(r["sim_cost_per_million_output_tokens"], ".3f"), fmt_or_dash(r["sim_ttft_p99_s"], ".0f", 1e3),
                 fmt_or_dash(r["sim_tpot_p99_s"], ".1f", 1e3), fmt_or_dash(r["sim_output_tokens_per_s_per_gpu"], ".0f"),
                 r["sim_limited_by"] or "-"] for r in res["simulated"]]
        title = (f"{res['model']} x {res['workload']}: {res['candidates_screened']:,} candidates screened, "
                 f"{res['candidates_feasible']:,} feasible, {len(res['simulated'])} simulated "
                 f"({res['simulations']} runs); * = Pareto front (cost, latency, tokens/s/GPU)")
        tables.append(table(title, ["GPU", "layout", "precision", "engine", "max seqs", "max tokens", "KV frac",
                                    "sim req/s/replica", "screen req/s", "replicas", "GPUs", "$/h", "$/1M out",
                                    "TTFT p99 ms", "TPOT p99 ms", "tok/s/GPU", "limited by"], rows))
        best = res["cheapest"]
        tables.append("Cheapest feasible: none confirmed by simulation" if best is None else
                      f"Cheapest feasible: {best['gpu']} {layout_label(best)} {best['precision']} {best['engine']} "
                      f"max_seqs {best['max_seqs']} x{best['sim_replicas']} replicas: "
                      f"${best['sim_cost_per_hour']:.2f}/h, ${best['sim_cost_per_million_output_tokens']:.3f}/1M "
                      f"output tokens; binding limit {best['sim_limited_by']}\n")
    return tables


def _csv_rows(doc: dict) -> list[dict]:
    rows = []
    for res in doc["results"]:
        cheapest = res["cheapest"]["index"] if res["cheapest"] else None
        for r in res["simulated"]:
            rows.append({**{k: r.get(k) for k in CSV_COLUMNS}, "model": res["model"], "workload": res["workload"],
                         "pareto": r["index"] in res["pareto"], "cheapest": r["index"] == cheapest})
    return rows


class _Progress:
    """A rich progress bar on stderr: shards done, candidates screened, simulations run."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=err, transient=True)
        self.tasks = {}

    def __call__(self, ev: dict) -> None:
        stage = ev["stage"]
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(f"{stage} shards", total=ev["shards_total"], counts="")
        self.bar.update(self.tasks[stage], completed=ev["shards_done"],
                        counts=f"{ev['screened']:,} screened, {ev['simulations']:,} simulations")


def search(
    model: Annotated[str, typer.Option("--model", help="Model name(s), comma-separated (see `roofline models`).")]
    = "llama-3.1-70b",
    workload: Annotated[Optional[list[str]], typer.Option("--workload", metavar="FILE", help=(
        "Workload file (with SLOs); repeat for several (see examples/workload-chat.json)."))] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", help="GPU types, comma-separated [default: the --fleet "
                                               "file's, else h100-sxm,h200-sxm].")] = None,
    price: Annotated[Optional[list[str]], typer.Option("--price", help="GPU=USD per GPU-hour, repeatable "
                                                       "(overrides the fleet file's price).")] = None,
    fleet: Annotated[Optional[str], typer.Option("--fleet", metavar="FILE", help="Fleet file: its "
                                                 "GPU types and default prices (see examples/fleet.json).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="Serving engines, comma-separated (vllm, sglang, trtllm, "
                                        "or engine file paths).")] = DEFAULT_ENGINE,
    precision: Annotated[str, typer.Option("--precision", help="Precision sets, comma-separated (bf16, fp8, "
                                           "int4/bf16/fp8 = weights/activations/KV).")] = "bf16,fp8",
    max_gpus: Annotated[int, typer.Option("--max-gpus", help="Most GPUs of one replica: every TP x PP (x EP x "
                                          "attention-DP for MoE) layout up to it.")] = 8,
    max_seqs: Annotated[str, typer.Option("--max-seqs", help="Batch limits (sequences per step), "
                                          "comma-separated.")] = "64,128,256",
    max_batched_tokens: Annotated[Optional[str], typer.Option("--max-batched-tokens", help="Token budgets per "
                                                              "step, comma-separated [default: the engine's].")]
    = None,
    kv_cache_fraction: Annotated[Optional[str], typer.Option("--kv-cache-fraction", help="KV-cache fractions, "
                                                             "comma-separated [default: the engine's].")] = None,
    top: Annotated[int, typer.Option("--top", help="Candidates per model x workload confirmed by simulation "
                                     "(the K cheapest, plus up to K of the screen's Pareto front).")] = 4,
    sim_requests: Annotated[int, typer.Option("--sim-requests", help="Requests per simulation.")] = 1500,
    executor: Annotated[str, typer.Option("--executor", help="local (a process pool) or ray.")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster: auto or HOST:PORT [default: "
                                                   "a local Ray runtime].")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes of the local executor "
                                                   "[default: the CPU count].")] = None,
    results_dir: Annotated[Optional[Path], typer.Option("--results-dir", file_okay=False, help="Write the shards, "
                                                        "manifest and result.json here (needed for --resume).")]
    = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the search in --results-dir, skipping the "
                                         "shards already there.")] = False,
    fmt: FormatOpt = Format.table,
    plot: Annotated[Optional[Path], typer.Option("--plot", dir_okay=False, help="Write the Pareto plot (PNG or SVG) "
                                                 "here.")] = None,
) -> None:
    """Search every GPU x layout x precision x engine x batch limit for the models and workloads: an analytic
    screen of every candidate, then simulation of the best to confirm the p99 SLOs; the cost/latency/throughput
    Pareto front and the cheapest feasible deployment per model x workload."""
    workload = [path_option(w, "--workload") for w in workload or []]
    fleet = path_option(fleet, "--fleet")
    if not workload:
        raise RooflineError("no workload given", hint="pass --workload FILE (with an \"slo\"), e.g. "
                            "examples/workload-chat.json", exit_code=2)
    if resume and results_dir is None:
        raise RooflineError("--resume needs a results directory", hint="pass --results-dir DIR", exit_code=2)
    fl = load_fleet(fleet) if fleet else None
    names = comma_list(gpu) if gpu else (fl.gpu_names if fl else list(DEFAULT_GPUS))
    if not names:  # here, not as the search's `gpus`: FLAGS spells that train's --gpus
        raise RooflineError("--gpu is empty", hint="give at least one value", exit_code=2)
    gpus = tuple(load_gpu(n) for n in names)
    prices = {**(fl.prices if fl else {}), **parse_prices(price or [])}
    missing = [g.name for g in gpus if g.name not in prices]
    if missing:
        raise RooflineError(f"--price has no price for {', '.join(missing)}", hint="give --price GPU=USD for "
                            "each GPU, e.g. h100-sxm=2.49, or a fleet file with prices", exit_code=2)
    space = SearchSpace(
        models=tuple(load_model(m) for m in comma_list(model)),
        workloads=tuple(load_workload(w) for w in workload), gpus=gpus,
        prices=tuple(prices[g.name] for g in gpus), engines=tuple(load_engine(e) for e in comma_list(engine)),
        precisions=tuple(comma_list(precision)), max_gpus=max_gpus,
        max_seqs=tuple(ints(max_seqs, "--max-seqs", "64,128,256")),
        max_batched_tokens=_floats_or_default(max_batched_tokens, "--max-batched-tokens", int),
        kv_cache_fractions=_floats_or_default(kv_cache_fraction, "--kv-cache-fraction", float),
        top=top, sim_requests=sim_requests)
    progress = _Progress() if fmt == Format.table and err.is_terminal else None
    if progress:
        progress.bar.start()
    try:
        doc = run_search(space, results_dir, executor, workers, address, resume, progress)
    finally:
        if progress:
            progress.bar.stop()
    emit(doc, fmt, out, lambda: _tables(doc), lambda: _csv_rows(doc))
    if plot:
        from roofline.report.search_plot import pareto_plot
        pareto_plot(doc, plot)
        (out if fmt == Format.table else err).print(f"wrote {plot}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("search")(search)

