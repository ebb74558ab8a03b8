"""Design-space search: every model x workload x GPU x layout x precision x engine x batch limit, screened
analytically, the best confirmed by simulation.

The candidate space of one (model, workload) pair is the product of the axes, indexed in this order
(the last axis varies fastest):

    gpu x engine x max_batched_tokens x kv_cache_fraction x max_seqs x layout x precision

(`max_batched_tokens` and `kv_cache_fraction` None: the engine's default on that GPU). A flat index into it is
a candidate; the executors (`roofline.plan.executors`) split the index space into fixed-size shards.

Stage 1 (`screen_shard`) screens every candidate with the steady state of `roofline.plan.capacity`
(continuous batching with chunked prefill; see its module docstring), restated over arrays: the step time,
TPOT and TTFT percentiles, the decoding batch and the KV cache in use depend on the deployment (GPU, layout,
precision) and the step's token budget M, not on the other batch limits, so they are computed once per
(GPU, layout, precision, M) as curves over a shared grid of the load u (requests admitted per step). Each
candidate is then a handful of array operations: the highest load at which its KV cache (capacity from
`roofline.model.memory` with its engine's rule and knobs) holds the p99 concurrency, its max_seqs holds the
p99 batch, and the SLOs and the prefill budget hold; the rate there; the replicas the workload's peak rate
needs; the cost. Three simplifications against `capacity.replica_capacity`, each optimistic (a screen must not
drop good candidates; stage 2 confirms): a multi-turn workload's cache hit rate is taken as 1 (capacity solves
it per load), the p99 concurrency is the Poisson B + Z99 sqrt(B) (capacity's `inflight_chain` spreads wider near
a KV-bound saturation, and adds the wait past admission's cap to TTFT), and the extra time a step spends on
prefill tokens is linear in the chunk.

Stage 2 (`simulate_candidate`) runs the discrete-event simulator (`roofline.plan.simulate`) on the top
candidates per model x workload and finds the highest constant rate per replica at which the simulated p50/p99
TTFT and TPOT meet the SLOs and no request is rejected (bracketing from the screen's rate, then bisection).

Objectives of the Pareto fronts: cost per hour of the fleet the workload's peak needs (min), latency = p99
TTFT + (mean output - 1) x p99 TPOT at the operating point (min), output tokens per second per GPU (max).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np

import roofline
from roofline.errors import RooflineError
from roofline.model import memory as mem
from roofline.model.efficiency import Efficiency
from roofline.model.engine import TP_DEGREES, Setup, attention_peak, compute_peak, make_setup
from roofline.model.step_time import with_engine_costs
from roofline.model.sweep import valid_layouts
from roofline.plan.capacity import U_GRID, Z99, step_times, workload_stats
from roofline.plan.simulate import DoesNotFit, SimSettings, check_work, simulate
from roofline.specs.engines import EngineSpec
from roofline.specs.fleet import MAX_PRICE_PER_GPU_HOUR, price_ok
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.specs.precision import PrecisionSet, bytes_per_element
from roofline.specs.workload import Workload
from roofline.units import MAX_COUNT

#: points of the shared load grid of the screen's curves (log-spaced; the crossing of each limit is
#: interpolated between them)
U_POINTS = 64
#: the limits a candidate is held to, in the order `limited_by` reports a tie
LIMITS = ("kv_capacity", "max_seqs", "prefill_budget", "tpot_p50_slo", "tpot_p99_slo", "ttft_p50_slo",
          "ttft_p99_slo")
#: candidates in one stage-1 shard (the unit of work, of retry and of resume)
SHARD_CANDIDATES = 1 << 20
#: candidates evaluated together inside a shard (bounds the memory of one shard to a few hundred MB)
_CHUNK = 1 << 18
#: requests of one simulation in stage 2
SIM_REQUESTS = 1500
#: a stage-1 shard keeps this many of its cheapest distinct candidates for the merge
_KEEP = 64


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """The axes of a search (objects, so a plan ships whole to remote workers). `prices`: USD per GPU-hour
    for every GPU; `max_batched_tokens` / `kv_cache_fractions` entries None: the engine's default."""

    models: tuple[ModelConfig, ...]
    workloads: tuple[Workload, ...]
    gpus: tuple[GPUSpec, ...]
    prices: tuple[float, ...]
    engines: tuple[EngineSpec, ...]
    precisions: tuple[str, ...] = ("bf16", "fp8")
    max_gpus: int = 8
    max_seqs: tuple[int, ...] = (64, 128, 256)
    max_batched_tokens: tuple[int | None, ...] = (None,)
    kv_cache_fractions: tuple[float | None, ...] = (None,)
    top: int = 4
    sim_requests: int = SIM_REQUESTS
    shard_candidates: int = SHARD_CANDIDATES
    efficiency: Efficiency = field(default_factory=Efficiency)

    def __post_init__(self):
        check_space(self)

    def layouts(self, model: ModelConfig) -> list[tuple[int, int, int, int]]:
        """(tp, pp, ep, dp_attention) of up to `max_gpus` GPUs that the model can take."""
        cache = self.__dict__.setdefault("_layouts", {})
        if model.name not in cache:
            cache[model.name] = model_layouts(model, self.max_gpus)
        return cache[model.name]

    def axes(self, pair: int) -> tuple[int, ...]:
        """Sizes of the candidate axes of (model, workload) pair `pair` (see the module docstring)."""
        m = self.models[pair // len(self.workloads)]
        return (len(self.gpus), len(self.engines), len(self.max_batched_tokens), len(self.kv_cache_fractions),
                len(self.max_seqs), len(self.layouts(m)), len(self.precisions))

    @property
    def pairs(self) -> int:
        return len(self.models) * len(self.workloads)

    def size(self, pair: int) -> int:
        return math.prod(self.axes(pair))

    @property
    def candidates(self) -> int:
        """Candidates in the whole space."""
        return sum(self.size(p) for p in range(self.pairs))

    def __hash__(self) -> int:  # the per-process caches of the curves are keyed by the plan
        return hash(self.plan_id())

    def __eq__(self, other) -> bool:
        return isinstance(other, SearchSpace) and self.plan_id() == other.plan_id()

    def plan_id(self) -> str:
        """A hash of everything that decides the results (the roofline version included)."""
        if "_plan_id" in self.__dict__:
            return self.__dict__["_plan_id"]
        text = repr((roofline.__version__, self.models, self.workloads, [(g.name, repr(replace(g, path="")))
                    for g in self.gpus], self.prices, [(e.name, repr(replace(e, path=""))) for e in self.engines],
                     self.precisions, self.max_gpus, self.max_seqs, self.max_batched_tokens, self.kv_cache_fractions,
                     self.top, self.sim_requests, self.shard_candidates, self.efficiency))
        object.__setattr__(self, "_plan_id", hashlib.sha256(text.encode()).hexdigest()[:16])
        return self.__dict__["_plan_id"]

    def describe(self) -> dict:
        """The axes as names and numbers (JSON-ready; the `space` of the results)."""
        return {"models": [m.name for m in self.models], "workloads": [w.name for w in self.workloads],
                "gpus": [g.name for g in self.gpus], "prices_per_gpu_hour": dict(zip([g.name for g in self.gpus],
                                                                                  self.prices)),
                "engines": [e.name for e in self.engines], "precisions": list(self.precisions),
                "max_gpus": self.max_gpus, "max_seqs": list(self.max_seqs),
                "max_batched_tokens": list(self.max_batched_tokens),
                "kv_cache_fractions": list(self.kv_cache_fractions), "top": self.top,
                "sim_requests": self.sim_requests, "candidates": self.candidates}


def model_layouts(model: ModelConfig, max_gpus: int) -> list[tuple[int, int, int, int]]:
    """Every (tp, pp, ep, dp_attention) of powers of two using at most `max_gpus` GPUs that the model takes:
    TP dividing the heads, pipeline stages, and for an MoE model expert parallelism with attention DP."""
    pows = [p for p in TP_DEGREES if p <= max_gpus]
    moe = bool(model.num_experts)
    layouts, _ = valid_layouts(model, pows, [p for p in pows if p <= model.num_layers],
                               (False, True) if moe else (False,), pows if moe else (1,))
    return sorted(lay for lay in layouts if lay[0] * lay[1] * lay[3] <= max_gpus)


def check_space(sp: SearchSpace) -> None:
    """RooflineError (exit 2, naming the argument) for an empty or bad axis."""
    for name, axis in (("models", sp.models), ("workloads", sp.workloads), ("gpus", sp.gpus),
                       ("engines", sp.engines), ("precisions", sp.precisions), ("max_seqs", sp.max_seqs),
                       ("max_batched_tokens", sp.max_batched_tokens), ("kv_cache_fractions", sp.kv_cache_fractions)):
        if not axis:
            raise RooflineError(f"{name} is empty", hint="give at least one value", exit_code=2, param=name)
    if len(sp.prices) != len(sp.gpus):
        raise RooflineError("prices must give one price per GPU", hint="one USD per GPU-hour figure per `gpus` "
                            "entry", exit_code=2, param="prices")
    for price in sp.prices:  # the bound a fleet file and `price` have: a higher one overflows a fleet's cost
        if isinstance(price, bool) or not price_ok(float(price)):
            raise RooflineError(f"prices must be between 0 and {MAX_PRICE_PER_GPU_HOUR:g} USD per GPU-hour, got "
                                f"{price}", hint="e.g. 2.49 for an H100", exit_code=2, param="prices")
    if not 1 <= sp.max_gpus <= TP_DEGREES[-1]:
        raise RooflineError(f"max_gpus must be between 1 and {TP_DEGREES[-1]}, got {sp.max_gpus}",
                            hint="GPUs of one replica, e.g. 8 or 16", exit_code=2, param="max_gpus")
    for name, values in (("max_seqs", sp.max_seqs), ("max_batched_tokens", sp.max_batched_tokens)):
        for v in values:
            if v is not None and (isinstance(v, bool) or int(v) != v or not 1 <= v <= MAX_COUNT):
                raise RooflineError(f"{name} must be whole numbers >= 1, got {v}", hint="e.g. 64,128,256",
                                    exit_code=2, param=name)
    for f in sp.kv_cache_fractions:
        if f is not None:
            mem.check_memory_utilization(float(f), "kv_cache_fractions")
    for p in sp.precisions:
        PrecisionSet.parse(p)
    for name, v, lo in (("top", sp.top, 1), ("sim_requests", sp.sim_requests, 10),
                        ("shard_candidates", sp.shard_candidates, 1)):
        if int(v) != v or v < lo:
            raise RooflineError(f"{name} must be a whole number >= {lo}, got {v}", hint="see the search's "
                                "docstring", exit_code=2, param=name)
    check_work(int(sp.sim_requests), 1, "sim_requests")  # the ceiling every simulation checks, named as here
    for m in sp.models:
        if not model_layouts(m, sp.max_gpus):
            raise RooflineError(f"max_gpus={sp.max_gpus}: no layout of {m.name} fits in {sp.max_gpus} GPUs",
                                hint="raise `max_gpus`", exit_code=2, param="max_gpus")
    for w in sp.workloads:
        if w.slo.ttft_p99_s is None and w.slo.tpot_p99_s is None and w.slo.ttft_p50_s is None \
                and w.slo.tpot_p50_s is None:
            raise RooflineError(f"workload '{w.name}' has no SLO", hint="a search sizes deployments to SLOs: add "
                                "an \"slo\" object to the workload file", exit_code=2, param="workloads")


# ---------------------------------------------------------------------------------------------------------
# stage 1: the curves of one (model, workload, GPU, token budget M) over every layout x precision

@dataclass(frozen=True)
class Curves:
    """Per row (layout x precision, layout-major) the screen's figures on the shared load grid `log_u`."""

    log_u: np.ndarray            # (G,) log of requests admitted per step
    valid: np.ndarray            # (R,) the GPU runs the precision
    log_rate: np.ndarray         # (R, G) log requests per second
    log_tpot_p99: np.ndarray     # (R, G) logs of the latencies (s), interpolated in logs like the crossings
    log_ttft_p99: np.ndarray     # (R, G)
    log_tpot_p50: np.ndarray     # (R, G)
    log_kv_p99: np.ndarray       # (R, G) log p99 KV tokens in use, running max over u
    slo_log_u: np.ndarray        # (R,) highest log u the SLOs and the prefill budget allow
    slo_limit: np.ndarray        # (R,) index into LIMITS of the first of those to bind


@functools.lru_cache(maxsize=8)
def _stats(model: ModelConfig, w: Workload):
    return workload_stats(model, w, 1.0)


def _rows_setup(sp: SearchSpace, model: ModelConfig, gpu: GPUSpec, repeat: int) -> tuple[Setup, np.ndarray]:
    """A Setup whose rows are layout x precision (each repeated `repeat` times) and which rows the GPU runs."""
    layouts, sets = sp.layouts(model), [PrecisionSet.parse(p) for p in sp.precisions]
    peaks, ok = [], []
    for p in sets:
        try:
            peaks.append((compute_peak(gpu, p.activations, p.weights), attention_peak(gpu, p.activations)))
            ok.append(True)
        except RooflineError:
            peaks.append((1.0, 1.0))
            ok.append(False)
    L, P = np.divmod(np.arange(len(layouts) * len(sets)), len(sets))
    lay = np.array(layouts, dtype=float)[L]
    pick = np.array([[bytes_per_element(p.weights), bytes_per_element(p.activations), bytes_per_element(p.kv),
                      *peaks[i]] for i, p in enumerate(sets)])[P]
    rep = lambda a: np.repeat(a, repeat)  # noqa: E731
    s = Setup(gpu, model, rep(lay[:, 0]), rep(pick[:, 0]), rep(pick[:, 1]), rep(pick[:, 2]), rep(pick[:, 3]),
              sp.efficiency, rep(pick[:, 4]), rep(lay[:, 1]), rep(lay[:, 2]), rep(lay[:, 3]))
    return s, np.array(ok)[P]


def u_grid(sp: SearchSpace, model: ModelConfig, w: Workload) -> np.ndarray:
    """The shared load grid of a (model, workload): up to 1.5x the load at which the largest max_seqs or the
    largest token budget saturates, 4 decades down."""
    st = _stats(model, w)
    seqs = max(sp.max_seqs) * sp.max_gpus
    budget = max([m for m in sp.max_batched_tokens if m] + [65536])
    hi = 1.5 * min(seqs / max(st.output - 1.0, 1e-3), budget / max(st.prefill_tokens, 1.0))
    return np.geomspace(hi * 1e-4, hi, U_POINTS)


@functools.lru_cache(maxsize=64)
def curves(sp: SearchSpace, pair: int, gpu_i: int, eng_i: int, M: float) -> Curves:
    """The screen's curves of one (model, workload) pair on one GPU under one engine (its fixed costs of a
    pass) at token budget M (cached per process)."""
    model, w = sp.models[pair // len(sp.workloads)], sp.workloads[pair % len(sp.workloads)]
    st, u1 = _stats(model, w), u_grid(sp, model, w)
    s, valid = _rows_setup(sp, model, sp.gpus[gpu_i], len(u1))
    s = with_engine_costs(s, mem.engine_settings(sp.engines[eng_i], sp.gpus[gpu_i], 1, 1))
    R, G = len(valid), len(u1)
    u = np.tile(u1, R)
    B = u * max(st.output - 1.0, 0.0)
    B99 = B + Z99 * np.sqrt(B)
    free, free99 = np.maximum(M - B, 1.0), np.maximum(M - B99, 1.0)
    c = np.clip(np.maximum(st.prefill_tokens, u * st.prefill_tokens), 1.0, free)
    c99 = np.clip(c, 1.0, free99)
    q = np.minimum(u * st.prefill_tokens / c, 1.0)
    t_d, t_p = step_times(s, st, u, B, c)
    d99, p99 = step_times(s, st, u, B99, c99)
    per_tok, per_tok99 = (t_p - t_d) / c, (p99 - d99) / c99
    t = (1.0 - q) * t_d + q * t_p
    lu = np.log(np.clip(u, U_GRID[0], U_GRID[-1]))
    share50 = np.interp(lu, np.log(U_GRID), st.chunk_share[0])
    share99 = np.interp(lu, np.log(U_GRID), st.chunk_share[1])
    tpot50 = t_d + per_tok * np.minimum(u * share50, free)
    tpot99 = d99 + per_tok99 * np.minimum(u * share99, free99)
    ttft50, ttft99 = (_ttft(st, u, B, t_d, t_p, per_tok, q, M, prompt, p99)
                      for prompt, p99 in ((st.p50_prompt, False), (st.p99_prompt, True)))
    steps_held = np.maximum(st.prefill_tokens / c, 1.0)
    inflight = u * st.reserved_token_steps + u * steps_held * st.reserved_tokens
    kv99 = inflight + Z99 * np.sqrt(np.maximum(inflight * st.reserved_tokens, 0.0))
    shape = (R, G)
    slo = w.slo
    log_u = np.log(u1)
    metrics = {"prefill_budget": (q, 0.98), "tpot_p50_slo": (tpot50, slo.tpot_p50_s),
               "tpot_p99_slo": (tpot99, slo.tpot_p99_s), "ttft_p50_slo": (ttft50, slo.ttft_p50_s),
               "ttft_p99_slo": (ttft99, slo.ttft_p99_s)}
    best, which = np.full(R, np.inf), np.zeros(R, dtype=np.int64)
    for name, (y, limit) in metrics.items():
        if limit is None:
            continue
        x = crossing(log_u, np.log(np.maximum(y.reshape(shape), 1e-300)), np.full(R, math.log(limit)))
        better = x < best
        best, which = np.where(better, x, best), np.where(better, LIMITS.index(name), which)
    log_kv = np.maximum.accumulate(np.log(np.maximum(kv99.reshape(shape), 1e-300)), axis=1)
    logs = [np.log(np.maximum(y, 1e-300)).reshape(shape) for y in (u / t, tpot99, ttft99, tpot50)]
    return Curves(log_u, valid, *logs, log_kv, best, which)


def _ttft(st, u, B, t_d, t_p, per_tok, q, M, prompt, p99):
    """capacity's TTFT: the running step's residual, the M/G/1 wait of the prefill queue and the prompt's own
    chunked steps (each packed with the prefill tokens that arrive meanwhile)."""
    free = np.maximum(M - B, 1.0)
    n = np.ceil(prompt / free)
    t_q = t_d + per_tok * np.minimum(prompt + u * st.prefill_tokens, free)
    qc = np.minimum(q, 0.999)
    n_mean = np.maximum(st.prefill_tokens / free, 1.0)
    n2 = np.maximum(st.prefill_tokens_sq / free ** 2, n_mean)
    wait = qc / (1.0 - qc) * t_p * n2 / (2.0 * n_mean)
    if p99:
        wait = np.maximum(np.log(100.0 * qc), 0.0) * wait / np.maximum(qc, 1e-12)
        residual = np.where(qc > 0.01, t_p, t_d)
    else:
        wait = wait * math.log(2.0)
        residual = ((1 - qc) * t_d ** 2 + qc * t_p ** 2) / (2.0 * ((1 - qc) * t_d + qc * t_p))
    return np.minimum(1.0, B + q) * residual + wait + n * t_q


def crossing(log_u: np.ndarray, y: np.ndarray, limit: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per query, the log u at which row `rows[i]` of y (R, G) first exceeds limit[i] (linear between grid
    points; +inf if never; -inf if already at the first point). The rows are made non-decreasing (running
    max), so one flattened searchsorted answers every query."""
    y = np.maximum.accumulate(y, axis=1)
    R, G = y.shape
    rows = np.arange(R) if rows is None else rows
    lo, hi = np.minimum(y.min(), limit.min()), np.maximum(y.max(), limit.max())
    span = (hi - lo) + 1.0
    flat = (y - lo + span * np.arange(R)[:, None]).ravel()
    key = limit - lo + span * rows
    j = np.searchsorted(flat, key, side="right") - rows * G  # points of the row <= limit
    jj = np.clip(j, 1, G - 1)
    y0, y1 = y[rows, jj - 1], y[rows, jj]
    f = np.clip((limit - y0) / np.where(y1 > y0, y1 - y0, 1.0), 0.0, 1.0)
    x = log_u[jj - 1] + f * (log_u[jj] - log_u[jj - 1])
    return np.where(j <= 0, -np.inf, np.where(j >= G, np.inf, x))


def _at(c: Curves, arr: np.ndarray, rows: np.ndarray, log_u: np.ndarray) -> np.ndarray:
    """arr (R, G) interpolated at each query's log u (rows[i], log_u[i])."""
    G = len(c.log_u)
    p = np.clip((log_u - c.log_u[0]) / (c.log_u[1] - c.log_u[0]), 0.0, G - 1.0)
    j = np.minimum(p.astype(np.int64), G - 2)
    f = p - j
    return arr[rows, j] * (1.0 - f) + arr[rows, j + 1] * f


# ---------------------------------------------------------------------------------------------------------
# stage 1: one shard

@functools.lru_cache(maxsize=64)
def engine_table(sp: SearchSpace, pair: int, gpu_i: int, eng_i: int) -> dict[str, np.ndarray]:
    """One engine on one GPU over every (max_batched_tokens, kv_cache_fraction, max_seqs) x (layout x
    precision row): the settings in effect (`memory.engine_settings`; SGLang's automatic fraction depends on
    tp x pp) and the KV tokens per replica (`memory.kv_cache_capacity_tokens`, evaluated once over arrays of
    settings). Arrays of shape (mbt, fraction, max_seqs, rows)."""
    model, gpu, spec = sp.models[pair // len(sp.workloads)], sp.gpus[gpu_i], sp.engines[eng_i]
    s, _ = _rows_setup(sp, model, gpu, 1)
    widths = (np.asarray(s.tp) * np.asarray(s.pp)).astype(int)
    shape = (len(sp.max_batched_tokens), len(sp.kv_cache_fractions), len(sp.max_seqs), len(widths))
    figs = {k: np.zeros(shape) for k in ("max_batched_tokens", "max_seqs", "kv_cache_fraction",
                                         "runtime_reserve_bytes")}
    rule = None
    for i, mbt in enumerate(sp.max_batched_tokens):
        for j, frac in enumerate(sp.kv_cache_fractions):
            for k, seqs in enumerate(sp.max_seqs):
                auto = frac is None and spec.figures.get("kv_cache_fraction") == "auto"
                for width in (np.unique(widths) if auto else widths[:1]):
                    ms = mem.engine_settings(spec, gpu, int(width), 1, kv_cache_fraction=frac, max_seqs=seqs,
                                             max_batched_tokens=mbt)
                    at = (widths == width) if auto else slice(None)
                    for name, v in (("max_batched_tokens", ms.max_batched_tokens), ("max_seqs", ms.max_seqs),
                                    ("kv_cache_fraction", ms.memory_utilization),
                                    ("runtime_reserve_bytes", ms.runtime_reserve_bytes)):
                        figs[name][i, j, k, at] = v
                    rule = ms.kv_cache_rule
    n = math.prod(shape[:3])
    big = replace(s, **{f: np.tile(getattr(s, f), n) for f in ("tp", "w_bytes", "a_bytes", "kv_bytes",
                                                                "tensor_flops_per_s", "attention_flops_per_s",
                                                                "pp", "ep", "dp")})
    arrays = mem.MemorySettings(memory_utilization=figs["kv_cache_fraction"].ravel(),
                                runtime_reserve_bytes=figs["runtime_reserve_bytes"].ravel(),
                                max_batched_tokens=figs["max_batched_tokens"].ravel(),
                                max_seqs=figs["max_seqs"].ravel(), kv_cache_rule=rule)
    return {**figs, "kv_tokens": np.asarray(mem.kv_cache_capacity_tokens(big, arrays), float).reshape(shape)}


def screen(sp: SearchSpace, pair: int, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Every candidate of flat indices [lo, hi) of `pair`: arrays of its figures (rate 0 when infeasible)."""
    model, w = sp.models[pair // len(sp.workloads)], sp.workloads[pair % len(sp.workloads)]
    st = _stats(model, w)
    axes = sp.axes(pair)
    idx = np.arange(lo, hi, dtype=np.int64)
    g, e, b, f, n, lay, p = np.unravel_index(idx, axes)
    row = lay * axes[6] + p
    R = axes[5] * axes[6]
    layouts = np.array(sp.layouts(model), dtype=float)
    gpus_per_replica = (layouts[:, 0] * layouts[:, 1] * layouts[:, 3])[lay]
    dp = layouts[lay, 3]
    cap, M, seqs = np.zeros(len(idx)), np.zeros(len(idx)), np.zeros(len(idx))
    ge = g * axes[1] + e
    for k in np.unique(ge):
        sel = np.flatnonzero(ge == k)
        t = engine_table(sp, pair, int(g[sel[0]]), int(e[sel[0]]))
        at = (b[sel], f[sel], n[sel], row[sel])
        cap[sel], M[sel], seqs[sel] = t["kv_tokens"][at], t["max_batched_tokens"][at], t["max_seqs"][at]
    out = {k: np.zeros(len(idx)) for k in ("rate", "tpot_p99_s", "ttft_p99_s", "tpot_p50_s")}
    limit = np.zeros(len(idx), dtype=np.int64)
    valid = np.zeros(len(idx), dtype=bool)
    # u where the p99 batch B + Z sqrt(B) reaches max_seqs x dp (B = u (O - 1))
    X = seqs * dp
    b_max = ((-Z99 + np.sqrt(Z99 ** 2 + 4.0 * X)) / 2.0) ** 2
    log_u_seq = np.log(b_max / max(st.output - 1.0, 1e-9))
    key = ge.astype(np.float64) * 1e12 + M
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        c = curves(sp, pair, int(g[sel[0]]), int(e[sel[0]]), float(M[sel[0]]))
        rows = row[sel]
        fits = cap[sel] >= st.reserved_tokens
        log_u_kv = crossing(c.log_u, c.log_kv_p99, np.log(np.maximum(cap[sel], 1e-300)), rows)
        cand = np.stack([log_u_kv, log_u_seq[sel], c.slo_log_u[rows]])
        which = np.argmin(cand, axis=0)
        lu = cand[which, np.arange(len(sel))]
        lim = np.where(which == 0, 0, np.where(which == 1, 1, c.slo_limit[rows]))
        ok = c.valid[rows] & fits & (lu > c.log_u[0])
        lu = np.minimum(lu, c.log_u[-1])
        valid[sel] = c.valid[rows] & fits
        limit[sel] = np.where(fits, lim, 0)
        out["rate"][sel] = np.where(ok, np.exp(_at(c, c.log_rate, rows, lu)), 0.0)
        for name, arr in (("tpot_p99_s", c.log_tpot_p99), ("ttft_p99_s", c.log_ttft_p99),
                          ("tpot_p50_s", c.log_tpot_p50)):
            out[name][sel] = np.where(ok, np.exp(_at(c, arr, rows, lu)), np.nan)
    price = np.asarray(sp.prices)[g]
    rate = out["rate"]
    feasible = rate > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        replicas = np.where(feasible, np.maximum(np.ceil(w.peak_rate_per_s / rate * (1 - 1e-9)), 1.0), np.nan)
        cost = replicas * gpus_per_replica * price
        per_gpu = rate * st.output / gpus_per_replica
        latency = out["ttft_p99_s"] + (st.output - 1.0) * out["tpot_p99_s"]
    return {"index": idx, "feasible": feasible, "valid": valid, "limited_by": limit, "rate": rate,
            "replicas": replicas, "cost_per_hour": cost, "latency_s": latency,
            "output_tokens_per_s_per_gpu": per_gpu, **{k: out[k] for k in ("tpot_p99_s", "ttft_p99_s", "tpot_p50_s")},
            "kv_capacity_tokens": cap, "max_seqs": seqs, "max_batched_tokens": M}


def pareto_front(cost: np.ndarray, latency: np.ndarray, throughput: np.ndarray,
                 index: np.ndarray | None = None) -> np.ndarray:
    """Positions of the points no other point dominates (cost and latency lower or equal, throughput higher or
    equal, one strictly); of points with equal objectives, the one of lowest `index` (default: position)
    stands for all. Sorted by cost, then latency."""
    n = len(cost)
    index = np.arange(n) if index is None else np.asarray(index)
    order = np.lexsort((index, -throughput, latency, cost))
    c, l, t = cost[order], latency[order], throughput[order]
    keep = np.r_[True, (c[1:] != c[:-1]) | (l[1:] != l[:-1]) | (t[1:] != t[:-1])] if n else np.zeros(0, bool)
    order, c, l, t = order[keep], c[keep], l[keep], t[keep]
    # in this order no later point dominates an earlier one, so a point is on the front unless an earlier
    # point (on the front or not: dominance is transitive) has latency <= and throughput >= its own
    best_l, best_t = np.zeros(0), np.zeros(0)
    front = []
    block = 2048
    for a in range(0, len(order), block):
        bl, bt = l[a:a + block], t[a:a + block]
        dom = ((best_l[None, :] <= bl[:, None]) & (best_t[None, :] >= bt[:, None])).any(axis=1)
        m = len(bl)
        inner = (bl[None, :] <= bl[:, None]) & (bt[None, :] >= bt[:, None]) & np.tri(m, m, -1, dtype=bool)
        ok = ~(dom | inner.any(axis=1))
        front.append(order[a:a + block][ok])
        best_l, best_t = np.r_[best_l, bl[ok]], np.r_[best_t, bt[ok]]
    return np.concatenate(front) if front else np.zeros(0, dtype=np.int64)


def screen_shard(sp: SearchSpace, pair: int, lo: int, hi: int) -> dict:
    """One stage-1 shard: how many candidates it screened and found feasible, its Pareto front and its cheapest
    distinct candidates (as rows), for the merge."""
    screened, feasible = 0, 0
    fronts, cheap = [], []
    limits = np.zeros(len(LIMITS), dtype=np.int64)
    for a in range(lo, hi, _CHUNK):
        r = screen(sp, pair, a, min(a + _CHUNK, hi))
        screened += len(r["index"])
        ok = r["feasible"]
        feasible += int(ok.sum())
        limits += np.bincount(r["limited_by"][r["valid"]], minlength=len(LIMITS))
        sel = {k: v[ok] for k, v in r.items()}
        if not len(sel["index"]):
            continue
        pos = pareto_front(sel["cost_per_hour"], sel["latency_s"], sel["output_tokens_per_s_per_gpu"], sel["index"])
        fronts.append({k: v[pos] for k, v in sel.items()})
        cheap.append({k: v[_cheapest(sel, _KEEP)] for k, v in sel.items()})
    rows_front = _merge_front([_rows(sp, pair, x) for x in fronts])
    rows_cheap = sorted((r for x in cheap for r in _rows(sp, pair, x)), key=cost_key)
    return {"pair": pair, "lo": lo, "hi": hi, "screened": screened, "feasible": feasible,
            "limited_by_counts": dict(zip(LIMITS, limits.tolist())), "front": rows_front,
            "cheapest": _distinct(rows_cheap)[:_KEEP]}


def _cheapest(sel: dict, k: int) -> np.ndarray:
    """Positions of (at least) the k x 8 cheapest, in cost_key order (every candidate tied at the cut kept)."""
    cost = sel["cost_per_hour"]
    n = min(k * 8, len(cost))
    cut = np.partition(cost, n - 1)[n - 1]
    pos = np.flatnonzero(cost <= cut)
    order = np.lexsort((sel["index"][pos], -sel["output_tokens_per_s_per_gpu"][pos], sel["latency_s"][pos], cost[pos]))
    return pos[order[:n]]


def cost_key(r: dict) -> tuple:
    """The order of the tables: cheapest, then lowest latency, highest throughput per GPU, lowest index."""
    return (r["cost_per_hour"], r["latency_s"], -r["output_tokens_per_s_per_gpu"], r["index"])


def _distinct(rows: list[dict]) -> list[dict]:
    """Rows with distinct objectives (the first of equal ones stands for them)."""
    seen, out = set(), []
    for r in rows:
        k = (r["cost_per_hour"], r["latency_s"], r["output_tokens_per_s_per_gpu"])
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def _merge_front(groups: list[list[dict]]) -> list[dict]:
    rows = [r for g in groups for r in g]
    if not rows:
        return []
    arr = lambda k: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
    pos = pareto_front(arr("cost_per_hour"), arr("latency_s"), arr("output_tokens_per_s_per_gpu"),
                       np.array([r["index"] for r in rows]))
    return [rows[i] for i in pos]


def _rows(sp: SearchSpace, pair: int, x: dict) -> list[dict]:
    """Candidates as JSON-ready rows: the axes decoded, the screen's figures."""
    model = sp.models[pair // len(sp.workloads)]
    layouts = sp.layouts(model)
    axes = sp.axes(pair)
    out = []
    for i in range(len(x["index"])):
        g, e, b, f, n, lay, p = (int(v) for v in np.unravel_index(int(x["index"][i]), axes))
        tp, pp, ep, dp = layouts[lay]
        frac = float(engine_table(sp, pair, g, e)["kv_cache_fraction"][b, f, n, lay * axes[6] + p])
        out.append({"index": int(x["index"][i]), "gpu": sp.gpus[g].name, "tp": tp, "pp": pp, "ep": ep,
                    "dp_attention": dp, "gpus_per_replica": tp * pp * dp, "precision": sp.precisions[p],
                    "engine": sp.engines[e].name, "max_seqs": int(x["max_seqs"][i]),
                    "max_batched_tokens": int(x["max_batched_tokens"][i]), "kv_cache_fraction": frac,
                    "price_per_gpu_hour": float(sp.prices[g]), "limited_by": LIMITS[int(x["limited_by"][i])],
                    **{k: float(x[k][i]) for k in ("rate", "replicas", "cost_per_hour", "latency_s",
                                                   "output_tokens_per_s_per_gpu", "tpot_p99_s", "ttft_p99_s",
                                                   "tpot_p50_s", "kv_capacity_tokens")}})
    return out


# ---------------------------------------------------------------------------------------------------------
# the plan: shards of both stages, and the merges

def screen_shards(sp: SearchSpace) -> list[tuple[int, int, int]]:
    """(pair, lo, hi) of every stage-1 shard, in order."""
    return [(p, lo, min(lo + sp.shard_candidates, sp.size(p))) for p in range(sp.pairs)
            for lo in range(0, sp.size(p), sp.shard_candidates)]


def shard_seed(plan_id: str, stage: str, index: int) -> int:
    """A shard's seed: from the plan and the shard's place in it (never from time or the worker)."""
    return int.from_bytes(hashlib.sha256(f"{plan_id}:{stage}:{index}".encode()).digest()[:4], "little")


def merge_screen(sp: SearchSpace, shards: list[dict]) -> list[dict]:
    """Per (model, workload) pair: counts, the screen's Pareto front and its cheapest distinct candidates."""
    out = []
    for p in range(sp.pairs):
        mine = [s for s in shards if s["pair"] == p]
        cheap = _distinct(sorted((r for s in mine for r in s["cheapest"]), key=cost_key))
        out.append({"pair": p, "model": sp.models[p // len(sp.workloads)].name,
                    "workload": sp.workloads[p % len(sp.workloads)].name,
                    "screened": sum(s["screened"] for s in mine), "feasible": sum(s["feasible"] for s in mine),
                    "limited_by_counts": {k: sum(s["limited_by_counts"][k] for s in mine) for k in LIMITS},
                    "front": _merge_front([s["front"] for s in mine]), "cheapest": cheap[:_KEEP]})
    return out


def simulation_list(sp: SearchSpace, merged: list[dict]) -> list[dict]:
    """Stage 2's candidates: per pair the `top` cheapest distinct ones, then up to `top` more of the screen's
    Pareto front (cheapest first)."""
    sims = []
    for m in merged:
        picked = m["cheapest"][:sp.top]
        have = {r["index"] for r in picked}
        picked += [r for r in m["front"] if r["index"] not in have][:sp.top]
        sims += [{"pair": m["pair"], **r} for r in picked]
    return sims


def simulate_candidate(sp: SearchSpace, cand: dict, seed: int) -> dict:
    """Stage 2 for one candidate: the highest constant rate per replica whose simulation meets the SLOs
    (p50/p99 TTFT and TPOT) with no request rejected, bracketed from the screen's rate and bisected; the limit
    that fails just above it; the fleet and cost at that rate."""
    pair = cand["pair"]
    model, w = sp.models[pair // len(sp.workloads)], sp.workloads[pair % len(sp.workloads)]
    w = replace(w, daily_curve=None)
    g = [x.name for x in sp.gpus].index(cand["gpu"])
    gpu = sp.gpus[g]
    p = PrecisionSet.parse(cand["precision"])
    s = make_setup(gpu, model, cand["tp"], p.weights, p.activations, p.kv, sp.efficiency, pp=cand["pp"],
                   ep=cand["ep"], dp=cand["dp_attention"])
    spec = sp.engines[[e.name for e in sp.engines].index(cand["engine"])]
    ms = mem.engine_settings(spec, gpu, cand["tp"], cand["pp"], kv_cache_fraction=cand["kv_cache_fraction"],
                             max_seqs=cand["max_seqs"], max_batched_tokens=cand["max_batched_tokens"])
    cfg = SimSettings(chunked_prefill=ms.chunked_prefill, page_tokens=ms.page_tokens, memory=ms)
    runs = []

    def check(rate: float):
        try:
            r = simulate(s, w, sp.sim_requests, 1, seed, cfg, rate_per_s=rate)
        except DoesNotFit:
            return "kv_capacity", None
        runs.append(rate)
        if r["rejected_requests"]:
            return "kv_capacity", r
        for name, key, pct in (("ttft_p99_slo", "ttft_s", "p99"), ("ttft_p50_slo", "ttft_s", "p50"),
                               ("tpot_p99_slo", "tpot_s", "p99"), ("tpot_p50_slo", "tpot_s", "p50")):
            limit = getattr(w.slo, f"{key[:4]}_{pct}_s")
            got = r[key][pct]
            if limit is not None and got is not None and got > limit:
                return name, r
        return None, r

    rate0 = cand["rate"]
    lo = hi = None
    best = fail = None
    why, r = check(rate0)
    if why is None:
        lo, best = rate0, r
        for k in range(1, 5):
            why, r = check(rate0 * 1.3 ** k)
            if why is not None:
                hi, fail = rate0 * 1.3 ** k, why
                break
            lo, best = rate0 * 1.3 ** k, r
    else:
        hi, fail = rate0, why
        for k in range(1, 7):
            why, r = check(rate0 / 1.5 ** k)
            if why is None:
                lo, best = rate0 / 1.5 ** k, r
                break
            hi, fail = rate0 / 1.5 ** k, why
    if lo is not None and hi is not None:
        for _ in range(4):
            mid = math.sqrt(lo * hi)
            why, r = check(mid)
            if why is None:
                lo, best = mid, r
            else:
                hi, fail = mid, why
    st = _stats(model, sp.workloads[pair % len(sp.workloads)])
    row = {**{k: v for k, v in cand.items() if k != "pair"}, "pair": pair, "screen_rate": rate0,
           "simulations": len(runs), "seed": seed}
    if lo is None:
        return {**row, "feasible": False, "sim_rate": 0.0, "sim_limited_by": fail, "sim_replicas": None,
                "sim_cost_per_hour": None, "sim_ttft_p99_s": None, "sim_tpot_p99_s": None, "sim_latency_s": None,
                "sim_output_tokens_per_s_per_gpu": 0.0, "sim_cost_per_million_output_tokens": None}
    peak = sp.workloads[pair % len(sp.workloads)].peak_rate_per_s
    replicas = max(1, math.ceil(peak / lo * (1 - 1e-9)))
    cost = replicas * cand["gpus_per_replica"] * cand["price_per_gpu_hour"]
    mean_out = sp.workloads[pair % len(sp.workloads)].mean_rate_per_s * st.output
    ttft, tpot = best["ttft_s"]["p99"], best["tpot_s"]["p99"] or 0.0
    return {**row, "feasible": True, "sim_rate": lo, "sim_limited_by": fail or "none_within_bracket",
            "sim_replicas": replicas, "sim_cost_per_hour": cost,
            "sim_cost_per_million_output_tokens": cost / (mean_out * 3600.0) * 1e6,
            "sim_ttft_p99_s": ttft, "sim_tpot_p99_s": tpot, "sim_latency_s": ttft + (st.output - 1.0) * tpot,
            "sim_output_tokens_per_s_per_gpu": lo * st.output / cand["gpus_per_replica"]}


def sim_key(r: dict) -> tuple:
    return (r["sim_cost_per_hour"], r["sim_latency_s"], -r["sim_output_tokens_per_s_per_gpu"], r["index"])


def final_result(sp: SearchSpace, plan_id: str, merged: list[dict], sims: list[dict]) -> dict:
    """The search's answer (JSON-ready, deterministic: no timestamps, rows in a fixed order): per (model,
    workload) the counts, the screen's front, the simulated candidates, their Pareto front and the cheapest
    confirmed deployment with its binding limit."""
    results = []
    for m in merged:
        mine = [r for r in sims if r["pair"] == m["pair"]]
        ok = sorted((r for r in mine if r["feasible"]), key=sim_key)
        front = []
        if ok:
            arr = lambda k: np.array([r[k] for r in ok], dtype=float)  # noqa: E731
            pos = pareto_front(arr("sim_cost_per_hour"), arr("sim_latency_s"),
                               arr("sim_output_tokens_per_s_per_gpu"), np.array([r["index"] for r in ok]))
            front = [ok[i]["index"] for i in pos]
        results.append({"model": m["model"], "workload": m["workload"], "candidates_screened": m["screened"],
                        "candidates_feasible": m["feasible"], "limited_by_counts": m["limited_by_counts"],
                        "screen_pareto": m["front"], "simulated": sorted(mine, key=lambda r: (not r["feasible"],
                                                                                              *(sim_key(r) if r["feasible"] else (0, 0, 0, r["index"])))),
                        "pareto": front, "cheapest": ok[0] if ok else None,
                        "simulations": sum(r["simulations"] for r in mine)})
    return {"plan_id": plan_id, "roofline_version": roofline.__version__, "space": sp.describe(),
            "results": results}


def to_json(doc: dict) -> str:
    """The results file's text: sorted keys, fixed float formatting (repr), a final newline."""
    from roofline.jsonfile import to_jsonable
    return json.dumps(to_jsonable(doc), sort_keys=True, indent=1, allow_nan=False) + "\n"
