"""Regressions from the second fuzz campaign (engine files, SGLang admission, the capacity queue model): each case
crashed, or printed a number where the honest answer is "overloaded", before its fix."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from roofline.errors import RooflineError
from roofline.model.engine import make_setup
from roofline.model.memory import engine_settings
from roofline.plan.capacity import predict, replica_capacity
from roofline.plan.simulate import SimSettings, step_time_model
from roofline.specs.engines import load_engine, parse_engine
from roofline.units import MAX_COUNT
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import load_workload, sample_requests

ROOT = Path(__file__).resolve().parents[1]
SGLANG = json.loads((ROOT / "engines" / "sglang.json").read_text())
H100 = load_gpu("h100-sxm")
S8B = make_setup(H100, load_model("llama-3.1-8b"))


def _engine_file(tmp_path, field, value, tier=False):
    data = copy.deepcopy(SGLANG)
    if tier:
        data[field]["tiers"] = [{"min_memory_bytes": 0, "value": value}]
    else:
        data[field]["value"] = value
    path = tmp_path / "engine.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("value,tier", [(1e300, False), (2**70, False), (2**31, False), (1e300, True)])
@pytest.mark.parametrize("field", ["max_seqs", "max_batched_tokens"])
def test_engine_file_count_beyond_a_32_bit_int_is_one_error(run_cli, tmp_path, field, value, tier):
    # was: OverflowError / numpy MemoryError tracebacks from analyze, simulate and capacity (max_seqs 1e300 made
    # int(np.minimum(..., 1e300)) overflow; a tier of 1e300 chunk tokens overflowed the reserve arithmetic)
    path = _engine_file(tmp_path, field, value, tier)
    code, out, err = run_cli("analyze", "--model", "llama-3.1-8b", "--engine", str(path))
    assert code == 1 and "Traceback" not in err, err
    assert err.startswith("Error: ") and f"field '{field}." in err and f"up to {MAX_COUNT:,}" in err
    assert "Hint: " in err


def test_engine_file_count_at_the_bound_is_accepted():
    # 2**31 - 1 = 2,147,483,647 is the knobs' own bound (memory._check_count): the file may say it too
    data = copy.deepcopy(SGLANG)
    data["max_seqs"]["value"] = MAX_COUNT
    assert parse_engine(json.dumps(data), "x.json").value("max_seqs") == MAX_COUNT
    data["max_seqs"]["value"] = MAX_COUNT + 1
    with pytest.raises(RooflineError, match="max_seqs.value"):
        parse_engine(json.dumps(data), "x.json")


def test_step_table_holds_no_more_sequences_than_the_run_has():
    # was: max_seqs 2,147,483,647 (a legal knob) sized the step-time table to 2**31 + 8192 rows: a 16 GiB
    # numpy allocation (MemoryError traceback from `simulate --engine sglang --max-seqs 2147483647`).
    # 300 requests: a step holds at most 300 sequences, so the table has 8192 + 300 rows (H100: 8192 chunk)
    w = load_workload(ROOT / "examples" / "workload-chat.json")
    ms = engine_settings(load_engine("sglang"), H100, max_seqs=MAX_COUNT)
    r = sample_requests(w, 300, 0, start_hour=w.peak_hour)
    sm = step_time_model(S8B, w, r, SimSettings(ms.chunked_prefill, ms.page_tokens, memory=ms))
    assert ms.max_batched_tokens == 8192 and sm.t_max == 8192 + 300


def test_step_table_holds_no_more_prompt_tokens_than_the_kv_cache():
    # was: SGLang 0.4.6 keeps a flat KV fraction, so a chunk of 100,000,000 tokens still fits and sized the table
    # to 1e8 rows (MemoryError traceback from simulate and from capacity's simulator check). A pass's tokens
    # each take a KV slot: with 50,000 tokens of cache the table has 50,000 + 300 rows
    w = load_workload(ROOT / "examples" / "workload-chat.json")
    ms = engine_settings(load_engine("sglang-0.4.6"), H100, max_batched_tokens=100_000_000)
    r = sample_requests(w, 300, 0, start_hour=w.peak_hour)
    cfg = SimSettings(ms.chunked_prefill, ms.page_tokens, memory=ms)
    assert step_time_model(S8B, w, r, cfg, cap_tokens=50_000).t_max == 50_000 + 300


@pytest.mark.parametrize("engine,knob,value", [("sglang", "--max-seqs", str(MAX_COUNT)),
                                               ("sglang-0.4.6", "--max-batched-tokens", "100000000")])
def test_simulate_with_huge_step_limits_runs(run_cli, engine, knob, value):
    code, out, err = run_cli("simulate", "--model", "llama-3.1-8b", "--engine", engine, knob, value,
                             "--requests", "200", "--workload", str(ROOT / "examples" / "workload-chat.json"),
                             "--format", "json")
    assert code == 0, err
    assert json.loads(out)["requests"] == 200


@pytest.mark.parametrize("workload", ["workload-chat.json", "workload-summarize.json"])
def test_predict_past_saturation_says_saturated_never_inf(workload):
    # was: predict compared the rate with the curve's highest rate anywhere, past saturation, and interpolated
    # with np.interp over a rate that does not rise monotonically with the load: summarize at 1.5x its max rate
    # (8.85 req/s > saturation 7.08) gave saturated False, TTFT p99 inf, KV utilisation inf, and a throughput of
    # rate x output above what the replica completes
    w = load_workload(ROOT / "examples" / workload)
    cap = replica_capacity(S8B, w)
    top = cap["max_request_rate_per_replica"]
    for f in np.linspace(0.05, 4.0, 80):
        p = predict(S8B, w, f * top)
        if p["saturated"]:
            assert set(p) == {"rate_per_s", "saturated"}
            continue
        assert all(math.isfinite(v) and v >= 0 for k, v in p.items() if k not in ("saturated", "rate_per_s")), p
        assert p["kv_cache_utilization"] <= 1.0
    assert predict(S8B, w, 3.0 * cap["saturation_rate_per_replica"])["saturated"]


def test_predict_at_the_row_limit_is_the_row():
    # the lowest load reaching the rate is the capacity row's own operating point (chat's rate falls and rises
    # again with the load near its limit: the hit rate drops)
    w = load_workload(ROOT / "examples" / "workload-chat.json")
    cap = replica_capacity(S8B, w)
    p = predict(S8B, w, cap["max_request_rate_per_replica"])
    assert not p["saturated"]
    for k in ("ttft_p99_s", "tpot_p99_s", "batch"):
        assert p[k] == pytest.approx(cap[k], rel=1e-6)


def test_predict_summarize_at_one_and_a_half_times_its_limit_is_saturated():
    # hand check: summarize on one H100, vLLM defaults: max rate 5.90 req/s, saturation 7.08 req/s;
    # 1.5 x 5.90 = 8.85 > 7.08: the queue does not drain
    w = load_workload(ROOT / "examples" / "workload-summarize.json")
    cap = replica_capacity(S8B, w)
    assert 1.5 * cap["max_request_rate_per_replica"] > cap["saturation_rate_per_replica"]
    assert predict(S8B, w, 1.5 * cap["max_request_rate_per_replica"])["saturated"]
