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
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from roofline.model import memory as mem
from roofline.model.analysis import Scenario, analyze, decode_batching  # noqa: E402
from roofline.model.efficiency import Efficiency  # noqa: E402
from roofline.model.engine import make_setup  # noqa: E402
from roofline.errors import RooflineError  # noqa: E402
from roofline.specs.hardware import GPUSpec  # noqa: E402
from roofline.specs.models import ModelConfig  # noqa: E402
from roofline.model.phases import compute_and_memory_s, critical_batch, decode_step, prefill  # noqa: E402
from roofline.model.sweep import sweep  # noqa: E402
from roofline.units import GiB, format_bytes, format_count, format_rate, format_time_s  # noqa: E402

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


#: one colour per GPU, the same in every plot: the built-in specs in name order over this palette
GPU_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
#: line styles of the precision sets drawn for one GPU (its colour stays the same)
PRECISION_STYLES = ("-", "--", ":", "-.")


def gpu_color(name: str) -> str:
    """The colour of GPU `name` in every plot: built-in specs by their place in `list_gpus()`, any other
    name (a spec file) by a stable hash of it."""
    from roofline.specs.hardware import list_gpus
    names = list_gpus()
    i = names.index(name) if name in names else len(names) + sum(map(ord, name))
    return GPU_PALETTE[i % len(GPU_PALETTE)]


def human(x: float, unit: str = "") -> str:
    """An axis or bar figure for people: 11,103 -> '11.1 k', 0.05 s -> '50 ms' (unit 's'), 2.5e15 FLOP/s ->
    '2.5 PFLOP/s'; never an exponent."""
    if x is None or not np.isfinite(x):
        return "-"
    if unit == "s":
        return format_time_s(x).replace(".0 ", " ")
    if unit == "GiB":
        return f"{x:,.0f}" if x >= 10 else f"{x:.3g}"
    if abs(x) < 1000:
        return f"{x:,.3g}" if abs(x) >= 1 or x == 0 else f"{x:.2g}"
    return (format_rate(x, unit) if unit else format_count(x)).replace(".00 ", " ")


def _tick(unit: str = "") -> FuncFormatter:
    return FuncFormatter(lambda v, _: human(v, unit) if v > 0 else "0")


def _figure(w: float = 13, h: float = 8, ncols: int = 1, nrows: int = 1):
    with plt.rc_context(SLIDE_STYLE):
        fig = Figure(figsize=(w, h), layout="constrained")
        FigureCanvasAgg(fig)  # a canvas that can measure text (labels are spread apart before saving)
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
    """Write the figure as PNG or SVG (by suffix) through `outfile.write_bytes`: a file already at `path` is
    replaced (a plot is regenerated from its command), a link, directory or device is refused; returns the path."""
    import io

    from roofline.outfile import check_target, write_bytes

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise RooflineError(f"cannot write a plot to {path.name}", hint="use a .png or .svg file name", exit_code=2)
    check_target(path, True, "plot")  # before drawing: a bad path fails fast
    buf = io.BytesIO()
    with plt.rc_context(SLIDE_STYLE):
        fig.savefig(buf, format=path.suffix[1:].lower())
    return write_bytes(path, buf.getvalue(), True, "plot")


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


def _roof(ax, bw: float, peaks: dict[str, float], x: np.ndarray, style: str, tag: str, colors: dict,
          in_use: str | None = None, lw: float = 2.5, ridge_labels: bool = False) -> None:
    """The memory slope and one flat compute roof per precision; the roof of the precision in use is drawn
    full strength, the others faint. `ridge_labels`: a dotted line and a label at the in-use ridge."""
    top_ridge = max(peaks.values()) / bw if peaks else x[-1]
    xs = x[x <= top_ridge * 1.0001]
    ax.plot(xs, bw * xs, style, color="0.25", lw=lw, label=f"{tag} memory roof {format_rate(bw, 'B/s')}")
    for p, peak in peaks.items():
        ridge = peak / bw
        xr = x[x >= ridge]
        main = in_use is None or p == in_use
        ax.plot(np.r_[ridge, xr], np.full(len(xr) + 1, peak), style, color=colors.get(p, "0.4"),
                lw=lw if main else 1.2, alpha=1.0 if main else 0.35,
                label=f"{tag} {p} roof {format_rate(peak, 'FLOP/s')}" + ("" if main else " (not in use)"))
        if main:
            ax.plot([ridge], [peak], "D", color=colors.get(p, "0.4"), ms=9, label=f"_{tag} {p} ridge")
        if ridge_labels and main:
            ax.axvline(ridge, color=colors.get(p, "0.4"), ls=":", lw=1.5)
            ax.annotate(f"{p} ridge {human(ridge)} FLOP/B", (ridge, 0.02), xycoords=("data", "axes fraction"),
                        xytext=(-6, 0), textcoords="offset points", rotation=90, ha="right", va="bottom",
                        fontsize=13, color=colors.get(p, "0.4"))


def _groups(pts: list[dict], decades: float = 0.3) -> list[list[dict]]:
    """Operators of one phase within `decades` of each other on both axes, largest time first in a group."""
    groups: list[list[dict]] = []
    for p in sorted(pts, key=lambda p: (p["intensity"], p["flops_per_s"])):
        for g in groups:
            if abs(np.log10(p["intensity"] / g[0]["intensity"])) < decades and \
                    abs(np.log10(p["flops_per_s"] / g[0]["flops_per_s"])) < decades:
                g.append(p)
                break
        else:
            groups.append([p])
    return [sorted(g, key=lambda p: -p["time_s"]) for g in groups]


def group_label(group: list[dict], most: int = 3) -> str:
    """'mlp_down, mlp_up, o_proj +2' for a group: the `most` slowest names, then how many more."""
    names = list(dict.fromkeys(p["name"] for p in group))
    return ", ".join(names[:most]) + (f" +{len(names) - most}" if len(names) > most else "")


def _label_groups(ax, pts: list[dict], color: str, left: bool) -> list:
    """One label per group of nearby operators (its slowest names, then '+N'), prefill left of the markers
    and decode right; returns the annotations (spread apart afterwards by `_spread`)."""
    out = []
    for g in _groups(pts):
        x = float(np.exp(np.mean(np.log([p["intensity"] for p in g]))))
        y = float(np.exp(np.mean(np.log([p["flops_per_s"] for p in g]))))
        a = ax.annotate(group_label(g), (x, y), xytext=(-12 if left else 12, 0), textcoords="offset points",
                        fontsize=11, color=color, va="center", ha="right" if left else "left",
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.8, "shrinkA": 0, "shrinkB": 4})
        a.set_gid("operator label")
        out.append(a)
    return out


def _text_box(t, renderer):
    """The drawn box of a label's text alone (an Annotation's own extent also covers its arrow)."""
    return Text.get_window_extent(t, renderer)


def _spread(fig, labels: list, step_px: float = 3.0, tries: int = 300) -> None:
    """Move labels up or down (alternately, by `step_px` more each time) until no two text boxes overlap
    and each stays inside its axes (greedy, from the highest label down)."""
    fig.canvas.draw()
    fig.canvas.draw()  # the constrained layout settles on the first draw; measure on the second
    fig.set_layout_engine("none")  # and stays put while the labels move
    renderer = fig.canvas.get_renderer()
    placed = []
    for a in sorted(labels, key=lambda a: -a.xy[1]):
        frame = a.axes.get_window_extent(renderer)
        dx, dy = a.xyann
        for k in range(tries):
            off = (k + 1) // 2 * step_px * (1 if k % 2 else -1)
            a.xyann = (dx, dy + off * 72.0 / fig.dpi)
            box = _text_box(a, renderer)
            inside = frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(o) for o in placed):
                break
        else:
            a.xyann = (dx, dy)
        placed.append(_text_box(a, renderer))


def labels_overlap(fig) -> list[tuple[str, str]]:
    """Pairs of operator labels whose drawn text boxes overlap (empty when the chart is legible)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "operator label"]
    boxes = [_text_box(t, renderer) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])]


def roofline_verdict(r: dict) -> str:
    """The chart's conclusion: 'decode memory-bound at 1.03 FLOP/B (ridge 295); prefill compute-bound'."""
    d, p = r["decode"], r["prefill"]
    ai = d["arithmetic_intensity_flops_per_byte"] or 0.0
    return (f"decode {d['bound']}-bound at {human(ai)} FLOP/B (ridge {human(r['ridge_point_flops_per_byte'])}); "
            f"prefill {p['bound']}-bound")


@styled
def roofline_chart(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None,
                   efficiency: Efficiency | None = None, profile: dict | None = None,
                   result: dict | None = None) -> Figure:
    """Log-log roofline of the precision in use: the datasheet roof (HBM slope, dense compute peak; the other
    precisions faint), the achievable roof (efficiency x peak) beside it, every prefill and decode operator at
    (intensity, achieved FLOP/s) with nearby operators labelled together, and a measured profile's roofs and
    points if given. The title states the regime."""
    r = result or analyze(gpu, model, scenario, efficiency)
    c = r["config"]
    fig, axes = _figure(17, 8.5)
    ax = axes[0, 0]
    pts = operator_points(r)
    lo = min([0.1] + [p["intensity"] / 3 for p in pts])
    hi = max([1e4] + [p["intensity"] * 3 for p in pts])
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    peaks = {p: gpu.peak_flops_per_s[p] for p in CHART_PRECISIONS if p in gpu.peak_flops_per_s}
    in_use = c["activations"] if c["activations"] in peaks else ("bf16" if c["activations"] == "fp16" else None)
    colors = dict(zip(CHART_PRECISIONS, ("tab:gray", "tab:green", "tab:purple", "tab:brown")))
    bw = gpu.memory_bandwidth_bytes_per_s
    _roof(ax, bw, peaks, x, "-", "datasheet", colors, in_use, ridge_labels=True)
    eff = r["efficiency"]
    if in_use:
        frac = eff.get("compute_8bit" if in_use in ("fp8", "int8", "fp4") else "compute", eff.get("compute", 1.0))
        ach_bw, ach_peak = bw * eff.get("memory", 1.0), peaks[in_use] * frac
        _roof(ax, ach_bw, {in_use: ach_peak}, x, "--", f"achievable ({frac:.0%} x peak, {eff.get('memory', 1.0):.0%} "
              "x bandwidth)", colors, in_use, lw=2.0)
    if profile:
        ceil = measured_ceilings(profile)
        if ceil["memory_bandwidth_bytes_per_s"]:
            mpeaks = {p: v for p, v in ceil["peak_flops_per_s"].items() if p in colors}
            _roof(ax, ceil["memory_bandwidth_bytes_per_s"], mpeaks, x, "-.", "measured", colors, in_use)
        mp = measured_points(profile)
        for fam in sorted({p["family"] for p in mp}):
            fp = [p for p in mp if p["family"] == fam]
            ax.scatter([p["intensity"] for p in fp], [p["flops_per_s"] for p in fp], marker="x", s=60, zorder=5,
                       label=f"measured {fam}")
    labels = []
    for phase in ("prefill", "decode"):
        ph = [p for p in pts if p["phase"] == phase]
        ax.scatter([p["intensity"] for p in ph], [p["flops_per_s"] for p in ph], marker=PHASE_MARKERS[phase],
                   s=110, color=PHASE_COLORS[phase], edgecolor="black", zorder=6, label=f"{phase} operators")
        labels += _label_groups(ax, ph, PHASE_COLORS[phase], left=phase == "prefill")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    top = max(peaks.values()) * 2.5
    ax.set_ylim(min([top / 1e6] + [p["flops_per_s"] / 3 for p in pts]), top)
    ax.xaxis.set_major_formatter(_tick())
    ax.yaxis.set_major_formatter(_tick("FLOP/s"))
    ax.set_xlabel("arithmetic intensity (FLOP / byte of HBM traffic)")
    ax.set_ylabel("achieved FLOP/s (FLOPs / modelled time)")
    verdict = roofline_verdict(r)
    ax.set_title(f"{verdict[0].upper()}{verdict[1:]}\n{model.name} on {gpu.name}, batch {c['batch']}, prompt "
                 f"{c['prompt']:,}, decode at context {c['context']:,}, weights/activations/KV "
                 f"{c['weights']}/{c['activations']}/{c['kv']}, TP {c['tp']}", fontsize=16, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.85, fontsize=12)
    _spread(fig, labels)
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
    s = make_setup(gpu, model, sc.tp, sc.weights, sc.activations, sc.kv, efficiency, costs=sc.memory.pass_costs())
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
    sc = (scenario or Scenario()).checked(model)
    g = grid or regime_grid(gpu, model, sc, efficiency)
    fig, axes = _figure(8 * len(phases) + 1, 8, ncols=len(phases))
    B, C = g["batches"], g["contexts"]
    for ax, phase in zip(axes[0], phases):
        z = g[phase]["intensity"] if metric == "intensity" else g[phase]["time_s"]
        mesh = ax.pcolormesh(B, C, z, shading="nearest", cmap="viridis", norm=LogNorm())
        mesh.set_gid(f"{phase} {metric}")
        cb = fig.colorbar(mesh, ax=ax, format=_tick("" if metric == "intensity" else "s"))
        cb.set_label("FLOP / byte" if metric == "intensity" else "time per pass")
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
        ax.plot([], [], "-", color="white", lw=3, label=f"ridge {human(ridge)} FLOP/B")
        you = (sc.batch, sc.decode_context if phase == "decode" else sc.prompt)
        ax.plot([you[0]], [you[1]], "*", ms=26, color="#ff2d55", markeredgecolor="white", markeredgewidth=1.5,
                zorder=8, label=f"you: batch {you[0]:,}, {'context' if phase == 'decode' else 'prompt'} {you[1]:,}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.xaxis.set_major_formatter(_tick())
        ax.yaxis.set_major_formatter(_tick())
        ax.set_xlim(B.min(), B.max())
        ax.set_ylim(C.min(), C.max())
        ax.set_xlabel("batch (sequences)")
        ax.set_ylabel("context (tokens)" if phase == "decode" else "prompt (tokens)")
        ax.set_title(f"{phase}: {'arithmetic intensity' if metric == 'intensity' else 'time'}")
        ax.legend(loc="upper right", facecolor="0.3", labelcolor="white", framealpha=0.8, fontsize=12)
    fig.suptitle(f"{regime_verdict(gpu, model, sc, efficiency, g)}\n{model.name} on {gpu.name}: compute-bound "
                 "past the white ridge line; shaded = KV cache does not fit", fontsize=17)
    return fig


def regime_verdict(gpu: GPUSpec, model: ModelConfig, sc: Scenario, efficiency: Efficiency | None,
                   g: dict) -> str:
    """The map's conclusion at the user's point: 'Your decode (batch 1, context 1,280) is memory-bound; it
    turns compute-bound at batch 420, past the 349 that fit'."""
    r = analyze(gpu, model, sc, efficiency)
    crit, mb = r["critical_batch"], r["memory"]["max_batch"]
    head = f"Your decode (batch {sc.batch:,}, context {sc.decode_context:,}) is {r['decode']['bound']}-bound"
    if crit == "never":
        return head + "; it never turns compute-bound at this context"
    if r["decode"]["bound"] == "compute":
        return head
    return head + (f"; it turns compute-bound at batch {crit:,}" +
                   (f", past the {mb:,} that fit" if crit > mb else f" (up to {mb:,} fit)"))


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
    styles: dict[str, int] = {}
    best = None  # (tokens/s per GPU within the SLO, label, batch)
    for label, gpu, precision in series:
        d = latency_series(gpu, model, sc, precision, efficiency, batches)
        if not len(d["batch"]):
            continue
        k = styles[gpu.name] = styles.get(gpu.name, -1) + 1
        ax.plot(d["tokens_per_s_per_gpu"], d["tpot_s"], marker="o", ls=PRECISION_STYLES[k % len(PRECISION_STYLES)],
                ms=7, color=gpu_color(gpu.name), label=label)
        for b, x, y in zip(d["batch"], d["tokens_per_s_per_gpu"], d["tpot_s"]):
            if b in (1, 8, 64, 256) or b == d["batch"][-1]:
                ax.annotate(f"b={b}", (x, y), xytext=(-10, 8), textcoords="offset points", fontsize=11)
        ok = d["tpot_s"] <= slo_tpot_s if slo_tpot_s is not None else np.ones(len(d["batch"]), bool)
        if ok.any():
            i = int(np.argmax(np.where(ok, d["tokens_per_s_per_gpu"], -1.0)))
            if best is None or d["tokens_per_s_per_gpu"][i] > best[0]:
                best = (float(d["tokens_per_s_per_gpu"][i]), label, int(d["batch"][i]))
    if slo_tpot_s is not None:
        ax.axhline(slo_tpot_s, color="red", ls="--", label=f"TPOT SLO {human(slo_tpot_s, 's')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(_tick())
    ax.yaxis.set_major_formatter(_tick("s"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: human(v, "s") if f"{v:.1e}"[0] in "25" else ""))
    ax.set_xlabel("output tokens/s per GPU (decode)")
    ax.set_ylabel("TPOT (time per output token)")
    where = f"within the {human(slo_tpot_s, 's')} TPOT SLO" if slo_tpot_s is not None else "at the largest batch"
    head = (f"{best[1]} serves the most {where}: {human(best[0])} tokens/s per GPU at batch {best[2]:,}"
            if best else f"No configuration meets the {human(slo_tpot_s, 's')} TPOT SLO")
    ax.set_title(f"{head}\n{model.name}, decode at context {sc.decode_context:,}, TP {sc.tp}", fontsize=16)
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
    budget = mem.budget_bytes(gpu.memory_bytes, ms, s)
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
    """Stacked bars per GPU in GiB (2**30 B, as the tables): weights, KV cache used, activations, reserve, free
    KV cache and the memory outside the utilization budget, across batch (at the decode context) or context
    (at the batch). The title says where the KV cache runs out."""
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
        h = d[part] / GiB
        ax.bar(xs, h, bottom=bottom, color=color, edgecolor="black", label=part)
        bottom += h
    ax.axhline(d["memory_bytes"] / GiB, color="black", lw=2,
               label=f"GPU memory {format_bytes(d['memory_bytes'], binary=True)}")
    ax.axhline(d["budget_bytes"] / GiB, color="black", ls=":", lw=2,
               label=f"budget ({sc.memory.memory_utilization:g} x memory)")
    over = bottom * GiB > d["memory_bytes"] * 1.0001
    for i in np.flatnonzero(over):
        ax.annotate("does not fit", (xs[i], bottom[i]), ha="center", va="bottom", color="red", fontsize=13)
    ax.set_xticks(xs, [human(x) for x in values])
    ax.yaxis.set_major_formatter(_tick("GiB"))
    ax.set_xlabel(f"{axis} ({'sequences' if axis == 'batch' else 'tokens'})")
    ax.set_ylabel("GiB per GPU (1 GiB = 2**30 B)")
    fixed = f"context {sc.decode_context:,}" if axis == "batch" else f"batch {sc.batch:,}"
    fit = [human(v) for v, o in zip(values, over) if not o]
    head = (f"Every {axis} shown fits" if not over.any() else
            f"The KV cache runs out past {axis} {fit[-1]}" if fit else f"No {axis} shown fits")
    ax.set_title(f"{head} ({model.name} on {gpu.name}, {fixed}, TP {sc.tp})", fontsize=16)
    ax.legend(loc="upper left", ncols=2)
    return fig


# --------------------------------------------------------------------------------------------------- compare

COMPARE_METRICS = (("ttft_s", "TTFT", "time"), ("tpot_s", "TPOT", "time"),
                   ("max_batch", "max batch (KV cache)", "count"),
                   ("decode_tokens_per_s_per_gpu", "decode tokens/s per GPU", "count"))


def compare_rows(gpus: list[GPUSpec], model: ModelConfig, scenario: Scenario | None = None,
                 efficiency: Efficiency | None = None, slo_tpot_s: float | None = None) -> list[dict]:
    """One `analyze` summary per GPU (None values where the model does not fit), with decode tokens/s per GPU
    at the largest batch within the TPOT SLO that fits (`analysis.decode_batching`; at the max batch without
    an SLO) and at the max batch (`peak_decode_tokens_per_s_per_gpu`)."""
    rows = []
    sc = (scenario or Scenario()).checked(model)
    for g in gpus:
        r = analyze(g, model, sc, efficiency)
        fits, mb = r["memory"]["batch_fits"], r["memory"]["max_batch"]
        best = decode_batching(g, model, sc, efficiency, slo_tpot_s)
        peak = decode_batching(g, model, sc, efficiency) if slo_tpot_s is not None else best
        per_gpu = (lambda b: None if b["decode_tokens_per_s"] is None else b["decode_tokens_per_s"] / sc.gpus)
        at = (f"decode tokens/s per GPU at the largest batch within the {format_time_s(slo_tpot_s)} TPOT SLO"
              if slo_tpot_s is not None else "decode tokens/s per GPU at the max batch")
        rows.append({"gpu": g.name, "display_name": g.display_name, "fits": fits,
                     "ttft_s": r["ttft_s"] if fits else None, "tpot_s": r["tpot_s"] if fits else None,
                     "output_tokens_per_s": r["output_tokens_per_s"] if fits else None,
                     "max_batch": mb, "batch_at_slo": best["batch"], "slo_tpot_s": slo_tpot_s,
                     "decode_tokens_per_s_per_gpu": per_gpu(best), "at": at,
                     "peak_decode_tokens_per_s_per_gpu": per_gpu(peak), "decode_bound": r["decode"]["bound"],
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
    colors = [gpu_color(n) for n in names]
    for ax, (key, label, kind) in zip(axes.ravel(), COMPARE_METRICS):
        vals = [r[key] or 0 for r in rows]
        bars = ax.bar(names, vals, color=colors, edgecolor="black", label=label)
        for b, v, r in zip(bars, vals, rows):
            txt = "does not fit" if r[key] is None else human(v, "s" if kind == "time" else "")
            ax.annotate(txt, (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=13)
        at = rows[0].get("at", "") if key == "decode_tokens_per_s_per_gpu" else ""
        ax.set_title(label + (f"\n({at.split('per GPU ', 1)[-1]})" if at else ""), fontsize=15)
        ax.set_ylim(0, max(vals + [1e-9]) * 1.2)
        ax.yaxis.set_major_formatter(_tick("s" if kind == "time" else ""))
        ax.tick_params(axis="x", labelrotation=15)
    ok = [r for r in rows if r.get("decode_tokens_per_s_per_gpu")]
    if len(ok) > 1:
        top = max(ok, key=lambda r: r["decode_tokens_per_s_per_gpu"])
        low = min(ok, key=lambda r: r["decode_tokens_per_s_per_gpu"])
        head = (f"{top['gpu']} decodes the most per GPU: "
                f"{top['decode_tokens_per_s_per_gpu'] / low['decode_tokens_per_s_per_gpu']:.2g}x {low['gpu']}")
    else:
        head = f"{ok[0]['gpu']} alone fits" if ok else "No GPU fits"
    fig.suptitle(f"{head}\n{model.name}: batch {sc.batch}, prompt {sc.prompt:,}, output {sc.output:,}, "
                 f"weights/activations/KV {sc.weights}/{sc.activations}/{sc.kv}, TP {sc.tp}", fontsize=17)
    return fig
