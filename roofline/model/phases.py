"""Prefill and decode as forward passes, and sums over a whole generation without a per-token loop.

A uniform batch: `batch` sequences, each adding `new` tokens on top of `cached` tokens already in the KV
cache. Prefill of a prompt P is (new=P, cached=0); the decode step at context c is (new=1, cached=c): the
new token attends to c + 1 keys, itself included.

Parallel layouts: with attention data parallelism each of the dp ranks runs batch / dp of the sequences.
With pipeline parallelism (pp stages) the batch runs as m = min(pp, batch) micro-batches of batch / m
sequences (serving engines keep pp micro-batches in flight); `prefill` and `decode_step` give the operators
of ONE micro-batch through every stage (its latency), and `phase_time_s` the phase's time:
  prefill (all prompts done) = latency + (m - 1) x stage      (GPipe: bubble (pp - 1) / (m + pp - 1))
  decode step (TPOT)         = max(latency, m x stage)        (a token passes every stage once per step)
where stage = the slowest stage: its ceil(L / pp) layers, the once-per-model operators (embedding, final
norm, LM head: put on one stage, conservatively) and one stage-to-stage send.

Fixed costs of a pass (the serving engine's `PassCosts` on the Setup; none when it has none): every kernel
launched outside a CUDA graph pays `eager_launch_s` on top of the per-kernel gap, added to its operator's
overhead; a step pays `step_overhead_s` once, as the operator `engine_step` (unit "host"). Which kernels run
eagerly:
  decode step       graph-captured when the graphs are on and its tokens per rank <= graph_max_tokens, else eager
  prefill "graph"   as a decode step
  prefill "piecewise" (vLLM) attention eager always; the rest graph-captured up to graph_max_tokens, else eager
  prefill "eager"   (TensorRT-LLM context steps, SGLang extend batches) every kernel eager
TTFT = the prefill pass with these costs: its LM head gives the first token's logits and its step the first
token's sampling and scheduling.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from roofline.model.engine import OpTime, Setup, time_pass, total_time_s
from roofline.model.ops import REGISTRY, OpCost, Pass

#: the pseudo-operator carrying a step's host overhead (scheduling, input preparation, output processing)
ENGINE_STEP = "engine_step"

#: bisection upper bound for the critical batch search (2**24 sequences)
_MAX_BATCH_LOG2 = 24


def _pairs_and_reads(new, cached, window):
    """Query-key pairs and keys read for one sequence when each query sees at most `window` keys.

    Query at absolute position p (cached <= p < cached + new) attends min(p + 1, window) keys, so
    pairs = sum_{u=cached+1}^{cached+new} min(u, W); keys read = min(cached + new, W + new - 1).
    Without a window (W >= cached + new) this is new*cached + new*(new+1)/2 and cached + new."""
    lo, hi = cached + 1.0, cached + new
    if not np.isfinite(window):
        return new * cached + new * (new + 1.0) / 2.0, hi
    m = np.clip(window, lo - 1.0, hi)
    pairs = (m * (m + 1.0) - (lo - 1.0) * lo) / 2.0 + window * (hi - m)
    reads = np.minimum(hi, window + new - 1.0)
    return pairs, reads


def attention_terms(model, new, cached):
    """(attn_pairs, kv_read_tokens) of one sequence, averaged over the model's layers (full + windowed)."""
    new, cached = np.asarray(new, dtype=float), np.asarray(cached, dtype=float)
    full_pairs, full_reads = _pairs_and_reads(new, cached, np.inf)
    n_win = model.sliding_window_layers if model.sliding_window else 0
    if not n_win:
        return full_pairs, full_reads
    win_pairs, win_reads = _pairs_and_reads(new, cached, float(model.sliding_window))
    f = n_win / model.num_layers
    return (1 - f) * full_pairs + f * win_pairs, (1 - f) * full_reads + f * win_reads


def make_pass(s: Setup, batch, new, cached) -> Pass:
    """The Pass of one attention-DP rank when the replica runs `batch` sequences (each rank: batch / dp)."""
    per_rank = np.asarray(batch, dtype=float) / np.asarray(s.dp, dtype=float)
    pairs, reads = attention_terms(s.model, new, cached)
    return Pass(s.model, per_rank * new, per_rank, per_rank * pairs, per_rank * reads, s.tp, s.w_bytes,
                s.a_bytes, s.kv_bytes, s.pp, s.ep, s.dp, s.ep_imbalance)


def eager_launched(s: Setup, p: Pass, unit: str) -> np.ndarray:
    """True where an operator of `unit` in pass `p` launches its kernels outside a CUDA graph (see the module
    docstring); False everywhere when the Setup carries no engine costs."""
    c = s.costs
    if c is None:
        return np.asarray(False)
    graphed = np.asarray(c.cuda_graphs) & (np.asarray(p.tokens) <= c.graph_max_tokens)
    if c.prefill_launch == "graph" or (c.prefill_launch == "piecewise" and unit != "attention"):
        prefill_graphed = graphed
    else:
        prefill_graphed = np.asarray(False)
    return ~np.where(p.decode, graphed, prefill_graphed)


def with_fixed_costs(s: Setup, p: Pass, ops: list[OpTime]) -> list[OpTime]:
    """`ops` of pass `p` with the engine's fixed costs: eager launches added to each operator's overhead, and
    the step's host overhead as one `engine_step` operator. Unchanged when the Setup carries no costs."""
    c = s.costs
    if c is None:
        return ops
    out = []
    for o in ops:
        kernels = o.count * np.asarray(o.cost.kernels, dtype=float)
        eager = eager_launched(s, p, o.unit)
        if o.unit == "link":  # a collective over one rank launches nothing
            eager = eager & (np.asarray(o.group) > 1)
        extra = np.where(eager, kernels * c.eager_launch_s, 0.0)
        out.append(dataclasses.replace(o, overhead_s=np.asarray(o.overhead_s + extra)))
    zero = np.zeros(np.broadcast_shapes(np.shape(p.tokens), np.shape(s.tp)))
    step = np.asarray(zero + c.step_overhead_s)
    out.append(OpTime(ENGINE_STEP, "host", 1, OpCost(zero, zero, zero, kernels=0.0), zero, zero, step))
    return out


def fixed_costs_s(s: Setup, batch, new) -> np.ndarray:
    """The engine's fixed costs of one pass of `batch` sequences adding `new` tokens each (eager launches and
    the step overhead): the pass's time with them minus without; 0 without engine costs."""
    p = make_pass(s, np.asarray(batch, dtype=float), np.asarray(new, dtype=float), 0.0)
    bare = time_pass(s, p)
    return sum(o.time_s for o in with_fixed_costs(s, p, bare)) - total_time_s(bare)


def micro_batches(s: Setup, batch) -> np.ndarray:
    """m = min(pp, batch): the micro-batches a pipeline keeps in flight (1 without pipeline parallelism)."""
    return np.minimum(np.asarray(s.pp, dtype=float), np.maximum(np.asarray(batch, dtype=float), 1.0))


def prefill(s: Setup, batch, prompt) -> list[OpTime]:
    """Per-operator times of prefilling one micro-batch (batch / m prompts of `prompt` tokens) through every
    pipeline stage; without pipeline parallelism, the whole batch in one pass."""
    mb = np.asarray(batch, dtype=float) / micro_batches(s, batch)
    p = make_pass(s, mb, np.asarray(prompt, dtype=float), 0.0)
    return with_fixed_costs(s, p, time_pass(s, p))


def decode_step(s: Setup, batch, context) -> list[OpTime]:
    """Per-operator times of one decode step of one micro-batch (batch / m sequences with `context` tokens
    cached) through every pipeline stage; without pipeline parallelism, the whole batch."""
    mb = np.asarray(batch, dtype=float) / micro_batches(s, batch)
    p = make_pass(s, mb, 1.0, np.asarray(context, dtype=float))
    return with_fixed_costs(s, p, time_pass(s, p))


def _stage_weights(s: Setup, ops: list[OpTime]) -> list:
    """Per operator, the share of its (all-stage) time the slowest stage carries: ceil(L/pp)/L of a layer
    operator, all of a once-per-model one (and of the engine's step overhead), 1/(pp-1) of the stage-to-stage
    sends."""
    pp = np.asarray(s.pp, dtype=float)
    layer_share = np.ceil(s.model.num_layers / pp) / s.model.num_layers
    out = []
    for o in ops:
        if o.name == "pp_send":
            out.append(1.0 / np.maximum(pp - 1.0, 1.0))
        else:
            out.append(1.0 if o.name == ENGINE_STEP or REGISTRY[o.name].scope == "model" else layer_share)
    return out


def stage_time_s(s: Setup, ops: list[OpTime]) -> np.ndarray:
    """Time of the slowest pipeline stage for one micro-batch (= the whole pass without pipelining)."""
    staged = sum(w * o.time_s for w, o in zip(_stage_weights(s, ops), ops))
    return np.where(np.asarray(s.pp) > 1, staged, total_time_s(ops))


def phase_time_s(s: Setup, ops: list[OpTime], batch, phase: str) -> np.ndarray:
    """The phase's time from one micro-batch's operators (see the module docstring): "prefill" = latency +
    (m - 1) x stage; "decode" = max(latency, m x stage). Equal to the summed operators without pipelining."""
    latency = total_time_s(ops)
    if np.all(np.asarray(s.pp) == 1):
        return latency
    m, stage = micro_batches(s, batch), stage_time_s(s, ops)
    if phase == "prefill":
        return latency + (m - 1.0) * stage
    return np.maximum(latency, m * stage)


def pipeline_bubble_fraction(s: Setup, batch) -> np.ndarray:
    """Idle share of a pipeline's stages while m micro-batches pass: (pp - 1) / (m + pp - 1); 0 at pp = 1."""
    pp = np.asarray(s.pp, dtype=float)
    return (pp - 1.0) / (micro_batches(s, batch) + pp - 1.0)


def _sum_linear(f0, df, j):
    """sum_{k=0}^{j-1} (f0 + df*k)."""
    return j * f0 + df * j * (j - 1.0) / 2.0


def _sum_max_affine(n, c0, c1, m0, m1):
    """sum_{k=0}^{n-1} max(c(k), m(k)) for c, m affine in k with c(0)=c0, c(n-1)=c1 (same for m)."""
    span = np.maximum(n - 1.0, 1.0)
    dc, dm = (c1 - c0) / span, (m1 - m0) / span
    d0, dd = c0 - m0, dc - dm
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        kstar = np.where(dd != 0, -d0 / np.where(dd != 0, dd, 1.0), 0.0)
    # dd > 0: compute wins from ceil(k*) on; dd < 0: compute wins up to floor(k*); dd == 0: sign of d0
    j_up = np.clip(np.ceil(kstar), 0, n)
    j_dn = np.clip(np.floor(kstar) + 1.0, 0, n)
    up = _sum_linear(m0, dm, j_up) + _sum_linear(c0, dc, n) - _sum_linear(c0, dc, j_up)
    dn = _sum_linear(c0, dc, j_dn) + _sum_linear(m0, dm, n) - _sum_linear(m0, dm, j_dn)
    flat = np.where(d0 >= 0, _sum_linear(c0, dc, n), _sum_linear(m0, dm, n))
    return np.where(dd > 0, up, np.where(dd < 0, dn, flat))


def _sum_op(n, oa: OpTime, ob: OpTime):
    """One operator's time summed over n decode steps, from its first (oa) and last (ob) step. A tensor
    operator (a GEMM) does not see the context, so its p-norm time (Efficiency.overlap_p) is the same at every
    step; the others add max(compute, memory), exact for affine times."""
    if oa.overlap_p is not None:
        return n * 0.5 * (oa.time_s + ob.time_s)
    return _sum_max_affine(n, oa.compute_s, ob.compute_s, oa.memory_s, ob.memory_s) + n * oa.overhead_s


def _segment_time(s: Setup, batch, first, last):
    """Summed decode-step time over contexts first..last (inclusive), where every operator's compute and
    memory times are affine in the context. Empty segments (last < first) give 0. With pipeline
    parallelism: max(summed latency, m x summed slowest stage) (one of the two dominates at every context:
    which one depends on m and the layout, not on the context)."""
    n = np.maximum(last - first + 1.0, 0.0)
    a, b = decode_step(s, batch, first), decode_step(s, batch, np.maximum(last, first))
    sums = [_sum_op(n, oa, ob) for oa, ob in zip(a, b)]
    latency = sum(sums)
    if np.all(np.asarray(s.pp) == 1):
        return latency
    stage = sum(w * t for w, t in zip(_stage_weights(s, a), sums))
    return np.where(np.asarray(s.pp) > 1, np.maximum(latency, micro_batches(s, batch) * stage), latency)


def decode_time_sum(s: Setup, batch, prompt, output):
    """Total time of the output-1 decode steps after a prefill of `prompt` (contexts prompt..prompt+output-2),
    in closed form. Exact with constant efficiencies (every operator's compute and memory time is affine in
    the context, with one breakpoint where a sliding window fills). With fitted efficiency curves (--profile)
    each operator's times are interpolated linearly between the ends of each segment: an approximation."""
    first = np.asarray(prompt, dtype=float)
    last = first + np.asarray(output, dtype=float) - 2.0
    w = float(s.model.sliding_window) if s.model.sliding_window else np.inf
    if not np.isfinite(w):
        return _segment_time(s, batch, first, last)
    split = w - 1.0  # from context W-1 on, a windowed layer reads a constant W keys
    return (_segment_time(s, batch, first, np.minimum(last, split - 1.0))
            + _segment_time(s, batch, np.maximum(first, split), last))


def compute_and_memory_s(ops: list[OpTime]):
    """(sum of compute times, sum of memory times) over the non-collective operators."""
    ops = [o for o in ops if o.unit not in ("link", "host")]
    return sum(o.compute_s for o in ops), sum(o.memory_s for o in ops)


def critical_batch(s: Setup, context) -> np.ndarray:
    """Smallest batch at which a decode step at `context` spends more time computing than moving memory
    (summed over operators), found by integer bisection; -1 where it never happens up to 2**24 sequences
    (the KV reads, whose intensity does not grow with batch, keep it memory-bound)."""
    ctx = np.asarray(context, dtype=float)
    shape = np.broadcast_shapes(np.shape(ctx), np.shape(s.tp), np.shape(s.w_bytes), np.shape(s.kv_bytes))
    lo, hi = np.zeros(shape), np.full(shape, 2.0**_MAX_BATCH_LOG2)

    def is_compute(b):
        c, m = compute_and_memory_s(decode_step(s, b, ctx))
        return np.broadcast_to(c >= m, shape)

    never = ~is_compute(hi)
    for _ in range(_MAX_BATCH_LOG2 + 1):
        mid = np.floor((lo + hi) / 2.0)
        ok = is_compute(np.maximum(mid, 1.0))
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return np.where(never, -1, np.maximum(hi, 1.0)).astype(np.int64)
