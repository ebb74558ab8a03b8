"""The fast step-time model (`StepTimeModel`, used by simulate) and the capacity step carry the serving engine's
fixed costs of a pass exactly as `analyze` does (phases.with_fixed_costs): a decode step of batch b at context
c is analyze's TPOT, a one-prompt prefill step is analyze's TTFT, and the simulator's TPOT of a lone request is
analyze's mean TPOT."""
import numpy as np
import pytest

import roofline
from roofline.model import memory as mem
from roofline.model.engine import make_setup
from roofline.model.step_time import StepTimeModel, exact_step_time_s, with_engine_costs
from roofline.plan.capacity import _time
from roofline.plan.simulate import SimSettings, simulate
from roofline.specs.engines import load_engine
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import LengthDist, Workload

H100, LLAMA = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
CASES = [("vllm", None), ("sglang", None), ("trtllm", None), ("vllm", False), ("trtllm", False)]


def engine_setup(engine: str, cuda_graphs):
    ms = mem.engine_settings(load_engine(engine), H100, cuda_graphs=cuda_graphs)
    return with_engine_costs(make_setup(H100, LLAMA), ms), ms


@pytest.mark.parametrize("engine,cuda_graphs", CASES)
@pytest.mark.parametrize("batch,context", [(1, 2048), (32, 4096), (600, 512)])
def test_decode_step_is_analyze_tpot(engine, cuda_graphs, batch, context):
    """Decode step: T = S = b, pairs = kv = b (c + 1) (each new token attends to c cached keys and itself).
    b = 600 is above every engine's largest captured graph, so that step launches eagerly."""
    s, _ = engine_setup(engine, cuda_graphs)
    a = roofline.analyze("h100-sxm", "llama-3.1-8b", batch=batch, prompt=context - 1, output=2, context=context,
                         engine=engine, cuda_graphs=cuda_graphs)
    x = batch * (context + 1.0)
    sm = StepTimeModel(s, 1024)
    assert sm.time(batch, batch, x, x) == pytest.approx(a.tpot_s, rel=0.01)
    assert sm.decode_time(batch, x) == pytest.approx(a.tpot_s, rel=0.01)
    assert float(_time(s, batch, batch, x, x)) == pytest.approx(a.tpot_s, rel=1e-9)


@pytest.mark.parametrize("engine,cuda_graphs", CASES)
@pytest.mark.parametrize("prompt", [128, 2048])
def test_prefill_step_is_analyze_ttft(engine, cuda_graphs, prompt):
    """One prompt of P tokens: T = P, S = 1, pairs = P (P + 1) / 2, kv = P. The step is a prefill step, so the
    engine's prefill launch rule applies, within the table (P = 128) and past it (P = 2048, the exact model)."""
    s, _ = engine_setup(engine, cuda_graphs)
    a = roofline.analyze("h100-sxm", "llama-3.1-8b", batch=1, prompt=prompt, output=2, engine=engine,
                         cuda_graphs=cuda_graphs)
    sm = StepTimeModel(s, 1024)
    assert sm.time(prompt, 1, prompt * (prompt + 1) / 2.0, float(prompt)) == pytest.approx(a.ttft_s, rel=0.03)


def test_fixed_costs_are_in_the_step_time():
    """The same step with the engine's costs is slower than the bare step by at least the step overhead, and
    the table and the exact model agree with the costs in (1e-6, as without them)."""
    s, ms = engine_setup("vllm", None)
    bare = make_setup(H100, LLAMA)
    sm, sm_bare = StepTimeModel(s, 1024), StepTimeModel(bare, 1024)
    for args in ((8, 8, 3e4, 3e4), (300, 4, 4e4, 3e4)):  # a decode step (pairs = kv) and a mixed one
        assert sm.time(*args) - sm_bare.time(*args) >= ms.step_overhead_s * (1.0 - 1e-9)
        assert sm.time(*args) == pytest.approx(float(exact_step_time_s(s, *args)), rel=1e-6)
    assert sm.check() < 1e-6


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_simulated_lone_request_tpot_is_analyze_mean_tpot(engine):
    """Requests of 512 prompt and 64 output tokens arriving ~1000 s apart never share a step: each decodes
    alone at contexts 512..575, the steps analyze's mean TPOT averages."""
    s, ms = engine_setup(engine, None)
    w = Workload(0.001, LengthDist("fixed", value=512), LengthDist("fixed", value=64))
    cfg = SimSettings(chunked_prefill=ms.chunked_prefill, page_tokens=ms.page_tokens, memory=ms)
    r = simulate(make_setup(H100, LLAMA), w, requests=20, seed=0, cfg=cfg)
    a = roofline.analyze("h100-sxm", "llama-3.1-8b", batch=1, prompt=512, output=64, engine=engine)
    assert r["tpot_s"]["p50"] == pytest.approx(a.mean_tpot_s, rel=0.02)
    assert r["ttft_s"]["p50"] == pytest.approx(a.ttft_s, rel=0.03)
    assert np.isclose(r["tpot_s"]["p50"], r["tpot_s"]["max"], rtol=1e-6)
