"""`roofline capacity` and `roofline simulate`: parse, call roofline.capacity / roofline.simulate, render."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .capacity import candidates, capacity_table, parse_precision
from .engine import make_setup
from .errors import RooflineError
from .fleet import load_fleet, plan_fleet
from .hardware import load_gpu
from .memory import MemorySettings
from .models import load_model
from .render import Format, emit, table
from .simulate import SimSettings, divergence, simulate as run_simulation
from .workload import workload_from_options

out = Console(soft_wrap=False, width=200)

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format: table, json or csv.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model name (see `roofline models`) or a config.json path.")]
WorkloadOpt = Annotated[Optional[Path], typer.Option("--workload", exists=True, dir_okay=False,
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
MemOpt = Annotated[float, typer.Option("--memory-utilization", help="Fraction of GPU memory the engine may use "
                                       "(vLLM's gpu_memory_utilization).")]
ProfileOpt = Annotated[Optional[Path], typer.Option("--profile", help="Measured profile (from `roofline bench`): "
                                                    "use its ceilings and fitted efficiencies.")]


def _device(gpu: str, profile: Optional[Path]):
    if profile is None:
        return load_gpu(gpu), None
    from .bench.commands import load_profile_device
    return load_profile_device(profile, gpu)


def _memory(util: float) -> MemorySettings:
    if not 0.0 < util <= 1.0:
        raise RooflineError(f"--memory-utilization must be in (0, 1], got {util}", hint="vLLM's default is 0.9",
                            exit_code=2)
    return MemorySettings(memory_utilization=util)


def _prices(items: list[str]) -> dict[str, float]:
    prices = {}
    for it in items:
        name, _, value = it.partition("=")
        try:
            prices[load_gpu(name.strip()).name] = float(value)
        except ValueError:
            raise RooflineError(f"--price {it!r} is not GPU=USD_PER_HOUR", hint="e.g. --price h100-sxm=2.49",
                                exit_code=2) from None
    return prices


def _fmt(x, spec=".3g", scale=1.0, unit=""):
    return "-" if x is None else f"{x * scale:{spec}}{unit}"


CAPACITY_COLUMNS = ["gpu", "tp", "precision", "max_request_rate_per_replica", "replicas", "gpus", "cost_per_hour",
                    "cost_per_million_output_tokens", "headroom", "limited_by", "bottleneck", "batch", "tpot_s",
                    "tpot_p99_s", "ttft_p99_s", "kv_cache_utilization", "saturation_rate_per_replica", "reason"]


def _capacity_tables(res: dict) -> list:
    w = res["workload"]
    head = (f"{res['model']}: {w['name']} peak {w['peak_rate_per_s']:.3g} req/s (mean {w['mean_rate_per_s']:.3g}), "
            f"SLO TTFT p99 {_fmt(w['slo']['ttft_p99_s'], unit=' s')}, TPOT p99 {_fmt(w['slo']['tpot_p99_s'], unit=' s')}")
    rows = [[r["gpu"], r["tp"], r["precision"], _fmt(r["max_request_rate_per_replica"]), r.get("replicas", "-"),
             r.get("gpus", "-"), _fmt(r.get("cost_per_hour"), ".2f"), _fmt(r.get("cost_per_million_output_tokens"), ".3f"),
             _fmt(r.get("headroom"), ".0%"), r.get("limited_by") or "-", r.get("bottleneck") or "-",
             _fmt(r.get("batch"), ".0f"), _fmt(r.get("tpot_p99_s"), ".1f", 1e3), _fmt(r.get("ttft_p99_s"), ".0f", 1e3),
             r.get("reason", "")] for r in res["candidates"]]
    out_tables = [table(head, ["GPU", "TP", "precision", "req/s/replica", "replicas", "GPUs", "$/h", "$/1M out",
                               "headroom", "limited by", "bottleneck", "batch", "TPOT p99 ms", "TTFT p99 ms",
                               "note"], rows)]
    plan = res.get("fleet_plan")
    if plan:
        title = (f"Cheapest fleet mix: {plan['gpus']} GPUs, ${_fmt(plan['cost_per_hour'], '.2f')}/h, "
                 f"${_fmt(plan['cost_per_million_output_tokens'], '.3f')}/1M output tokens"
                 + (f"; AT CAPACITY: {plan['unserved_rate_per_s']:.3g} req/s unserved" if plan["at_capacity"] else ""))
        out_tables.append(table(title, ["region", "GPU", "TP", "precision", "replicas", "GPUs", "req/s", "$/h"],
                                [[m["region"], m["gpu"], m["tp"], m["precision"], m["replicas"], m["gpus"],
                                  _fmt(m["rate_per_s"]), _fmt(m["cost_per_hour"], ".2f")] for m in plan["mix"]]))
    return out_tables


def capacity(
    model: ModelOpt = "llama-3.1-70b",
    workload: WorkloadOpt = None, rate: RateOpt = None, prompt: PromptOpt = None, output: OutputOpt = None,
    turns: TurnsOpt = None, think_time_s: ThinkOpt = None, ttft_p99_s: TtftOpt = None, tpot_p99_s: TpotOpt = None,
    gpu: Annotated[Optional[list[str]], typer.Option("--gpu", help="Candidate GPU (repeat for several) "
                                                     "[default: the fleet's GPUs, else h100-sxm and h200-sxm].")] = None,
    tp: Annotated[Optional[str], typer.Option("--tp", help="TP degrees, comma-separated [default: 1,2,4,8 that "
                                              "divide the heads].")] = None,
    precision: Annotated[str, typer.Option("--precision", help="Precisions, comma-separated: bf16, fp8 (W8A8, fp8 "
                                           "KV), int4 (W4A16) or weights/activations/kv.")] = "bf16,fp8",
    price: Annotated[Optional[list[str]], typer.Option("--price", help="GPU=USD per GPU-hour (repeat); overrides "
                                                       "the fleet file's prices.")] = None,
    fleet: Annotated[Optional[Path], typer.Option("--fleet", exists=True, dir_okay=False,
                                                  help="Fleet file (GPU types, per-region availability, prices): "
                                                  "adds the cheapest mix, or the unserved load.")] = None,
    memory_utilization: MemOpt = 0.9, profile: ProfileOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Highest request rate per replica within the SLOs for each GPU x TP x precision, replicas, GPUs, cost,
    headroom and the binding bottleneck; with --fleet, the cheapest mix across regions (an ILP)."""
    w = workload_from_options(workload, rate, prompt, output, turns, think_time_s, ttft_p99_s, tpot_p99_s)
    m = load_model(model)
    fl = load_fleet(fleet) if fleet else None
    prices = {**(fl.prices if fl else {}), **_prices(price or [])}
    names = gpu or (fl.gpu_names if fl else ["h100-sxm", "h200-sxm"])
    tps = None
    if tp:
        try:
            tps = [int(x) for x in tp.split(",") if x.strip()]
        except ValueError:
            raise RooflineError(f"--tp takes comma-separated integers, got {tp!r}", hint="e.g. --tp 2,4,8",
                                exit_code=2) from None
    precisions = [p.strip() for p in precision.split(",") if p.strip()]
    for p in precisions:
        parse_precision(p)
    cands = []
    for name in names:
        g, eff = _device(name, profile)
        cands += candidates([g], m, tps, precisions, eff)
    rows = capacity_table(cands, m, w, prices, _memory(memory_utilization))
    res = {"model": m.name, "workload": w.to_dict(), "candidates": rows}
    feasible = [r for r in rows if r["feasible"]]
    res["best"] = feasible[0] if feasible else None
    if fl:
        out_tps = w.mean_rate_per_s * (feasible[0]["output_tokens_per_s_per_replica"]
                                       / feasible[0]["max_request_rate_per_replica"]) if feasible else 0.0
        res["fleet_plan"] = plan_fleet(rows, fl, w.peak_rate_per_s, out_tps)
    emit(res, fmt, out, lambda: _capacity_tables(res),
         lambda: [{k: r.get(k) for k in CAPACITY_COLUMNS} for r in rows])


def _simulate_tables(res: dict) -> list:
    lat = [[name, *(_fmt(res[k][q], ".1f", 1e3) for q in ("mean", "p50", "p90", "p99", "max"))]
           for name, k in (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("end-to-end", "e2e_latency_s"))]
    ll = res["littles_law"]
    other = [["offered load", f"{res['offered_rate_per_s']:.3g} req/s on {res['replicas']} replica(s)"],
             ["throughput", f"{res['throughput_output_tokens_per_s']:.4g} output tok/s, "
                            f"{res['throughput_requests_per_s']:.3g} req/s"],
             ["batch per replica", f"mean {res['batch_size']['mean']:.1f}, max {res['batch_size']['max']:.0f}"],
             ["KV cache utilisation", f"mean {res['kv_cache_utilization']['mean']:.0%}, "
                                      f"max {res['kv_cache_utilization']['max']:.0%}"],
             ["queue length", f"mean {res['queue_length']['mean']:.1f}, max {res['queue_length']['max']:.0f}"],
             ["cache hit rate", _fmt(res["cache_hit_rate"], ".1%")],
             ["recompute", f"{res['recompute_tokens']:,} tokens ({res['recompute_fraction_of_prefill']:.1%} of "
                           f"prefill), {res['evictions']:,} evictions"],
             ["Little's law", f"in flight {ll['mean_in_flight']:.3g} vs rate x latency {_fmt(ll['rate_x_latency'])}"],
             ["rejected", f"{res['rejected_requests']:,} (larger than the KV cache)"]]
    if res.get("divergence_rate_per_s") is not None or res.get("load_sweep"):
        other.append(["latency diverges at", _fmt(res.get("divergence_rate_per_s"), ".4g", unit=" req/s")])
    return [table(f"Simulated {res['requests']:,} requests (ms)", ["", "mean", "p50", "p90", "p99", "max"], lat),
            table(None, ["", ""], other, justify_right=False)]


def simulate(
    model: ModelOpt = "llama-3.1-8b",
    gpu: Annotated[str, typer.Option("--gpu", help="GPU short name or spec file.")] = "h100-sxm",
    workload: WorkloadOpt = None, rate: RateOpt = None, prompt: PromptOpt = None, output: OutputOpt = None,
    turns: TurnsOpt = None, think_time_s: ThinkOpt = None, ttft_p99_s: TtftOpt = None, tpot_p99_s: TpotOpt = None,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree.")] = 1,
    precision: Annotated[str, typer.Option("--precision", help="bf16, fp8, int4 or weights/activations/kv.")] = "bf16",
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas (conversations routed round-robin).")] = 1,
    requests: Annotated[int, typer.Option("--requests", min=1, help="Requests to simulate.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")] = 0,
    chunked_prefill: Annotated[bool, typer.Option("--chunked-prefill/--no-chunked-prefill",
                                                  help="Mix prefill chunks into decode steps.")] = True,
    find_divergence: Annotated[bool, typer.Option("--find-divergence", help="Also simulate a ladder of loads "
                                                  "and report where latency diverges.")] = False,
    timeseries: Annotated[bool, typer.Option("--timeseries/--no-timeseries", help="Include batch, KV "
                                             "utilisation and queue over time in JSON.")] = False,
    memory_utilization: MemOpt = 0.9, profile: ProfileOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Discrete-event simulation of replicas with continuous batching, a paged KV cache, eviction and recompute:
    TTFT/TPOT/end-to-end percentiles, throughput, batch and KV utilisation, queue, cache hit rate."""
    w = workload_from_options(workload, rate, prompt, output, turns, think_time_s, ttft_p99_s, tpot_p99_s)
    g, eff = _device(gpu, profile)
    wt, act, kv = parse_precision(precision)
    s = make_setup(g, load_model(model), tp, wt, act, kv, eff)
    cfg = SimSettings(chunked_prefill=chunked_prefill, memory=_memory(memory_utilization))
    res = run_simulation(s, w, requests, replicas, seed, cfg)
    if find_divergence:
        res.update(divergence(s, w, max(2000, requests // 4), replicas, seed, cfg))
    if not timeseries:
        res.pop("timeseries")
    res = {"model": s.model.name, "gpu": g.name, "tp": tp, "precision": precision, "workload": w.to_dict(), **res}
    flat = {k: v for k, v in res.items() if not isinstance(v, (dict, list))}
    for k in ("ttft_s", "tpot_s", "e2e_latency_s"):
        flat.update({f"{k}_{q}": res[k][q] for q in ("p50", "p99")})
    emit(res, fmt, out, lambda: _simulate_tables(res), lambda: [flat])


def register(app: typer.Typer) -> None:
    app.command("capacity")(capacity)
    app.command("simulate")(simulate)
