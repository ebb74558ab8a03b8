"""From measured points to a device model: ceilings, and efficiency curves fitted to what kernels reached.

Ceilings (`ceilings`): the DRAM/HBM bandwidth is the best `stream` kernel (arrays far past the last cache);
each precision's peak is the best GEMM of that precision; plus the copy-engine and cache bandwidths, the
per-op launch overhead and the per-kernel overhead of a decoder layer (a tiny layer stack whose time is
all overhead: time / the engine's kernel count), reported apart.

Efficiency curves (`fit_record`), with t' = t - kernels * kernel_overhead_s the time net of overhead:
  memory_fraction:  m = B / (bandwidth * t') of the streaming kernels and of the GEMMs below the ridge
                    (GEMVs, small-K GEMMs), i.e. the achieved fraction of the measured bandwidth;
  compute_fraction: c = F / (peak[precision] * t') of the GEMMs above the ridge, per precision.
Each is a table over (log10 I, log10 B), I = F / B, smoothed from its samples with a Gaussian kernel
(Nadaraya-Watson on the log fraction, bandwidths H_LOG_I and H_LOG_B decades; far from data the nearest
samples dominate) and read by bilinear interpolation, vectorized over any array shape. The engine then
predicts max(F / (peak * c), B / (bandwidth * m)) + kernels * kernel_overhead_s, and an operator stays
memory- or compute-bound as the roofline says. A precision with fewer than MIN_OWN_POINTS compute samples
borrows the other precisions' too. The hooks see only (F, B): an elementwise op at a GEMV's intensity and
size gets the GEMV's memory fraction (on a GPU in bf16 a norm, 1 FLOP/B, sits next to a GEMV, 1 FLOP/B).

Attention (`attention_samples`): the fused SDPA kernel is neither a GEMM nor a stream, so the attention
operators (unit "attention": attn_scores, attn_context) get their own table, read by the engine's
`attention_compute_fraction` / `attention_memory_fraction` hooks. Each attention point is split into the
operators the engine times (`attention.attention_pass`); with R the summed bare roofline time
max(F_i / peak, B_i / bandwidth) of its attention operators and t' its time net of the kernel overhead
and of the (vector) softmax, r = R / t' is the fraction both sides reach; each operator gives a sample
(log10 I_i, log10 B_i, ln r) and both hooks read the one table, so the binding side stays what the
roofline says (decode: memory, r the achieved fraction of bandwidth; prefill: compute, r of the peak).
A memory-bound attention point whose working set stays in a cache that is not flushed between
repetitions (a CPU's last-level cache: `hot_cache_bytes`) is left out: it measures the cache, while in a
decoder step the weights stream through the cache between two reads of a layer's KV cache. A profile without attention samples (older ones) falls back to the GEMM
curves. Decoder-layer points are never fitted: they are the end-to-end check of all the curves. Points
marked `unstable` (their rounds still disagreed after re-measurement, see runner.unstable) are never fitted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from roofline.model.efficiency import Efficiency
from roofline.measure.points import STREAM_FAMILIES
from roofline.measure.timing import ROUND_AGREEMENT, reference_s, round_disagreement

H_LOG_I, H_LOG_B = 0.15, 0.1  # smoothing bandwidths, decades
MIN_INTENSITY = 1.0 / 64.0  # FLOP/byte; write/copy (0 FLOPs) are placed here
GRID_LOG_I = np.round(np.arange(-2.0, 4.0001, 0.05), 4)
GRID_LOG_B = np.round(np.arange(2.0, 12.0001, 0.05), 4)
FRACTION_BOUNDS = (1e-4, 1.5)
MIN_OWN_POINTS = 6
H_ATTN_LOG_I, H_ATTN_LOG_B = 0.3, 0.3  # attention table (sparser samples): wider, still apart from decode to prefill
MIN_SAMPLE_WEIGHT = 0.02
CACHE_RESIDENT_FACTOR = 2.0  # working set < 2x the last-level cache (CPU) / L2 (GPU): cache-resident


# ------------------------------------------------------------------------------------------ ceilings


def _rate(p: dict, what: str) -> float:
    t = reference_s(p)
    return (p["flops"] if what == "flops" else p["bytes_read"] + p["bytes_written"]) / t


def _best(points: Iterable[dict], what: str) -> tuple[float, str | None]:
    best, pid = 0.0, None
    for p in points:
        r = _rate(p, what)
        if r > best:
            best, pid = r, p["id"]
    return best, pid


def ceilings(points: list[dict]) -> dict[str, Any]:
    """Measured ceilings from the ok points (see the module docstring)."""
    ok = [p for p in points if p.get("status") == "ok"]
    fam = lambda f: [p for p in ok if p["family"] == f]  # noqa: E731
    bw, bw_id = _best(fam("stream"), "bytes")
    out: dict[str, Any] = {"memory_bandwidth_bytes_per_s": bw or None, "peak_flops_per_s": {}, "from_points": {}}
    out["from_points"]["memory_bandwidth_bytes_per_s"] = bw_id
    for prec in sorted({p["precision"] for p in fam("gemm")}):
        peak, pid = _best([p for p in fam("gemm") if p["precision"] == prec], "flops")
        out["peak_flops_per_s"][prec] = peak
        out["from_points"][f"peak_flops_per_s.{prec}"] = pid
    out["stream_bytes_per_s"] = {k: _best([p for p in fam("stream") if p["kind"] == k], "bytes")[0]
                                 for k in sorted({p["kind"] for p in fam("stream")})}
    for key, f in (("copy_engine_bytes_per_s", "copy_engine"), ("cache_bytes_per_s", "cache_sweep")):
        val, pid = _best(fam(f), "bytes")
        out[key] = val or None
        out["from_points"][key] = pid
    launch = [p for p in fam("launch") if p["kind"] == "launch"]
    out["launch_overhead_s"] = (reference_s(launch[0]) / launch[0]["kernels"]) if launch else None
    layer = [p for p in fam("launch") if p["kind"] == "layer_overhead"]
    out["layer_kernel_overhead_s"] = (reference_s(layer[0]) / layer[0]["kernels"]) if layer else None
    return out


# ------------------------------------------------------------------------------------------ the curve


def roofline_s(flops, bytes_, peak: float, bandwidth: float) -> np.ndarray:
    """Pure roofline time max(F / peak, B / bandwidth)."""
    return np.maximum(np.asarray(flops, float) / peak, np.asarray(bytes_, float) / bandwidth)


def coordinates(flops, bytes_) -> tuple[np.ndarray, np.ndarray]:
    """(log10 intensity clamped at MIN_INTENSITY, log10 bytes clamped at 1 byte)."""
    f, b = np.asarray(flops, float), np.maximum(np.asarray(bytes_, float), 1.0)
    return np.log10(np.maximum(f / b, MIN_INTENSITY)), np.log10(b)


def smooth_table(x: np.ndarray, y: np.ndarray, log_r: np.ndarray, h_log_i: float = H_LOG_I,
                 h_log_b: float = H_LOG_B, weight: np.ndarray | None = None) -> np.ndarray:
    """Kernel-smoothed log r on the (GRID_LOG_I, GRID_LOG_B) grid; log-sum-exp weights so that far from
    all data the nearest point still dominates (no 0/0). `weight`: each sample's measurement weight (see
    sample_weight), multiplying its kernel weight."""
    gx, gy = np.meshgrid(GRID_LOG_I, GRID_LOG_B, indexing="ij")
    d2 = ((gx[..., None] - x) / h_log_i) ** 2 + ((gy[..., None] - y) / h_log_b) ** 2
    logw = -0.5 * d2
    if weight is not None:
        logw = logw + np.log(np.maximum(np.asarray(weight, float), MIN_SAMPLE_WEIGHT))
    w = np.exp(logw - logw.max(axis=-1, keepdims=True))
    return (w * log_r).sum(-1) / w.sum(-1)


def bilinear(table: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Interpolate `table` (on GRID_LOG_I x GRID_LOG_B) at (x, y), clamped to the grid."""
    def index(grid, v):
        v = np.clip(v, grid[0], grid[-1])
        i = np.clip(np.searchsorted(grid, v, side="right") - 1, 0, len(grid) - 2)
        return i, (v - grid[i]) / (grid[i + 1] - grid[i])
    i, fx = index(GRID_LOG_I, x)
    j, fy = index(GRID_LOG_B, y)
    return ((1 - fx) * (1 - fy) * table[i, j] + fx * (1 - fy) * table[i + 1, j]
            + (1 - fx) * fy * table[i, j + 1] + fx * fy * table[i + 1, j + 1])


def _table(samples, h_log_i: float = H_LOG_I, h_log_b: float = H_LOG_B) -> np.ndarray:
    """The table of (x, y, ln fraction[, weight]) samples (rows without a weight, from older profiles: 1)."""
    rows = [tuple(float(v) for v in r) + (1.0,) * (4 - len(r)) for r in samples]
    if not rows:
        return np.zeros((GRID_LOG_I.size, GRID_LOG_B.size))
    s = np.asarray(rows, dtype=float)
    return smooth_table(s[:, 0], s[:, 1], s[:, 2], h_log_i, h_log_b, s[:, 3])


@dataclass(frozen=True)
class CalibratedEfficiency(Efficiency):
    """Efficiency whose compute and memory fractions are fitted tables (see the module docstring), for one
    compute precision. Fractions are relative to the MEASURED ceilings: pair it with the measured spec.
    The samples are (log10 I, log10 B, log fraction[, weight]) rows; the tables are rebuilt from them."""

    compute_samples: tuple = field(default=(), repr=False)
    memory_samples: tuple = field(default=(), repr=False)
    attention_samples: tuple = field(default=(), repr=False)
    precision: str = ""
    overlap_p: float | None = None  # the curves are fitted under max(compute, memory): the knee is in them
    source: str = "calibrated from a measured profile (roofline.bench.calibrate)"

    def __post_init__(self):
        object.__setattr__(self, "_compute", _table(self.compute_samples))
        object.__setattr__(self, "_memory", _table(self.memory_samples))
        object.__setattr__(self, "_attention", _table(self.attention_samples, H_ATTN_LOG_I, H_ATTN_LOG_B))

    @staticmethod
    def _read(table, flops, bytes_) -> np.ndarray:
        x, y = coordinates(flops, bytes_)
        return np.clip(np.exp(bilinear(table, x, y)), *FRACTION_BOUNDS)

    def compute_fraction(self, flops, bytes_):
        """Achieved fraction of the measured matrix peak of a GEMM-like operator of F FLOPs and B bytes."""
        return self._read(self._compute, flops, bytes_) if self.compute_samples else self.compute

    def tensor_fraction(self, flops, bytes_, a_bytes):
        """The fitted curve as it is: it is relative to the measured peak of its own precision, so no
        8-bit scaling applies."""
        return self.compute_fraction(flops, bytes_)

    def memory_fraction(self, flops, bytes_):
        """Achieved fraction of the measured bandwidth of a streaming operator."""
        return self._read(self._memory, flops, bytes_) if self.memory_samples else self.memory

    def attention_compute_fraction(self, flops, bytes_):
        """Fraction of the measured peak an attention operator reaches: the fitted attention ratio r
        (the same table as the memory side); the GEMM curve when the profile has no attention samples."""
        if not self.attention_samples:
            return super().attention_compute_fraction(flops, bytes_)
        return self._read(self._attention, flops, bytes_)

    def attention_memory_fraction(self, flops, bytes_):
        """Fraction of the measured bandwidth an attention operator reaches (see attention_compute_fraction)."""
        if not self.attention_samples:
            return super().attention_memory_fraction(flops, bytes_)
        return self._read(self._attention, flops, bytes_)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "kind": "calibrated", "precision": self.precision,
                "compute_points": len(self.compute_samples), "memory_points": len(self.memory_samples),
                "attention_points": len(self.attention_samples)}


def sample_weight(p: dict) -> float:
    """Measurement weight of a point in the fit: 1 when its two fastest rounds agree, falling as
    1 / (1 + (d / ROUND_AGREEMENT)^2) with their disagreement d (d = 0.1: 0.5; d = 0.3: 0.1), so a point
    that contention slowed in most of its rounds cannot drag its neighbourhood of the curve (it keeps its
    weight where no better-measured point is near: the kernel weights still decide locally)."""
    r = p.get("round_p25_s")
    if not r or p.get("family") in STREAM_FAMILIES:
        return 1.0  # streaming points are compared by their best round: no agreement needed
    d = round_disagreement(r)
    return float(1.0 / (1.0 + (d / ROUND_AGREEMENT) ** 2))


def fittable(p: dict) -> bool:
    """A point the curves may be fitted on: measured (status ok) and not marked `unstable` (its rounds
    still disagreed after re-measurement: its time is the contention's, not the kernel's)."""
    return p.get("status") == "ok" and not p.get("unstable")


def _net_time(p: dict, overhead_s: float) -> float:
    t = reference_s(p)
    return max(t - p["kernels"] * overhead_s, 0.5 * t)


def fraction_samples(points: list[dict], ceil: dict[str, Any], overhead_s: float) -> dict[str, Any]:
    """{"compute": {precision: [(x, y, log c, w)]}, "memory": [(x, y, log m, w)]} from the ok stream and GEMM points
    (w: the measurement weight, sample_weight).

    A GEMM below the ridge (bare roofline memory-bound) gives a memory sample, one above it a compute
    sample of its precision, so an operator's `bound` stays what the roofline says it is."""
    bw, peaks = ceil["memory_bandwidth_bytes_per_s"], ceil["peak_flops_per_s"]
    out: dict[str, Any] = {"compute": {}, "memory": []}
    for p in points:
        if not fittable(p) or not bw:
            continue
        b = p["bytes_read"] + p["bytes_written"]
        x, y = (float(v) for v in coordinates(p["flops"], b))
        t = _net_time(p, overhead_s)
        peak = peaks.get(p["precision"])
        if p["family"] == "stream" or (p["family"] == "gemm" and peak and b / bw >= p["flops"] / peak):
            out["memory"].append((x, y, float(np.log(b / (bw * t))), sample_weight(p)))
        elif p["family"] == "gemm" and peak:
            out["compute"].setdefault(p["precision"], []).append((x, y, float(np.log(p["flops"] / (peak * t))),
                                                                  sample_weight(p)))
    return out


def attention_op_costs(p: dict) -> list[tuple[str, float, float, float]]:
    """(unit, FLOPs, bytes, kernels) of each operator the engine times for attention point `p`."""
    from roofline.model.ops import REGISTRY
    from roofline.measure.attention import ATTENTION_OPS, attention_model, attention_pass

    pr = p["params"]
    ps = attention_pass(attention_model(pr["model"]), pr["batch"], pr["new"], pr["cached"], p["precision"])
    out = []
    for name in ATTENTION_OPS:
        c = REGISTRY[name].formula(ps)
        out.append((REGISTRY[name].unit, float(np.sum(c.flops)),
                    float(np.sum(c.bytes_read) + np.sum(c.bytes_written)), float(c.kernels)))
    return out


def hot_cache_bytes(device: dict[str, Any]) -> float:
    """The cache that stays warm between timed repetitions: a CPU's last-level cache (no flush on a CPU);
    0 on a GPU (its L2 is flushed before each repetition)."""
    return float(device.get("cache_bytes") or 0.0) if device.get("kind") == "cpu" else 0.0


def attention_samples(points: list[dict], ceil: dict[str, Any], overhead_s: float,
                      hot_cache: float = 0.0) -> dict[str, list]:
    """{precision: [(x, y, ln r)]}, one sample per attention operator of each ok attention point (see the
    module docstring): r = summed bare roofline time of its attention operators / its net time. Memory-bound
    points with a working set under CACHE_RESIDENT_FACTOR x `hot_cache` bytes are left out."""
    bw, peaks = ceil["memory_bandwidth_bytes_per_s"], ceil["peak_flops_per_s"]
    out: dict[str, list] = {}
    for p in points:
        peak = peaks.get(p["precision"])
        if not fittable(p) or p["family"] != "attention" or not bw or not peak:
            continue
        ops = attention_op_costs(p)
        vector_peak = peaks.get("fp32") or peak
        t = reference_s(p)
        rest = sum(k * overhead_s + (f / vector_peak if unit == "vector" else 0.0) for unit, f, _, k in ops)
        roof = [(f, b, max(f / peak, b / bw)) for unit, f, b, _ in ops if unit == "attention" and f + b > 0]
        memory_bound = sum(b / bw for _, b, _ in roof) >= sum(f / peak for f, _, _ in roof)
        if not roof or (memory_bound and p["working_set_bytes"] < CACHE_RESIDENT_FACTOR * hot_cache):
            continue
        net = max(t - rest, 0.5 * t)
        log_r = float(np.log(sum(r for _, _, r in roof) / net))
        for f, b, _ in roof:
            x, y = (float(v) for v in coordinates(f, b))
            out.setdefault(p["precision"], []).append((x, y, log_r, sample_weight(p)))
    return out


def overhead_of(ceil: dict[str, Any]) -> float:
    """Per-kernel overhead of the engine: the layer's, else the single-op launch overhead, else 0."""
    return float(ceil.get("layer_kernel_overhead_s") or ceil.get("launch_overhead_s") or 0.0)


def fit_record(points: list[dict], ceil: dict[str, Any], hot_cache: float = 0.0) -> dict[str, Any]:
    """The calibration as stored in a profile: the fitted samples and the overhead. `hot_cache`: see
    hot_cache_bytes."""
    overhead = overhead_of(ceil)
    s = fraction_samples(points, ceil, overhead)
    att = attention_samples(points, ceil, overhead, hot_cache)
    rnd = lambda rows: [[round(v, 5) for v in r] for r in rows]  # noqa: E731
    return {"method": "kernel-smoothed achieved fractions over (log10 intensity, log10 bytes)",
            "h_log_intensity": H_LOG_I, "h_log_bytes": H_LOG_B, "kernel_overhead_s": overhead,
            "compute_samples": {k: rnd(v) for k, v in s["compute"].items()}, "memory_samples": rnd(s["memory"]),
            "attention_samples": {k: rnd(v) for k, v in att.items()},
            "attention_h_log_intensity": H_ATTN_LOG_I, "attention_h_log_bytes": H_ATTN_LOG_B,
            "sample_columns": ["log10_intensity", "log10_bytes", "ln_fraction", "weight"]}


def efficiency_for(rec: dict[str, Any], precision: str) -> CalibratedEfficiency:
    """The calibrated Efficiency for a compute precision (its own GEMM curve, or all precisions' when it
    has fewer than MIN_OWN_POINTS points; its own attention table, else all precisions'; none in a profile
    written before attention was fitted: the GEMM curves then time attention)."""
    comp = rec["compute_samples"]
    own = comp.get(precision, [])
    rows = own if len(own) >= MIN_OWN_POINTS else [r for v in comp.values() for r in v]
    att = rec.get("attention_samples") or {}
    att_rows = att.get(precision) or [r for v in att.values() for r in v]
    as_tuple = lambda rows: tuple(tuple(float(v) for v in r) for r in rows)  # noqa: E731
    return CalibratedEfficiency(compute=1.0, memory=1.0, vector=1.0, kernel_overhead_s=float(rec["kernel_overhead_s"]),
                                compute_samples=as_tuple(rows), memory_samples=as_tuple(rec["memory_samples"]),
                                attention_samples=as_tuple(att_rows), precision=precision)
