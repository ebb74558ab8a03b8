"""analyze(): memory model, latencies and the JSON contract."""
import pytest

from roofline.model.analysis import Scenario, analyze
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.model.memory import MemorySettings
from roofline.specs.models import load_model

H100 = load_gpu("h100-sxm")


def test_h100_fp8_ridge_is_591():
    r = analyze(H100, load_model("llama-3.1-8b"), Scenario(weights="fp8", activations="fp8", kv="fp8"))
    assert round(r["ridge_point_flops_per_byte"]) == 591  # 1979e12 / 3.35e12 = 590.7


def test_contract_keys():
    r = analyze(H100, load_model("llama-3.1-8b"), Scenario(batch=8))
    for k in ("ridge_point_flops_per_byte", "ttft_s", "tpot_s", "e2e_latency_s", "output_tokens_per_s",
              "critical_batch", "prefill", "decode", "memory"):
        assert k in r
    for k in ("weights_bytes", "kv_cache_bytes_per_token", "kv_cache_capacity_tokens", "max_batch",
              "kv_cache_utilization"):
        assert k in r["memory"]
    for ph in ("prefill", "decode"):
        for k in ("flops", "bytes", "arithmetic_intensity_flops_per_byte", "bound", "time_s"):
            assert k in r[ph]
        assert r[ph]["bound"] in ("memory", "compute")


def test_latency_identities():
    r = analyze(H100, load_model("llama-3.1-8b"), Scenario(batch=4, prompt=512, output=128))
    assert r["e2e_latency_s"] == pytest.approx(r["ttft_s"] + 127 * r["mean_tpot_s"])
    assert r["output_tokens_per_s"] == pytest.approx(4 * 128 / r["e2e_latency_s"])
    assert r["prefill"]["bound"] == "compute" and r["decode"]["bound"] == "memory"


def test_small_batch_decode_is_about_weights_over_bandwidth():
    # batch 1: a decode step reads all ~16 GB of bf16 weights; at 3.35 TB/s x 0.8 that is ~6 ms, plus launches
    r = analyze(H100, load_model("llama-3.1-8b"), Scenario(batch=1, prompt=128, output=2))
    ideal = 8.03e9 * 2 / 3.35e12
    assert ideal < r["tpot_s"] < 1.6 * ideal


@pytest.mark.parametrize("kw, msg, param", [
    ({"batch": 0}, "batch must be >= 1, got 0", "batch"), ({"prompt": 0}, "prompt must be >= 1, got 0", "prompt"),
    ({"context": -1}, "context must be >= 0, got -1", "context"),
    ({"tp": 3}, "tp=3 does not divide the 32 attention heads of llama-3.1-8b", "tp"),
    ({"weights": "fp7"}, "unknown weights precision 'fp7'", None),
    ({"memory": MemorySettings(memory_utilization=1.5)}, "memory_utilization must be in (0, 1], got 1.5",
     "memory_utilization")])
def test_bad_scenarios_name_the_argument(kw, msg, param):
    """The library speaks of its arguments (the CLI shows them as flags: see tests/test_errors.py)."""
    with pytest.raises(RooflineError) as e:
        analyze(H100, load_model("llama-3.1-8b"), Scenario(**kw))
    assert (e.value.message, e.value.param) == (msg, param)


def test_context_beyond_max_positions_is_a_warning():
    r = analyze(H100, load_model("llama-2-7b"), Scenario(prompt=4000, output=200))
    assert r["warnings"] and "4096" in r["warnings"][0]


@pytest.mark.parametrize("model", ["deepseek-v3", "mixtral-8x7b", "gpt-j-6b", "gemma-2-9b", "qwen2.5-72b",
                                   "llama-3.1-405b", "pythia-6.9b", "qwen3-8b", "llama-3.2-1b"])
def test_every_family_analyzes(model):
    r = analyze(load_gpu("b200"), load_model(model), Scenario(batch=8, tp=8, weights="fp8", activations="fp8", kv="fp8"))
    assert r["tpot_s"] > 0 and r["ttft_s"] > r["tpot_s"]
