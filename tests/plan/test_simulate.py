"""Discrete-event simulation: consistency with the analytic model, Little's law, determinism, the KV cache."""
import numpy as np
import pytest

from roofline.plan.capacity import predict, replica_capacity
from roofline.model.engine import make_setup, total_time_s
from roofline.specs.hardware import load_gpu
from roofline.model.memory import MemorySettings
from roofline.specs.models import load_model
from roofline.model.phases import attention_terms, decode_time_sum, prefill
from roofline.model.step_time import with_engine_costs
from roofline.plan.simulate import DoesNotFit, SimSettings, _window_terms, simulate
from roofline.specs.workload import SLO, LengthDist, Workload

S8B = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"))
CHAT = Workload(10.0, LengthDist("lognormal", median=1000, sigma=0.7, low=16, high=8192),
                LengthDist("lognormal", median=250, sigma=0.6, low=1, high=2048),
                slo=SLO(ttft_p99_s=2.0, tpot_p99_s=0.05))


@pytest.mark.parametrize("model, tp", [("llama-3.1-8b", 1), ("gemma-2-9b", 1), ("llama-3.1-70b", 4)])
def test_near_zero_load_latency_is_analytic(model, tp):
    s = make_setup(load_gpu("h100-sxm"), load_model(model), tp)
    w = Workload(1e-4, LengthDist("fixed", value=1500), LengthDist("fixed", value=300))
    res = simulate(s, w, 40, seed=3)  # 10,000 s apart on average: the median request runs alone
    s = with_engine_costs(s, MemorySettings())  # the simulator pays the default engine's fixed costs, as analyze
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
    # requests larger than the whole KV cache (447k tokens) are rejected, with their conversation's later turns
    mixed = Workload(1.0, LengthDist("uniform", low=1000, high=900_000), LengthDist("fixed", value=10), turns=2)
    res = simulate(S8B, mixed, 50)
    assert 0 < res["rejected_requests"] < 50 and res["offered_rate_per_s"] > res["littles_law"]["arrival_rate_per_s"]
    # none fits: an error, not a run that rejects everything
    huge = Workload(1.0, LengthDist("fixed", value=10_000_000), LengthDist("fixed", value=10))
    with pytest.raises(DoesNotFit, match="KV cache holds 447,"):
        simulate(S8B, huge, 5)
    s405 = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-405b"))
    with pytest.raises(DoesNotFit, match="no memory for a KV cache"):
        simulate(s405, CHAT, 5)


def test_exact_request_count_and_offered_rate():
    w = Workload(6.0, LengthDist("fixed", value=500), LengthDist("fixed", value=50), turns=3, think_time_s=1.0)
    res = simulate(S8B, w, 2000, seed=0)
    assert res["requests"] == 2000 and res["rejected_requests"] == 0
    assert res["offered_rate_per_s"] == pytest.approx(6.0, rel=0.1)


def test_daily_curve_starts_at_the_peak_hour():
    curve = tuple([0.25] * 24)
    curve = curve[:15] + (1.0,) + curve[16:]
    w = Workload(4.0, LengthDist("fixed", value=500), LengthDist("fixed", value=50), daily_curve=curve)
    peak = simulate(S8B, w, 3000, seed=0)
    assert peak["start_hour"] == 15 and peak["hours_simulated"] == [15] and peak["daily_curve_multipliers"] == [1.0]
    assert peak["offered_rate_per_s"] == pytest.approx(4.0, rel=0.1)
    night = simulate(S8B, w, 5000, seed=0, start_hour=0)  # ~5,000 s at 1 req/s: hours 0 and 1
    assert night["hours_simulated"] == [0, 1] and night["offered_rate_per_s"] == pytest.approx(1.0, rel=0.1)
    assert simulate(S8B, Workload(4.0, w.prompt, w.output), 100)["start_hour"] is None


@pytest.mark.parametrize("model", ["gemma-2-9b", "llama-3.1-8b"])
def test_window_terms_match_phases(model):
    """The simulator's scalar copy of the attention pairs/reads formula agrees with phases.attention_terms."""
    m = load_model(model)
    terms, _, _ = _window_terms(m)
    c = np.array([1, 1, 7, 512, 4096, 4096, 9000, 3])
    x = np.array([0, 5000, 4090, 3600, 0, 100, 20000, 4094])
    pairs, reads = attention_terms(m, c, x)
    got = np.array([terms(float(ci), float(xi)) for ci, xi in zip(c, x)])
    np.testing.assert_allclose(got[:, 0], pairs, rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], reads, rtol=1e-12)


def test_an_overload_far_past_its_arrivals_keeps_few_samples():
    """The sample interval is sized on the arrivals (here 2,000 requests at 1e7/s: 0.2 ms, 1 us apart), but the
    run drains for ~100 s: it used to keep ~1e8 samples (4.7 GB, 13 s; a CPU profile ran out of memory). Past
    MAX_SAMPLES the samples are thinned and the interval doubled, the time axis still spanning the run."""
    from roofline.plan import simulate as sim
    res = simulate(S8B, CHAT, 2000, seed=0, rate_per_s=1e7)
    ts = res["timeseries"]
    assert sim.MAX_SAMPLES // 2 <= len(ts["time_s"]) <= sim.MAX_SAMPLES
    assert ts["time_s"][-1] <= res["duration_s"] < ts["time_s"][-1] + 2 * (ts["time_s"][1] - ts["time_s"][0])
    assert res["queue_length"]["max"] > 1000 and 0 < res["batch_size"]["mean"] <= res["batch_size"]["max"]


def test_thinned_samples_agree_with_every_sample(monkeypatch):
    """Replicas thinned at different intervals are brought to the coarsest; the means barely move, and the
    thinned samples are a subset of the full ones (the same times, every other one dropped), so their maximum
    is at most the full one's and close to it."""
    from roofline.plan import simulate as sim
    thin = simulate(S8B, CHAT, 1500, replicas=3, seed=0, rate_per_s=1e4)
    monkeypatch.setattr(sim, "MAX_SAMPLES", 10 ** 9)
    full = simulate(S8B, CHAT, 1500, replicas=3, seed=0, rate_per_s=1e4)
    assert len(thin["timeseries"]["time_s"]) < len(full["timeseries"]["time_s"])
    for k in ("batch_size", "queue_length", "kv_cache_utilization"):
        assert thin[k]["mean"] == pytest.approx(full[k]["mean"], rel=0.01)
        assert 0.98 * full[k]["max"] <= thin[k]["max"] <= full[k]["max"]
    assert thin["ttft_s"] == full["ttft_s"]
