"""The answer first (issue 15): verdicts computed from the results, and the contradictions they replaced."""
from __future__ import annotations

import io
import json
import shlex
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from roofline import cli
from roofline.model.analysis import Scenario, analyze, decode_batching
from roofline.report import plots, verdict
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _run(capsys, args: str) -> tuple[str, str]:
    assert cli.main(shlex.split(args)) == 0, capsys.readouterr().err
    cap = capsys.readouterr()
    return cap.out, cap.err


def test_analyze_verdict_names_regime_ridge_and_batching_gain():
    g, m = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
    r, b = analyze(g, m), decode_batching(g, m)
    # ridge = 989.4 TFLOP/s / 3.35 TB/s = 295 FLOP/B; decode at batch 1 reads every weight for 2 FLOPs per
    # 2-byte weight: ~1 FLOP/B; the gain is tokens/s at the max batch over tokens/s at batch 1
    assert b["batch"] == r["memory"]["max_batch"] and b["limited_by"] == "memory"
    assert b["gain"] == pytest.approx(b["batch"] / b["tpot_s"] / (1 / r["tpot_s"]))
    text = verdict.analyze_verdict(r, b)
    assert text.startswith("Decode is memory-bound at batch 1 and context 1,280 (1.03 FLOP/B vs ridge 295; TPOT")
    assert f"batching to {b['batch']:,} (the most that fits) raises decode throughput {verdict.times(b['gain'])}" in text
    # at an SLO the batch is the largest whose step meets it, and the step just above misses it
    s = decode_batching(g, m, slo_tpot_s=0.02)
    assert s["limited_by"] == "slo" and s["tpot_s"] <= 0.02
    over = analyze(g, m, Scenario(batch=s["batch"] + 1))
    assert over["tpot_s"] > 0.02


def test_a_deployment_that_does_not_fit_says_so_first():
    g, m = load_gpu("h100-sxm"), load_model("llama-3.1-70b")
    r = analyze(g, m)
    text = verdict.analyze_verdict(r, decode_batching(g, m))
    assert text.startswith("llama-3.1-70b does not fit on 1 x h100-sxm (TP 1)") and "smallest TP that fits is 2" in text


def test_analyze_rows_say_which_fit_and_which_request(capsys):
    """Before: a `fits yes` row (the weights flag) under a warning that the batch does not fit, and TTFT /
    mean TPOT / tokens/s for a 1024 + 256 request beside a TPOT at 32k, unlabelled."""
    out, err = _run(capsys, "analyze --batch 64 --context 32768 --gpu h200-sxm")
    assert "batch 64 does not fit" in err
    first = out.splitlines()[0]
    assert first.startswith("Batch 64 does not fit: the KV cache holds")
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines() if ln.count("│") == 3}
    assert rows["weights fit"] == "yes" and rows["batch fits"].startswith("NO: 64 > max batch")
    assert "fits" not in rows  # no ambiguous row
    assert rows["request"] == "batch 64 x (prompt 1,024 + output 256 tokens)"
    assert rows["decode step at"].startswith("context 32,768 (set apart from the request")
    assert "TPOT at context 32,768" in rows and "mean TPOT over the request (contexts 1,024-1,280)" in rows
    assert "TTFT (prefill of 64 x 1,024-token prompts)" in rows
    doc = json.loads(_run(capsys, "analyze --batch 64 --context 32768 --gpu h200-sxm --format json")[0])
    assert doc["verdict"].startswith("Batch 64 does not fit") and doc["memory"]["batch_fits"] is False


def test_capacity_verdict_names_cheapest_limit_headroom_and_every_slo():
    res = json.loads((GOLDEN / "capacity-chat.json").read_text())
    text = verdict.capacity_verdict(res)
    # best row of that run: 7 replicas of TP4 FP8 on h100-sxm = 28 GPUs at $2.5/h = $70/h, TPOT p99 binding
    # (11 replicas before capacity solved the cache hit rate per load: a full cache's 0.19 overstated prefill)
    assert text.startswith("Cheapest for llama-3.1-70b at 64 req/s peak within TTFT p50 500 ms / p99 2 s, "
                           "TPOT p50 30 ms / p99 50 ms: 28 x h100-sxm (7 replicas of TP4 FP8), $70.00/h")
    assert res["best"]["limited_by"] == "tpot_p99_slo"
    assert f"limited by the TPOT p99 SLO (50 ms), {res['best']['headroom']:.0%} headroom." in text
    res["best"] = None
    res["candidates"] = [dict(c, feasible=False) for c in res["candidates"]]
    assert verdict.capacity_verdict(res).startswith("No candidate serves llama-3.1-70b")


def _sim(res_over: dict) -> dict:
    base = {"offered_rate_per_s": 63.5, "throughput_requests_per_s": 27.1, "replicas": 2, "rejected_requests": 0,
            "queue_length": {"mean": 2213.7, "max": 4181.0}, "arrival_span_s": 315.0,
            "ttft_s": {"p50": 0.03, "p99": 0.19}, "tpot_s": {"p50": 0.0145, "p99": 0.0258}}
    return {**base, **res_over}


def test_simulate_verdict_overloaded_or_ok_with_every_slo():
    slo = {"ttft_p50_s": 0.5, "ttft_p99_s": 2.0, "tpot_p50_s": 0.03, "tpot_p99_s": 0.05}
    grow = {"time_s": [10.0 * k for k in range(32)], "queue_length": [0.0] * 4 + [50.0 * k for k in range(28)]}
    text = verdict.simulate_verdict(_sim({"timeseries": grow}), slo)
    assert text.startswith("OVERLOADED: 27.1 of 63.5 req/s served on 2 replicas; the queue grows without bound")
    flat = {"time_s": grow["time_s"], "queue_length": [0.0] * 32}
    text = verdict.simulate_verdict(_sim({"throughput_requests_per_s": 58.6, "timeseries": flat}), slo)
    assert text == ("OK: 2 replicas keep up with 63.5 req/s; TTFT p50 30 ms vs SLO 500 ms, TTFT p99 190 ms vs "
                    "SLO 2 s, TPOT p50 14.5 ms vs SLO 30 ms, TPOT p99 25.8 ms vs SLO 50 ms.")
    text = verdict.simulate_verdict(_sim({"throughput_requests_per_s": 63.0, "tpot_s": {"p50": 0.035, "p99": 0.04}}),
                                    slo)
    assert text.startswith("SLO MISSED (TPOT p50): 2 replicas keep up")


def test_simulate_readme_example_is_not_overloaded_and_prints_its_verdict(capsys, monkeypatch):
    """The README's simulate line (6 replicas) keeps up; 2 replicas (the old example) is OVERLOADED."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("roofline simulate "))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    out, _ = _run(capsys, line.removeprefix("roofline ").replace("--requests 20000", "--requests 6000"))
    assert out.startswith("OK: 6 replicas keep up")
    out, _ = _run(capsys, line.removeprefix("roofline ").replace("--replicas 6", "--replicas 2")
                  .replace("--requests 20000", "--requests 6000"))
    assert out.startswith("OVERLOADED:")
    assert "12:00-12:0" in out or "12:00-12:1" in out  # minutes of arrivals at the peak hour, not 12:00-13:00


def test_simulated_hours_label_the_span_that_was_simulated():
    from roofline.cli.capacity import _hours_text
    day = {"hours_simulated": list(range(24)), "daily_curve_multipliers": [1.0] * 24, "arrival_span_s": 86390.0}
    assert _hours_text(day).startswith("00:00-24:00 of the daily curve")
    peak = {"hours_simulated": [12], "daily_curve_multipliers": [1.6], "arrival_span_s": 315.0}
    assert _hours_text(peak).startswith("12:00-12:05 of the daily curve (rate x1.6), 315 s of arrivals")


def test_spreadsheet_of_a_deployment_that_does_not_fit_says_so(tmp_path, capsys):
    """Before: `spreadsheet --model llama-3.1-70b` (TP 1) sized '7 GPUs' with KV capacity 0 and utilisation
    1E+30 and no warning."""
    formulas = pytest.importorskip("formulas")
    path = tmp_path / "w.xlsx"
    _, err = _run(capsys, f"spreadsheet --model llama-3.1-70b -o {path}")
    assert "Warning: llama-3.1-70b does not fit at --tp 1" in err and "smallest TP that fits is 2" in err
    sol = formulas.ExcelModel().loads(str(path)).finish().calculate()
    vals = {k.rsplit("]", 1)[1].upper(): v.value[0][0] for k, v in sol.items() if "!" in k and hasattr(v, "value")}
    assert vals["SIZING'!B11"] == "does not fit"  # GPUs needed
    assert vals["SIZING'!B12"] == "does not fit"  # cost per hour
    assert vals["MEMORY'!B11"] == "no KV cache"  # utilisation, not 1E+30
    assert str(vals["MEMORY'!B12"]).startswith("NO: the weights leave no room")


def test_report_compares_gpus_at_the_slo_of_its_latency_plot():
    """Before: 'decode tokens/s/GPU at max batch' whatever the TPOT; now at the largest batch within the SLO."""
    g, m = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
    row, = plots.compare_rows([g], m, Scenario(), slo_tpot_s=0.02)
    assert row["batch_at_slo"] < row["max_batch"]
    at = analyze(g, m, Scenario(batch=row["batch_at_slo"]))
    assert at["tpot_s"] <= 0.02
    assert row["decode_tokens_per_s_per_gpu"] == pytest.approx(row["batch_at_slo"] / at["tpot_s"])
    assert row["peak_decode_tokens_per_s_per_gpu"] > row["decode_tokens_per_s_per_gpu"]


def test_report_puts_the_verdict_above_the_fold(tmp_path, capsys):
    _run(capsys, f"report --out-dir {tmp_path} --name r --slo-tpot-ms 20 --gpus h200-sxm")
    page = (tmp_path / "r" / "index.html").read_text()
    head = page[:page.index("<h2>")]  # before the first section: the first screen
    assert "<p id=verdict class=verdict>Decode is memory-bound at batch 1" in head
    assert "(within the TPOT SLO 20 ms)" in head and "On h200-sxm decode is" in head
    assert "decode tokens/s/GPU within 20 ms TPOT" in page
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.splitlines()[2].startswith("**Decode is memory-bound")
