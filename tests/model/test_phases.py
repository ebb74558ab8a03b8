"""Prefill/decode aggregates, closed-form sums and the critical batch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from roofline.model.engine import make_setup, total_time_s
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.model.phases import (_pairs_and_reads, _sum_max_affine, compute_and_memory_s, critical_batch,
                             decode_step, decode_time_sum, prefill)


def test_causal_pairs_without_window():
    pairs, reads = _pairs_and_reads(4.0, 0.0, np.inf)
    assert pairs == 10  # 1 + 2 + 3 + 4
    assert reads == 4


def test_pairs_with_window():
    pairs, reads = _pairs_and_reads(4.0, 0.0, 2.0)
    assert pairs == 7  # min(u, 2) for u = 1..4: 1 + 2 + 2 + 2
    assert reads == 4
    pairs, reads = _pairs_and_reads(1.0, 10.0, 4.0)  # decode at context 10, window 4
    assert (pairs, reads) == (4, 4)


@given(n=st.integers(1, 60), c0=st.floats(0, 10), c1=st.floats(0, 10), m0=st.floats(0, 10), m1=st.floats(0, 10))
def test_sum_max_affine_matches_a_loop(n, c0, c1, m0, m1):
    k = np.arange(n)
    span = max(n - 1, 1)
    c, m = c0 + (c1 - c0) * k / span, m0 + (m1 - m0) * k / span
    assert float(_sum_max_affine(float(n), c0, c1, m0, m1)) == pytest.approx(np.maximum(c, m).sum(), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mistral-7b", "gemma-2-9b", "mixtral-8x7b"])
def test_decode_sum_equals_the_step_by_step_sum(model):
    # mistral/gemma have sliding windows (4096): the range 4000..4199 crosses the breakpoint
    s = make_setup(load_gpu("h100-sxm"), load_model(model))
    prompt, output = 4000, 200
    steps = total_time_s(decode_step(s, 8, np.arange(prompt, prompt + output - 1, dtype=float)))
    assert float(decode_time_sum(s, 8, prompt, output)) == pytest.approx(float(np.sum(steps)), rel=1e-9)


S = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"))


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 4096), c=st.integers(0, 100_000), db=st.integers(1, 512), dc=st.integers(1, 10_000))
def test_time_non_decreasing_in_batch_and_context(b, c, db, dc):
    t = lambda bb, cc: float(total_time_s(decode_step(S, bb, cc)))
    assert t(b + db, c) >= t(b, c)
    assert t(b, c + dc) >= t(b, c)
    p = lambda bb, cc: float(total_time_s(prefill(S, bb, cc)))
    assert p(b, c + 1 + dc) >= p(b, c + 1)


@pytest.mark.parametrize("context", [0, 512, 8192])
def test_decode_intensity_rises_with_batch_and_crosses_the_ridge_once(context):
    batches = np.arange(1, 4097, dtype=float)
    ops = decode_step(S, batches, float(context))
    flops = sum(o.flops for o in ops)
    nbytes = sum(o.bytes for o in ops)
    ai = flops / nbytes
    assert np.all(np.diff(ai) > 0)
    ridge = S.gpu.ridge_point_flops_per_byte("bf16")
    assert np.count_nonzero(np.diff((ai >= ridge).astype(int))) <= 1


def test_critical_batch_is_the_first_compute_bound_batch():
    s = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"), weights="fp8", activations="fp8", kv="fp8")
    b = int(critical_batch(s, 0))
    c, m = compute_and_memory_s(decode_step(s, float(b), 0.0))
    c1, m1 = compute_and_memory_s(decode_step(s, float(b - 1), 0.0))
    assert c >= m and c1 < m1
    # fp8 weights: 2 FLOPs per weight byte per sequence, so compute-bound near batch = ridge / 2, with the ridge
    # scaled by the efficiencies: 591 FLOP/B x 0.55 (fp8 compute) / 0.80 (memory) = 406 -> batch ~203, a little
    # more because norms, the LM head and the KV write add bytes that do not amortise
    assert 200 < b < 350


def test_critical_batch_never_when_kv_reads_dominate():
    # bf16 KV at 32k context: each sequence reads 4 GiB of cache per step at ~8 FLOP/B (GQA 4:1), far below the ridge
    assert int(critical_batch(S, 32_768)) == -1


def test_flops_conserved_across_tp():
    total = None
    m = load_model("llama-2-7b")
    for tp in (1, 2, 4, 8):
        s = make_setup(load_gpu("h100-sxm"), m, tp=tp)
        f = sum(float(o.flops) for o in decode_step(s, 16, 1000) if o.unit in ("tensor", "attention")) * tp
        total = total or f
        assert f == pytest.approx(total, rel=1e-12)
