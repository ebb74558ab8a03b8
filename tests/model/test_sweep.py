"""The vectorized grid agrees with one-at-a-time analysis."""
import pytest

from roofline.model.analysis import Scenario, analyze
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.model.sweep import sweep


def test_grid_shape_and_agreement_with_analyze():
    g, m = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
    cols = sweep(g, m, [1, 64], [512, 4096], [1, 2], ["bf16", "fp8"])
    assert len(cols["tpot_s"]) == 2 * 2 * 2 * 2
    i = next(i for i in range(16) if cols["batch"][i] == 64 and cols["context"][i] == 4096 and cols["tp"][i] == 2
             and cols["precision"][i] == "fp8")
    r = analyze(g, m, Scenario(batch=64, prompt=4096, output=1, context=4096, tp=2, weights="fp8",
                               activations="fp8", kv="fp8"))
    assert cols["tpot_s"][i] == pytest.approx(r["tpot_s"])
    assert cols["ttft_s"][i] == pytest.approx(r["ttft_s"])
    assert cols["max_batch"][i] == r["memory"]["max_batch"]
    assert cols["decode_bound"][i] == r["decode"]["bound"]
    assert cols["decode_flops"][i] == pytest.approx(r["decode"]["flops"])
    assert cols["decode_bytes"][i] == pytest.approx(r["decode"]["bytes"])
    assert cols["kv_cache_utilization"][i] == pytest.approx(r["memory"]["kv_cache_utilization"])
    assert cols["critical_batch"][i] == r["critical_batch"]
    assert cols["fits"][i] == r["memory"]["fits"] and cols["batch_fits"][i] == r["memory"]["batch_fits"]


def test_nested_rows_follow_the_json_contract():
    from roofline.report.render import columns_to_rows
    from roofline.model.sweep import nest_row
    cols = sweep(load_gpu("h100-sxm"), load_model("llama-3.1-8b"), [1], [0])
    row = nest_row(columns_to_rows(cols)[0])
    for ph in ("prefill", "decode"):
        assert set(row[ph]) == {"flops", "bytes", "arithmetic_intensity_flops_per_byte", "bound", "time_s"}
    assert row["memory"]["max_batch"] > 0 and isinstance(row["memory"]["max_batch"], int)
    r = analyze(load_gpu("h100-sxm"), load_model("llama-3.1-8b"), Scenario(prompt=1, output=1, context=0))
    assert row["critical_batch"] == r["critical_batch"] and isinstance(row["critical_batch"], int)


def test_bad_grid_values():
    g, m = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
    with pytest.raises(RooflineError, match="batch"):
        sweep(g, m, [0], [512])
    with pytest.raises(RooflineError, match="context"):
        sweep(g, m, [1], [-5])
