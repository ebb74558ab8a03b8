"""The serving engine's fixed costs of a pass (roofline.model.phases.with_fixed_costs): kernels launched outside a
CUDA graph pay the engine's eager launch cost, a step pays its host overhead once; decode batches above the
largest captured graph run eagerly; --no-cuda-graphs changes the numbers."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from roofline.cli.app import app
from roofline.model.analysis import Scenario, analyze
from roofline.model.engine import PassCosts, make_setup, time_pass, total_time_s
from roofline.model.memory import engine_settings
from roofline.model.phases import ENGINE_STEP, decode_step, eager_launched, fixed_costs_s, make_pass, prefill
from roofline.specs.engines import load_engine
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

A100, H100 = load_gpu("a100-sxm-80gb"), load_gpu("h100-sxm")
LLAMA2 = load_model("llama-2-7b")


def kernels(ops) -> float:
    """Kernels a pass launches on one GPU (collectives over one rank launch none)."""
    return float(sum(o.count * np.asarray(o.cost.kernels, dtype=float) for o in ops
                     if o.name != ENGINE_STEP and o.unit != "link"))


def bare_prefill(batch, prompt):
    s = make_setup(A100, LLAMA2)
    return time_pass(s, make_pass(s, batch, prompt, 0.0))


def test_eager_prefill_pays_every_kernel_and_the_step_once():
    costs = PassCosts(cuda_graphs=True, graph_max_tokens=512, prefill_launch="eager", eager_launch_s=5e-6,
                      step_overhead_s=2e-4)
    s = make_setup(A100, LLAMA2, costs=costs)
    bare = bare_prefill(1, 128)
    ops = prefill(s, 1, 128)
    assert ops[-1].name == ENGINE_STEP and ops[-1].unit == "host" and float(ops[-1].time_s) == 2e-4
    n = kernels(bare)
    assert n == 387  # 12 kernels x 32 layers + embedding, final norm, LM head (roofline.model.ops)
    # 387 kernels x 5 us + 0.2 ms = 1.935 ms + 0.2 ms = 2.135 ms more than the bare GPU
    assert float(total_time_s(ops) - total_time_s(bare)) == pytest.approx(387 * 5e-6 + 2e-4, rel=1e-12)
    assert float(fixed_costs_s(s, 1, 128)) == pytest.approx(2.135e-3, rel=1e-12)


def test_decode_inside_a_graph_pays_only_the_step_and_above_the_largest_graph_runs_eagerly():
    costs = PassCosts(cuda_graphs=True, graph_max_tokens=512, prefill_launch="eager", eager_launch_s=5e-6,
                      step_overhead_s=1e-4)
    s = make_setup(A100, LLAMA2, costs=costs)
    # batch 8: 8 tokens <= 512, replayed from a graph: only the step overhead, 0.1 ms
    assert float(fixed_costs_s(s, 8, 1)) == pytest.approx(1e-4, rel=1e-12)
    # batch 600 > 512: eager, 387 x 5 us + 0.1 ms = 2.035 ms
    assert float(fixed_costs_s(s, 600, 1)) == pytest.approx(387 * 5e-6 + 1e-4, rel=1e-12)
    # graphs off: batch 8 is eager too
    off = make_setup(A100, LLAMA2, costs=PassCosts(False, 512, "eager", 5e-6, 1e-4))
    assert float(fixed_costs_s(off, 8, 1)) == pytest.approx(387 * 5e-6 + 1e-4, rel=1e-12)


def test_piecewise_prefill_runs_attention_eagerly_and_the_rest_from_graphs_up_to_the_largest():
    s = make_setup(A100, LLAMA2, costs=PassCosts(True, 512, "piecewise", 4e-6, 0.0))
    p = make_pass(s, 1, 128, 0.0)
    assert bool(eager_launched(s, p, "attention")) and not bool(eager_launched(s, p, "tensor"))
    attention = sum(o.count * float(np.asarray(o.cost.kernels)) for o in time_pass(s, p) if o.unit == "attention")
    assert float(fixed_costs_s(s, 1, 128)) == pytest.approx(attention * 4e-6, rel=1e-12)
    # 2048 tokens > 512: the whole pass eager
    assert float(fixed_costs_s(s, 1, 2048)) == pytest.approx(387 * 4e-6, rel=1e-12)
    assert not bool(eager_launched(make_setup(A100, LLAMA2), p, "attention"))  # no engine costs: nothing eager


def test_cuda_graphs_off_changes_analyze_tpot_by_the_eager_launches():
    vllm = load_engine("vllm")
    on = analyze(H100, LLAMA2, Scenario(batch=1, memory=engine_settings(vllm, H100)))
    off = analyze(H100, LLAMA2, Scenario(batch=1, memory=engine_settings(vllm, H100, cuda_graphs=False)))
    # vLLM: 3.9 us per eager kernel; a decode step launches 387 kernels: 1.51 ms slower per step
    assert off["tpot_s"] - on["tpot_s"] == pytest.approx(387 * 3.9e-6, rel=1e-9)
    assert off["engine"]["cuda_graphs"] is False and on["engine"]["eager_launch_s"] == 3.9e-6


def test_cli_no_cuda_graphs_changes_the_json():
    def tpot(*flags):
        r = CliRunner().invoke(app, ["analyze", "--model", "llama-2-7b", "--format", "json", *flags])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)["tpot_s"]
    assert tpot("--no-cuda-graphs") > tpot() == tpot("--cuda-graphs")


def test_engine_files_carry_sourced_fixed_costs():
    for name in ("vllm", "trtllm", "sglang"):
        spec = load_engine(name)
        for fig in ("eager_launch_s", "step_overhead_s"):
            assert 0 <= spec.value(fig) < 1e-3
            assert "http" in spec.sources[fig]


@pytest.mark.parametrize("model,gpu,tp,prec,measured_s", [
    ("llama-2-7b", "a100-sxm-80gb", 1, "fp16", 0.016), ("llama-2-70b", "a100-sxm-80gb", 4, "fp16", 0.047),
    ("llama-2-7b", "h100-sxm", 1, "fp8", 0.007), ("llama-2-70b", "h100-sxm", 4, "fp8", 0.026)])
def test_short_prompt_ttft_moves_toward_the_published_batch_1_figures(model, gpu, tp, prec, measured_s):
    """TensorRT-LLM v0.5 batch-1, 128-token first-token latencies (roofline/measure/data/published_engines.json
    and published_measurements.json): the bare GPU is 31-40% optimistic; the engine's fixed costs (eager context
    step) close part of the gap and never overshoot."""
    g, m = load_gpu(gpu), load_model(model)
    sc = Scenario(batch=1, prompt=128, output=1, tp=tp, weights=prec, activations=prec, kv=prec)
    bare = analyze(g, m, sc)  # default settings: vLLM's costs; compare with none at all
    s = make_setup(g, m, tp, prec, prec, prec)
    bare_ttft = float(total_time_s(prefill(s, 1, 128)))
    trt = analyze(g, m, Scenario(**{**sc.__dict__, "memory": engine_settings(load_engine("trtllm"), g, tp)}))
    assert abs(trt["ttft_s"] / measured_s - 1) < abs(bare_ttft / measured_s - 1)
    assert bare_ttft < trt["ttft_s"] < measured_s and bare["ttft_s"] > bare_ttft


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 2048), new=st.integers(1, 8192), graphs=st.booleans(),
       launch=st.sampled_from(["graph", "piecewise", "eager"]))
def test_fixed_costs_are_non_negative_and_graphs_never_cost_more(batch, new, graphs, launch):
    on = make_setup(A100, LLAMA2, costs=PassCosts(graphs, 512, launch, 3.9e-6, 2.7e-4))
    off = make_setup(A100, LLAMA2, costs=PassCosts(False, 512, launch, 3.9e-6, 2.7e-4))
    a, b = float(fixed_costs_s(on, batch, new)), float(fixed_costs_s(off, batch, new))
    assert 2.7e-4 - 1e-15 <= a <= b + 1e-15
    assert b == pytest.approx(387 * 3.9e-6 + 2.7e-4, rel=1e-9)  # without graphs every kernel is eager
