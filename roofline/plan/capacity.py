"""Capacity: the highest request rate one replica sustains within the SLOs, and what a fleet costs.

Steady state of one replica with continuous batching and chunked prefill (the scheduler `simulate` runs).
Let u = requests that arrive per step (rate x mean step time). Then, by Little's law:

  decoding sequences    B = u (O - 1)            (the prefill's last chunk emits the first token)
  prefill tokens/step   u Pe                     (Pe: new tokens + recomputed history on a cache miss)
  a step carries a prefill chunk of c = min(M - B, max(mean Pe, u Pe)) tokens with probability q = u Pe / c,
  mean step time        t(u) = (1 - q) f(decode step) + q f(decode step + chunk)      (f: the roofline model)
  rate                  lambda(u) = u / t(u);  TPOT ~ t(u);  TTFT ~ wait + ceil(P / (M - B)) prefill steps

M is the per-step token budget (max_batched_tokens). The KV cache holds each in-flight request's pages
(prompt + output reserved at admission) and idle conversations between turns (LRU; hit rate ~ free / needed,
solved at each u: the hit rate sets Pe, hence the rate, hence the idle conversations' share). The requests in
flight are a birth-death chain (`inflight_chain`): with k in flight the replica completes the curve's rate at
that occupancy, which flattens near saturation, so a loaded replica's count spreads far wider than a Poisson
count; admission holds at most what the KV cache (or max_seqs) fits, beyond which requests queue (their wait
adds to TTFT). TPOT p99 is the p99 batch's decode step stretched by the prefill work arriving while it runs.
lambda(u) is evaluated on a grid of u in one vectorized call; the answer is the largest lambda whose u keeps
TPOT and TTFT within the SLOs, the p99 of the chain within the KV cache and max_seqs, and q < 1; saturation is
where the mean in flight reaches what admission holds (the queue no longer drains).
The p99s are estimates: `simulator_difference` measures them against the simulator (docs/capacity-queueing.md
has the comparison).

The same curve describes the two pools of disaggregated serving (`pool`, see `roofline.plan.disagg`): a
prefill replica (every request leaves after its first token, so B = 0; the engine idles between arrivals, so
a step slot lasts a prefill step: t(u) = t_p) and a decode replica (decode-only steps: q = 0, t(u) = t_d, no
prefill chunk in any step; each request holds its pages from the step it arrives in).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from roofline.model import memory as mem
from roofline.model.efficiency import Efficiency
from roofline.model.engine import Setup, make_setup, time_pass, tp_degrees
from roofline.errors import RooflineError
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.model.phases import attention_terms, micro_batches, phase_time_s
from roofline.specs.precision import PrecisionSet
from roofline.model.step_time import mixed_pass, step_ops, with_engine_costs
from roofline.specs.workload import LengthDist, Workload, sample_requests

Z99 = 2.326  # standard normal 99th percentile: p99 concurrency ~ B + Z99 sqrt(B) (Poisson)
_GRID = 1500
_SAMPLE = 20_000
U_GRID = np.geomspace(1e-5, 10.0, 41)
#: what one replica does: "colocated" (continuous batching with chunked prefill), or one pool of disaggregated
#: serving: "prefill" (prompts only, each request leaves with its first token) or "decode" (decode-only steps)
POOLS = ("colocated", "prefill", "decode")
#: the limits each kind of replica is held to (in the order `limited_by` names the first one that binds)
POOL_LIMITS = {
    "colocated": ("kv_capacity", "prefill_budget", "max_seqs", "tpot_p50_slo", "tpot_p99_slo", "ttft_p50_slo",
                  "ttft_p99_slo"),
    "prefill": ("kv_capacity", "prefill_budget", "ttft_p50_slo", "ttft_p99_slo"),
    "decode": ("kv_capacity", "max_seqs", "tpot_p50_slo", "tpot_p99_slo"),
}


@dataclass(frozen=True)
class WorkloadStats:
    """Per-request means that the steady-state model needs (from a sample of the workload)."""

    output: float          # O
    prefill_tokens: float  # Pe (with recompute of missed history)
    prefill_tokens_sq: float
    prefill_pairs: float
    prefill_kv: float
    decode_pairs: float    # summed over the request's decode steps
    decode_kv: float
    reserved_tokens: float  # KV pages (in tokens) an in-flight request holds
    reserved_token_steps: float  # E[(O - 1) x reserved tokens]: decoding requests hold KV size-biased
    p50_prompt: float
    p99_prompt: float
    idle_tokens: float     # KV tokens an idle conversation holds between turns, per request (0 if none)
    chunk_share: tuple = ()  # (p50, p99) over requests of the prefill tokens per decode step they share
                             # their steps with, per unit of u, on U_GRID (compound Poisson, by Monte Carlo)


def workload_stats(model: ModelConfig, w: Workload, hit_rate: float, seed: int = 0) -> WorkloadStats:
    r = sample_requests(w, _SAMPLE, seed)
    hist = r.history_tokens.astype(float)
    reuse = w.prefix_reuse and w.turns > 1
    cached = hist * hit_rate if reuse else 0.0 * hist
    pe = r.new_tokens + hist - cached
    p_pairs, p_kv = attention_terms(model, pe, cached)
    o = r.output_tokens.astype(float)
    ctx0 = r.new_tokens + hist
    d_pairs, d_kv = attention_terms(model, 1.0, ctx0 + np.maximum(o - 2.0, 0.0) / 2.0)
    total = ctx0 + o
    pages = np.ceil(total / mem.KV_PAGE_TOKENS) * mem.KV_PAGE_TOKENS
    idle = np.where(r.turn < w.turns - 1, pages, 0.0) * w.think_time_s if reuse else 0.0 * pages
    n_dec = (o[o > 1] - 1.0)[:4000] if (o > 1).any() else np.ones(1)
    rng = np.random.default_rng(seed)
    k = rng.poisson(U_GRID[:, None] * n_dec[None, :])  # prompts that arrive during a request's decode
    tokens = k * pe.mean() + np.sqrt(k * pe.var()) * rng.standard_normal(k.shape)
    share = np.maximum(tokens, 0.0) / n_dec[None, :] / U_GRID[:, None]
    chunk_share = (np.percentile(share, 50, axis=1), np.percentile(share, 99, axis=1))
    return WorkloadStats(float(o.mean()), float(pe.mean()), float((pe ** 2).mean()), float(p_pairs.mean()),
                         float(p_kv.mean()), float(((o - 1) * d_pairs).mean()), float(((o - 1) * d_kv).mean()),
                         float(pages.mean()), float(((o - 1) * pages).mean()), float(np.percentile(ctx0 - cached, 50)),
                         float(np.percentile(ctx0 - cached, 99)), float(idle.mean()), chunk_share)


@dataclass
class Operating:
    """The steady state on a grid of u (arrays) for one replica."""

    u: np.ndarray
    rate: np.ndarray
    step_s: np.ndarray     # mean step time (= mean TPOT)
    tpot_p50_s: np.ndarray
    tpot_p99_s: np.ndarray
    batch: np.ndarray
    chunk: np.ndarray
    q: np.ndarray
    kv_p99_tokens: np.ndarray
    ttft_p50_s: np.ndarray
    ttft_p99_s: np.ndarray
    hit_rate: np.ndarray
    kv_capacity_tokens: float
    stats: WorkloadStats   # fields that depend on the hit rate are arrays over u
    pool: str = "colocated"
    inflight_p99: np.ndarray | None = None  # p99 requests in flight or queued for admission (colocated)
    admit_max: np.ndarray | None = None     # the most requests admission holds (KV cache or max_seqs)
    inflight: np.ndarray | None = None      # mean requests in flight


@dataclass(frozen=True)
class _Load:
    """A replica's load on the grid of u (requests per step): what the TTFT queue model needs."""

    stats: WorkloadStats
    u: np.ndarray                # requests admitted per step
    decode_batch: np.ndarray     # B: sequences decoding in a step
    decode_step_s: np.ndarray    # t_d: a decode-only step
    prefill_step_s: np.ndarray   # t_p: a step carrying a prefill chunk
    prefill_share: np.ndarray    # q: fraction of steps carrying a prefill chunk
    max_batched_tokens: float    # M: tokens per step the engine allows


def _ttft(s: Setup, load: _Load, prompt: float, p99: bool):
    """Residual of the running step + M/G/1 wait for the prefill queue + the prompt's own chunked steps
    (each packed with the prefill tokens that arrive meanwhile)."""
    st, u, B, M = load.stats, load.u, load.decode_batch, load.max_batched_tokens
    t_d, t_p, q = load.decode_step_s, load.prefill_step_s, load.prefill_share
    free = np.maximum(M - B, 1.0)
    n = np.ceil(prompt / free)
    chunk = np.minimum(prompt + u * st.prefill_tokens, free)
    cp, ck = attention_terms(s.model, np.minimum(prompt, free), np.maximum(prompt - free, 0.0))
    t_q = _time(s, B + chunk, B + 1.0, u * st.decode_pairs + cp + u * st.prefill_pairs,
                u * st.decode_kv + ck + u * st.prefill_kv)
    qc = np.minimum(q, 0.999)
    n_mean = np.maximum(st.prefill_tokens / free, 1.0)
    n2 = np.maximum(st.prefill_tokens_sq / free ** 2, n_mean)
    wait = qc / (1.0 - qc) * t_p * n2 / (2.0 * n_mean)
    mean_t = (1 - qc) * t_d + qc * t_p
    if p99:
        wait = np.maximum(np.log(100.0 * qc), 0.0) * wait / np.maximum(qc, 1e-12)
        residual = np.where(qc > 0.01, t_p, t_d)
    else:
        wait = wait * math.log(2.0)
        residual = ((1 - qc) * t_d ** 2 + qc * t_p ** 2) / (2.0 * mean_t)
    busy = np.minimum(1.0, B + q)
    return busy * residual + wait + n * t_q


def step_times(s: Setup, st: WorkloadStats, u, B, c):
    """(decode-only step time, step time with a prefill chunk of c tokens)."""
    frac = c / st.prefill_tokens
    dec_pairs, dec_kv = u * st.decode_pairs, u * st.decode_kv
    t_d = _time(s, B, B, dec_pairs, dec_kv)
    t_p = _time(s, B + c, B + np.maximum(frac, 1.0), dec_pairs + frac * st.prefill_pairs,
                dec_kv + frac * st.prefill_kv)
    return t_d, t_p


# a layout whose collectives have no link (a TP group across nodes without a network) has infinite step times;
# the inf - inf and 0 x inf of its curve are NaN, which meets no SLO: the candidate is infeasible, silently
@np.errstate(invalid="ignore")
def operating_curve(s: Setup, w: Workload, ms: mem.MemorySettings, hit_rate: float = 1.0,
                    pool: str = "colocated") -> Operating:
    """The replica's steady state over u (requests per step). A multi-turn workload's cache hit rate is solved
    at each u (a fixed point: the hit rate sets the prefill work, hence the rate, hence the idle conversations'
    share of the KV cache), at most `hit_rate`. `pool`: one of POOLS (a decode pool keeps no idle
    conversations: their next prompt goes to the prefill pool, which does). Step times include the fixed costs
    of a pass the engine settings imply."""
    s = with_engine_costs(s, ms)
    cap = float(mem.kv_cache_capacity_tokens(s, ms))
    M = float(ms.max_batched_tokens)
    u = np.geomspace(1e-7, 2.0 * ms.max_seqs, _GRID)
    if pool == "prefill":
        w = replace(w, output=LengthDist("fixed", value=1))
    hit_rate = 0.0 if pool == "decode" else hit_rate
    top = workload_stats(s.model, w, hit_rate)
    reuse = top.idle_tokens > 0 and hit_rate > 0
    # the workload's statistics at a few hit rates, interpolated at each u's own
    hits = hit_rate * np.linspace(0.0, 1.0, _HIT_POINTS) if reuse else np.array([hit_rate])
    grid = [workload_stats(s.model, w, h) for h in hits[:-1]] + [top]
    hit = np.full_like(u, hit_rate)
    for _ in range(_HIT_ITERATIONS):
        st = _stats_at(grid, hits, hit)
        B = u * max(top.output - 1.0, 0.0)
        c = np.clip(np.maximum(st.prefill_tokens, u * st.prefill_tokens), 1.0, np.maximum(M - B, 1.0))
        q = np.minimum(u * st.prefill_tokens / c, 1.0)
        t_d, t_p = step_times(s, st, u, B, c)
        if pool == "decode":
            q, t_p = np.zeros_like(q), t_d
        elif pool == "prefill":
            t_d = t_p
        t = (1.0 - q) * t_d + q * t_p
        rate = u / t
        steps_held = np.maximum(st.prefill_tokens / c, 1.0) if pool != "decode" else np.ones_like(u)
        kv_inflight = u * st.reserved_token_steps + u * steps_held * st.reserved_tokens
        if not reuse:
            break
        # LRU over idle conversations: the share of their KV (token-seconds) that fits in what the in-flight
        # requests leave; with exponential think times this is also the share of conversations that return
        # within the cache's horizon (E[min(T, H)] / E[T] = 1 - exp(-H / mean T))
        free = np.maximum(cap - kv_inflight, 0.0)
        new_hit = np.clip(free / np.maximum(rate * top.idle_tokens, 1e-9), 0.0, 1.0) * hit_rate
        new_hit = np.where(np.isfinite(new_hit), new_hit, 0.0)
        if np.max(np.abs(new_hit - hit)) < 1e-3:
            break
        hit = 0.5 * (hit + new_hit)  # damped: a higher hit rate raises the rate, which lowers the hit rate
    if pool != "colocated":
        kv_p99 = kv_inflight + Z99 * np.sqrt(np.maximum(kv_inflight * st.reserved_tokens, 0.0))
        return _pool_curve(s, st, u, B, c, q, t_d, t, rate, kv_p99, cap, hit, M, pool)
    # the requests in flight (decoding or prefilling) as a birth-death chain: arrivals at the rate, departures
    # at the rate the curve sustains with that many in flight, admission capped by the KV cache and max_seqs
    inflight = B + u * steps_held
    per_request = kv_inflight / np.maximum(inflight, 1e-12)
    n_max = np.minimum(cap / np.maximum(per_request, 1e-12), float(ms.max_seqs))
    chain = inflight_chain(inflight, rate, np.where(q < 1.0, rate, 0.0), n_max)
    kv_p99 = chain.n_p99 * per_request
    # a request's TPOT: its decode steps at the p99 batch, a Binomial share of which carry prefill chunks
    B99 = np.minimum(chain.n_p99, n_max) * B / np.maximum(inflight, 1e-12)
    d99, p99 = step_times(s, st, u, B99, np.clip(c, 1.0, np.maximum(M - B99, 1.0)))
    lu = np.log(np.clip(u, U_GRID[0], U_GRID[-1]))
    share50, share99 = (_interp_rows(hits, np.array([np.interp(lu, np.log(U_GRID), g.chunk_share[k]) for g in grid]),
                                     hit) for k in (0, 1))
    # marginal step time of a prefill token, taken on a full chunk (the big chunks make the tail)
    free = np.maximum(M - B, 1.0)
    per_token = (step_times(s, st, u, B, free)[1] - t_d) / free
    per_token99 = (step_times(s, st, u, B99, np.maximum(M - B99, 1.0))[1] - d99) / np.maximum(M - B99, 1.0)
    # the prefill tokens a step carries arrive while it runs: x = rate x t x share per step, so a step of
    # t = t_dec + per_token x rate x t x share lasts t_dec / (1 - per_token x rate x share), at most a full
    # chunk (at the p99: the p99 batch's decode step and the p99 share; conservative near prefill saturation)
    tpot50 = _with_prefill(t_d, per_token * rate * share50, per_token * free)
    tpot99 = _with_prefill(d99, per_token99 * rate * share99, per_token99 * np.maximum(M - B99, 1.0))
    load = _Load(st, u, B, t_d, t_p, q, M)
    ttft50 = _ttft(s, load, st.p50_prompt, False) + chain.wait_p50_s
    ttft99 = _ttft(s, load, st.p99_prompt, True) + chain.wait_p99_s
    return Operating(u, rate, t, tpot50, tpot99, B, c, q, kv_p99, ttft50, ttft99, hit, cap, st, pool,
                     chain.n_p99, n_max, inflight)


def _with_prefill(t_dec, a, full):
    """A decode step's time t_dec stretched by the prefill work that arrives while it runs (a: prefill
    seconds per second of step), at most t_dec + `full` (a full chunk)."""
    return np.where(a < 1.0, np.minimum(t_dec / np.maximum(1.0 - a, 1e-12), t_dec + full), t_dec + full)


#: hit rates at which a multi-turn workload's statistics are sampled (interpolated in between), and the most
#: iterations of the per-u hit-rate fixed point
_HIT_POINTS, _HIT_ITERATIONS = 5, 12


def _interp_rows(xs: np.ndarray, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """rows[i] holds a quantity at xs[i] over the grid of u; its value at each u's own x (linear in x)."""
    if len(xs) == 1:
        return rows[0] * np.ones_like(x)
    j = np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2)
    f = np.clip((x - xs[j]) / (xs[j + 1] - xs[j]), 0.0, 1.0)
    cols = np.arange(rows.shape[1]) if rows.ndim == 2 else None
    lo, hi = (rows[j, cols], rows[j + 1, cols]) if cols is not None else (rows[j], rows[j + 1])
    return (1.0 - f) * lo + f * hi


def _stats_at(grid: list[WorkloadStats], hits: np.ndarray, hit: np.ndarray) -> WorkloadStats:
    """The workload statistics at each u's hit rate (fields that depend on it become arrays over u;
    `chunk_share` stays the table of the highest hit rate)."""
    if len(grid) == 1:
        return grid[0]
    vary = {f: _interp_rows(hits, np.array([getattr(g, f) for g in grid]), hit)
            for f in ("prefill_tokens", "prefill_tokens_sq", "prefill_pairs", "prefill_kv", "p50_prompt",
                      "p99_prompt")}
    return replace(grid[-1], **vary)


@dataclass(frozen=True)
class Chain:
    """The in-flight birth-death chain at each u's rate (arrays over u): `n_p99` the 99th percentile of the
    requests in flight or waiting for admission (above n_max: the KV cache or max_seqs is full more than 1%
    of the time), `p_full` the probability that an arrival finds admission full, the admission waits."""

    n_p99: np.ndarray
    p_full: np.ndarray
    wait_p50_s: np.ndarray
    wait_p99_s: np.ndarray


#: the most states of the in-flight chain (beyond that, states are groups of requests)
_CHAIN_STATES = 800


@np.errstate(divide="ignore", invalid="ignore", over="ignore")
def inflight_chain(n: np.ndarray, arrival: np.ndarray, departure: np.ndarray, n_max: np.ndarray) -> Chain:
    """The requests in flight as a birth-death chain, for each arrival rate `arrival[j]` (per second).

    The steady state at load u has n[u] requests in flight and completes `departure[u]` of them per second
    (the operating curve's rate; 0 where it is not sustainable); so with k requests in flight the replica
    completes mu(k) = departure interpolated at n = k per second (mu(k) = k / residence at light load; its
    residence grows with k: longer steps, more prefill). Requests arrive at lambda = arrival[j]; admission
    holds at most n_max[j] (the KV cache's or max_seqs' worth); beyond, they wait in a FIFO queue drained at
    mu(n_max). Stationary law: pi(k) ~ prod_{i <= k} lambda / mu(i), a geometric tail of ratio
    r = lambda / mu(n_max) beyond n_max (unstable, all infinite, when r >= 1). Unlike a Poisson count
    (mu(k) proportional to k), the count spreads wide when mu(k) flattens near the rate: a replica near its
    KV-bound throughput is full far more often than its mean occupancy suggests. An arrival finds admission
    full with probability p_full = P(k >= n_max) and then waits an exponential time of rate mu(n_max)(1 - r)
    (a geometric number of departures)."""
    n, lam, n_max = np.asarray(n, float), np.asarray(arrival, float), np.asarray(n_max, float)
    ok = departure > 0
    nk, mk = (np.concatenate([[0.0], n[ok]]), np.concatenate([[0.0], np.asarray(departure, float)[ok]])) \
        if ok.any() else (np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    top = float(np.nanmax(np.where(np.isfinite(n_max), n_max, 0.0), initial=1.0))
    dk = max(1.0, top / _CHAIN_STATES)
    k = np.arange(1, int(math.ceil(top / dk)) + 1) * dk
    mu = np.interp(k, nk, np.maximum.accumulate(mk))  # the most the replica completes with k in flight
    log_step = dk * (np.log(lam)[:, None] - np.log(mu)[None, :])
    log_pi = np.concatenate([np.zeros((len(lam), 1)), np.cumsum(log_step, axis=1)], axis=1)
    last = np.clip(np.floor(n_max / dk), 0, len(k)).astype(int)  # the state at admission's cap
    allowed = np.arange(len(k) + 1)[None, :] <= last[:, None]
    log_pi = np.where(allowed, log_pi, -np.inf)
    peak = np.max(log_pi, axis=1, keepdims=True)
    pi = np.exp(log_pi - peak)  # per state; each state > 0 stands for dk requests
    weight = pi * np.where(np.arange(len(k) + 1) == 0, 1.0, dk)[None, :]
    pi_full = np.take_along_axis(pi, last[:, None], axis=1)[:, 0]
    mu_full = np.interp(n_max, nk, np.maximum.accumulate(mk))
    r = lam / mu_full
    stable = (r < 1.0) & np.isfinite(r)
    tail = np.where(stable, pi_full * r / np.where(stable, 1.0 - r, 1.0), np.inf)  # the queue's states
    z = weight.sum(axis=1) + tail
    p_full = np.where(stable, (pi_full + tail) / z, 1.0)
    cdf = np.cumsum(weight, axis=1) / z[:, None]
    below = np.clip(np.argmax(cdf >= 0.99, axis=1), 0, None)
    n_in = np.minimum(below * dk, n_max)
    queued = np.log(p_full / 0.01) / -np.log(np.where(stable, r, 0.5))
    n_p99 = np.where(~stable, np.inf, np.where(p_full > 0.01, n_max + queued, n_in))
    drain = mu_full * (1.0 - r)

    def wait(p):
        return np.where(~stable, np.inf, np.maximum(np.log(p_full / (1.0 - p)), 0.0) / np.where(stable, drain, 1.0))
    return Chain(n_p99, p_full, wait(0.5), wait(0.99))


def _pool_curve(s: Setup, st: WorkloadStats, u, B, c, q, t_d, t, rate, kv_p99, cap, hit, M, pool) -> Operating:
    """A disaggregated pool's curve: a prefill replica's TTFT (B = 0; its TPOT is the decode pool's) or a decode
    replica's TPOT (decode-only steps, at B and at the p99 batch; its TTFT is the prefill pool's)."""
    none = np.zeros_like(u)
    if pool == "decode":
        tpot99 = step_times(s, st, u, B + Z99 * np.sqrt(B), np.ones_like(u))[0]
        return Operating(u, rate, t, t_d, tpot99, B, none, q, kv_p99, none, none, np.full_like(u, hit), cap, st,
                         pool)
    load = _Load(st, u, B, t_d, t_d, q, M)
    return Operating(u, rate, t, none, none, B, c, q, kv_p99, _ttft(s, load, st.p50_prompt, False),
                     _ttft(s, load, st.p99_prompt, True), np.full_like(u, hit), cap, st, pool)


def _time(s: Setup, T, S, pairs, kv) -> np.ndarray:
    """A step's time: every sequence of the replica advances (decode) or a chunk is prefilled. With pipeline
    parallelism the step runs as m = min(pp, S) micro-batches, composed as a decode step (phases.phase_time_s).
    The engine's fixed costs of a pass on `s` are included (`step_time.step_ops`)."""
    T, S = np.maximum(T, 1e-9), np.maximum(S, 1e-9)
    pp = np.asarray(s.pp)
    if np.all(pp == 1):
        return sum(np.broadcast_to(o.time_s, np.shape(T)) for o in step_ops(s, T, S, pairs, kv))
    m = micro_batches(s, S)
    ops = step_ops(s, T / m, S / m, np.asarray(pairs) / m, np.asarray(kv) / m)
    staged = np.broadcast_to(phase_time_s(s, ops, S, "decode"), np.shape(T))
    if np.all(pp > 1):
        return staged
    # rows with and without stages side by side (the search's Setup mixes them)
    flat = sum(np.broadcast_to(o.time_s, np.shape(T)) for o in step_ops(s, T, S, pairs, kv))
    return np.where(pp == 1, flat, staged)


def _bottleneck(s: Setup, B: float, c: float, q: float, st: WorkloadStats, u: float) -> str:
    """Which resource the operating point's step time goes to: compute, bandwidth (HBM), or the link the
    collectives cross (nvlink, pcie, network)."""
    share = {"compute": 0.0, "bandwidth": 0.0, "nvlink": 0.0, "pcie": 0.0, "network": 0.0, "none": 0.0}
    frac = c / st.prefill_tokens
    passes = ((1.0 - min(q, 1.0), (B, B, u * st.decode_pairs, u * st.decode_kv)),
              (min(q, 1.0), (B + c, B + max(frac, 1.0), u * st.decode_pairs + frac * st.prefill_pairs,
                             u * st.decode_kv + frac * st.prefill_kv)))
    for weight, (T, S, P, K) in passes:
        for o in time_pass(s, mixed_pass(s, max(T, 1e-9), max(S, 1e-9), P, K)):
            kind = str(np.asarray(o.comm.link)) if o.unit == "link" else (
                "compute" if float(o.compute_s) >= float(o.memory_s) else "bandwidth")
            share[kind] += weight * float(o.time_s)
    return max(share, key=share.get)


def replica_capacity(s: Setup, w: Workload, ms: mem.MemorySettings | None = None, pool: str = "colocated",
                     op: Operating | None = None, ttft_offset_s: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Max request rate per replica within the SLOs, what limits it, and the step time there. The same keys
    whether or not any rate is feasible (latencies None and rates 0 when none is). `pool`: one of POOLS (held
    to POOL_LIMITS[pool]; the latencies it does not set are None); `op`: its operating curve when the caller
    has it; `ttft_offset_s`: seconds added to TTFT p50 and p99 (a prefill pool's KV transfer, during which
    the prompt's KV stays in its cache)."""
    ms = ms or mem.MemorySettings()
    op = op or operating_curve(s, w, ms, pool=pool)
    st, slo = op.stats, w.slo
    ttft50, ttft99, kv_p99 = op.ttft_p50_s, op.ttft_p99_s, op.kv_p99_tokens
    if pool == "prefill":
        ttft50, ttft99 = ttft50 + ttft_offset_s[0], ttft99 + ttft_offset_s[1]
        kv_p99 = kv_p99 + op.rate * ttft_offset_s[0] * st.reserved_tokens
    limits = {
        "kv_capacity": kv_p99 <= op.kv_capacity_tokens,
        "prefill_budget": op.q < 0.98,
        "max_seqs": (op.inflight_p99 if op.inflight_p99 is not None else op.batch + Z99 * np.sqrt(op.batch))
        <= ms.max_seqs,
        "tpot_p50_slo": op.tpot_p50_s <= (slo.tpot_p50_s or np.inf),
        "tpot_p99_slo": op.tpot_p99_s <= (slo.tpot_p99_s or np.inf),
        "ttft_p50_slo": ttft50 <= (slo.ttft_p50_s or np.inf),
        "ttft_p99_slo": ttft99 <= (slo.ttft_p99_s or np.inf),
    }
    limits = {k: limits[k] for k in POOL_LIMITS[pool]}
    hard = np.logical_and.reduce([limits[k] for k in ("kv_capacity", "prefill_budget", "max_seqs") if k in limits])
    ok = np.logical_and.reduce(list(limits.values()))
    # saturation: the highest rate at which admission keeps up at all (the mean in flight within what it
    # holds); the p99 limits above bind below it
    sat = _saturation_index(op, hard)
    i = _last_true(ok)
    fits = op.kv_capacity_tokens >= st.reserved_tokens
    base = {"kv_cache_capacity_tokens": op.kv_capacity_tokens, "weights_bytes": float(mem.weights_bytes(s)),
            "saturation_rate_per_replica": float(op.rate[sat]) if sat >= 0 and fits else 0.0}
    if i < 0 or not fits:
        reason = "kv_capacity" if not fits or not limits["kv_capacity"][0] else next(
            k for k, v in limits.items() if not v[0])
        return {**base, "max_request_rate_per_replica": 0.0, "limited_by": reason,
                "bottleneck": "hbm_capacity" if reason == "kv_capacity" else _slo_bottleneck(s, op, 0),
                "batch": 0.0, "tpot_s": None, "tpot_p50_s": None, "tpot_p99_s": None, "ttft_p50_s": None,
                "ttft_p99_s": None, "kv_cache_utilization": None, "cache_hit_rate": None,
                "output_tokens_per_s_per_replica": 0.0}
    nxt = min(i + 1, len(op.u) - 1)
    last = list(limits)[-1] if pool == "prefill" else "max_seqs"  # what stops the grid: no further rate
    limited_by = next((k for k, v in limits.items() if not v[nxt]), last) if nxt > i else last
    bottleneck = "hbm_capacity" if limited_by == "kv_capacity" else _slo_bottleneck(s, op, i)
    tpot, ttft = pool != "prefill", pool != "decode"
    return {**base, "max_request_rate_per_replica": float(op.rate[i]), "limited_by": limited_by,
            "bottleneck": bottleneck, "batch": float(op.batch[i]), "tpot_s": float(op.step_s[i]) if tpot else None,
            "tpot_p50_s": float(op.tpot_p50_s[i]) if tpot else None,
            "tpot_p99_s": float(op.tpot_p99_s[i]) if tpot else None,
            "ttft_p50_s": float(ttft50[i]) if ttft else None, "ttft_p99_s": float(ttft99[i]) if ttft else None,
            "kv_cache_utilization": float(kv_p99[i] / op.kv_capacity_tokens),
            "cache_hit_rate": float(op.hit_rate[i]) if w.turns > 1 and w.prefix_reuse else None,
            "output_tokens_per_s_per_replica": float(op.rate[i] * st.output)}


def _slo_bottleneck(s: Setup, op: Operating, i: int) -> str:
    q = 1.0 if op.pool == "prefill" else float(op.q[i])  # a prefill replica's step slots are prefill steps
    st = replace(op.stats, **{f: float(np.broadcast_to(v, op.u.shape)[i]) for f, v in vars(op.stats).items()
                              if isinstance(v, np.ndarray)})
    return _bottleneck(s, float(op.batch[i]), float(op.chunk[i]), q, st, float(op.u[i]))


def _saturation_index(op: Operating, hard: np.ndarray | None = None) -> int:
    """The last u of the curve's leading run at which admission keeps up (colocated: the mean in flight within
    what admission holds and prefill within its budget; a pool: `hard`, its KV and max_seqs limits); -1 if
    none. Past it the queue no longer drains."""
    return _last_true(hard if op.admit_max is None else (op.inflight <= op.admit_max) & (op.q < 0.98))


def _last_true(mask: np.ndarray) -> int:
    """Index of the last True of the leading run of True values, -1 if mask[0] is False."""
    bad = np.flatnonzero(~mask)
    return (len(mask) - 1) if not len(bad) else int(bad[0]) - 1


# ---------------------------------------------------------------------------------------------------------
# candidates

@dataclass(frozen=True)
class Candidate:
    """One GPU x layout x precision to size; `precision` is a precision set as text ('fp8', 'int4/bf16/fp8':
    see PrecisionSet), shown as given in its row. The layout: tp, pipeline stages, and for MoE models expert
    parallelism (ep = tp x dp_attention) with attention data parallelism."""

    gpu: GPUSpec
    tp: int
    precision: str
    efficiency: Efficiency | None = None
    ep: int = 1
    dp_attention: int = 1
    pp: int = 1

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp * self.dp_attention

    @property
    def key(self) -> str:
        extra = (f" pp{self.pp}" if self.pp > 1 else "") + (f" ep{self.ep}" if self.ep > 1 else "") + \
            (f" dp{self.dp_attention}" if self.dp_attention > 1 else "")
        return f"{self.gpu.name} tp{self.tp}{extra} {self.precision}"


def candidate_setup(c: Candidate, model: ModelConfig) -> Setup:
    """The candidate's deployment (RooflineError when the layout or precision does not apply to the model)."""
    p = PrecisionSet.parse(c.precision)
    return make_setup(c.gpu, model, c.tp, p.weights, p.activations, p.kv, c.efficiency, pp=c.pp, ep=c.ep,
                      dp=c.dp_attention)


def infeasible_reason(r: dict) -> str:
    """Why `replica_capacity`'s answer `r` has no feasible rate, in words."""
    return ("weights and one request's KV cache do not fit" if r["limited_by"] == "kv_capacity"
            else f"{r['limited_by']} not met even at the lowest load")


def evaluate_candidate(c: Candidate, model: ModelConfig, w: Workload, ms: mem.MemorySettings | mem.EngineKnobs,
                       price_per_gpu_hour: float | None) -> dict:
    """One row of `roofline capacity`; an engine's settings are resolved on the candidate's GPU and layout
    (its `max_seqs` and `max_batched_tokens` in the row)."""
    ms = mem.resolve_settings(ms, c.gpu, c.tp, c.pp)
    row = {"gpu": c.gpu.name, "tp": c.tp, "precision": c.precision, "feasible": False, "ep": c.ep,
           "dp_attention": c.dp_attention, "gpus_per_replica": c.gpus_per_replica, "pp": c.pp,
           "engine": ms.engine, "max_seqs": ms.max_seqs, "max_batched_tokens": ms.max_batched_tokens,
           "kv_cache_fraction": ms.memory_utilization}
    try:
        s = candidate_setup(c, model)
    except RooflineError as e:
        return {**row, "reason": e.message, "bottleneck": None, "max_request_rate_per_replica": 0.0}
    r = replica_capacity(s, w, ms)
    rate = r["max_request_rate_per_replica"]
    row.update(r, feasible=rate > 0)
    if rate <= 0:
        row["reason"] = infeasible_reason(r)
        return row
    replicas = max(1, math.ceil(w.peak_rate_per_s / rate * (1 - 1e-9)))
    gpus = replicas * c.gpus_per_replica
    out_tps = w.mean_rate_per_s * r["output_tokens_per_s_per_replica"] / rate
    row.update(replicas=replicas, gpus=gpus, headroom=1.0 - w.peak_rate_per_s / (replicas * rate),
               price_per_gpu_hour=price_per_gpu_hour)
    if price_per_gpu_hour is not None:
        cost = gpus * price_per_gpu_hour
        row.update(cost_per_hour=cost, cost_per_million_output_tokens=cost / (out_tps * 3600.0) * 1e6)
    else:
        row.update(cost_per_hour=None, cost_per_million_output_tokens=None)
    return row


def candidates(gpus: list[GPUSpec], model: ModelConfig, tps: list[int] | None, precisions: list[str],
               efficiency: Efficiency | None = None) -> list[Candidate]:
    """GPU x layout x precision; TP defaults to the degrees 1-8 that divide the model's heads, and then the
    widest of them also runs as two pipeline stages (two nodes). For an MoE
    model each TP degree > 1 also comes with expert parallelism (ep = tp), and with attention data
    parallelism over the same GPUs (tp 1 x dp = that degree, ep = that degree), as vLLM and SGLang deploy
    them."""
    pipeline = not tps  # the default list also tries two pipeline stages of its widest TP group
    tps = tps or tp_degrees(model, max_tp=8)
    layouts = [(t, 1, 1, 1) for t in tps]
    if model.num_experts:
        layouts += [(t, t, 1, 1) for t in tps if t > 1] + [(1, t, t, 1) for t in tps if t > 1]
    # two pipeline stages of the widest TP group: a model too big for one node runs on two
    layouts += [(max(tps), 1, 1, 2)] if pipeline and max(tps) > 1 else []
    return [Candidate(g, t, p, efficiency, ep, dp, pp) for g in gpus for (t, ep, dp, pp) in layouts
            for p in precisions]


def capacity_table(cands: list[Candidate], model: ModelConfig, w: Workload, prices: dict[str, float],
                   ms: mem.MemorySettings | mem.EngineKnobs | None = None) -> list[dict]:
    """Every candidate's row, feasible ones first, cheapest (or fewest GPUs) first; `ms`: fixed settings or an
    engine whose defaults follow each candidate's GPU."""
    ms = ms or mem.MemorySettings()
    rows = [evaluate_candidate(c, model, w, ms, prices.get(c.gpu.name)) for c in cands]
    return sorted(rows, key=cost_order)


def cost_order(r: dict) -> tuple:
    """The order of the capacity tables: feasible first, then cheapest per output token, then fewest GPUs."""
    return (not r["feasible"], r.get("cost_per_million_output_tokens") or np.inf, r.get("gpus") or np.inf)


def predict(s: Setup, w: Workload, rate_per_s: float, ms: mem.MemorySettings | None = None) -> dict:
    """The steady-state model at one per-replica rate, interpolated on the operating curve at the lowest load
    that reaches the rate; `saturated` (and no figures) where the queue does not drain: past saturation
    (`replica_capacity`'s), or where the in-flight chain is unstable (its waits infinite), or where one
    request's KV does not fit. The curve's rate need not rise with the load (a multi-turn workload's hit rate
    falls as the load grows), hence the lowest load, not np.interp over it. `kv_cache_utilization` is at
    most 1: the p99 beyond what the cache holds waits for admission (its wait is in the TTFT)."""
    op = operating_curve(s, w, ms or mem.MemorySettings())
    figures = (op.step_s, op.tpot_p50_s, op.tpot_p99_s, op.batch, op.ttft_p50_s, op.ttft_p99_s, op.kv_p99_tokens)
    drains = np.logical_and.reduce([np.isfinite(np.broadcast_to(y, op.u.shape)) for y in figures])
    sat = min(_saturation_index(op), _last_true(drains))
    reach = np.maximum.accumulate(op.rate[:sat + 1])  # the highest rate reached up to each u
    if sat < 0 or op.kv_capacity_tokens < op.stats.reserved_tokens or not rate_per_s <= reach[-1]:
        return {"rate_per_s": rate_per_s, "saturated": True}
    j = int(np.searchsorted(reach, rate_per_s))  # the first u whose rate reaches rate_per_s
    lo = max(j - 1, 0)
    f = 0.0 if j == lo else float(np.clip((rate_per_s - op.rate[lo]) / (op.rate[j] - op.rate[lo]), 0.0, 1.0))

    def at(y):
        y = np.broadcast_to(y, op.u.shape)
        return float((1.0 - f) * y[lo] + f * y[j])
    return {"rate_per_s": rate_per_s, "saturated": False, "tpot_s": at(op.step_s),
            "tpot_p50_s": at(op.tpot_p50_s), "tpot_p99_s": at(op.tpot_p99_s), "batch": at(op.batch),
            "ttft_p50_s": at(op.ttft_p50_s), "ttft_p99_s": at(op.ttft_p99_s),
            "throughput_output_tokens_per_s": rate_per_s * op.stats.output,
            "kv_cache_utilization": min(at(op.kv_p99_tokens) / op.kv_capacity_tokens, 1.0)}


# ---------------------------------------------------------------------------------------------------------
# the analytic p99 against the simulator

#: requests simulated per load by `simulator_difference` at least, and at most; between, enough for the run to
#: reach its steady state (a multi-turn workload's idle conversations fill the KV cache over several think times)
CHECK_REQUESTS, CHECK_REQUESTS_MAX = 2000, 20_000
#: think times a multi-turn check runs for (arrivals), so that the cache of idle conversations settles
CHECK_THINK_TIMES = 20
#: how far (relative) the simulator may be from an analytic figure for `simulator_difference` to call it close
CLOSE = 0.10


def check_requests(w: Workload, rate_per_s: float) -> int:
    """Requests `simulator_difference` simulates per load at `rate_per_s`: CHECK_REQUESTS, or more for a
    multi-turn workload with prefix reuse (arrivals over CHECK_THINK_TIMES think times), at most
    CHECK_REQUESTS_MAX."""
    steady = rate_per_s * CHECK_THINK_TIMES * w.think_time_s if w.turns > 1 and w.prefix_reuse else 0.0
    return int(min(max(CHECK_REQUESTS, math.ceil(steady)), CHECK_REQUESTS_MAX))


def simulator_difference(c: Candidate, model: ModelConfig, w: Workload, ms: mem.MemorySettings | mem.EngineKnobs,
                         row: dict, requests: int | None = None, seed: int = 0) -> dict:
    """How far the analytic p99s and maximum throughput of a feasible row are from the discrete-event
    simulator's (`roofline.plan.simulate`, which follows the engine's admission, preemption and batch
    composition): one replica simulated at the row's max rate (TTFT and TPOT p99) and at 1.5x its saturation
    rate (the throughput it settles at), at a constant rate, `requests` requests each (default
    `check_requests`). `relative` = simulated / analytic - 1; `close`: every figure within CLOSE."""
    from roofline.plan.simulate import SimSettings, simulate
    ms = mem.resolve_settings(ms, c.gpu, c.tp, c.pp)
    s = candidate_setup(c, model)
    cfg = SimSettings(ms.chunked_prefill, ms.page_tokens, memory=ms)
    w = replace(w, daily_curve=None)
    requests = requests or check_requests(w, row["max_request_rate_per_replica"])
    at = simulate(s, w, requests, 1, seed, cfg, rate_per_s=row["max_request_rate_per_replica"])
    sat_rate = row["saturation_rate_per_replica"]
    over = simulate(s, w, requests, 1, seed, cfg, rate_per_s=1.5 * sat_rate)
    sat_tokens = sat_rate * row["output_tokens_per_s_per_replica"] / row["max_request_rate_per_replica"]

    def pair(analytic, simulated):
        rel = None if not analytic or simulated is None else simulated / analytic - 1.0
        return {"analytic": analytic, "simulated": simulated, "relative": rel}
    figures = {"ttft_p99_s": pair(row["ttft_p99_s"], at["ttft_s"]["p99"]),
               "tpot_p99_s": pair(row["tpot_p99_s"], at["tpot_s"]["p99"]),
               "max_throughput_output_tokens_per_s": pair(sat_tokens, over["throughput_output_tokens_per_s"])}
    close = all(f["relative"] is not None and abs(f["relative"]) <= CLOSE for f in figures.values())
    return {"gpu": c.gpu.name, "tp": c.tp, "precision": c.precision, "requests": requests,
            "rate_per_s": row["max_request_rate_per_replica"], "preemptions": at["preemptions"], **figures,
            "close": close}
