"""Parallel layouts (TP x PP x EP x attention-DP): the single-GPU numbers are unchanged, work is conserved
across GPUs, memory per GPU follows the layout, and pipelines compose stage times as documented."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from roofline.errors import RooflineError
from roofline.model import memory as mem
from roofline.model.analysis import Scenario, analyze
from roofline.model.engine import check_layout, make_setup, total_time_s
from roofline.model.phases import decode_step, micro_batches, phase_time_s, pipeline_bubble_fraction, prefill
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

H100, H200 = load_gpu("h100-sxm"), load_gpu("h200-sxm")
L70, L405, MIXTRAL, DSV3 = (load_model(n) for n in ("llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "deepseek-v3"))
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NEW_KEYS = {"pp", "ep", "dp_attention", "ep_imbalance", "gpus", "pipeline_bubble_fraction", "communication",
            "link", "allreduce_latency_s",  # removed: collectives are timed by the communication model
            "collectives", "verdict"}  # verdict: added by the CLI, not the library


def _same(a, b, path=""):
    """a and b equal everywhere except the keys the layout work added (or renamed: collectives)."""
    if isinstance(a, dict):
        for k in set(a) | set(b):
            if k in NEW_KEYS:
                continue
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def test_one_gpu_is_exactly_as_before():
    """PP = EP = DP = 1 on one GPU reproduces the output captured before layouts existed (tests/golden)."""
    from roofline.model.memory import engine_settings
    from roofline.specs.engines import load_engine
    sc = Scenario(memory=engine_settings(load_engine("vllm"), H100))  # the CLI's default engine on this GPU
    r = json.loads(json.dumps(analyze(H100, load_model("llama-3.1-8b"), sc), default=float))
    _same(json.loads((GOLDEN / "analyze-default.json").read_text()), r)
    assert r["config"]["gpus"] == 1 and r["pipeline_bubble_fraction"] == 0.0
    assert r["prefill"]["communication"] == [] and r["decode"]["communication"] == []


def _matrix_flops(ops, units=("tensor", "attention")):
    return sum(float(np.asarray(o.flops)) for o in ops if o.unit in units)


def test_tp_and_pp_conserve_matrix_flops():
    """Matmul + attention FLOPs over all GPUs equal one GPU's: per micro-batch every TP rank does 1/tp of
    each layer's matrix work, the micro-batch passes every stage once, and m micro-batches make the batch."""
    one = make_setup(H200, L70)
    lay = make_setup(H200, L70, tp=4, pp=2)
    batch, prompt = 8, 512
    m = float(micro_batches(lay, batch))  # min(pp=2, batch=8) = 2
    assert m == 2.0
    single = _matrix_flops(prefill(one, batch, prompt))
    assert _matrix_flops(prefill(lay, batch, prompt)) * 4 * m == pytest.approx(single, rel=1e-12)


def test_expert_parallelism_conserves_expert_flops():
    """Mixtral, tp 2 x dp_attention 4 (ep 8): each GPU runs T*dp*k/ep routed rows of whole experts; times
    ep GPUs that is every token's k experts, as on one GPU (uniform routing)."""
    one = make_setup(H100, MIXTRAL)
    lay = make_setup(H100, MIXTRAL, tp=2, ep=8, dp=4)
    batch = 64
    f1 = [o for o in prefill(one, batch, 256) if o.name == "moe_experts"][0]
    f8 = [o for o in prefill(lay, batch, 256) if o.name == "moe_experts"][0]
    assert float(f8.flops) * 8 == pytest.approx(float(f1.flops), rel=1e-12)
    # attention is split over 4 DP ranks x 2 TP ranks
    a1 = _matrix_flops([o for o in prefill(one, batch, 256) if o.name.startswith("attn")])
    a8 = _matrix_flops([o for o in prefill(lay, batch, 256) if o.name.startswith("attn")])
    assert a8 * 8 == pytest.approx(a1, rel=1e-12)


def test_expert_parallel_layout_has_all_to_all_and_no_moe_allreduce():
    lay = make_setup(H100, MIXTRAL, tp=2, ep=8, dp=4)
    ops = {o.name: o for o in decode_step(lay, 64, 1024)}
    assert float(ops["moe_dispatch"].time_s) > 0 and float(ops["moe_combine"].time_s) > 0
    assert float(ops["allreduce_moe"].time_s) == 0.0
    # dispatch buffer per GPU: 64/4 = 16 tokens per DP rank, / tp 2 = 8 tokens, x k=2 x h=4096 x 2 B = 131,072 B
    assert float(ops["moe_dispatch"].cost.comm_bytes) == 8 * 2 * 4096 * 2


def test_weights_per_gpu_follow_the_layout():
    """Llama-3.1-405B bf16, tp 8 x pp 2: the fullest stage holds ceil(126/2) = 63 of 126 layers and the
    larger of embedding / LM head (equal here: 128256 x 16384 each), all / 8."""
    s = make_setup(H200, L405, tp=8, pp=2)
    br = L405.parameter_breakdown()
    emb = br["embedding"]
    layers = L405.parameters() - br["embedding"] - br["lm_head"]
    expect = (layers * 2.0 * 63 / 126 + emb * 2.0) / 8
    assert float(mem.weights_bytes(s)) == pytest.approx(expect, rel=1e-12)


def test_expert_parallel_weights():
    """DeepSeek-V3 fp8, tp 8 x dp 1, ep 8: routed experts / 8 (whole experts), the rest / 8 too."""
    s_ep = make_setup(H200, DSV3, tp=8, ep=8, weights="fp8", activations="fp8")
    s_tp = make_setup(H200, DSV3, tp=8, weights="fp8", activations="fp8")
    assert float(mem.weights_bytes(s_ep)) == pytest.approx(float(mem.weights_bytes(s_tp)), rel=1e-12)
    # with attention DP 8 x tp 1 the attention and dense parts are replicated on every GPU: more per GPU
    s_dp = make_setup(H200, DSV3, tp=1, ep=8, dp=8, weights="fp8", activations="fp8")
    assert float(mem.weights_bytes(s_dp)) > float(mem.weights_bytes(s_ep))


def test_attention_dp_multiplies_replica_kv_capacity():
    """Each attention-DP rank keeps its own sequences' KV: a replica holds dp x one rank's tokens."""
    s = make_setup(H200, DSV3, tp=1, ep=8, dp=8, weights="fp8", activations="fp8")
    ms = mem.MemorySettings()
    per_rank = np.floor(max(float(mem.kv_cache_capacity_bytes(s, ms)), 0) / float(mem.kv_cache_bytes_per_token(s)))
    assert float(mem.kv_cache_capacity_tokens(s, ms)) == per_rank * 8


def test_pipeline_time_composition():
    """Batch 1 on pp 4: one micro-batch, TPOT = the pass through all stages (latency); no bubble formula
    beyond (pp-1)/(m+pp-1) = 3/4. Batch 64 on pp 4: m = 4 micro-batches, TPOT = max(latency, 4 x stage)."""
    s = make_setup(H200, L405, tp=8, pp=4, weights="fp8", activations="fp8")
    ops1 = decode_step(s, 1, 2048)
    assert float(phase_time_s(s, ops1, 1, "decode")) == pytest.approx(float(total_time_s(ops1)))
    assert float(pipeline_bubble_fraction(s, 1)) == pytest.approx(3 / 4)
    ops64 = decode_step(s, 64, 2048)
    t64 = float(phase_time_s(s, ops64, 64, "decode"))
    assert t64 >= float(total_time_s(ops64))
    send = [o for o in ops64 if o.name == "pp_send"][0]
    assert send.count * float(send.cost.kernels) == 3  # pp - 1 stage boundaries
    assert float(pipeline_bubble_fraction(s, 64)) == pytest.approx(3 / 7)


def test_pp_one_equals_no_pipeline():
    a = analyze(H200, L70, Scenario(batch=16, tp=4))
    b = analyze(H200, L70, Scenario(batch=16, tp=4, pp=1))
    assert a["tpot_s"] == b["tpot_s"] and a["ttft_s"] == b["ttft_s"]


def test_405b_and_deepseek_plan_on_h200_nodes():
    """Too big for one GPU, they plan on one or two 8-GPU nodes without an error."""
    r = analyze(H200, L405, Scenario(batch=8, tp=8, weights="fp8", activations="fp8", kv="fp8"))
    assert r["memory"]["fits"] and r["config"]["gpus"] == 8
    r = analyze(H200, L405, Scenario(batch=8, tp=8, pp=2))
    assert r["memory"]["fits"] and r["config"]["gpus"] == 16
    assert any(c["name"] == "pp_send" and c["link"] == "network" for c in r["decode"]["communication"])
    r = analyze(H200, DSV3, Scenario(batch=64, tp=8, ep=8, weights="fp8", activations="fp8", kv="fp8"))
    assert r["memory"]["fits"]
    names = {c["name"] for c in r["decode"]["communication"]}
    assert {"moe_dispatch", "moe_combine", "allreduce_attn"} <= names


@pytest.mark.parametrize("kw,param", [({"tp": 3}, "tp"), ({"pp": 0}, "pp"), ({"pp": 200}, "pp"),
                                      ({"ep": 4}, "ep"), ({"dp": 2}, "dp_attention"),
                                      ({"ep": 2, "tp": 2, "model": "llama-3.1-70b"}, "ep"),
                                      ({"ep_imbalance": 0.5}, "ep_imbalance")])
def test_bad_layouts_name_the_parameter(kw, param):
    kw = dict(kw)
    model = load_model(kw.pop("model", "mixtral-8x7b"))
    args = {"tp": 1, "pp": 1, "ep": 1, "dp": 1, "ep_imbalance": 1.0, **kw}
    with pytest.raises(RooflineError) as e:
        check_layout(model, **args)
    assert e.value.param == param


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([1, 2, 4, 8]), st.integers(1, 8))
def test_more_gpus_never_raise_weight_bytes_per_gpu(tp, pp):
    """Doubling TP or adding a stage never raises the weights one GPU holds."""
    w = float(mem.weights_bytes(make_setup(H100, L70, tp=tp, pp=pp)))
    if tp < 8:
        assert float(mem.weights_bytes(make_setup(H100, L70, tp=2 * tp, pp=pp))) <= w
    assert float(mem.weights_bytes(make_setup(H100, L70, tp=tp, pp=pp + 1))) <= w
