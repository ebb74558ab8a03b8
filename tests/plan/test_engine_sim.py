"""The simulator follows the serving engine: optimistic admission with preemption (vLLM LIFO recompute, SGLang
fewest-generated retraction, swap), TensorRT-LLM's reservation at admission, batch limits, chunking, prefix
caching; conservation of requests and tokens."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from roofline.model.engine import make_setup
from roofline.model.memory import MemorySettings, engine_settings
from roofline.model.step_time import StepTimeModel
from roofline.plan.simulate import SimSettings, simulate, simulate_replica
from roofline.specs.engines import load_engine
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import LengthDist, Requests, Workload

H100 = load_gpu("h100-sxm")
S8B = make_setup(H100, load_model("llama-3.1-8b"))
SM = StepTimeModel(S8B, 8192 + 256)
W1 = Workload(1.0, LengthDist("fixed", value=16), LengthDist("fixed", value=40))


def _requests(prompts, outs, starts=None) -> Requests:
    n = len(prompts)
    return Requests(np.arange(n), np.zeros(n, int), np.array(prompts), np.zeros(n, int), np.array(outs),
                    np.zeros(n) if starts is None else np.array(starts, float), np.zeros(n))


def _run(prompts, outs, pages, starts=None, sm=SM, **ms):
    cfg = SimSettings(page_tokens=ms.get("page_tokens", 16), chunked_prefill=ms.get("chunked_prefill", True),
                      memory=MemorySettings(**ms))
    return simulate_replica(sm, _requests(prompts, outs, starts), np.arange(len(prompts)), W1, cfg, 1.0, pages,
                            (0.0, 1.0))


def test_vllm_preempts_last_admitted_first_and_recomputes():
    # 5 pages of 16 tokens; three 16-token prompts (1 page each) admitted at once, 40 tokens out each.
    # Decode step 1: all three contexts are 16 = a page boundary: 3 pages needed, 2 free -> preempt request 2
    # (the last admitted; 16 tokens to recompute). At context 32 requests 0 and 1 need 2 pages, 1 free ->
    # preempt request 1 (32 tokens). Request 0 finishes (4 pages); 1 (33 tokens, 3 pages) and 2 (17, 2 pages)
    # come back; 15 steps later both cross a boundary with no page free -> preempt 2 again (17 + 15 = 32).
    t = _run([16, 16, 16], [40, 40, 40], 5, preemption="recompute")
    assert t.preemptions == 3 and t.preempt_recompute_tokens == 16 + 32 + 32
    assert t.done_s[0] < t.done_s[1] < t.done_s[2]  # LIFO: the first admitted is never a victim
    assert t.first_token_s[0] == t.first_token_s[1] == t.first_token_s[2]  # one prefill step for all three
    assert t.generated_tokens == 120 and t.peak_pages == 5


def test_trtllm_reserves_and_queues_never_preempts():
    # prompt + output = 56 tokens = 4 of the 5 pages: one request at a time, the next one's first token
    # comes after the previous one is done
    t = _run([16, 16, 16], [40, 40, 40], 5, preemption="none")
    assert t.preemptions == 0 and t.preempt_recompute_tokens == 0 and t.peak_pages == 4
    assert t.first_token_s[1] >= t.done_s[0] and t.first_token_s[2] >= t.done_s[1]
    assert t.generated_tokens == 120


def test_sglang_retracts_fewest_generated_longest_prompt():
    # page_tokens 1 (SGLang): 100 pages; prompts 30, 40, 20 prefilled in one step, then all decode: tokens
    # in cache 90 + 3 per step, so step 4 (93 + 3 + 3 + 3 = 102 > 100 after 3 steps) has no room: equal
    # generated tokens, so the longest prompt (request 1, 40 + 3 = 43 in cache) is retracted, to the back
    t = _run([30, 40, 20], [20, 20, 20], 100, page_tokens=1, engine="sglang", schedule="prefill_first",
             preemption_victim="fewest_generated")
    assert t.preemptions == 1 and t.preempt_recompute_tokens == 43
    assert t.done_s[1] > max(t.done_s[0], t.done_s[2])
    assert t.generated_tokens == 60


def test_swap_moves_kv_over_pcie_instead_of_recomputing():
    t = _run([16, 16, 16], [40, 40, 40], 5, preemption="swap")
    assert t.preemptions > 0 and t.preempt_recompute_tokens == 0 and t.generated_tokens == 120
    # every swapped token goes out and comes back: an even multiple of a token's KV bytes (131,072 for
    # Llama-3.1-8B bf16: 2 x 32 layers x 8 KV heads x 128 x 2 bytes)
    assert t.swapped_bytes > 0 and t.swapped_bytes % (2 * 131072) == 0
    assert np.isfinite(t.done_s).all()


class _Recorder:
    """A step-time model that records each step's tokens."""

    def __init__(self, sm):
        self.setup, self.decode_times, self.tokens, self._sm = sm.setup, sm.decode_times, [], sm

    def time(self, T, S, pairs, kv):
        self.tokens.append((T, S))
        return self._sm.time(T, S, pairs, kv)


@pytest.mark.parametrize("schedule", ["mixed", "prefill_first"])
def test_chunked_prefill_token_budget_per_step(schedule):
    rec = _Recorder(SM)
    prompts = [700, 300, 1200, 50, 900, 400]
    t = _run(prompts, [30] * 6, 10_000, starts=[0, 0, 0.001, 0.002, 0.003, 0.004], sm=rec,
             max_batched_tokens=512, schedule=schedule)
    assert max(T for T, _ in rec.tokens) <= 512
    # every prompt token goes through prefill once: the steps' prefill tokens sum to the prompts
    if schedule == "prefill_first":
        assert sum(T for T, _ in rec.tokens) == sum(prompts)
    assert t.generated_tokens == 6 * 30 and np.isfinite(t.done_s).all()


def test_memory_tight_vllm_preempts_trtllm_queues():
    w = Workload(40.0, LengthDist("fixed", value=512), LengthDist("fixed", value=512))
    ms = MemorySettings(memory_utilization=0.22)  # ~4.5e9 B of KV: ~34k tokens, ~33 requests at full length
    vllm = simulate(S8B, w, 600, seed=0, cfg=SimSettings(memory=ms))
    trt = simulate(S8B, w, 600, seed=0, cfg=SimSettings(memory=MemorySettings(memory_utilization=0.22,
                                                                               preemption="none")))
    assert vllm["preemptions"] > 0 and vllm["preemption_recompute_tokens"] > 0
    assert trt["preemptions"] == 0 and trt["admission"] == "reserved"
    for res in (vllm, trt):
        assert res["generated_output_tokens"] == res["requested_output_tokens"] == 600 * 512
        assert res["rejected_requests"] == 0
    assert vllm["batch_size"]["mean"] > trt["batch_size"]["mean"]  # optimism runs more sequences at once
    assert trt["queue_length"]["mean"] > vllm["queue_length"]["mean"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(1, 120), st.floats(0, 0.5)), min_size=1, max_size=12),
       st.integers(16, 40), st.sampled_from(["recompute", "swap", "none"]), st.sampled_from(["vllm", "sglang"]),
       st.booleans(), st.sampled_from([1, 16]))
def test_conservation(reqs, pages, preemption, engine, chunked, page_tokens):
    prompts, outs, starts = (list(x) for x in zip(*reqs))
    t = _run(prompts, outs, pages * (16 // page_tokens), starts=sorted(starts), preemption=preemption,
             engine=engine, chunked_prefill=chunked, page_tokens=page_tokens, max_batched_tokens=256)
    done = np.asarray(t.done_s)
    fits = np.array([-(-(p + o) // page_tokens) <= pages * (16 // page_tokens) for p, o in zip(prompts, outs)])
    assert np.isfinite(done[fits]).all() and np.isnan(done[~fits]).all()  # every request that fits finishes
    assert t.generated_tokens == sum(o for o, f in zip(outs, fits) if f)
    assert t.recompute_tokens >= t.preempt_recompute_tokens >= 0
    assert (t.preemptions == 0) if preemption == "none" else True
    first = np.asarray(t.first_token_s)
    assert (first[fits] <= done[fits]).all()
    assert t.peak_pages <= t.total_pages


def test_same_seed_same_result_with_preemption():
    w = Workload(40.0, LengthDist("lognormal", median=400, sigma=0.8, low=16, high=4000),
                 LengthDist("lognormal", median=400, sigma=0.8, low=1, high=2000))
    cfg = SimSettings(memory=MemorySettings(memory_utilization=0.22))
    a, b = simulate(S8B, w, 500, seed=3, cfg=cfg), simulate(S8B, w, 500, seed=3, cfg=cfg)
    assert a == b and a["preemptions"] > 0


def test_prefix_caching_follows_the_engine():
    w = Workload(2.0, LengthDist("fixed", value=500), LengthDist("fixed", value=50), turns=3, think_time_s=1.0)
    on = simulate(S8B, w, 300, seed=0)
    off = simulate(S8B, w, 300, seed=0, cfg=SimSettings(memory=MemorySettings(prefix_caching=False)))
    assert on["cache_hit_rate"] == 1.0 and off["cache_hit_rate"] == 0.0
    assert off["recompute_tokens"] > 0 and on["recompute_tokens"] == 0


def test_engine_files_drive_the_simulator():
    w = Workload(20.0, LengthDist("fixed", value=1000), LengthDist("fixed", value=200))
    for name, admission in (("vllm", "optimistic"), ("sglang", "conservative"), ("trtllm", "reserved")):
        ms = engine_settings(load_engine(name), H100)
        res = simulate(S8B, w, 300, seed=0, cfg=SimSettings(ms.chunked_prefill, ms.page_tokens, memory=ms))
        assert res["admission"] == admission and res["preemption_mode"] == ms.preemption
        assert res["generated_output_tokens"] == res["requested_output_tokens"] == 300 * 200
