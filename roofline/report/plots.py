"""Figures people look at: roofline chart, regime map, latency vs throughput, memory breakdown, GPU comparison.

Every function returns a matplotlib Figure (Agg backend, slide-sized fonts) built from the model's own numbers
(`analyze`, `sweep`, `phases`, `memory`); `save(fig, path)` writes PNG or SVG by suffix. Artists carry labels
(`Line2D.get_label()`, `Collection.get_label()`) so tests can read back what was plotted.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from roofline.model import memory as mem
from roofline.model.analysis import Scenario, analyze  # noqa: E402
from roofline.model.efficiency import Efficiency  # noqa: E402
from roofline.model.engine import make_setup  # noqa: E402
from roofline.errors import RooflineError  # noqa: E402
from roofline.specs.hardware import GPUSpec  # noqa: E402
from roofline.specs.models import ModelConfig  # noqa: E402
from roofline.model.phases import compute_and_memory_s, critical_batch, decode_step, prefill  # noqa: E402
from roofline.model.sweep import sweep  # noqa: E402
from roofline.units import format_rate  # noqa: E402

#: rcParams for slides: 16 pt text, thick lines
SLIDE_STYLE = {"font.size": 16, "axes.titlesize": 19, "axes.labelsize": 17, "xtick.labelsize": 14,
               "ytick.labelsize": 14, "legend.fontsize": 13, "lines.linewidth": 2.5, "figure.dpi": 100,
               "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3}
#: compute ceilings drawn on the roofline chart (fp16 = bf16 and int8 = fp8 on every part we ship)
CHART_PRECISIONS = ("fp32", "bf16", "fp8", "fp4")
PHASE_MARKERS = {"prefill": "o", "decode": "^"}
PHASE_COLORS = {"prefill": "tab:blue", "decode": "tab:red"}
#: default grids of the regime map
REGIME_BATCHES = tuple(int(2 ** (k / 2)) for k in range(0, 23)) + (2048,)
REGIME_CONTEXTS = tuple(int(2 ** (k / 2)) for k in range(12, 35))
LATENCY_BATCHES = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def _figure(w: float = 13, h: float = 8, ncols: int = 1, nrows: int = 1):
    with plt.rc_context(SLIDE_STYLE):
        fig = Figure(figsize=(w, h), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def styled(fn):
    """Run a plot builder under the slide rcParams."""
    def wrapper(*a, **kw):
        with plt.rc_context(SLIDE_STYLE):
            return fn(*a, **kw)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def save(fig: Figure, path: str | Path) -> Path:
    """Write the figure as PNG or SVG (by suffix); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise RooflineError(f"cannot write a plot to {path.name}", hint="use a .png or .svg file name", exit_code=2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with plt.rc_context(SLIDE_STYLE):
            fig.savefig(path, format=path.suffix[1:].lower())
    except OSError as e:
        why = f"{path.parent} is a file" if path.parent.is_file() else e.strerror or e
        raise RooflineError(f"cannot write {path}: {why}",
                            hint="choose a file in a folder you can write to") from e
    return path


# --------------------------------------------------------------------------------------------------- roofline

def operator_points(result: dict) -> list[dict]:
    """(phase, name, intensity, achieved FLOP/s) of every operator with FLOPs and bytes in an `analyze` result;
    achieved = flops / modelled time (efficiency and launch overhead included)."""
    pts = []
    for phase in ("prefill", "decode"):
        for o in result[phase]["operators"]:
            ai = o["arithmetic_intensity_flops_per_byte"]
            if o["unit"] == "link" or not ai or o["flops"] <= 0 or o["time_s"] <= 0:
                continue
            pts.append({"phase": phase, "name": o["name"], "intensity": ai, "flops_per_s": o["flops"] / o["time_s"],
                        "bound": o["bound"], "time_s": o["time_s"]})
    return pts


def _roof(ax, bw: float, peaks: dict[str, float], x: np.ndarray, style: str, tag: str, colors: dict) -> None:
    top_ridge = max(peaks.values()) / bw if peaks else x[-1]
    xs = x[x <= top_ridge * 1.0001]
    ax.plot(xs, bw * xs, style, color="0.25", label=f"{tag} memory {format_rate(bw, 'B/s')}")
    for p, peak in peaks.items():
        ridge = peak / bw
        xr = x[x >= ridge]
        ax.plot(np.r_[ridge, xr], np.full(len(xr) + 1, peak), style, color=colors[p],
                label=f"{tag} {p} {format_rate(peak, 'FLOP/s')}")
        ax.plot([ridge], [peak], "D", color=colors[p], ms=9, label=f"_{tag} {p} ridge")
        if tag == "datasheet":
            ax.axvline(ridge, color=colors[p], ls=":", lw=1.5)
            ax.annotate(f"{p} ridge {ridge:,.0f} FLOP/B", (ridge, 0.02), xycoords=("data", "axes fraction"),
                        xytext=(-6, 0), textcoords="offset points", rotation=90, ha="right", va="bottom",
                        fontsize=13, color=colors[p])


def _label_clusters(ax, pts: list[dict], color: str, left: bool) -> None:
    """One label per group of operators within 0.25 decade of each other, names stacked; prefill labels go
    left of the markers and decode labels right, so the two phases do not write over each other."""
    groups: list[list[dict]] = []
    for p in sorted(pts, key=lambda p: (p["intensity"], p["flops_per_s"])):
        for g in groups:
            if abs(np.log10(p["intensity"] / g[0]["intensity"])) < 0.25 and \
                    abs(np.log10(p["flops_per_s"] / g[0]["flops_per_s"])) < 0.25:
                g.append(p)
                break
        else:
            groups.append([p])
    for g in groups:
        names = "\n".join(sorted({p["name"] for p in g}))
        ax.annotate(names, (g[0]["intensity"], g[0]["flops_per_s"]), xytext=(-10 if left else 10, 0),
                    textcoords="offset points", fontsize=11, color=color, va="center",
                    ha="right" if left else "left", linespacing=0.95)


@styled
def roofline_chart(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None,
                   efficiency: Efficiency | None = None, profile: dict | None = None,
                   result: dict | None = None) -> Figure:
    """Log-log roofline: HBM slope and dense compute ceilings per precision (ridges labelled), every prefill
    and decode operator at (intensity, achieved FLOP/s), and a measured profile's roofs and points if given."""
    r = result or analyze(gpu, model, scenario, efficiency)
    fig, axes = _figure(17, 8.5)
    ax = axes[0, 0]
    pts = operator_points(r)
    lo = min([0.1] + [p["intensity"] / 3 for p in pts])
    hi = max([1e4] + [p["intensity"] * 3 for p in pts])
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    peaks = {p: gpu.peak_flops_per_s[p] for p in CHART_PRECISIONS if p in gpu.peak_flops_per_s}
    colors = dict(zip(CHART_PRECISIONS, ("tab:gray", "tab:green", "tab:purple", "tab:brown")))
    _roof(ax, gpu.memory_bandwidth_bytes_per_s, peaks, x, "-", "datasheet", colors)
    if profile:
        ceil = measured_ceilings(profile)
        if ceil["memory_bandwidth_bytes_per_s"]:
            mpeaks = {p: v for p, v in ceil["peak_flops_per_s"].items() if p in colors}
            _roof(ax, ceil["memory_bandwidth_bytes_per_s"], mpeaks, x, "--", "measured", colors)
        mp = measured_points(profile)
        for fam in sorted({p["family"] for p in mp}):
            fp = [p for p in mp if p["family"] == fam]
            ax.scatter([p["intensity"] for p in fp], [p["flops_per_s"] for p in fp], marker="x", s=60, zorder=5,
                       label=f"measured {fam}")
    for phase in ("prefill", "decode"):
        ph = [p for p in pts if p["phase"] == phase]
        ax.scatter([p["intensity"] for p in ph], [p["flops_per_s"] for p in ph], marker=PHASE_MARKERS[phase],
                   s=110, color=PHASE_COLORS[phase], edgecolor="black", zorder=6, label=f"{phase} operators")
        _label_clusters(ax, ph, PHASE_COLORS[phase], left=phase == "prefill")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    top = max(peaks.values()) * 2.5
    ax.set_ylim(min([top / 1e6] + [p["flops_per_s"] / 3 for p in pts]), top)
    ax.set_xlabel("arithmetic intensity (FLOP / byte of HBM traffic)")
    ax.set_ylabel("FLOP/s (achieved = FLOPs / modelled time)")
    c = r["config"]
    ax.set_title(f"{model.name} on {gpu.display_name}\nbatch {c['batch']}, prompt {c['prompt']}, decode at context "
                 f"{c['context']}, weights/activations/KV {c['weights']}/{c['activations']}/{c['kv']}, TP {c['tp']}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.85, fontsize=12)
    return fig


def measured_ceilings(profile: dict) -> dict:
    """{'memory_bandwidth_bytes_per_s': float|None, 'peak_flops_per_s': {precision: float}} from a profile dict
    (issue-3 schema: profile['ceilings']); missing or malformed entries are dropped, never guessed."""
    ceil = profile.get("ceilings") or {}
    bw = ceil.get("memory_bandwidth_bytes_per_s")
    peaks = ceil.get("peak_flops_per_s") or {}
    return {"memory_bandwidth_bytes_per_s": float(bw) if isinstance(bw, (int, float)) and bw > 0 else None,
            "peak_flops_per_s": {str(k): float(v) for k, v in peaks.items() if isinstance(v, (int, float)) and v > 0}}


def measured_points(profile: dict) -> list[dict]:
    """Measured kernels of a profile (issue-3 schema: profile['points'], each with flops, bytes_read,
    bytes_written, status and summary{ref, median_s, ...}) as intensity, achieved FLOP/s, family and id.
    Points that failed, were skipped, or move no FLOPs (bandwidth tests) are left out."""
    out = []
    for e in profile.get("points") or []:
        p = _point(e) if isinstance(e, dict) and e.get("status", "ok") == "ok" else None
        if p:
            out.append(p)
    return out


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and np.isfinite(v) and v > 0 else None


def _point(e: dict) -> dict | None:
    flops = _num(e.get("flops"))
    nbytes = _num((e.get("bytes_read") or 0) + (e.get("bytes_written") or 0)) or _num(e.get("bytes"))
    summ = e.get("summary") if isinstance(e.get("summary"), dict) else {}
    t = _num(summ.get(summ.get("ref", ""))) or _num(summ.get("median_s")) or _num(e.get("time_s"))
    if not (flops and nbytes and t):
        return None
    return {"intensity": flops / nbytes, "flops_per_s": flops / t, "family": str(e.get("family") or "kernel"),
            "name": str(e.get("id") or "")}


# --------------------------------------------------------------------------------------------------- regime map

def regime_grid(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None,
                efficiency: Efficiency | None = None, batches=REGIME_BATCHES, contexts=REGIME_CONTEXTS) -> dict:
    """Decode-step and prefill intensity/time on the grid batch x context (arrays [context, batch]), the
    max batch that fits per context and the critical batch per context (-1: never compute-bound)."""
    sc = (scenario or Scenario()).checked(model)
    s = make_setup(gpu, model, sc.tp, sc.weights, sc.activations, sc.kv, efficiency)
    B, C = np.meshgrid(np.asarray(batches, float), np.asarray(contexts, float))
    out = {"batches": np.asarray(batches), "contexts": np.asarray(contexts)}
    for phase, ops in (("decode", decode_step(s, B, C)), ("prefill", prefill(s, B, np.maximum(C, 1.0)))):
        work = [o for o in ops if o.unit != "link"]
        flops, nbytes = sum(o.flops for o in work), sum(o.bytes for o in work)
        c, m = compute_and_memory_s(ops)
        out[phase] = {"intensity": flops / nbytes, "time_s": sum(o.time_s for o in ops), "compute_bound": c >= m}
    out["max_batch"] = mem.max_batch(s, sc.memory, np.asarray(contexts, float))
    out["critical_batch"] = critical_batch(s, np.asarray(contexts, float))
    out["ridge_point_flops_per_byte"] = gpu.ridge_point_flops_per_byte(sc.activations)
    return out


@styled
def regime_map(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None,
               efficiency: Efficiency | None = None, metric: str = "intensity",
               phases: tuple[str, ...] = ("decode", "prefill"), grid: dict | None = None) -> Figure:
    """Heatmaps over batch x context of decode (and prefill) intensity or time, with the ridge contour, the
    max-batch-that-fits frontier (cells above it do not fit) and the critical batch."""
    if metric not in ("intensity", "time"):
        raise RooflineError(f"unknown regime metric {metric!r}", hint="use intensity or time", exit_code=2)
    g = grid or regime_grid(gpu, model, scenario, efficiency)
    fig, axes = _figure(8 * len(phases) + 1, 8, ncols=len(phases))
    B, C = g["batches"], g["contexts"]
    for ax, phase in zip(axes[0], phases):
        z = g[phase]["intensity"] if metric == "intensity" else g[phase]["time_s"] * 1e3
        mesh = ax.pcolormesh(B, C, z, shading="nearest", cmap="viridis", norm=LogNorm())
        mesh.set_gid(f"{phase} {metric}")
        cb = fig.colorbar(mesh, ax=ax)
        cb.set_label("FLOP / byte" if metric == "intensity" else "time per pass (ms)")
        ridge = g["ridge_point_flops_per_byte"]
        cs = ax.contour(B, C, g[phase]["intensity"], levels=[ridge], colors="white", linewidths=3)
        cs.set_gid(f"{phase} ridge contour")
        fits = g["max_batch"] >= 1
        ax.plot(np.maximum(g["max_batch"][fits], 1), C[fits], "-", color="orange", lw=3.5,
                label="max batch that fits")
        ax.fill_betweenx(C, np.clip(g["max_batch"], B.min(), B.max()), B.max(), color="black", alpha=0.35)
        if phase == "decode":
            crit = g["critical_batch"]
            ok = (crit > 0) & (crit <= B.max())
            ax.plot(crit[ok], C[ok], "o--", color="white", ms=6, label="critical batch (compute = memory time)")
        ax.plot([], [], "-", color="white", lw=3, label=f"ridge {ridge:,.0f} FLOP/B")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlim(B.min(), B.max())
        ax.set_ylim(C.min(), C.max())
        ax.set_xlabel("batch (sequences)")
        ax.set_ylabel("context (tokens)" if phase == "decode" else "prompt (tokens)")
        ax.set_title(f"{phase}: {'arithmetic intensity' if metric == 'intensity' else 'time'}")
        ax.legend(loc="upper right", facecolor="0.3", labelcolor="white", framealpha=0.8, fontsize=12)
    fig.suptitle(f"{model.name} on {gpu.display_name}: compute-bound past the white ridge line; "
                 "shaded = KV cache does not fit", fontsize=18)
    return fig


# --------------------------------------------------------------------------------------------------- latency

def latency_series(gpu: GPUSpec, model: ModelConfig, scenario: Scenario, precision: str,
                   efficiency: Efficiency | None = None, batches=LATENCY_BATCHES) -> dict:
    """TPOT and output tokens/s per GPU of a decode step at the scenario's decode context, for the batches that fit
    (plus the max batch itself)."""
    sc = scenario.checked(model)
    cols = sweep(gpu, model, list(batches), [sc.decode_context], [sc.tp], [precision], efficiency, sc.memory)
    mb = int(cols["max_batch"][0])
    b = sorted({int(x) for x in batches if x <= mb} | ({mb} if mb >= 1 else set()))
    if not b:
        return {"batch": np.array([], int), "tpot_s": np.array([]), "tokens_per_s_per_gpu": np.array([])}
    cols = sweep(gpu, model, b, [sc.decode_context], [sc.tp], [precision], efficiency, sc.memory)
    return {"batch": cols["batch"], "tpot_s": cols["tpot_s"],
            "tokens_per_s_per_gpu": cols["decode_tokens_per_s"] / sc.tp}


@styled
def latency_throughput(series: list[tuple[str, GPUSpec, str]], model: ModelConfig, scenario: Scenario | None = None,
                       efficiency: Efficiency | None = None, slo_tpot_s: float | None = 0.05,
                       batches=LATENCY_BATCHES) -> Figure:
    """TPOT against output tokens/s per GPU across batch sizes; one line per (label, GPU, precision set);
    a horizontal TPOT SLO line (None: no line). Batches that do not fit the KV cache are left out."""
    if slo_tpot_s is not None and not (np.isfinite(slo_tpot_s) and slo_tpot_s > 0):
        raise RooflineError(f"the TPOT SLO must be a positive number of seconds, got {slo_tpot_s}",
                            hint="e.g. 0.05 (50 ms); None draws no SLO line", exit_code=2)
    sc = scenario or Scenario()
    fig, axes = _figure(13, 8)
    ax = axes[0, 0]
    for label, gpu, precision in series:
        d = latency_series(gpu, model, sc, precision, efficiency, batches)
        if not len(d["batch"]):
            continue
        ax.plot(d["tokens_per_s_per_gpu"], d["tpot_s"] * 1e3, "o-", ms=7, label=label)
        for b, x, y in zip(d["batch"], d["tokens_per_s_per_gpu"], d["tpot_s"] * 1e3):
            if b in (1, 8, 64, 256) or b == d["batch"][-1]:
                ax.annotate(f"b={b}", (x, y), xytext=(-10, 8), textcoords="offset points", fontsize=11)
    if slo_tpot_s is not None:
        ax.axhline(slo_tpot_s * 1e3, color="red", ls="--", label=f"TPOT SLO {slo_tpot_s * 1e3:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else ""))
    ax.set_xlabel("output tokens/s per GPU (decode)")
    ax.set_ylabel("TPOT (ms per output token)")
    ax.set_title(f"{model.name}: latency vs throughput, decode at context {sc.decode_context}, TP {sc.tp}")
    ax.legend(loc="upper left")
    return fig


# --------------------------------------------------------------------------------------------------- memory

MEMORY_PARTS = ("weights", "KV cache (used)", "activations", "runtime reserve", "KV cache (free)",
                "outside budget")


def memory_stack(gpu: GPUSpec, model: ModelConfig, scenario: Scenario, axis: str, values,
                 efficiency: Efficiency | None = None) -> dict:
    """Per-GPU bytes of each part of MEMORY_PARTS for `batch` or `context` = each of `values`."""
    sc = scenario.checked(model)
    s = make_setup(gpu, model, sc.tp, sc.weights, sc.activations, sc.kv, efficiency)
    v = np.asarray(values, float)
    batch, ctx = (v, float(sc.decode_context)) if axis == "batch" else (float(sc.batch), v)
    ms = sc.memory
    budget = mem.budget_bytes(gpu.memory_bytes, ms)
    w, act = float(mem.weights_bytes(s)), float(mem.activation_bytes(s, ms))
    cap = max(float(mem.kv_cache_capacity_bytes(s, ms)), 0.0)
    used = np.broadcast_to(batch * mem.kv_cache_bytes_per_sequence(s, ctx), v.shape)
    one = np.ones_like(v)
    return {"values": v, "axis": axis, "memory_bytes": gpu.memory_bytes, "budget_bytes": budget,
            "weights": w * one, "KV cache (used)": used, "activations": act * one,
            "runtime reserve": ms.runtime_reserve_bytes * one, "KV cache (free)": np.maximum(cap - used, 0.0),
            "outside budget": (gpu.memory_bytes - budget) * one}


@styled
def memory_breakdown(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None, axis: str = "batch",
                     values=None, efficiency: Efficiency | None = None) -> Figure:
    """Stacked bars per GPU (GB): weights, KV cache used, activations, reserve, free KV cache and the memory
    outside the utilization budget, across batch (at the decode context) or context (at the batch)."""
    sc = scenario or Scenario()
    if axis not in ("batch", "context"):
        raise RooflineError(f"unknown memory axis {axis!r}", hint="use batch or context", exit_code=2)
    values = values or ((1, 8, 32, 64, 128, 256, 512) if axis == "batch" else (1024, 4096, 16384, 32768, 65536,
                                                                                131072))
    d = memory_stack(gpu, model, sc, axis, values, efficiency)
    fig, axes = _figure(13, 8)
    ax = axes[0, 0]
    xs = np.arange(len(values))
    bottom = np.zeros(len(values))
    colors = ("tab:blue", "tab:red", "tab:orange", "tab:gray", "#cfe8cf", "#eeeeee")
    for part, color in zip(MEMORY_PARTS, colors):
        h = d[part] / 1e9
        ax.bar(xs, h, bottom=bottom, color=color, edgecolor="black", label=part)
        bottom += h
    ax.axhline(d["memory_bytes"] / 1e9, color="black", lw=2, label=f"GPU memory {d['memory_bytes'] / 1e9:.0f} GB")
    ax.axhline(d["budget_bytes"] / 1e9, color="black", ls=":", lw=2,
               label=f"budget ({sc.memory.memory_utilization:g} x memory)")
    for i, over in enumerate(bottom * 1e9 > d["memory_bytes"] * 1.0001):
        if over:
            ax.annotate("does not fit", (xs[i], bottom[i]), ha="center", va="bottom", color="red", fontsize=13)
    ax.set_xticks(xs, [str(int(x)) for x in values])
    ax.set_xlabel(f"{axis} ({'sequences' if axis == 'batch' else 'tokens'})")
    ax.set_ylabel("GB per GPU (1 GB = 1e9 B)")
    fixed = f"context {sc.decode_context}" if axis == "batch" else f"batch {sc.batch}"
    ax.set_title(f"{model.name} on {gpu.display_name}: memory per GPU at {fixed}, TP {sc.tp}")
    ax.legend(loc="upper left", ncols=2)
    return fig


# --------------------------------------------------------------------------------------------------- compare

COMPARE_METRICS = (("ttft_s", "TTFT (ms)", 1e3), ("tpot_s", "TPOT (ms)", 1e3),
                   ("max_batch", "max batch (KV cache)", 1.0),
                   ("peak_decode_tokens_per_s_per_gpu", "decode tokens/s per GPU at max batch", 1.0))


def compare_rows(gpus: list[GPUSpec], model: ModelConfig, scenario: Scenario | None = None,
                 efficiency: Efficiency | None = None) -> list[dict]:
    """One `analyze` summary per GPU (None values where the model does not fit)."""
    rows = []
    for g in gpus:
        r = analyze(g, model, scenario, efficiency)
        fits, mb = r["memory"]["batch_fits"], r["memory"]["max_batch"]
        sc = (scenario or Scenario()).checked(model)
        peak = None
        if mb >= 1:
            cols = sweep(g, model, [mb], [sc.decode_context], [sc.tp], [f"{sc.weights}/{sc.activations}/{sc.kv}"],
                         efficiency, sc.memory)
            peak = float(cols["decode_tokens_per_s"][0]) / sc.tp
        rows.append({"gpu": g.name, "display_name": g.display_name, "fits": fits,
                     "ttft_s": r["ttft_s"] if fits else None, "tpot_s": r["tpot_s"] if fits else None,
                     "output_tokens_per_s": r["output_tokens_per_s"] if fits else None,
                     "max_batch": mb, "peak_decode_tokens_per_s_per_gpu": peak, "decode_bound": r["decode"]["bound"],
                     "memory_bandwidth_bytes_per_s": g.memory_bandwidth_bytes_per_s})
    return rows


@styled
def gpu_comparison(gpus: list[GPUSpec], model: ModelConfig, scenario: Scenario | None = None,
                   efficiency: Efficiency | None = None, rows: list[dict] | None = None) -> Figure:
    """One model on several GPUs side by side: TTFT, TPOT, throughput and max batch, one bar per GPU."""
    sc = scenario or Scenario()
    rows = rows or compare_rows(gpus, model, sc, efficiency)
    fig, axes = _figure(15, 9, ncols=2, nrows=2)
    names = [r["gpu"] for r in rows]
    colors = plt.cm.tab10(np.arange(len(rows)) % 10)
    for ax, (key, label, scale) in zip(axes.ravel(), COMPARE_METRICS):
        vals = [(r[key] or 0) * scale for r in rows]
        bars = ax.bar(names, vals, color=colors, edgecolor="black", label=label)
        for b, v, r in zip(bars, vals, rows):
            txt = f"{v:,.3g}" if r[key] is not None else "does not fit"
            ax.annotate(txt, (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=13)
        ax.set_title(label)
        ax.set_ylim(0, max(vals + [1e-9]) * 1.2)
        ax.tick_params(axis="x", labelrotation=15)
    fig.suptitle(f"{model.name}: batch {sc.batch}, prompt {sc.prompt}, output {sc.output}, "
                 f"{sc.weights}/{sc.activations}/{sc.kv}, TP {sc.tp}", fontsize=18)
    return fig
