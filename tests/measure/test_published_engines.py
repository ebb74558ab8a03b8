"""The per-engine published set (roofline/measure/data/published_engines.json) and the errors per engine that
`roofline published` reports."""
import json

import pytest
from typer.testing import CliRunner

from roofline.cli.app import app
from roofline.measure.published import (compare, engine_for, engine_key, load_engine_measurements, scenario_for,
                                        summarize_by_engine)


@pytest.fixture(scope="module")
def rows():
    return load_engine_measurements()


def test_every_row_names_its_source_and_states_the_number(rows):
    assert len(rows) >= 15
    for m in rows:
        assert m["source_url"].startswith("https://") and m["engine_version"]
        shown = f"{m['value'] * 1000:g}" if m["metric"] == "ttft_s" else \
            f"{m['value']:.3f}" if m["metric"] == "e2e_latency_s" else f"{m['value']:,.0f}"
        # the figure as the page's table states it (grouped digits, or two decimals as bench_serving prints it;
        # TensorRT-LLM v0.9's latency table prints milliseconds with one decimal: 0.005 s -> '| 5.0 |')
        cells = {f"| {shown} |", f"| {m['value']:.2f} |"}
        if m["metric"] == "ttft_s":
            cells.add(f"| {m['value'] * 1000:.1f} |")
        assert any(c in m["quote"] for c in cells), m["id"]
        # the input length as a table cell, or as the benchmark command's fixed random input length
        assert f"| {m['prompt']} |" in m["quote"] or f"--random-input-len {m['prompt']} " in m["quote"], m["id"]


def test_rows_are_predicted_with_their_engine(rows):
    m = next(r for r in rows if r["engine"] == "trtllm")
    assert engine_for(m).name == "trtllm" and engine_for({"engine": "trt-llm"}).name == "trtllm"
    assert engine_for({"engine": "gpt-fast"}) is None
    sc = scenario_for(m)
    assert sc.memory.engine == "trtllm" and sc.memory.kv_cache_rule == "free_fraction"


def test_errors_per_engine_by_hand():
    def row(engine, err, status="predicted", metric="ttft_s"):
        return {"engine": engine, "error": err, "status": status, "metric": metric}
    got = summarize_by_engine([row("trt-llm", 0.1), row("trtllm", -0.3), row("trtllm", 0.2),
                               row("vllm", -0.5), row("vllm", None, "not_predicted")])
    # trtllm (trt-llm merged): |errors| 0.1, 0.3, 0.2 -> median 0.2, max 0.3, bias (median signed) 0.1
    assert got["trtllm"]["overall"] == pytest.approx({"count": 3, "median_abs_error": 0.2, "max_abs_error": 0.3,
                                                      "bias": 0.1})
    assert got["vllm"]["overall"]["count"] == 1 and got["vllm"]["not_predicted"] == 1
    assert list(got) == ["trtllm", "vllm"] and engine_key(" TRT-LLM ") == "trtllm"


def test_compare_reports_every_engine(rows):
    res = compare(rows)
    per = res["summary_by_engine"]
    assert set(per) == {"trtllm", "vllm", "sglang"}
    assert sum(e["overall"]["count"] for e in per.values()) == len(rows)
    assert set(per["trtllm"]["by_metric"]) == {"ttft_s", "output_tokens_per_s"}
    assert set(per["vllm"]["by_metric"]) == {"e2e_latency_s"}
    assert set(per["sglang"]["by_metric"]) == {"output_tokens_per_s"}
    for e in per.values():
        assert e["overall"]["max_abs_error"] >= e["overall"]["median_abs_error"]


def test_cli_reports_errors_per_engine():
    r = CliRunner().invoke(app, ["published", "--format", "json"])
    assert r.exit_code == 0, r.output
    per = json.loads(r.output)["summary_by_engine"]
    assert {"vllm", "trtllm", "sglang"} <= set(per)
    r = CliRunner().invoke(app, ["published"])
    assert r.exit_code == 0 and "Errors per engine" in r.output
