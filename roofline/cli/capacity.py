"""`roofline capacity` and `roofline simulate`: parse, call roofline.capacity / roofline.simulate, render."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from roofline.model.analysis import Scenario, min_tp_that_fits
from roofline.cli.common import (DpAttentionOpt, EpOpt, FormatOpt, GpuOpt, ModelOpt, PrecisionsOpt,
                                  ProfileOpt, WideOpt, flag_text, ints, load_device, out, path_option, precision_list,
                                  scenario_device, set_table_width, status, strict_list, warn)
from roofline.cli.engine_options import engine_echo, engine_options
from roofline.model.memory import EngineKnobs
from roofline.plan.capacity import capacity_table, simulator_difference
from roofline.plan.disagg import cheapest, disaggregated_table
from roofline.plan.options import (CAPACITY_COLUMNS, DEFAULT_GPUS, check_tp_degrees, device_candidates, gpu_prices,
                                   mode_rows)
from roofline.model.engine import TP_DEGREES, check_reach, make_setup
from roofline.errors import RooflineError
from roofline.plan.fleet import plan_fleet
from roofline.specs.fleet import Fleet, load_fleet
from roofline.model.memory import MemorySettings
from roofline.specs.models import ModelConfig, load_model
from roofline.report.render import Format, emit, table
from roofline.report.verdict import capacity_verdict, headline, simulate_verdict, slos_text
from roofline.units import format_time_s
from roofline.specs.precision import PRECISION_SET_RULE, PrecisionSet
from roofline.plan.simulate import DoesNotFit, SimSettings, divergence, simulate as run_simulation
from roofline.specs.workload import Workload, context_warning, workload_from_options

WorkloadOpt = Annotated[Optional[str], typer.Option("--workload", metavar="FILE",
                                                    help="Workload JSON file (see examples/workload-chat.json).")]
RateOpt = Annotated[Optional[float], typer.Option("--rate", help="Requests per second (overrides the file's "
                                                  "arrival.rate_per_s; the daily curve still applies).")]
PromptOpt = Annotated[Optional[str], typer.Option("--prompt", help="Prompt tokens: N, uniform:MIN:MAX, "
                                                  "lognormal:MEDIAN:SIGMA[:MAX] or csv:PATH [default: 1024].")]
OutputOpt = Annotated[Optional[str], typer.Option("--output", help="Output tokens, same forms as --prompt "
                                                  "[default: 256].")]
TurnsOpt = Annotated[Optional[int], typer.Option("--turns", help="Turns per conversation.")]
ThinkOpt = Annotated[Optional[float], typer.Option("--think-time-s", help="Mean pause between turns (s).")]
TtftOpt = Annotated[Optional[float], typer.Option("--ttft-p99-s", help="SLO: p99 time to first token (s).")]
TpotOpt = Annotated[Optional[float], typer.Option("--tpot-p99-s", help="SLO: p99 time per output token (s).")]


def parse_prices(items: list[str]) -> dict[str, float]:
    """--price GPU=USD items as {gpu: USD per GPU-hour} (checked by plan.options.gpu_prices)."""
    return gpu_prices((*it.partition("=")[::2], it) for it in items)


def _tp_degrees(text: Optional[str], m: ModelConfig) -> Optional[list[int]]:
    """--tp as a list (None: the default degrees). Degrees that do not divide the heads get a note in their
    row; when none of them does, that is a flag error."""
    if not text:
        return None
    return check_tp_degrees(ints(text, "--tp", "2,4,8"), m, text)


def _workload(workload: Optional[Path], rate: Optional[float], *overrides) -> Workload:
    """The --workload file with the flags' overrides, or (no file) a workload from the flags alone."""
    workload = path_option(workload, "--workload")
    if workload is None and rate is None:
        raise RooflineError("no workload given", hint="pass --workload FILE, or --rate N with --prompt and --output",
                            exit_code=2)
    return workload_from_options(workload, rate, *overrides)


def fmt_or_dash(x, spec=".3g", scale=1.0, unit=""):
    """`x` x `scale` in `spec` with `unit`, or "-" for no value (None)."""
    return "-" if x is None else f"{x * scale:{spec}}{unit}"


def layout_label(r: dict) -> str:
    """'tp4', 'tp4 ep4', 'tp1 dp8 ep8'."""
    return f"tp{r['tp']}" + (f" pp{r['pp']}" if r.get("pp", 1) > 1 else "") + \
        (f" dp{r['dp_attention']}" if r.get("dp_attention", 1) > 1 else "") + \
        (f" ep{r['ep']}" if r.get("ep", 1) > 1 else "")


def _capacity_tables(res: dict, show_all: bool = False) -> list:
    """The tables of `capacity`: the candidates (feasible ones; with `show_all` or when none is feasible, every
    one, the infeasible ones last with the reason), the disaggregated pairs and the fleet mix."""
    w = res["workload"]
    head = (f"{res['model']}: {w['name']} peak {w['peak_rate_per_s']:.3g} req/s (mean {w['mean_rate_per_s']:.3g}), "
            f"SLO {slos_text(w['slo']) or 'none'}")
    feasible = [r for r in res["candidates"] if r["feasible"]]
    shown = res["candidates"] if show_all or not feasible else feasible
    shown = sorted(shown, key=lambda r: not r["feasible"])  # stable: the library's order within each group
    hidden = len(res["candidates"]) - len(shown)
    if hidden:
        head += f"; {hidden} infeasible candidate(s) not shown (--all lists them with the reason)"
    rows = [[r["gpu"], layout_label(r), r["precision"], fmt_or_dash(r["max_request_rate_per_replica"]), r.get("replicas", "-"),
             r.get("gpus", "-"), fmt_or_dash(r.get("cost_per_hour"), ".2f"), fmt_or_dash(r.get("cost_per_million_output_tokens"), ".3f"),
             fmt_or_dash(r.get("headroom"), ".0%"), r.get("limited_by") or "-", r.get("bottleneck") or "-",
             fmt_or_dash(r.get("batch"), ".0f"), fmt_or_dash(r.get("tpot_p99_s"), ".1f", 1e3), fmt_or_dash(r.get("ttft_p99_s"), ".0f", 1e3),
             r.get("reason", "")] for r in shown]
    out_tables = [table(head, ["GPU", "layout", "precision", "req/s/replica", "replicas", "GPUs", "$/h", "$/1M out",
                               "headroom", "limited by", "bottleneck", "batch", "TPOT p99 ms", "TTFT p99 ms",
                               "note"], rows)]
    diff = res.get("simulator_difference")
    if diff:
        def rel(k):
            x = diff[k]
            return "-" if x["relative"] is None else f"{x['relative']:+.0%}"
        out_tables.append(f"Note: the p99 latencies are analytic estimates. Simulating the best row ({diff['gpu']} "
                          f"tp{diff['tp']} {diff['precision']}, {diff['requests']:,} requests at its max rate) gives "
                          f"TTFT p99 {rel('ttft_p99_s')}, TPOT p99 {rel('tpot_p99_s')}, max throughput "
                          f"{rel('max_throughput_output_tokens_per_s')} against the table (`roofline simulate` "
                          "for more requests).")
    if "disaggregated" in res:
        out_tables += _disaggregated_tables(res)
    plan = res.get("fleet_plan")
    if plan:
        cost = ("cost unknown (unpriced GPUs; fewest GPUs)" if plan["cost_per_hour"] is None else
                f"${plan['cost_per_hour']:.2f}/h, ${fmt_or_dash(plan['cost_per_million_output_tokens'], '.3f')}/1M output "
                "tokens")
        title = (f"Cheapest fleet mix: {plan['gpus']} GPUs, {cost}"
                 + (f"; AT CAPACITY: {plan['unserved_rate_per_s']:.3g} req/s unserved" if plan["at_capacity"] else ""))
        out_tables.append(table(title, ["region", "GPU", "TP", "precision", "replicas", "GPUs", "req/s", "$/h"],
                                [[m["region"], m["gpu"], m["tp"], m["precision"], m["replicas"], m["gpus"],
                                  fmt_or_dash(m["rate_per_s"]), fmt_or_dash(m["cost_per_hour"], ".2f")] for m in plan["mix"]]))
    return out_tables


_DISAGG_SHOWN = 30  # pairs in the table (all of them in JSON and CSV)


def _pool_text(r: dict, pool: str) -> str:
    """'h100-sxm tp4 fp8 x3' for one pool of a pair."""
    c = {k: r[f"{pool}_{k}"] for k in ("tp", "ep", "dp_attention")}
    n = r.get(f"{pool}_replicas")
    return f"{r[f'{pool}_gpu']} {layout_label(c)} {r[f'{pool}_precision']}" + (f" x{n}" if n else "")


def _disaggregated_tables(res: dict) -> list:
    rows = res["disaggregated"]
    shown = rows[:_DISAGG_SHOWN]
    more = f" (the first {len(shown)} of {len(rows)} pairs; --format json or csv for all)" if len(rows) > len(shown) else ""
    body = [[_pool_text(r, "prefill"), _pool_text(r, "decode"), r.get("gpus", "-"), fmt_or_dash(r.get("cost_per_hour"), ".2f"),
             fmt_or_dash(r.get("cost_per_million_output_tokens"), ".3f"), fmt_or_dash(r.get("ttft_p99_s"), ".0f", 1e3),
             fmt_or_dash(r.get("kv_transfer_s"), ".1f", 1e3), fmt_or_dash(r.get("tpot_p99_s"), ".1f", 1e3),
             " / ".join(x for x in (r.get("prefill_limited_by"), r.get("prefill_bottleneck")) if x) or "-",
             " / ".join(x for x in (r.get("decode_limited_by"), r.get("decode_bottleneck")) if x) or "-",
             r.get("reason", "")] for r in shown]
    out_tables = [table(f"Disaggregated: prefill pool x decode pool{more}",
                        ["prefill (replicas)", "decode (replicas)", "GPUs", "$/h", "$/1M out", "TTFT p99 ms",
                         "KV transfer ms", "TPOT p99 ms", "prefill limit", "decode limit", "note"], body)]
    best = res["cheapest"]
    if best is None:
        out_tables.append("Cheapest of all: none is feasible")
    else:
        what = (f"disaggregated, prefill {_pool_text(best, 'prefill')} + decode {_pool_text(best, 'decode')}"
                if best["mode"] == "disaggregated" else
                f"co-located, {best['gpu']} {layout_label(best)} {best['precision']} x{best['replicas']}")
        cost = ("" if best.get("cost_per_hour") is None else f", ${best['cost_per_hour']:.2f}/h, "
                f"${best['cost_per_million_output_tokens']:.3f}/1M output tokens")
        out_tables.append(f"Cheapest of all: {what}: {best['gpus']} GPUs{cost}")
    return out_tables


@engine_options
def capacity(
    model: ModelOpt = "llama-3.1-70b",
    workload: WorkloadOpt = None, rate: RateOpt = None, prompt: PromptOpt = None, output: OutputOpt = None,
    turns: TurnsOpt = None, think_time_s: ThinkOpt = None, ttft_p99_s: TtftOpt = None, tpot_p99_s: TpotOpt = None,
    gpu: Annotated[Optional[list[str]], typer.Option("--gpu", help="Candidate GPUs, comma-separated or repeated "
                                                     "[default: the fleet's GPUs, else h100-sxm and h200-sxm].")] = None,
    tp: Annotated[Optional[str], typer.Option("--tp", help="TP degrees, comma-separated [default: 1,2,4,8 that "
                                              "divide the heads].")] = None,
    precision: PrecisionsOpt = "bf16,fp8",
    price: Annotated[Optional[list[str]], typer.Option("--price", help="GPU=USD per GPU-hour (repeat); overrides "
                                                       "the fleet file's prices.")] = None,
    fleet: Annotated[Optional[str], typer.Option("--fleet", metavar="FILE",
                                                 help="Fleet file (GPU types, per-region availability, prices): "
                                                 "adds the cheapest mix, or the unserved load.")] = None,
    disaggregated: Annotated[bool, typer.Option("--disaggregated", help="Also size disaggregated serving: a "
                                                "prefill pool and a decode pool, every pair of candidates.")] = False,
    prefill_gpu: Annotated[Optional[list[str]], typer.Option("--prefill-gpu", help="GPUs of the prefill pool, "
                                                             "comma-separated or repeated (implies "
                                                             "--disaggregated) [default: the --gpu "
                                                             "candidates].")] = None,
    decode_gpu: Annotated[Optional[list[str]], typer.Option("--decode-gpu", help="GPUs of the decode pool, "
                                                            "comma-separated or repeated (implies --disaggregated) "
                                                            "[default: the --gpu candidates].")] = None,
    engine: EngineKnobs = None, profile: ProfileOpt = None, fmt: FormatOpt = Format.table,
    show_all: Annotated[bool, typer.Option("--all", help="Table: list the infeasible candidates too (below the "
                                           "feasible ones, with the reason); JSON and CSV always hold all.")] = False,
    wide: WideOpt = False,
) -> None:
    """Highest request rate per replica within the SLOs for each GPU x TP x precision, replicas, GPUs, cost,
    headroom and the binding bottleneck; with --fleet, the cheapest mix across regions (an ILP); with
    --disaggregated, prefill and decode pools sized apart for every pair of candidates."""
    set_table_width(wide)
    ms = engine  # resolved on each candidate's GPU and layout
    gpu, prefill_gpu, decode_gpu = (_gpu_list(x, f) for x, f in ((gpu, "--gpu"), (prefill_gpu, "--prefill-gpu"),
                                                                 (decode_gpu, "--decode-gpu")))
    fleet = path_option(fleet, "--fleet")
    w = _workload(workload, rate, prompt, output, turns, think_time_s, ttft_p99_s, tpot_p99_s)
    m = load_model(model)
    tps, precisions = _tp_degrees(tp, m), precision_list(precision)
    overrides = parse_prices(price or [])
    fl = load_fleet(fleet).with_prices(overrides) if fleet else None
    prices = {**(fl.prices if fl else {}), **overrides}
    names = gpu or (fl.gpu_names if fl else _default_gpus(profile))
    cands = _candidates(names, m, tps, precisions, profile)
    warn([context_warning(w, m.name, m.max_position_embeddings)])
    with status(f"Sizing {len(cands)} candidate(s) for {m.name}"):
        table_rows = capacity_table(cands, m, w, prices, ms)
    res = _capacity_result(m, w, table_rows, fl)
    if disaggregated or prefill_gpu or decode_gpu:
        pre = _candidates(prefill_gpu, m, tps, precisions, profile) if prefill_gpu else cands
        dec = _candidates(decode_gpu, m, tps, precisions, profile) if decode_gpu else cands
        res["disaggregated"] = _reasons_as_flags(disaggregated_table(pre, dec, m, w, prices, ms))
        res["cheapest"] = cheapest(res["candidates"], res["disaggregated"])
    warn(res.get("fleet_plan", {}).get("warnings", []))
    res["p99_is_estimate"] = True  # the analytic p99s are a queueing estimate: the simulator's figures below
    best = res["best"]
    res["simulator_difference"] = None if best is None else simulator_difference(
        next(c for c in cands if (c.gpu.name, c.tp, c.precision, c.ep, c.dp_attention, c.pp) ==
             (best["gpu"], best["tp"], best["precision"], best["ep"], best["dp_attention"], best["pp"])), m, w, ms, best)
    res = {"verdict": capacity_verdict(res), **res, "engine": engine_echo(engine)}
    emit(res, fmt, out, lambda: [headline(res["verdict"]), *_capacity_tables(res, show_all)],
         lambda: (mode_rows(res["candidates"], res["disaggregated"]) if "disaggregated" in res else
                  [{k: r.get(k) for k in CAPACITY_COLUMNS} for r in res["candidates"]]))


def _gpu_list(values: Optional[list[str]], flag: str) -> Optional[list[str]]:
    """A repeatable GPU option whose values may also be comma-separated ('--gpu h100-sxm,h200-sxm --gpu l40s');
    None when it was left out; RooflineError (exit 2) for an empty value or item."""
    if not values:
        return None
    names = [n for v in values for n in strict_list(v, flag, "h100-sxm,h200-sxm")]
    if len(names) < len(values):
        raise RooflineError(f"{flag} is empty", hint=f"name a GPU (see `roofline gpus`), e.g. {flag} h100-sxm",
                            exit_code=2)
    return names


def _default_gpus(profile: Optional[Path]) -> list:
    """The candidates when neither --gpu nor --fleet names any: a device profile's own device (None: no --gpu
    to warn about), else DEFAULT_GPUS (a collectives profile applies to the datasheet GPUs)."""
    from roofline.measure.collectives import is_collectives_profile
    return [None] if profile is not None and not is_collectives_profile(profile) else list(DEFAULT_GPUS)


def _candidates(names: list[str], m: ModelConfig, tps, precisions: list[str], profile: Optional[Path]) -> list:
    return device_candidates((load_device(name, profile) for name in names), m, tps, precisions)


def _reasons_as_flags(rows: list[dict]) -> list[dict]:
    """A TP degree that does not divide the heads is noted in its row in the library's words: as flags here."""
    for r in rows:
        if "reason" in r:
            r["reason"] = flag_text(r["reason"], "tp")
    return rows


def _capacity_result(m: ModelConfig, w: Workload, rows: list[dict], fl: Optional[Fleet]) -> dict:
    """The JSON document: the candidates' rows, the best one, and with a fleet the cheapest mix."""
    _reasons_as_flags(rows)
    feasible = [r for r in rows if r["feasible"]]
    res = {"model": m.name, "workload": w.to_dict(), "candidates": rows, "best": feasible[0] if feasible else None}
    if fl:
        best = res["best"]
        out_tps = (w.mean_rate_per_s * best["output_tokens_per_s_per_replica"]
                   / best["max_request_rate_per_replica"]) if best else 0.0
        regions = len({r for r, _ in fl.supply})
        with status(f"Solving the fleet mix (an ILP over {len(rows)} candidates x {regions} region(s))"):
            res["fleet_plan"] = plan_fleet(rows, fl, w.peak_rate_per_s, out_tps)
    return res


def _simulate_tables(res: dict) -> list:
    lat = [[name, *(fmt_or_dash(res[k][q], ".1f", 1e3) for q in ("mean", "p50", "p90", "p99", "max"))]
           for name, k in (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("end-to-end", "e2e_latency_s"))]
    ll = res["littles_law"]
    other = [["offered load", f"{res['offered_rate_per_s']:.3g} req/s on {res['replicas']} replica(s)"],
             ["simulated hours", _hours_text(res)],
             ["throughput", f"{res['throughput_output_tokens_per_s']:.4g} output tok/s, "
                            f"{res['throughput_requests_per_s']:.3g} req/s"],
             ["batch per replica", f"mean {res['batch_size']['mean']:.1f}, max {res['batch_size']['max']:.0f}"],
             ["KV cache utilisation", f"mean {res['kv_cache_utilization']['mean']:.0%}, "
                                      f"max {res['kv_cache_utilization']['max']:.0%}"],
             ["queue length", f"mean {res['queue_length']['mean']:.1f}, max {res['queue_length']['max']:.0f}"],
             ["cache hit rate", fmt_or_dash(res["cache_hit_rate"], ".1%")],
             ["recompute", f"{res['recompute_tokens']:,} tokens ({res['recompute_fraction_of_prefill']:.1%} of "
                           f"prefill), {res['evictions']:,} evictions"],
             ["Little's law", f"in flight {ll['mean_in_flight']:.3g} vs rate x latency {fmt_or_dash(ll['rate_x_latency'])}"],
             ["rejected", f"{res['rejected_requests']:,} (larger than the KV cache)"],
             ["preemptions", f"{res['preemptions']:,} ({res['preemption_mode']}; "
                             f"{res['preemption_recompute_tokens']:,} tokens recomputed), peak KV "
                             f"{res['peak_kv_cache_utilization']:.0%}"]]
    if res.get("divergence_rate_per_s") is not None or res.get("load_sweep"):
        other.append(["latency diverges at", fmt_or_dash(res.get("divergence_rate_per_s"), ".4g", unit=" req/s")])
    return [table(f"Simulated {res['requests']:,} requests (ms)", ["", "mean", "p50", "p90", "p99", "max"], lat),
            table(None, ["", ""], other, justify_right=False)]


def _clock(seconds: float) -> str:
    """Seconds since midnight as hh:mm; the end of a day-long run is 24:00, not 00:00."""
    h, mm = divmod(int(round(seconds / 60)), 60)
    return f"{h if h * 60 + mm <= 24 * 60 else h % 24:02d}:{mm:02d}"


def _hours_text(res: dict) -> str:
    span_s = res.get("arrival_span_s")
    length = "" if span_s is None else f", {format_time_s(span_s)} of arrivals"
    if res.get("hours_simulated") is None:
        return "constant rate (no daily curve)" + length
    start = res["hours_simulated"][0] * 3600.0
    end = start + (span_s if span_s is not None else 3600.0 * len(res["hours_simulated"]))
    mult = ", ".join(f"x{m:g}" for m in res["daily_curve_multipliers"])
    return f"{_clock(start)}-{_clock(end)} of the daily curve (rate {mult}){length}"


def _fit_hint(e: DoesNotFit, g, m: ModelConfig, tp: int, prec: PrecisionSet, ms: MemorySettings) -> str:
    """The smallest TP at which the smallest request fits, as the hint for a model that does not fit."""
    sc = Scenario(prompt=max(e.smallest_tokens - 1, 1), output=1, tp=tp, weights=prec.weights,
                  activations=prec.activations, kv=prec.kv, memory=ms)
    t = min_tp_that_fits(g, m, sc)
    return (f"the smallest TP that fits is {t}: pass --tp {t}" if t else
            f"no TP degree up to {TP_DEGREES[-1]} fits: use a narrower --precision (fp8, int4) or a GPU with more "
            "memory")


def _start_hour(start_hour: Optional[int], w: Workload) -> Optional[int]:
    if start_hour is None:
        return None
    if not 0 <= start_hour <= 23:
        raise RooflineError(f"--start-hour must be an hour of the day 0-23, got {start_hour}",
                            hint="the daily curve's peak hour is the default", exit_code=2)
    if not w.daily_curve:
        warn(["--start-hour has no effect: the workload has no daily curve (constant rate)"])
    return start_hour


@engine_options
def simulate(
    model: ModelOpt = "llama-3.1-8b",
    gpu: GpuOpt = None,
    workload: WorkloadOpt = None, rate: RateOpt = None, prompt: PromptOpt = None, output: OutputOpt = None,
    turns: TurnsOpt = None, think_time_s: ThinkOpt = None, ttft_p99_s: TtftOpt = None, tpot_p99_s: TpotOpt = None,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree.")] = 1,
    precision: Annotated[Optional[str], typer.Option("--precision", help=f"Precision set: {PRECISION_SET_RULE} "
                                                     "[default: bf16; on a profile without bf16, compute in its "
                                                     "fastest measured precision].")] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas (conversations routed round-robin).")] = 1,
    requests: Annotated[int, typer.Option("--requests", min=1, help="Requests to simulate.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")] = 0,
    start_hour: Annotated[Optional[int], typer.Option("--start-hour", help="Hour of the workload's daily curve "
                                                      "(0-23) at which arrivals start [default: the curve's peak "
                                                      "hour, the load `capacity` sizes for].")] = None,
    find_divergence: Annotated[bool, typer.Option("--find-divergence", help="Also simulate a ladder of loads "
                                                  "and report where latency diverges.")] = False,
    timeseries: Annotated[bool, typer.Option("--timeseries/--no-timeseries", help="Include batch, KV "
                                             "utilisation and queue over time in JSON.")] = False,
    engine: EngineKnobs = None, profile: ProfileOpt = None, fmt: FormatOpt = Format.table,
    ep: EpOpt = 1, dp_attention: DpAttentionOpt = 1, wide: WideOpt = False,
) -> None:
    """Discrete-event simulation of replicas with continuous batching, a paged KV cache, eviction and recompute:
    TTFT/TPOT/end-to-end percentiles, throughput, batch and KV utilisation, queue, cache hit rate. A replica
    may be an expert-parallel MoE deployment (--ep, --dp-attention: its DP ranks' KV caches pooled, the load
    spread evenly over them)."""
    set_table_width(wide)
    w = _workload(workload, rate, prompt, output, turns, think_time_s, ttft_p99_s, tpot_p99_s)
    hour = _start_hour(start_hour, w)
    g, eff, parts = scenario_device(gpu, profile, precision, None, None, None)
    prec = PrecisionSet(*parts)
    precision = precision if precision is not None else prec.label
    m = load_model(model)
    s = make_setup(g, m, tp, prec.weights, prec.activations, prec.kv, eff, ep=ep, dp=dp_attention)
    check_reach(g, tp * dp_attention)
    ms = engine.settings(g, tp)
    cfg = SimSettings(chunked_prefill=ms.chunked_prefill, page_tokens=ms.page_tokens, memory=ms)
    warn([context_warning(w, m.name, m.max_position_embeddings, seed)])
    try:
        with status(f"Simulating {requests:,} requests on {replicas} replica(s) of {m.name} on {g.name}"):
            res = run_simulation(s, w, requests, replicas, seed, cfg, start_hour=hour)
    except DoesNotFit as e:
        raise RooflineError(e.message, hint=_fit_hint(e, g, m, tp, prec, ms)) from None
    if find_divergence:
        with status("Simulating a ladder of loads to find where latency diverges"):
            res.update(divergence(s, w, max(2000, requests // 4), replicas, seed, cfg))
    verdict = simulate_verdict(res, w.slo.to_dict())
    if not timeseries:
        res.pop("timeseries")
    res = {"model": s.model.name, "gpu": g.name, "tp": tp, "precision": precision, "workload": w.to_dict(), **res,
           "ep": ep, "dp_attention": dp_attention, "engine": ms.to_dict()}
    flat = {k: v for k, v in res.items() if not isinstance(v, (dict, list))}
    for k in ("ttft_s", "tpot_s", "e2e_latency_s"):
        flat.update({f"{k}_{q}": res[k][q] for q in ("p50", "p99")})
    res = {"verdict": verdict, **res}
    emit(res, fmt, out, lambda: [headline(res["verdict"]), *_simulate_tables(res)], lambda: [flat])


def register(app: typer.Typer) -> None:
    app.command("capacity")(capacity)
    app.command("simulate")(simulate)
