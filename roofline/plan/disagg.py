"""Disaggregated serving (xPyD): a prefill pool and a decode pool, possibly of different GPU types, layouts and
precisions, each sized for its own SLO, with the KV cache sent from one to the other over the network.

Prefill pool (`capacity.operating_curve(pool="prefill")`). A prefill replica runs prompts back to back and no
decode: every request leaves with its first token, so no sequence decodes there (B = 0). Steps pack the queued
prompts into chunks of at most M = max_batched_tokens tokens and the engine idles between arrivals. Its TTFT is
the co-located model's with B = 0:

  TTFT = residual of the running chunk + queue wait + the prompt's own ceil(P / M) chunked steps + KV transfer
  queue wait (M/G/1, Pollaczek-Khinchine, service counted in steps): W = q / (1 - q) x t_p x E[n^2] / (2 E[n]),
  q = busy share of the replica, t_p = a chunk's step time, n = a prompt's steps; p50 ~ ln 2 x W and
  p99 ~ ln(100 q) / q x W (the exponential tail of an M/G/1 wait, P(wait > x) ~ q exp(-q x / W)).

The highest rate whose TTFT p50 and p99 (transfer included) meet the SLOs, with q < 0.98 and the in-flight
prompts' KV (and the prompts still being sent) within the KV cache, is the per-replica rate. Multi-turn
conversations keep their prefix in the prefill pool's cache (LRU, as co-located; the decode pool keeps none).

KV transfer. The decode replica needs the request's whole KV cache: context tokens (prompt + history) x layers x
KV elements per token and layer (the model's own count, unsharded: K and V of every KV head, or the MLA
latent) x bytes per element of the prefill pool's KV format. Assumptions: the pools sit on different nodes, so
the cache crosses the scale-out network as point-to-point send/recv (`comm.collective_time(gpu, "send_recv",
bytes / lanes, 2, span)` with a span past the node: launch + network latency + bytes / lanes / (NIC x the
achieved send/recv fraction)); each GPU of the smaller replica is one lane on its own NIC and the slower of the
two pools' NICs sets each lane's rate (lanes = min(prefill, decode GPUs per replica)); nothing overlaps the
transfer with the prefill (streaming it layer by layer would hide part of it: the upper end). TTFT p50 and p99
add the transfer of the p50 and p99 context. A transfer copies the KV pages as stored, so both pools must keep
the KV cache in the same format.

Decode pool (`operating_curve(pool="decode")`): decode-only steps, with no prefill chunk in any of them (the
point of disaggregation): B = u (O - 1) sequences, TPOT p50 = the decode step at B, p99 at B + 2.326 sqrt(B);
each request holds prompt + output pages from the step its KV arrives. The highest rate whose TPOT p50/p99 meet
the SLOs, whose p99 concurrency fits the KV cache and max_seqs, is the per-replica rate.

Sizing: replicas of each pool = ceil(peak rate / the pool's per-replica rate); cost = (prefill GPUs x its price
+ decode GPUs x its price) per hour, over the output tokens of the day's mean rate.
"""
from __future__ import annotations

import math

import numpy as np

from roofline.errors import RooflineError
from roofline.model import memory as mem
from roofline.model.comm import collective_time
from roofline.model.engine import Setup
from roofline.plan.capacity import (Candidate, candidate_setup, cost_order, infeasible_reason, operating_curve,
                                     replica_capacity)
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.specs.workload import Workload, sample_requests

_SAMPLE = 20_000


def kv_transfer_bytes(model: ModelConfig, kv_bytes_per_element: float, context_tokens) -> np.ndarray:
    """Bytes of one sequence's whole KV cache (every layer, every KV head once) for `context_tokens` tokens:
    (token, layer) entries x KV elements per entry x bytes per element. Array-friendly."""
    entries = model.kv_cache_token_layers(np.asarray(context_tokens, dtype=float))
    return entries * model.kv_cache_elements_per_token_per_layer(1) * kv_bytes_per_element


def kv_transfer_s(prefill_gpu: GPUSpec, decode_gpu: GPUSpec, size_bytes, lanes: int) -> np.ndarray:
    """Seconds to send `size_bytes` of KV cache from a prefill replica to a decode replica on another node:
    `lanes` parallel send/recv over the slower pool's NIC (inf when either GPU has no scale-out network)."""
    slow = min((prefill_gpu, decode_gpu), key=lambda g: g.scaleout_bandwidth_bytes_per_s)
    if slow.scaleout_bandwidth_bytes_per_s <= 0:
        return np.full(np.shape(size_bytes), np.inf)
    past_node = max(slow.gpus_per_node, slow.scaleup_domain_gpus) + 1  # a span that must cross the network
    per_lane = np.asarray(size_bytes, dtype=float) / max(int(lanes), 1)
    return collective_time(slow, "send_recv", per_lane, 2, past_node).time_s


class _Pool:
    """One candidate as a pool: its setup and operating curve, or why it cannot be one."""

    def __init__(self, c: Candidate, model: ModelConfig, w: Workload, ms: mem.MemorySettings, pool: str):
        self.c, self.pool, self.setup, self.op, self.error = c, pool, None, None, None
        self.ms = ms = mem.resolve_settings(ms, c.gpu, c.tp, c.pp)  # an engine's settings on this pool's GPU
        try:
            self.setup = candidate_setup(c, model)
        except RooflineError as e:
            self.error = e.message
            return
        self.op = operating_curve(self.setup, w, ms, pool=pool)

    def capacity(self, w: Workload, ttft_offset_s=(0.0, 0.0)) -> dict:
        return replica_capacity(self.setup, w, self.ms, self.pool, self.op, ttft_offset_s)


def _context_percentiles(w: Workload, seed: int = 0) -> tuple[float, float]:
    """(p50, p99) of a request's context at its prefill (new tokens + history): what the decode pool needs."""
    r = sample_requests(w, _SAMPLE, seed)
    ctx = (r.new_tokens + r.history_tokens).astype(float)
    return float(np.percentile(ctx, 50)), float(np.percentile(ctx, 99))


def _pool_fields(prefix: str, c: Candidate) -> dict:
    return {f"{prefix}_gpu": c.gpu.name, f"{prefix}_tp": c.tp, f"{prefix}_precision": c.precision,
            f"{prefix}_ep": c.ep, f"{prefix}_dp_attention": c.dp_attention,
            f"{prefix}_gpus_per_replica": c.gpus_per_replica}


def _kv_format(s: Setup) -> float:
    return float(np.asarray(s.kv_bytes))


def evaluate_pair(pre: _Pool, dec: _Pool, model: ModelConfig, w: Workload, ms: mem.MemorySettings,
                  prices: dict[str, float], context: tuple[float, float]) -> dict:
    """One row: the prefill pool and the decode pool sized for the workload's peak rate, or why the pair is
    infeasible (`feasible` False and `reason`)."""
    row = {"mode": "disaggregated", **_pool_fields("prefill", pre.c), **_pool_fields("decode", dec.c),
           "feasible": False}
    for name, p in (("prefill", pre), ("decode", dec)):
        if p.error:
            return {**row, "reason": f"{name} pool: {p.error}"}
    kv_p, kv_d = _kv_format(pre.setup), _kv_format(dec.setup)
    if kv_p != kv_d:
        return {**row, "reason": f"the KV cache is {kv_p:g} byte(s) per element on the prefill pool and {kv_d:g} "
                                 "on the decode pool: a transfer copies it as stored"}
    lanes = min(pre.c.gpus_per_replica, dec.c.gpus_per_replica)
    size = kv_transfer_bytes(model, kv_p, np.asarray(context))
    t50, t99 = (float(x) for x in kv_transfer_s(pre.c.gpu, dec.c.gpu, size, lanes))
    row.update(kv_transfer_bytes=float(size[1]), kv_transfer_s=t99, kv_transfer_p50_s=t50)
    if not math.isfinite(t99):  # no time at all (None), not inf: the table and CSV printed "inf"
        no_net = next(g.name for g in (pre.c.gpu, dec.c.gpu) if g.scaleout_bandwidth_bytes_per_s <= 0)
        return {**row, "kv_transfer_s": None, "kv_transfer_p50_s": None,
                "reason": f"{no_net} has no scale-out network (scaleout_bandwidth_bytes_per_s 0): the KV cache "
                          "cannot leave its node"}
    rp, rd = pre.capacity(w, (t50, t99)), dec.capacity(w)
    row.update(prefill_max_request_rate_per_replica=rp["max_request_rate_per_replica"],
               decode_max_request_rate_per_replica=rd["max_request_rate_per_replica"],
               prefill_limited_by=rp["limited_by"], prefill_bottleneck=rp["bottleneck"],
               decode_limited_by=rd["limited_by"], decode_bottleneck=rd["bottleneck"], decode_batch=rd["batch"],
               ttft_p50_s=rp["ttft_p50_s"], ttft_p99_s=rp["ttft_p99_s"], tpot_s=rd["tpot_s"],
               tpot_p50_s=rd["tpot_p50_s"], tpot_p99_s=rd["tpot_p99_s"], cache_hit_rate=rp["cache_hit_rate"],
               prefill_kv_cache_utilization=rp["kv_cache_utilization"],
               decode_kv_cache_utilization=rd["kv_cache_utilization"])
    slo = w.slo.ttft_p99_s
    if rp["max_request_rate_per_replica"] <= 0 and slo is not None and t99 >= slo:
        row.update(prefill_limited_by="kv_transfer", prefill_bottleneck="network")
        return {**row, "reason": f"prefill pool: the KV transfer alone ({t99:.3g} s) exceeds the TTFT p99 SLO"}
    if rp["limited_by"].startswith("ttft") and rp["ttft_p99_s"] is not None and t99 > rp["ttft_p99_s"] - t99:
        row["prefill_bottleneck"] = "network"  # the transfer is the larger part of the binding TTFT
    for name, r in (("prefill", rp), ("decode", rd)):
        if r["max_request_rate_per_replica"] <= 0:
            return {**row, "reason": f"{name} pool: {infeasible_reason(r)}"}
    peak = w.peak_rate_per_s
    n_pre, n_dec = (max(1, math.ceil(peak / r["max_request_rate_per_replica"] * (1 - 1e-9))) for r in (rp, rd))
    g_pre, g_dec = n_pre * pre.c.gpus_per_replica, n_dec * dec.c.gpus_per_replica
    served = min(rp["max_request_rate_per_replica"] * n_pre, rd["max_request_rate_per_replica"] * n_dec)
    row.update(feasible=True, prefill_replicas=n_pre, decode_replicas=n_dec, prefill_gpus=g_pre,
               decode_gpus=g_dec, gpus=g_pre + g_dec, max_request_rate_per_s=served, headroom=1.0 - peak / served,
               output_tokens_per_s=w.mean_rate_per_s * rd["output_tokens_per_s_per_replica"]
               / rd["max_request_rate_per_replica"])
    p_pre, p_dec = prices.get(pre.c.gpu.name), prices.get(dec.c.gpu.name)
    cost = None if p_pre is None or p_dec is None else g_pre * p_pre + g_dec * p_dec
    row.update(cost_per_hour=cost, cost_per_million_output_tokens=None if cost is None
               else cost / (row["output_tokens_per_s"] * 3600.0) * 1e6)
    return row


def disaggregated_table(prefill: list[Candidate], decode: list[Candidate], model: ModelConfig, w: Workload,
                        prices: dict[str, float], ms: mem.MemorySettings | None = None) -> list[dict]:
    """Every prefill candidate x every decode candidate as a pair of pools (each pool's curve computed once),
    feasible pairs first, cheapest (or fewest GPUs) first."""
    ms = ms or mem.MemorySettings()
    pres = [_Pool(c, model, w, ms, "prefill") for c in prefill]
    decs = [_Pool(c, model, w, ms, "decode") for c in decode]
    context = _context_percentiles(w)
    rows = [evaluate_pair(p, d, model, w, ms, prices, context) for p in pres for d in decs]
    return sorted(rows, key=cost_order)


def cheapest(colocated: list[dict], disaggregated: list[dict]) -> dict | None:
    """The cheapest feasible row of either kind (co-located rows get `mode` "colocated"), None if none is."""
    rows = [{"mode": "colocated", **r} for r in colocated if r["feasible"]]
    rows += [r for r in disaggregated if r["feasible"]]
    return min(rows, key=cost_order) if rows else None
