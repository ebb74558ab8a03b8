"""Discrete-event simulation: consistency with the analytic model, Little's law, determinism, the KV cache."""
import numpy as np
import pytest

from roofline.capacity import predict, replica_capacity
from roofline.engine import make_setup, total_time_s
from roofline.hardware import load_gpu
from roofline.memory import MemorySettings
from roofline.models import load_model
from roofline.phases import decode_time_sum, prefill
from roofline.simulate import SimSettings, simulate
from roofline.workload import SLO, LengthDist, Workload

S8B = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"))
CHAT = Workload(10.0, LengthDist("lognormal", median=1000, sigma=0.7, low=16, high=8192),
                LengthDist("lognormal", median=250, sigma=0.6, low=1, high=2048),
                slo=SLO(ttft_p99_s=2.0, tpot_p99_s=0.05))


@pytest.mark.parametrize("model, tp", [("llama-3.1-8b", 1), ("gemma-2-9b", 1), ("llama-3.1-70b", 4)])
def test_near_zero_load_latency_is_analytic(model, tp):
    s = make_setup(load_gpu("h100-sxm"), load_model(model), tp)
    w = Workload(1e-4, LengthDist("fixed", value=1500), LengthDist("fixed", value=300))
    res = simulate(s, w, 40, seed=3)  # 10,000 s apart on average: the median request runs alone
    ttft = float(total_time_s(prefill(s, 1, 1500)))
    tpot = float(decode_time_sum(s, 1, 1500, 300)) / 299  # 299 decode steps after the prefill's first token
    assert res["ttft_s"]["p50"] == pytest.approx(ttft, rel=1e-6)
    assert res["tpot_s"]["p50"] == pytest.approx(tpot, rel=1e-6)
    assert res["e2e_latency_s"]["p50"] == pytest.approx(ttft + 299 * tpot, rel=1e-6)


def test_same_seed_same_result_other_seed_differs():
    a = simulate(S8B, CHAT, 2000, replicas=2, seed=5)
    b = simulate(S8B, CHAT, 2000, replicas=2, seed=5)
    c = simulate(S8B, CHAT, 2000, replicas=2, seed=6)
    assert a == b and a["ttft_s"] != c["ttft_s"]


@pytest.mark.parametrize("frac", [0.3, 0.7])
def test_below_saturation_matches_capacity(frac):
    cap = replica_capacity(S8B, CHAT)
    rate = frac * cap["max_request_rate_per_replica"]
    res = simulate(S8B, CHAT, 15_000, seed=1, rate_per_s=rate)
    pr = predict(S8B, CHAT, rate)
    assert res["throughput_output_tokens_per_s"] == pytest.approx(pr["throughput_output_tokens_per_s"], rel=0.10)
    assert res["tpot_s"]["mean"] == pytest.approx(pr["tpot_s"], rel=0.10)
    assert res["batch_size"]["mean"] == pytest.approx(pr["batch"], rel=0.10)


def test_saturation_throughput_matches_capacity():
    cap = replica_capacity(S8B, CHAT)
    res = simulate(S8B, CHAT, 15_000, seed=1, rate_per_s=1.5 * cap["saturation_rate_per_replica"])
    sat_tokens = cap["saturation_rate_per_replica"] * cap["output_tokens_per_s_per_replica"] \
        / cap["max_request_rate_per_replica"]
    assert res["throughput_output_tokens_per_s"] == pytest.approx(sat_tokens, rel=0.10)
    assert res["queue_length"]["max"] > 100  # overloaded: the admission queue grows


@pytest.mark.parametrize("frac", [0.2, 0.8])
def test_littles_law(frac):
    rate = frac * replica_capacity(S8B, CHAT)["max_request_rate_per_replica"] * 2
    ll = simulate(S8B, CHAT, 12_000, replicas=2, seed=2, rate_per_s=rate)["littles_law"]
    assert ll["mean_in_flight"] == pytest.approx(ll["rate_x_latency"], rel=0.05)


def test_multi_turn_eviction_and_recompute():
    # 1 conversation/s x 20 s think x ~5,000 tokens = ~100k idle tokens: fits 447k, not 0.3 x memory
    w = Workload(4.0, LengthDist("fixed", value=2000), LengthDist("fixed", value=100), turns=4, think_time_s=20.0)
    roomy = simulate(S8B, w, 4000, seed=0)
    tight = simulate(S8B, w, 4000, seed=0, cfg=SimSettings(memory=MemorySettings(memory_utilization=0.3)))
    assert roomy["cache_hit_rate"] == 1.0 and roomy["recompute_tokens"] == 0
    assert tight["cache_hit_rate"] < 0.9 and tight["evictions"] > 0 and tight["recompute_tokens"] > 0
    assert tight["ttft_s"]["mean"] > roomy["ttft_s"]["mean"]
    off = simulate(S8B, Workload(4.0, w.prompt, w.output, turns=4, think_time_s=20.0, prefix_reuse=False), 4000)
    assert off["cache_hit_rate"] == 0.0


def test_without_chunked_prefill_and_oversized_requests():
    res = simulate(S8B, CHAT, 3000, seed=0, cfg=SimSettings(chunked_prefill=False))
    assert res["rejected_requests"] == 0 and res["tpot_s"]["mean"] > 0
    huge = Workload(1.0, LengthDist("fixed", value=10_000_000), LengthDist("fixed", value=10))
    assert simulate(S8B, huge, 5)["rejected_requests"] == 5
