"""The answer first: one or two sentences computed from a command's results, printed before its tables
(`verdict` in its JSON) and at the top of the report.

Each function takes the result the command already computed (the `analyze` dict, `decode_batching`, the
capacity document, the simulation summary) and says what a planner acts on: the regime and what batching
buys (analyze), the cheapest deployment, what binds it and its headroom (capacity), whether the replicas keep
up and the percentiles against every SLO in force (simulate). Numbers are formatted for people
(`roofline.units`); a deployment that does not fit says so before anything else.
"""
from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from roofline.plan.simulate import SimSettings
from roofline.units import format_time_s

#: the share of the arrivals' span the simulator treats as warm-up
WARMUP_FRACTION = SimSettings.warmup_fraction
#: served / offered below this is an overloaded simulation (the queue grows for as long as the load lasts)
OVERLOAD_SERVED_FRACTION = 0.95
#: simulation SLO keys: (summary key, percentile, label)
_SIM_SLOS = (("ttft_s", "p50", "TTFT p50"), ("ttft_s", "p99", "TTFT p99"), ("tpot_s", "p50", "TPOT p50"),
             ("tpot_s", "p99", "TPOT p99"))


def headline(text: str) -> Text:
    """The verdict as the first thing a table output prints (bold, never read as rich markup)."""
    return Text(text, style="bold")


def number(x: float) -> str:
    """A figure for a sentence: 3 significant digits, thousands separated, no exponent (1.0 -> '1',
    294.6 -> '295', 11103 -> '11,103', 0.0712 -> '0.0712')."""
    if x is None or not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def times(x: float) -> str:
    """A ratio: '80x', '1.3x', '0.62x'."""
    return f"{x:,.0f}x" if x >= 10 else f"{x:.2g}x"


def _slo_text(slo: dict, key: str) -> str:
    """'TPOT p50 30 ms / p99 50 ms' for the targets in force of `key` (ttft or tpot); '' when none."""
    parts = [f"{q} {format_time_s(slo[f'{key}_{q}_s'])}" for q in ("p50", "p99") if slo.get(f"{key}_{q}_s")]
    return f"{key.upper()} " + " / ".join(parts) if parts else ""


def slos_text(slo: dict) -> str:
    """Every SLO in force: 'TTFT p50 500 ms / p99 2 s, TPOT p50 30 ms / p99 50 ms' ('' when none)."""
    return ", ".join(t for t in (_slo_text(slo, "ttft"), _slo_text(slo, "tpot")) if t)


# --------------------------------------------------------------------------------------------------- analyze

def analyze_verdict(r: dict, batching: dict | None = None, comparison: dict | None = None) -> str:
    """From an `analyze` result, `analysis.decode_batching` at the same scenario (optional) and a
    comparison {'gpu': name, 'speedup': decode tokens/s ratio of the best other GPU, 'at': what was
    compared} (optional): fit first, then the decode regime against the ridge, then what batching buys."""
    c, m = r["config"], r["memory"]
    ctx = c["context"]
    if not m["fits"]:
        tp = m["min_tp_that_fits"]
        where = f"the smallest TP that fits is {tp}" if tp else "no TP degree fits"
        return (f"{r['model']} does not fit on {c['gpus']} x {r['gpu']} (TP {c['tp']}): not one sequence of "
                f"{ctx:,} tokens; {where}. The times below are for a GPU with enough memory.")
    out = []
    if not m["batch_fits"]:
        out.append(f"Batch {c['batch']} does not fit: the KV cache holds {m['max_batch']:,} sequences of {ctx:,} "
                   "tokens.")
    dec = r["decode"]
    ai, ridge = dec["arithmetic_intensity_flops_per_byte"] or 0.0, r["ridge_point_flops_per_byte"]
    out.append(f"Decode is {dec['bound']}-bound at batch {c['batch']} and context {ctx:,} "
               f"({number(ai)} FLOP/B vs ridge {number(ridge)}; TPOT {format_time_s(r['tpot_s'])})")
    if batching and batching.get("gain"):
        b = batching
        why = ("within the TPOT SLO " + format_time_s(b["slo_tpot_s"]) if b["limited_by"] == "slo"
               else "the most that fits")
        if b["batch"] > c["batch"]:
            out[-1] += (f"; batching to {b['batch']:,} ({why}) raises decode throughput {times(b['gain'])} to "
                        f"{number(b['decode_tokens_per_s'])} tokens/s at {format_time_s(b['tpot_s'])} TPOT")
        elif b["limited_by"] == "memory" and b["batch"] < c["batch"]:
            out[-1] += (f"; at batch {b['batch']:,}, the most that fits, decode gives "
                        f"{number(b['decode_tokens_per_s'])} tokens/s at {format_time_s(b['tpot_s'])} TPOT")
        elif b["limited_by"] == "slo" and b["batch"] < c["batch"]:
            out[-1] += (f"; TPOT {format_time_s(r['tpot_s'])} misses the SLO {format_time_s(b['slo_tpot_s'])}: "
                        f"batch {b['batch']:,} meets it")
    elif batching and batching.get("limited_by") == "slo" and batching.get("batch") == 0:
        out[-1] += (f"; even batch 1 misses the TPOT SLO {format_time_s(batching['slo_tpot_s'])} "
                    f"({format_time_s(batching['tpot_s'])})")
    out[-1] += "."
    if comparison:
        s = comparison["speedup"]
        rel = f"{times(s)} faster" if s >= 1 else f"{times(1 / s)} slower"
        out.append(f"On {comparison['gpu']} decode is {rel} ({comparison['at']}).")
    return " ".join(out)


def best_comparison(rows: list[dict], own: str) -> dict | None:
    """The other GPU with the most decode tokens/s per GPU among comparison rows (report.compare_rows, with
    `decode_tokens_per_s_per_gpu` and `at`), as {'gpu', 'speedup', 'at'}; None when there is none to compare."""
    mine = next((r for r in rows if r["gpu"] == own), None)
    others = [r for r in rows if r["gpu"] != own and r.get("decode_tokens_per_s_per_gpu")]
    if not mine or not mine.get("decode_tokens_per_s_per_gpu") or not others:
        return None
    best = max(others, key=lambda r: r["decode_tokens_per_s_per_gpu"])
    return {"gpu": best["gpu"], "speedup": best["decode_tokens_per_s_per_gpu"] / mine["decode_tokens_per_s_per_gpu"],
            "at": best.get("at", "decode tokens/s per GPU")}


# --------------------------------------------------------------------------------------------------- capacity

def layout_text(r: dict, prefix: str = "") -> str:
    """'TP4', 'TP2 PP2 EP8 DP8': a capacity row's layout (the `prefix` pool's: 'prefill_', 'decode_')."""
    extra = [f"{k.upper()}{r[prefix + k]}" for k in ("pp", "ep") if r.get(prefix + k, 1) > 1]
    extra += [f"DP{r[prefix + 'dp_attention']}"] if r.get(prefix + "dp_attention", 1) > 1 else []
    return " ".join([f"TP{r[prefix + 'tp']}"] + extra)


def _layout(r: dict, prefix: str = "") -> str:
    return f"{layout_text(r, prefix)} {r[prefix + 'precision'].upper()}"


def _limit(r: dict, slo: dict, key: str = "limited_by") -> str:
    """'tpot_p99_slo' -> 'the TPOT p99 SLO (50 ms)'; other limits as written ('kv_cache', 'saturation' ...)."""
    lim = r.get(key) or "-"
    parts = lim.split("_")
    if len(parts) == 3 and parts[2] == "slo":
        target = slo.get(f"{parts[0]}_{parts[1]}_s")
        return f"the {parts[0].upper()} {parts[1]} SLO" + (f" ({format_time_s(target)})" if target else "")
    return lim.replace("_", " ")


def capacity_verdict(res: dict) -> str:
    """From the capacity document: the cheapest feasible deployment (co-located or disaggregated), what
    limits it, its headroom, and every SLO in force; or that none meets them."""
    w = res["workload"]
    slos = slos_text(w["slo"])
    at = f"at {number(w['peak_rate_per_s'])} req/s peak" + (f" within {slos}" if slos else " (no SLO set)")
    best = res.get("cheapest") if "cheapest" in res else res.get("best")
    if best is None:
        return f"No candidate serves {res['model']} {at}: every GPU x TP x precision is infeasible (see notes)."
    cost = ("" if best.get("cost_per_hour") is None else
            f", ${best['cost_per_hour']:,.2f}/h (${best['cost_per_million_output_tokens']:.3g} per 1M output tokens)")
    if best.get("mode") == "disaggregated":
        what = (f"{best['gpus']} GPUs disaggregated: prefill {best['prefill_replicas']} x {best['prefill_gpu']} "
                f"{_layout(best, 'prefill_')}, decode {best['decode_replicas']} x {best['decode_gpu']} "
                f"{_layout(best, 'decode_')}")
        limit = (f"limited by {_limit(best, w['slo'], 'prefill_limited_by')} (prefill) and "
                 f"{_limit(best, w['slo'], 'decode_limited_by')} (decode)")
    else:
        what = f"{best['gpus']} x {best['gpu']} ({best['replicas']} replica{'s' if best['replicas'] != 1 else ''} of {_layout(best)})"
        limit = f"limited by {_limit(best, w['slo'])}"
        if best.get("headroom") is not None:
            limit += f", {best['headroom']:.0%} headroom"
    out = f"Cheapest for {res['model']} {at}: {what}{cost}; {limit}."
    plan = res.get("fleet_plan")
    if plan:
        cost = "" if plan.get("cost_per_hour") is None else f", ${plan['cost_per_hour']:,.2f}/h"
        mix = ", ".join(f"{m['gpus']} x {m['gpu']} in {m['region']}" for m in plan.get("mix", []))
        out += f" Within the fleet's availability: {plan['gpus']} GPUs{cost} ({mix or 'none'})."
        if plan.get("at_capacity"):
            out += f" The fleet is AT CAPACITY: {number(plan['unserved_rate_per_s'])} req/s unserved."
    return out


# --------------------------------------------------------------------------------------------------- simulate

def queue_grows(res: dict) -> bool:
    """Whether the admission queue grows over the measured window: with the timeseries (samples between
    the warm-up and the last arrival, in quarters), the last quarter's mean queue exceeds twice the first's
    plus one request per replica; without it, fewer than OVERLOAD_SERVED_FRACTION of the offered requests
    per second completed."""
    ts, span = res.get("timeseries"), res.get("arrival_span_s")
    if ts and span and len(ts.get("time_s", ())) >= 8:
        t, q = np.asarray(ts["time_s"]), np.asarray(ts["queue_length"], dtype=float)
        inside = q[(t >= WARMUP_FRACTION * span) & (t <= span)]
        if len(inside) >= 8:
            quarters = np.array_split(inside, 4)
            first, last = float(quarters[0].mean()), float(quarters[-1].mean())
            return last > 2 * first + res["replicas"]
    offered = res["offered_rate_per_s"]
    return offered > 0 and res["throughput_requests_per_s"] < OVERLOAD_SERVED_FRACTION * offered


def simulate_verdict(res: dict, slo: dict | None = None) -> str:
    """From a simulation summary (with its `timeseries` when kept) and the workload's SLOs: OVERLOADED
    (served vs offered rate; the queue grows) or OK / SLO MISSED with each percentile in force against its
    SLO (p50 and p99 of TTFT and TPOT)."""
    offered, served = res["offered_rate_per_s"], res["throughput_requests_per_s"]
    rep = f"{res['replicas']} replica" + ("s" if res["replicas"] != 1 else "")
    if queue_grows(res):
        return (f"OVERLOADED: {number(served)} of {number(offered)} req/s served on {rep}; the queue grows "
                f"without bound (max {res['queue_length']['max']:,.0f} waiting). Add replicas or lower the rate.")
    slo = slo or {}
    checks, missed = [], []
    for key, q, label in _SIM_SLOS:
        target, got = slo.get(f"{key.removesuffix('_s')}_{q}_s"), res[key][q]
        if target and got is not None:
            checks.append(f"{label} {format_time_s(got)} vs SLO {format_time_s(target)}")
            if got > target:
                missed.append(label)
    if not checks:
        checks = [f"TTFT p99 {format_time_s(res['ttft_s']['p99'])}, TPOT p99 {format_time_s(res['tpot_s']['p99'])} "
                  "(no SLO set)"]
    head = f"SLO MISSED ({', '.join(missed)})" if missed else "OK"
    rejected = (f"; {res['rejected_requests']:,} requests rejected (larger than the KV cache)"
                if res.get("rejected_requests") else "")
    keep = "keeps" if res["replicas"] == 1 else "keep"
    return f"{head}: {rep} {keep} up with {number(offered)} req/s{rejected}; " + ", ".join(checks) + "."
