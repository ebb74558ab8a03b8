"""What sits in HBM (roofline/model/memory.py): weights, KV cache per token and per sequence, activation
workspace, the budget, KV capacity, max batch, and the smallest TP degree that fits. Hand arithmetic in the
comments; H100 SXM: memory_bytes = 85,520,809,984 (what the runtime reports for "80 GB")."""
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.model.analysis import Scenario, analyze, min_tp_that_fits
from roofline.model.engine import make_setup
from roofline.model.memory import (
    MemorySettings,
    activation_bytes,
    budget_bytes,
    check_memory_utilization,
    kv_cache_bytes_per_sequence,
    kv_cache_bytes_per_token,
    kv_cache_capacity_bytes,
    kv_cache_capacity_tokens,
    kv_cache_utilization,
    max_batch,
    weights_bytes,
)
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

H100 = load_gpu("h100-sxm")
LLAMA8 = load_model("llama-3.1-8b")  # 8,030,261,248 parameters; embedding and LM head 525,336,576 each
GiB = 2**30


# ------------------------------------------------------------------------------------------ KV per token

def test_llama31_8b_kv_bytes_per_token_bf16():
    s = make_setup(H100, LLAMA8, kv="bf16")
    assert kv_cache_bytes_per_token(s) == 131_072  # 2 (K,V) x 32 layers x 8 KV heads x 128 head dim x 2 bytes


def test_llama2_7b_kv_bytes_per_token():
    s = make_setup(H100, load_model("llama-2-7b"), kv="fp16")
    assert kv_cache_bytes_per_token(s) == 524_288  # 2 (K,V) x 32 layers x 4096 x 2 bytes


def test_gqa_and_fp8_kv():
    s = make_setup(H100, LLAMA8, kv="fp8")
    assert kv_cache_bytes_per_token(s) == 65_536  # 2 x 32 layers x 8 KV heads x 128 x 1 byte


def test_kv_heads_shard_over_tp_until_each_gpu_holds_one():
    assert kv_cache_bytes_per_token(make_setup(H100, LLAMA8, tp=2)) == 65_536  # 131,072 / 2: 4 KV heads per GPU
    # tp 16 > 8 KV heads: each GPU keeps one whole KV head: 2 x 32 x 1 x 128 x 2 = 16,384
    assert kv_cache_bytes_per_token(make_setup(H100, LLAMA8, tp=16)) == 16_384


def test_mla_caches_the_latent_on_every_rank():
    # deepseek-v3: (kv_lora_rank 512 + rope 64) = 576 elements x 61 layers x 2 bytes = 70,272, whatever the TP
    d = load_model("deepseek-v3")
    for tp in (1, 8):
        assert kv_cache_bytes_per_token(make_setup(load_gpu("b200"), d, tp=tp)) == 70_272


def test_sliding_window_caps_the_sequence():
    # mistral-7b v0.1: all 32 layers use a 4096 window; 2 x 8 x 128 x 2 bytes = 4096 B per token per layer
    s = make_setup(H100, load_model("mistral-7b"))
    assert kv_cache_bytes_per_sequence(s, 10_000) == 32 * 4096 * 4096
    assert kv_cache_bytes_per_sequence(s, 1000) == 32 * 1000 * 4096  # below the window: every token kept


# ------------------------------------------------------------------------------------------ weights, activations

def test_weights_bytes_bf16_fp8_and_tp():
    assert weights_bytes(make_setup(H100, LLAMA8)) == 16_060_522_496  # 8,030,261,248 x 2 bytes
    assert weights_bytes(make_setup(H100, LLAMA8, tp=2)) == 8_030_261_248  # half per GPU
    # fp8: linear weights 1 byte, embedding + LM head stay 16-bit:
    # (8,030,261,248 - 2 x 525,336,576) x 1 + 2 x 525,336,576 x 2 = 6,979,588,096 + 2,101,346,304
    assert weights_bytes(make_setup(H100, LLAMA8, weights="fp8")) == 9_080_934_400


def test_weights_bytes_w4():
    m = load_model("llama-2-7b")
    s = make_setup(H100, m, weights="int4")
    emb = 2 * 32000 * 4096  # untied embedding + LM head stay 16-bit
    assert weights_bytes(s) == pytest.approx((m.parameters() - emb) * 0.5 + emb * 2)


def test_activation_workspace_by_hand():
    s = make_setup(H100, LLAMA8)
    # per token: residual + copies 4 x 4096 + q 32 x 128 + k,v 8 x (128 + 128) + MLP 3 x 14336
    #          = 16,384 + 4,096 + 2,048 + 43,008 = 65,536 elements; x 8192 tokens x 2 bytes = 1 GiB
    # fp32 logits of 256 sequences: 256 x 128,256 x 4 = 131,334,144
    assert activation_bytes(s, MemorySettings()) == GiB + 131_334_144


# ------------------------------------------------------------------------------------------ budget, capacity

# 0.9 x 85,520,809,984 = 76,968,728,985.6 budget; minus weights 16,060,522,496, activations 1,205,075,968 and the
# 1 GiB runtime reserve 1,073,741,824 leaves 58,629,388,697.6 bytes of KV cache
KV8 = 58_629_388_697.6


def test_budget_and_kv_capacity_by_hand():
    s, ms = make_setup(H100, LLAMA8), MemorySettings()
    assert budget_bytes(H100.memory_bytes, ms) == pytest.approx(76_968_728_985.6)
    assert kv_cache_capacity_bytes(s, ms) == pytest.approx(KV8)
    assert kv_cache_capacity_tokens(s, ms) == 447_306  # floor(KV8 / 131,072) = floor(447,306.07)
    assert max_batch(s, ms, 4096) == 109  # one sequence of 4096 tokens = 512 MiB; floor(KV8 / 536,870,912 = 109.2)
    # 8 sequences of 4096 tokens = 4 GiB = 4,294,967,296 B of the KV8 bytes
    assert kv_cache_utilization(s, ms, 8, 4096) == pytest.approx(4_294_967_296 / KV8)


def test_kv_capacity_budget():
    r = analyze(H100, LLAMA8, Scenario(memory=MemorySettings(memory_utilization=0.5)))["memory"]
    expect = 0.5 * H100.memory_bytes - r["weights_bytes"] - r["activation_bytes"] - r["runtime_reserve_bytes"]
    assert r["kv_cache_capacity_bytes"] == pytest.approx(expect)
    assert r["kv_cache_capacity_tokens"] == int(expect // r["kv_cache_bytes_per_token"])


def test_weights_that_do_not_fit_leave_no_kv_cache():
    s, ms = make_setup(H100, load_model("llama-3.1-70b")), MemorySettings()
    # 70,553,706,496 x 2 = 141 GB of weights > the 77 GB budget: negative room, clamped to nothing
    assert kv_cache_capacity_bytes(s, ms) < 0
    assert kv_cache_capacity_tokens(s, ms) == 0 and max_batch(s, ms, 100) == 0
    assert kv_cache_utilization(s, ms, 1, 100) == np.inf


@pytest.mark.parametrize("util", [0.0, -0.1, 1.5, 2.0])
def test_memory_utilization_must_be_a_fraction(util):
    with pytest.raises(RooflineError, match=r"memory[-_]utilization must be in \(0, 1\], got") as e:
        check_memory_utilization(util)
    assert e.value.exit_code == 2 and e.value.param == "memory_utilization" and "0.9" in e.value.hint


@pytest.mark.parametrize("util", [0.01, 0.9, 1.0])
def test_memory_utilization_accepts_fractions(util):
    assert check_memory_utilization(util) == util


# ------------------------------------------------------------------------------------------ smallest TP

def test_weights_that_do_not_fit_report_the_smallest_tp():
    r = analyze(H100, load_model("llama-3.1-70b"), Scenario())
    assert r["memory"]["fits"] is False
    assert r["memory"]["min_tp_that_fits"] == 2  # 141 GB of bf16 weights: 2 x 80 GB GPUs hold them


def test_smallest_tp_for_405b():
    # 405,853,388,800 x 2 B = 811.7 GB: / 8 = 101.5 GB > the 77 GB budget, / 16 = 50.7 GB fits
    assert min_tp_that_fits(H100, load_model("llama-3.1-405b"), Scenario()) == 16
    assert min_tp_that_fits(H100, LLAMA8, Scenario()) == 1


def test_no_tp_fits_a_tiny_gpu():
    tiny = replace(H100, memory_bytes=1e9)  # 0.9 GB budget < 1 GiB of runtime reserve alone
    assert min_tp_that_fits(tiny, LLAMA8, Scenario()) is None


# ------------------------------------------------------------------------------------------ invariants

_MODELS = ["llama-3.1-8b", "llama-3.1-70b", "mistral-7b", "deepseek-v3", "mixtral-8x7b"]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(_MODELS), util=st.floats(0.01, 1.0), gb=st.floats(1.0, 500.0),
       context=st.integers(0, 200_000))
def test_kv_capacity_is_never_negative(name, util, gb, context):
    s = make_setup(replace(H100, memory_bytes=gb * 1e9), load_model(name))
    ms = MemorySettings(memory_utilization=util)
    assert kv_cache_capacity_tokens(s, ms) >= 0 and max_batch(s, ms, context) >= 0


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(_MODELS), gb=st.floats(1.0, 400.0), more=st.floats(0.0, 400.0),
       context=st.integers(1, 100_000), longer=st.integers(0, 100_000))
def test_more_memory_never_lowers_max_batch_and_longer_contexts_never_raise_it(name, gb, more, context, longer):
    m, ms = load_model(name), MemorySettings()
    small = make_setup(replace(H100, memory_bytes=gb * 1e9), m)
    big = make_setup(replace(H100, memory_bytes=(gb + more) * 1e9), m)
    assert max_batch(small, ms, context) <= max_batch(big, ms, context)
    assert max_batch(big, ms, context + longer) <= max_batch(big, ms, context)
