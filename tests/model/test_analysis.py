"""analyze(): memory model, latencies and the JSON contract."""
import pytest

from roofline.model.analysis import Scenario, analyze
from roofline.model.engine import make_setup
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.model.memory import MemorySettings, kv_cache_bytes_per_sequence, kv_cache_bytes_per_token, weights_bytes
from roofline.specs.models import load_model

H100 = load_gpu("h100-sxm")


def test_llama2_7b_kv_bytes_per_token():
    s = make_setup(H100, load_model("llama-2-7b"), kv="fp16")
    assert kv_cache_bytes_per_token(s) == 524_288  # 2 (K,V) x 32 layers x 4096 x 2 bytes


def test_gqa_and_fp8_kv():
    s = make_setup(H100, load_model("llama-3.1-8b"), kv="fp8")
    assert kv_cache_bytes_per_token(s) == 65_536  # 2 x 32 layers x 8 KV heads x 128 x 1 byte


def test_sliding_window_caps_the_sequence():
    # mistral-7b v0.1: all 32 layers use a 4096 window; 2 x 8 x 128 x 2 bytes = 4096 B per token per layer
    s = make_setup(H100, load_model("mistral-7b"))
    assert kv_cache_bytes_per_sequence(s, 10_000) == 32 * 4096 * 4096


def test_weights_bytes_w4():
    m = load_model("llama-2-7b")
    s = make_setup(H100, m, weights="int4")
    emb = 2 * 32000 * 4096  # untied embedding + LM head stay 16-bit
    assert weights_bytes(s) == pytest.approx((m.parameters() - emb) * 0.5 + emb * 2)


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


def test_weights_that_do_not_fit_report_the_smallest_tp():
    r = analyze(H100, load_model("llama-3.1-70b"), Scenario())
    assert r["memory"]["fits"] is False
    assert r["memory"]["min_tp_that_fits"] == 2  # 141 GB of bf16 weights: 2 x 80 GB GPUs hold them


def test_kv_capacity_budget():
    m = load_model("llama-3.1-8b")
    r = analyze(H100, m, Scenario(memory=MemorySettings(memory_utilization=0.5)))["memory"]
    expect = 0.5 * H100.memory_bytes - r["weights_bytes"] - r["activation_bytes"] - r["runtime_reserve_bytes"]
    assert r["kv_cache_capacity_bytes"] == pytest.approx(expect)
    assert r["kv_cache_capacity_tokens"] == int(expect // r["kv_cache_bytes_per_token"])


@pytest.mark.parametrize("kw, msg", [({"batch": 0}, "--batch"), ({"prompt": 0}, "--prompt"),
                                     ({"context": -1}, "--context"), ({"tp": 3}, "does not divide"),
                                     ({"weights": "fp7"}, "weights precision"),
                                     ({"memory": MemorySettings(memory_utilization=1.5)}, "memory-utilization")])
def test_bad_scenarios(kw, msg):
    with pytest.raises(RooflineError, match=msg):
        analyze(H100, load_model("llama-3.1-8b"), Scenario(**kw))


def test_context_beyond_max_positions_is_a_warning():
    r = analyze(H100, load_model("llama-2-7b"), Scenario(prompt=4000, output=200))
    assert r["warnings"] and "4096" in r["warnings"][0]


@pytest.mark.parametrize("model", ["deepseek-v3", "mixtral-8x7b", "gpt-j-6b", "gemma-2-9b", "qwen2.5-72b",
                                   "llama-3.1-405b", "pythia-6.9b", "qwen3-8b", "llama-3.2-1b"])
def test_every_family_analyzes(model):
    r = analyze(load_gpu("b200"), load_model(model), Scenario(batch=8, tp=8, weights="fp8", activations="fp8", kv="fp8"))
    assert r["tpot_s"] > 0 and r["ttft_s"] > r["tpot_s"]


def test_tp_beyond_the_nvlink_bridge_goes_over_pcie():
    # H100 PCIe: an NVLink bridge joins pairs (300 GB/s per direction); a TP group of 4 talks over PCIe (64 GB/s)
    from roofline.model.engine import make_setup as mk
    g = load_gpu("h100-pcie")
    m = load_model("llama-3.1-70b")
    assert float(mk(g, m, tp=2).link_bytes_per_s) == g.scaleup_bandwidth_bytes_per_s
    assert float(mk(g, m, tp=4).link_bytes_per_s) == g.pcie_bandwidth_bytes_per_s
