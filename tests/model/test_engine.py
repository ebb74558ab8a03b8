"""The one roofline time formula (`op_seconds`), a whole pass (`time_pass`), TP all-reduces and the checks that
guard a Setup (roofline/model/engine.py). Numbers are chosen round so every expectation can be checked by hand.

    time_op = max(flops / (peak x compute_eff), bytes / (bandwidth x memory_eff)) + kernels x kernel_overhead_s
    all-reduce = allreduce_latency_s + 2 (t-1)/t x bytes / (link per direction x link_eff),  0 when t = 1
"""
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.model.comm import collective_time, group_link

from roofline.errors import RooflineError
from roofline.model.efficiency import Efficiency
from roofline.model.engine import (
    OpTime,
    attention_peak,
    check_tp,
    compute_peak,
    make_setup,
    op_seconds,
    time_pass,
    total_time_s,
)
from roofline.model.ops import OpCost
from roofline.model.phases import make_pass
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

H100 = load_gpu("h100-sxm")
# A GPU with round figures: 1 TB/s of HBM, 1 PFLOP/s bf16, 2 PFLOP/s fp8, 100 TFLOP/s fp32,
# 400 GB/s per direction inside an 8-GPU scale-up domain, 50 GB/s of PCIe beyond it.
ROUND = replace(H100, name="round", memory_bandwidth_bytes_per_s=1e12,
                peak_flops_per_s={"fp32": 1e14, "bf16": 1e15, "fp16": 1e15, "fp8": 2e15},
                scaleup_bandwidth_bytes_per_s=4e11, pcie_bandwidth_bytes_per_s=5e10, scaleup_domain_gpus=8)
EFF = Efficiency(compute=0.5, compute_8bit=0.25, vector=0.5, memory=0.8, kernel_overhead_s=5e-6)
LLAMA8 = load_model("llama-3.1-8b")  # 32 layers, 32 heads, 8 KV heads, head_dim 128, hidden 4096, vocab 128256


def _time(unit, flops, bytes_, kernels, peak, bw, eff, a_bytes=2.0):
    """The operator's time and bound as OpTime reports them (max of the two sides, plus the overhead)."""
    comp, mem, over = op_seconds(unit, flops, bytes_, kernels, peak, bw, eff, a_bytes)
    t = OpTime("x", unit, 1, OpCost(flops, bytes_, 0.0), np.asarray(comp), np.asarray(mem), np.asarray(over))
    return float(t.time_s), str(t.bound)


# ------------------------------------------------------------------------------------------ op_seconds

def test_memory_bound_op_is_bytes_over_bandwidth_plus_launches():
    comp, mem, over = op_seconds("tensor", 1e9, 1e9, 2, 1e15, 1e12, EFF)
    assert comp == pytest.approx(2e-6)  # 1e9 FLOP / (1e15 x 0.5)
    assert mem == pytest.approx(1.25e-3)  # 1e9 B / (1e12 B/s x 0.8)
    assert over == pytest.approx(1e-5)  # 2 kernels x 5 us
    t, bound = _time("tensor", 1e9, 1e9, 2, 1e15, 1e12, EFF)
    assert t == pytest.approx(1.26e-3) and bound == "memory"  # 1.25 ms + 10 us


def test_compute_bound_op_is_flops_over_peak_plus_launches():
    t, bound = _time("tensor", 1e12, 1e8, 1, 1e15, 1e12, EFF)
    # compute 1e12 / (1e15 x 0.5) = 2 ms > memory 1e8 / 0.8e12 = 0.125 ms; + 1 x 5 us
    assert t == pytest.approx(2.005e-3) and bound == "compute"


def test_the_max_switches_at_the_effective_ridge_point():
    # ridge with efficiencies = (1e15 x 0.5) / (1e12 x 0.8) = 625 FLOP/byte; at 1 MB of traffic:
    # 624 MFLOP -> memory-bound (1.25 us of bytes), 626 MFLOP -> compute-bound (1.252 us of FLOPs)
    below, b_below = _time("tensor", 624e6, 1e6, 0, 1e15, 1e12, EFF)
    at, b_at = _time("tensor", 625e6, 1e6, 0, 1e15, 1e12, EFF)
    above, b_above = _time("tensor", 626e6, 1e6, 0, 1e15, 1e12, EFF)
    assert (b_below, b_at, b_above) == ("memory", "compute", "compute")  # a tie counts as compute-bound
    assert below == pytest.approx(1.25e-6) and at == pytest.approx(1.25e-6)  # 1e6 / 8e11 both
    assert above == pytest.approx(1.252e-6)  # 626e6 / 5e14


def test_8bit_activations_use_the_8bit_fraction():
    # a_bytes = 1: compute fraction 0.5 x (0.25 / 0.5) = 0.25: 1e12 FLOP / (2e15 x 0.25) = 2 ms
    comp8, _, _ = op_seconds("tensor", 1e12, 1.0, 0, 2e15, 1e12, EFF, a_bytes=1.0)
    comp16, _, _ = op_seconds("tensor", 1e12, 1.0, 0, 2e15, 1e12, EFF, a_bytes=2.0)
    assert comp8 == pytest.approx(2e-3) and comp16 == pytest.approx(1e-3)  # 16-bit: 1e12 / (2e15 x 0.5)


def test_vector_ops_use_the_vector_fraction_and_attention_the_compute_fraction():
    eff = replace(EFF, vector=0.1)
    comp, _, _ = op_seconds("vector", 1e9, 1.0, 1, 1e14, 1e12, eff)
    assert comp == pytest.approx(1e-4)  # 1e9 / (1e14 x 0.1)
    comp, mem, over = op_seconds("attention", 1e9, 1e9, 3, 1e15, 1e12, eff)
    assert comp == pytest.approx(2e-6)  # 1e9 / (1e15 x 0.5): attention reaches the GEMM fraction by default
    assert mem == pytest.approx(1.25e-3) and over == pytest.approx(1.5e-5)  # 3 x 5 us


@settings(max_examples=200, deadline=None)
@given(unit=st.sampled_from(["tensor", "attention", "vector"]),
       flops=st.floats(0, 1e15), more_flops=st.floats(0, 1e15),
       bytes_=st.floats(0, 1e12), more_bytes=st.floats(0, 1e12), kernels=st.integers(0, 10))
def test_op_time_is_monotone_in_flops_and_bytes(unit, flops, more_flops, bytes_, more_bytes, kernels):
    base, _ = _time(unit, flops, bytes_, kernels, 1e15, 1e12, EFF)
    assert _time(unit, flops + more_flops, bytes_, kernels, 1e15, 1e12, EFF)[0] >= base
    assert _time(unit, flops, bytes_ + more_bytes, kernels, 1e15, 1e12, EFF)[0] >= base
    # and never below either bare side
    assert base >= flops / 1e15 and base >= bytes_ / 1e12


# ------------------------------------------------------------------------------------------ time_pass

def test_time_pass_of_one_decode_step_by_hand():
    s = make_setup(ROUND, LLAMA8, efficiency=Efficiency())  # bf16, default efficiencies 0.75 / 0.8 / 4 us
    ops = {o.name: o for o in time_pass(s, make_pass(s, 1, 1.0, 0.0))}
    head = ops["lm_head"]  # once per model; one token x 4096 -> 128256 logits in fp32
    assert head.count == 1 and float(head.flops) == 2 * 4096 * 128256  # 1,050,673,152
    # bytes: weights 4096 x 128256 x 2 + input 4096 x 2 + fp32 logits 128256 x 4 = 1,051,194,368
    assert float(head.bytes) == 1_051_194_368
    # memory 1,051,194,368 / (1e12 x 0.8) = 1.31399296 ms > compute 1.05e9 / 7.5e14 = 1.4 us; + 4 us
    assert float(head.time_s) == pytest.approx(1.31399296e-3 + 4e-6) and head.bound == "memory"
    o = ops["o_proj"]  # per layer, 32 of them: 4096 x 4096 weights
    assert o.count == 32
    # one layer: (4096 x 4096 x 2 + 4096 x 2 + 4096 x 2) B = 33,570,816 B / 8e11 = 41.96352 us, + 4 us
    assert float(o.time_s) == pytest.approx(32 * (41.96352e-6 + 4e-6))
    assert float(total_time_s(list(ops.values()))) == pytest.approx(sum(float(x.time_s) for x in ops.values()))


def test_a_pass_vectorizes_over_batches():
    s = make_setup(ROUND, LLAMA8)
    batched = time_pass(s, make_pass(s, np.array([1.0, 64.0]), 1.0, 1000.0))
    single = [time_pass(s, make_pass(s, b, 1.0, 1000.0)) for b in (1.0, 64.0)]
    for i in range(2):
        assert float(total_time_s(batched)[i]) == pytest.approx(float(total_time_s(single[i])))


# ------------------------------------------------------------------------------------------ TP collectives

def _allreduce_s(tp, tokens=1000, gpu=None):
    s = make_setup(gpu or ROUND, LLAMA8, tp=tp)
    ops = {o.name: o for o in time_pass(s, make_pass(s, 1, float(tokens), 0.0))}
    return ops["allreduce_attn"], ops["allreduce_mlp"]


def test_allreduce_time_is_the_communication_model_per_layer():
    """The engine times each TP all-reduce with roofline.model.comm: 1000 tokens x 4096 x 2 B = 8,192,000 B
    per GPU (the nccl-tests size S), once per layer (x 32), on the link the 4-GPU group crosses."""
    attn, mlp = _allreduce_s(4, gpu=load_gpu("h100-sxm"))
    one = collective_time(load_gpu("h100-sxm"), "all_reduce", 8_192_000.0, 4)
    assert float(attn.cost.comm_bytes) == 8_192_000.0
    assert float(attn.time_s) == pytest.approx(32 * float(one.time_s)) and float(mlp.time_s) == float(attn.time_s)
    assert str(attn.comm.link) == "nvlink" and attn.bound == "interconnect"
    assert float(attn.compute_s) == 0.0 and float(attn.memory_s) == 0.0


def test_allreduce_beyond_the_node_goes_over_the_network():
    attn, _ = _allreduce_s(16, gpu=load_gpu("h100-sxm"))  # 16 GPUs > 8 per node
    assert str(attn.comm.link) == "network"
    inside, _ = _allreduce_s(8, gpu=load_gpu("h100-sxm"))
    assert float(attn.time_s) > float(inside.time_s)


def test_no_allreduce_at_tp_1():
    attn, mlp = _allreduce_s(1)
    assert float(attn.time_s) == 0.0 and float(mlp.time_s) == 0.0


def test_tp_beyond_the_nvlink_bridge_goes_over_pcie():
    # H100 PCIe: an NVLink bridge joins pairs; a TP group of 4 talks over PCIe
    g = load_gpu("h100-pcie")
    assert str(group_link(g, 2)) == "nvlink" and str(group_link(g, 4)) == "pcie"
    a2, _ = _allreduce_s(2, gpu=g)
    a4, _ = _allreduce_s(4, gpu=g)
    assert str(a2.comm.link) == "nvlink" and str(a4.comm.link) == "pcie"


# ------------------------------------------------------------------------------------------ checks and peaks

# the message names the argument (tp) and the value; the CLI shows it as its --tp flag
@pytest.mark.parametrize("tp, msg", [(0, "tp must be >= 1, got 0"), (-2, "tp must be >= 1, got -2"),
                                     (3, "tp[ =]3 does not divide the 32 attention heads of llama-3.1-8b"),
                                     (64, "tp[ =]64 does not divide the 32 attention heads")])
def test_check_tp_rejects_bad_degrees(tp, msg):
    with pytest.raises(RooflineError, match=msg) as e:
        check_tp(LLAMA8, tp)
    assert e.value.exit_code == 2 and e.value.param == "tp"
    assert e.value.hint == "valid TP degrees: 1, 2, 4, 8, 16, 32"  # the divisors of 32 heads up to 64


@pytest.mark.parametrize("tp", [1, 2, 4, 8, 16, 32])
def test_check_tp_accepts_divisors_of_the_heads(tp):
    check_tp(LLAMA8, tp)


def test_make_setup_checks_tp():
    with pytest.raises(RooflineError, match="does not divide"):
        make_setup(H100, LLAMA8, tp=3)


def test_a_compute_precision_the_gpu_lacks_is_an_error_with_a_hint():
    a100 = load_gpu("a100-sxm-80gb")  # Ampere: no fp8 tensor cores
    with pytest.raises(RooflineError, match="no fp8 matrix throughput") as e:
        compute_peak(a100, "fp8", "fp8")
    assert e.value.exit_code == 2 and re.search(r"weight-only quantisation is .*weights.*fp8.*activations.*bf16",
                                                e.value.hint)
    assert compute_peak(a100, "bf16", "fp8") == a100.peak_flops("bf16")  # weight-only fp8 is fine


def test_attention_runs_at_the_16bit_peak_under_8bit_activations():
    assert attention_peak(ROUND, "fp8") == 1e15  # bf16, not the 2e15 fp8 peak
    assert attention_peak(ROUND, "bf16") == 1e15
    assert make_setup(ROUND, LLAMA8, activations="fp8").attention_rate_flops_per_s == 1e15
