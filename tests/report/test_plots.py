"""Plots are checked by the data they draw (Line2D / PathCollection / bars), not by pixels."""
from __future__ import annotations

import numpy as np
import pytest

from roofline.report import plots
from roofline.model.analysis import Scenario, analyze
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.model.sweep import sweep


@pytest.fixture(scope="module")
def h100():
    return load_gpu("h100-sxm")


@pytest.fixture(scope="module")
def llama():
    return load_model("llama-3.1-8b")


def _lines(ax) -> dict:
    return {ln.get_label(): ln for ln in ax.get_lines()}


def _scatter(ax) -> dict:
    return {c.get_label(): c.get_offsets() for c in ax.collections}


#: a synthetic profile in the issue-3 schema: ceilings and three points (one failed, one bandwidth-only)
PROFILE = {
    "ceilings": {"memory_bandwidth_bytes_per_s": 3.0e12, "peak_flops_per_s": {"bf16": 7.0e14, "fp8": 1.3e15}},
    "points": [
        # 2*4096^3 = 1.374e11 FLOPs over 3 * 4096^2 * 2 B = 1.007e8 B -> 1365 FLOP/B; / 0.2 ms = 6.87e14 FLOP/s
        {"id": "gemm/4096", "family": "gemm", "status": "ok", "flops": 2 * 4096.0**3,
         "bytes_read": 2 * 4096.0**2 * 2, "bytes_written": 4096.0**2 * 2,
         "summary": {"ref": "robust_s", "robust_s": 2.0e-4, "median_s": 2.1e-4}},
        {"id": "gemm/bad", "family": "gemm", "status": "error", "flops": 1.0, "bytes_read": 1.0},
        {"id": "stream/read", "family": "stream", "status": "ok", "flops": 0.0, "bytes_read": 1e9,
         "summary": {"median_s": 4e-4}},
    ],
}


@pytest.fixture(scope="module")
def roofline_fig(h100, llama):
    return plots.roofline_chart(h100, llama, Scenario(), profile=PROFILE)


def test_roofline_places_every_operator(roofline_fig, h100, llama):
    ax = roofline_fig.axes[0]
    r = analyze(h100, llama, Scenario())
    pts = _scatter(ax)
    for phase in ("prefill", "decode"):
        want = sorted((o["arithmetic_intensity_flops_per_byte"], o["flops"] / o["time_s"])
                      for o in r[phase]["operators"] if o["unit"] != "link" and o["flops"] > 0 and o["bytes"] > 0)
        got = sorted(map(tuple, pts[f"{phase} operators"]))
        np.testing.assert_allclose(got, want, rtol=1e-12)
    labels = {t.get_text() for t in ax.texts}
    # lm_head shares a group with the GEMMs once the engine's eager launches are in the times ("+2")
    assert any("qkv_proj" in t for t in labels) and any("attn_scores" in t for t in labels)


def test_roofline_roofs_and_ridges(roofline_fig, h100):
    ax = roofline_fig.axes[0]
    lines = _lines(ax)
    bw = h100.memory_bandwidth_bytes_per_s
    mem = lines["datasheet memory roof 3.35 TB/s"]
    np.testing.assert_allclose(mem.get_ydata(), bw * mem.get_xdata())
    bf16 = next(ln for k, ln in lines.items() if k.startswith("datasheet bf16"))
    np.testing.assert_allclose(bf16.get_ydata(), h100.peak_flops("bf16"))
    # ridge marker at (peak / bw, peak): 989.5e12 / 3.35e12 = 295.4 FLOP/B
    ridge = lines["_datasheet bf16 ridge"]
    np.testing.assert_allclose(ridge.get_xdata(), [h100.peak_flops("bf16") / bw])
    assert any("bf16 ridge 295 FLOP/B" in t.get_text() for t in ax.texts)


def test_roofline_overlays_measured_profile(roofline_fig):
    ax = roofline_fig.axes[0]
    lines = _lines(ax)
    assert "measured memory roof 3 TB/s" in lines
    assert next(ln for k, ln in lines.items() if k.startswith("measured bf16")).get_ydata()[0] == 7.0e14
    pts = _scatter(ax)
    assert "measured stream" not in pts  # no FLOPs: not a roofline point
    (x, y), = pts["measured gemm"]  # the failed point is left out
    assert x == pytest.approx(4096 / 3)  # 2*4096^3 / (3*4096^2*2)
    assert y == pytest.approx(2 * 4096.0**3 / 2.0e-4)  # the summary's ref statistic


def test_measured_readers_tolerate_missing_fields():
    assert plots.measured_points({}) == []
    assert plots.measured_ceilings({"ceilings": {"memory_bandwidth_bytes_per_s": None}}) == \
        {"memory_bandwidth_bytes_per_s": None, "peak_flops_per_s": {}}


def test_regime_map_matches_the_sweep(h100, llama):
    batches, contexts = (1, 16, 256), (128, 4096)
    g = plots.regime_grid(h100, llama, Scenario(), batches=batches, contexts=contexts)
    cols = sweep(h100, llama, batches, contexts)
    for i, c in enumerate(contexts):
        for j, b in enumerate(batches):
            k = np.flatnonzero((cols["batch"] == b) & (cols["context"] == c))[0]
            assert g["decode"]["intensity"][i, j] == pytest.approx(cols["decode_flops"][k] / cols["decode_bytes"][k])
            assert g["decode"]["time_s"][i, j] == pytest.approx(cols["tpot_s"][k])
        assert g["max_batch"][i] == cols["max_batch"][np.flatnonzero(cols["context"] == c)[0]]
    # decode intensity grows with batch (weights amortised); at batch >= 16 it falls with context (KV reads,
    # ~4 FLOP/B with 4 query heads per KV head, dilute the amortised weights)
    assert np.all(np.diff(g["decode"]["intensity"], axis=1) > 0)
    assert np.all(np.diff(g["decode"]["intensity"][:, 1:], axis=0) < 0)
    fig = plots.regime_map(h100, llama, Scenario(), grid=g)
    ax = fig.axes[0]
    np.testing.assert_array_equal(_lines(ax)["max batch that fits"].get_xdata(), g["max_batch"])
    assert {c.get_gid() for c in ax.collections} >= {"decode intensity", "decode ridge contour"}
    with pytest.raises(RooflineError):
        plots.regime_map(h100, llama, metric="color")


def test_latency_throughput_lines(h100, llama):
    fig = plots.latency_throughput([("bf16", h100, "bf16"), ("fp8", h100, "fp8")], llama, Scenario(),
                                   slo_tpot_s=0.05, batches=(1, 8, 64, 4096))
    lines = _lines(fig.axes[0])
    cols = sweep(h100, llama, [1, 8, 64], [1280])
    ln = lines["bf16"]
    # 4096 does not fit (max batch at context 1280) and is replaced by the max batch itself
    assert len(ln.get_xdata()) == 4
    np.testing.assert_allclose(ln.get_xdata()[:3], cols["decode_tokens_per_s"])
    np.testing.assert_allclose(ln.get_ydata()[:3], cols["tpot_s"])  # seconds, ticks formatted as ms
    assert lines["fp8"].get_ydata()[0] < ln.get_ydata()[0]  # half the weight bytes -> faster decode
    np.testing.assert_allclose(lines["TPOT SLO 50 ms"].get_ydata(), 0.05)


def test_memory_breakdown_stacks_to_the_budget(h100, llama):
    sc = Scenario()
    d = plots.memory_stack(h100, llama, sc, "batch", [1, 64])
    r = analyze(h100, llama, sc)
    assert d["weights"][0] == pytest.approx(r["memory"]["weights_bytes"])
    inside = sum(d[p] for p in plots.MEMORY_PARTS if p != "outside budget")
    np.testing.assert_allclose(inside, r["memory"]["memory_budget_bytes"])
    assert d["KV cache (used)"][1] == pytest.approx(64 * r["memory"]["kv_cache_bytes_per_sequence"])
    fig = plots.memory_breakdown(h100, llama, sc, "batch", [1, 64])
    bars = [p for p in fig.axes[0].patches]
    assert bars[0].get_height() == pytest.approx(r["memory"]["weights_bytes"] / 2**30)  # GiB, as the tables


def test_gpu_comparison_bars(h100, llama):
    gpus = [h100, load_gpu("a100-sxm-80gb")]
    fig = plots.gpu_comparison(gpus, llama, Scenario())
    tpot_ax = next(ax for ax in fig.axes if ax.get_title() == "TPOT")
    heights = [p.get_height() for p in tpot_ax.patches]
    assert heights == pytest.approx([analyze(g, llama, Scenario())["tpot_s"] for g in gpus])
    assert heights[1] > heights[0]  # A100: 2.04 TB/s against 3.35 TB/s


def test_save_png_and_svg(tmp_path, roofline_fig):
    for name in ("r.png", "r.svg"):
        p = plots.save(roofline_fig, tmp_path / name)
        assert p.stat().st_size > 10_000
    with pytest.raises(RooflineError, match="cannot write a plot"):
        plots.save(roofline_fig, tmp_path / "r.gif")
    (tmp_path / "f").write_text("")
    with pytest.raises(RooflineError, match="cannot write .*f/r.png: .*f is a file") as e:
        plots.save(roofline_fig, tmp_path / "f" / "r.png")
    assert e.value.exit_code == 1


@pytest.mark.parametrize("slo", [-0.05, 0.0, float("nan"), float("inf")])
def test_latency_throughput_rejects_a_bad_slo(h100, llama, slo):
    with pytest.raises(RooflineError, match="TPOT SLO") as e:
        plots.latency_throughput([("bf16", h100, "bf16")], llama, Scenario(), slo_tpot_s=slo)
    assert e.value.exit_code == 2


# ------------------------------------------------------------------------------------- plots people can read

def _texts(fig) -> list[str]:
    """Every piece of text a figure draws: titles, labels, tick labels, annotations, legend entries."""
    fig.canvas.draw()
    out = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_title("left"), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return [t for t in out if t]


def test_a_gpu_has_one_colour_in_every_plot(h100, llama):
    """The latency lines and the comparison bars of a GPU share `gpu_color(name)`; two GPUs differ."""
    from matplotlib.colors import to_hex
    a100, h200 = load_gpu("a100-sxm-80gb"), load_gpu("h200-sxm")
    lat = plots.latency_throughput([("h100 bf16", h100, "bf16"), ("h100 fp8", h100, "fp8"),
                                    ("a100", a100, "bf16"), ("h200", h200, "bf16")], llama, Scenario())
    lines = _lines(lat.axes[0])
    assert to_hex(lines["h100 bf16"].get_color()) == to_hex(lines["h100 fp8"].get_color()) == plots.gpu_color("h100-sxm")
    assert lines["h100 bf16"].get_linestyle() != lines["h100 fp8"].get_linestyle()  # precision by line style
    comp = plots.gpu_comparison([h100, a100, h200], llama, Scenario())
    bars = comp.axes[0].patches
    assert [to_hex(b.get_facecolor()) for b in bars] == [plots.gpu_color(n) for n in ("h100-sxm", "a100-sxm-80gb",
                                                                                       "h200-sxm")]
    assert len({plots.gpu_color(n) for n in ("h100-sxm", "a100-sxm-80gb", "h200-sxm")}) == 3


def test_no_figure_prints_an_exponent(h100, llama):
    """Numbers are for people: '11.1 k', '50 ms', never '1.11e+04' or '8.65e+03 ms'."""
    assert plots.human(11103) == "11.1 k" and plots.human(8.65, "s") == "8.65 s" and plots.human(0.05, "s") == "50 ms"
    figs = [plots.roofline_chart(h100, llama, Scenario()), plots.regime_map(h100, llama, Scenario()),
            plots.latency_throughput([("h100", h100, "bf16")], llama, Scenario()),
            plots.memory_breakdown(h100, llama, Scenario()),
            plots.gpu_comparison([h100, load_gpu("a100-sxm-80gb")], llama, Scenario())]
    for fig in figs:
        bad = [t for t in _texts(fig) if "e+" in t or "e-0" in t or "$10^" in t]
        assert not bad, bad


def test_the_regime_map_marks_the_users_point_and_says_the_regime(h100, llama):
    fig = plots.regime_map(h100, llama, Scenario(batch=8, prompt=2000, output=48))
    lines = _lines(fig.axes[0])
    you = lines["you: batch 8, context 2,048"]  # decode at prompt + output = 2048
    assert (you.get_xdata()[0], you.get_ydata()[0]) == (8, 2048)
    assert any("you: batch 8, prompt 2,000" in _lines(ax) for ax in fig.axes[1:])  # the prefill panel
    assert fig._suptitle.get_text().startswith("Your decode (batch 8, context 2,048) is memory-bound")


def test_roofline_labels_do_not_overlap_and_roofs_follow_the_precision(h100):
    """An FP8 70B deployment: the FP8 roof full strength (others faint), the achievable roof (55% of the FP8
    peak, 80% of the bandwidth: the default efficiencies) beside it, grouped labels that never overlap, and
    the regime in the title."""
    m = load_model("llama-3.1-70b")
    sc = Scenario(batch=32, tp=4, weights="fp8", activations="fp8", kv="fp8")
    fig = plots.roofline_chart(h100, m, sc)
    ax = fig.axes[0]
    lines = _lines(ax)
    assert lines["datasheet fp8 roof 1.98 PFLOP/s"].get_alpha() == 1.0
    assert lines["datasheet bf16 roof 990 TFLOP/s (not in use)"].get_alpha() < 0.5
    ach = next(ln for k, ln in lines.items() if k.startswith("achievable") and " fp8 roof" in k)
    assert ach.get_ydata()[-1] == pytest.approx(0.55 * h100.peak_flops("fp8"))
    slope = next(ln for k, ln in lines.items() if k.startswith("achievable") and "memory roof" in k)
    np.testing.assert_allclose(slope.get_ydata(), 0.8 * h100.memory_bandwidth_bytes_per_s * slope.get_xdata())
    assert plots.labels_overlap(fig) == []
    assert ax.get_title("left").startswith("Decode memory-bound at")
    assert "fp8 ridge 591 FLOP/B" in {t.get_text() for t in ax.texts}  # 1979e12 / 3.35e12 = 590.7


def test_titles_state_the_conclusion_and_units_match_the_tables(h100, llama):
    lat = plots.latency_throughput([("h100-sxm, weights/activations/KV bf16/bf16/bf16", h100, "bf16")], llama,
                                   Scenario(), slo_tpot_s=0.02)
    assert lat.axes[0].get_title().startswith("h100-sxm, weights/activations/KV bf16/bf16/bf16 serves the most "
                                              "within the 20 ms TPOT SLO")
    mem_fig = plots.memory_breakdown(h100, llama, Scenario(), "batch", [1, 64, 4096])
    assert mem_fig.axes[0].get_ylabel().startswith("GiB per GPU")
    assert mem_fig.axes[0].get_title().startswith("The KV cache runs out past batch 64")
    comp = plots.gpu_comparison([h100, load_gpu("a100-sxm-80gb")], llama, Scenario())
    assert comp._suptitle.get_text().startswith("h100-sxm decodes the most per GPU")
    assert "weights/activations/KV bf16/bf16/bf16" in comp._suptitle.get_text()
