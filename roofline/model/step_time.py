"""A continuous-batching step's time as a fast function of its four aggregates, for capacity and simulate.

A step (any mix of decoding sequences and prefill chunks) is one forward pass described by T new tokens,
S sequences, `pairs` query-key pairs and `kv` cached tokens read (see `roofline.ops.Pass`). The exact model
(`engine.time_pass`) is numpy over ~20 operators: right for a grid, far too slow to call once per simulated
step. `StepTimeModel` splits the operators by what they depend on, found by probing the exact model:

* operators that depend on T only (projections, MLP, MoE, norms, all-reduces): one table over T = 0..T_max,
  exact whatever the efficiency curves;
* operators that depend on S only (the LM head): one table over S;
* the rest (attention): per operator, compute time and memory time are affine in (1, T, S, pairs, kv) for
  constant efficiencies, fitted by least squares separately for decode steps (T == S) and mixed steps
  (T > S; MLA switches formulas there). The step adds max(compute, memory) + overhead per operator.

The serving engine's fixed costs of a pass (`Setup.costs`: eager kernel launches and the per-step host
overhead) are applied exactly as `analyze` applies them, by `phases.with_fixed_costs` on the step's Pass: they
depend on the step only through its tokens per rank (graph-captured up to the engine's largest captured size)
and whether it is a decode step (T == S; a step with prefill tokens follows the engine's prefill launch rule),
so they are two more tables over T, one per mode. The plan modules put the engine's costs on the Setup with
`with_engine_costs`.

`check()` compares with the exact model; tests hold it to 1e-6 with the default efficiency.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from roofline.model.engine import OpTime, Setup, time_pass, total_time_s
from roofline.model.memory import MemorySettings
from roofline.model.ops import Pass
from roofline.model.phases import with_fixed_costs

_PROBE = dict(T=96.0, S=24.0, pairs=40000.0, kv=30000.0)


def mixed_pass(s: Setup, T, S, pairs, kv) -> Pass:
    """The Pass of a mixed continuous-batching step from the replica's totals: T tokens processed (prefill
    chunks + one per decoding sequence), S sequences, `pairs` attention query-key pairs and `kv` KV-cache
    tokens read; each attention-DP rank takes 1/dp of them."""
    dp = np.asarray(s.dp, dtype=float)
    return Pass(s.model, np.asarray(T, float) / dp, np.asarray(S, float) / dp, np.asarray(pairs, float) / dp,
                np.asarray(kv, float) / dp, s.tp, s.w_bytes, s.a_bytes, s.kv_bytes, s.pp, s.ep, s.dp,
                s.ep_imbalance)


def with_engine_costs(s: Setup, ms: MemorySettings) -> Setup:
    """`s` carrying the fixed costs of a pass that the engine settings `ms` imply (`ms.pass_costs()`)."""
    return dataclasses.replace(s, costs=ms.pass_costs())


def step_ops(s: Setup, T, S, pairs, kv) -> list[OpTime]:
    """Per-operator times of a mixed step with the engine's fixed costs (`phases.with_fixed_costs`)."""
    p = mixed_pass(s, T, S, pairs, kv)
    return with_fixed_costs(s, p, time_pass(s, p))


def exact_step_time_s(s: Setup, T, S, pairs, kv) -> np.ndarray:
    """The exact model's step time, the engine's fixed costs included (vectorized)."""
    return total_time_s(step_ops(s, T, S, pairs, kv))


def _fixed_table(s: Setup, T: np.ndarray, S: np.ndarray, bare: list[OpTime] | None = None) -> np.ndarray:
    """The engine's fixed costs of steps of T tokens and S sequences (the step with them minus without);
    `bare`: that step's operator times when the caller has them already."""
    p = mixed_pass(s, T, S, 0.0 * T, 0.0 * T)
    if bare is None:
        bare = time_pass(s, p)
    return np.broadcast_to(total_time_s(with_fixed_costs(s, p, bare)) - total_time_s(bare), T.shape).astype(float)


def _classify(s: Setup) -> list[str]:
    """Per operator: 'T' (depends on tokens only), 'S' (sequences only) or 'A' (attention-like)."""
    base = dict(_PROBE)
    ref = time_pass(s, mixed_pass(s, **base))
    moved = {}
    for key in base:
        probe = dict(base, **{key: base[key] * 1.7 + 3.0})
        moved[key] = [not np.allclose(a.time_s, b.time_s, rtol=1e-12, atol=0)
                      for a, b in zip(ref, time_pass(s, mixed_pass(s, **probe)))]
    kinds = []
    for i in range(len(ref)):
        dep = {k for k in base if moved[k][i]}
        kinds.append("T" if dep <= {"T"} else "S" if dep == {"S"} else "A")
    return kinds


def _fit_affine(s: Setup, idx: list[int], decode: bool, t_max: float) -> np.ndarray:
    """Least-squares affine fit of compute_s and memory_s of the operators idx over random steps:
    rows (operator, [c0, cT, cS, cP, cK, m0, mT, mS, mP, mK, overhead])."""
    rng = np.random.default_rng(0)
    n = 64
    S = rng.integers(1, 257, n).astype(float)
    T = S.copy() if decode else S + rng.integers(1, int(max(t_max, 2)), n)
    ctx = rng.integers(0, 32768, n).astype(float)
    kv = S * ctx + (T - S) * rng.random(n) + T
    pairs = kv + (T - S) * ctx * rng.random(n)
    X = np.column_stack([np.ones(n), T, S, pairs, kv])
    ops = time_pass(s, mixed_pass(s, T, S, pairs, kv))
    rows = []
    for i in idx:
        o = ops[i]
        c = np.linalg.lstsq(X, np.broadcast_to(o.compute_s, (n,)), rcond=None)[0]
        m = np.linalg.lstsq(X, np.broadcast_to(o.memory_s, (n,)), rcond=None)[0]
        rows.append(np.concatenate([c, m, [float(np.mean(o.overhead_s))]]))
    return np.array(rows).reshape(len(rows), 11)


class StepTimeModel:
    """step_time_s(T, S, pairs, kv) for one Setup, tabulated up to T_max tokens per step."""

    def __init__(self, setup: Setup, t_max: int):
        self.setup, self.t_max = setup, int(t_max)
        kinds = _classify(setup)
        grid = np.arange(self.t_max + 1, dtype=float)
        decode = np.maximum(grid, 1.0)
        ops = time_pass(setup, mixed_pass(setup, grid, decode, 0.0 * grid, 0.0 * grid))
        ops_s = time_pass(setup, mixed_pass(setup, np.maximum(grid, 1.0), grid, 0.0 * grid, 0.0 * grid))
        self.table_T = sum((np.broadcast_to(o.time_s, grid.shape) for o, k in zip(ops, kinds) if k == "T"),
                           np.zeros_like(grid))
        self.table_S = sum((np.broadcast_to(o.time_s, grid.shape) for o, k in zip(ops_s, kinds) if k == "S"),
                           np.zeros_like(grid))
        # the engine's fixed costs per T: decode steps (S = T) and steps with prefill tokens (S < T)
        self.fixed_decode = _fixed_table(setup, grid, decode, ops)
        self.fixed_mixed = _fixed_table(setup, grid, np.maximum(grid - 0.5, 0.0))
        attn = [i for i, k in enumerate(kinds) if k == "A"]
        self.coef_decode = _fit_affine(setup, attn, True, t_max)
        self.coef_mixed = _fit_affine(setup, attn, False, t_max)
        self._terms_d = self._terms(self.coef_decode)
        self._terms_m = self._terms(self.coef_mixed)
        self._modes = (self._mode_tables(self._terms_d, self.fixed_decode),
                       self._mode_tables(self._terms_m, self.fixed_mixed))
        self._decode_tables()

    def _mode_tables(self, lin_terms, fixed: np.ndarray) -> tuple:
        """(by_T, by_S, pairs coefficient, kv coefficient, max terms) of one mode (decode or mixed): the linear
        part and the engine's fixed costs folded into per-T and per-S tables so that `time` does two lookups."""
        lin, terms = lin_terms
        n = np.arange(self.t_max + 1, dtype=float)
        return ((self.table_T + fixed + lin[0] + lin[1] * n).tolist(), (self.table_S + lin[2] * n).tolist(), lin[3],
                lin[4], terms)

    def _decode_tables(self) -> None:
        """Per-B constants of a decode step (T = S = B, pairs = kv = x): t = base[B] + slope x + sum of
        max(c[B] + cx x, m[B] + mx x)."""
        b = np.arange(self.t_max + 1, dtype=float)
        lin, terms = self._terms_d
        self._d_base = (self.table_T + self.table_S + self.fixed_decode + lin[0] + (lin[1] + lin[2]) * b).tolist()
        self._d_slope = lin[3] + lin[4]
        self._d_terms = [((c0 + (cT + cS) * b).tolist(), cP + cK, (m0 + (mT + mS) * b).tolist(), mP + mK)
                         for c0, cT, cS, cP, cK, m0, mT, mS, mP, mK in terms]

    def decode_time(self, B: int, x: float) -> float:
        """Time of a pure decode step of B sequences reading x cached+new tokens in all (pairs = kv = x)."""
        t = self._d_base[B] + self._d_slope * x
        for c, cx, m, mx in self._d_terms:
            cc, mm = c[B] + cx * x, m[B] + mx * x
            t += cc if cc > mm else mm
        return t

    def decode_times(self, B: int, x0: float, x1: float) -> tuple[float, float]:
        """(decode_time(B, x0), decode_time(B, x1)) in one call (the two ends of a run of decode steps)."""
        base, slope = self._d_base[B], self._d_slope
        t0, t1 = base + slope * x0, base + slope * x1
        for c, cx, m, mx in self._d_terms:
            cB, mB = c[B], m[B]
            cc, mm = cB + cx * x0, mB + mx * x0
            t0 += cc if cc > mm else mm
            cc, mm = cB + cx * x1, mB + mx * x1
            t1 += cc if cc > mm else mm
        return t0, t1

    @staticmethod
    def _terms(coef: np.ndarray) -> tuple[tuple, tuple[tuple, ...]]:
        """(linear part, max terms): an operator whose memory time is zero everywhere is linear."""
        lin = np.zeros(5)
        terms = []
        for row in coef:
            c, m, ov = row[:5], row[5:10], row[10]
            lin[0] += ov
            if np.allclose(m, 0.0, atol=1e-30):
                lin += c
            elif np.allclose(c, 0.0, atol=1e-30):
                lin += m
            else:
                terms.append(tuple(float(v) for v in np.concatenate([c, m])))
        return tuple(float(v) for v in lin), tuple(terms)

    def time(self, T: int, S: int, pairs: float, kv: float) -> float:
        """One step's time in seconds (scalar, fast)."""
        if T > self.t_max:
            return float(exact_step_time_s(self.setup, T, S, pairs, kv))
        by_T, by_S, lp, lk, terms = self._modes[T > S]
        t = by_T[T] + by_S[S] + lp * pairs + lk * kv
        for c0, cT, cS, cP, cK, m0, mT, mS, mP, mK in terms:
            c = c0 + cT * T + cS * S + cP * pairs + cK * kv
            m = m0 + mT * T + mS * S + mP * pairs + mK * kv
            t += c if c > m else m
        return t

    def times(self, T, S, pairs, kv) -> np.ndarray:
        """Vectorized step times (T within the table)."""
        T, S = np.asarray(T, dtype=np.int64), np.asarray(S, dtype=np.int64)
        x = np.stack(np.broadcast_arrays(np.ones(np.shape(T)), T, S, pairs, kv)).astype(float)
        out = self.table_T[T] + self.table_S[S] + np.where(T <= S, self.fixed_decode[T], self.fixed_mixed[T])
        for coef, mask in ((self.coef_decode, T <= S), (self.coef_mixed, T > S)):
            part = 0.0
            for row in coef:
                c, m = np.tensordot(row[:5], x, 1), np.tensordot(row[5:10], x, 1)
                part = part + np.maximum(c, m) + row[10]
            out = out + np.where(mask, part, 0.0)
        return out

    def check(self, n: int = 2000, seed: int = 1) -> float:
        """Largest relative error against the exact model over random decode and mixed steps."""
        rng = np.random.default_rng(seed)
        S = rng.integers(1, 257, n)
        T = np.where(rng.random(n) < 0.5, S, np.minimum(S + rng.integers(0, self.t_max, n), self.t_max))
        ctx = rng.integers(0, 32768, n)
        kv = (S * ctx + T).astype(float)
        pairs = kv + (T - S) * ctx * rng.random(n)
        fast = self.times(T, S, pairs, kv)
        exact = exact_step_time_s(self.setup, T, S, pairs, kv)
        return float(np.max(np.abs(fast / exact - 1.0)))
