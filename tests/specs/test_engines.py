"""Engine files load and validate like spec files; each engine's memory rule by hand arithmetic; the CLI knobs."""
import json
from dataclasses import replace

import pytest

from roofline.errors import RooflineError
from roofline.model import memory as mem
from roofline.model.engine import make_setup
from roofline.specs.engines import list_engines, load_engine, parse_engine
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.units import GiB

H100, A100 = load_gpu("h100-sxm"), load_gpu("a100-sxm-80gb")


def test_builtin_engines_load_with_a_source_for_every_value():
    assert list_engines() == ["sglang", "sglang-0.4.6", "trtllm", "vllm", "vllm-v0"]
    for name in list_engines():
        e = load_engine(name)
        assert set(e.sources) == set(e.figures)
        assert all("http" in text for text in e.sources.values())
    assert load_engine("TensorRT-LLM").name == "trtllm"


def test_vllm_defaults_depend_on_the_gpu():
    # arg_utils: >= 70 GiB and not an A100 -> 1024 sequences / 8192 tokens, else 256 / 2048
    e = load_engine("vllm")
    assert (e.value("max_seqs", H100), e.value("max_batched_tokens", H100)) == (1024, 8192)
    assert (e.value("max_seqs", A100), e.value("max_batched_tokens", A100)) == (256, 2048)
    assert (e.value("max_seqs", load_gpu("l4")), e.value("max_seqs")) == (256, 256)


def test_sglang_fraction_is_computed_from_its_reserve():
    # H100: 81559 MiB; reserve = 512 + 1.5 x 8192 + 2 x 256 + 1024 x 1 / 8 = 13440 MiB -> 1 - 13440 / 81559
    f = load_engine("sglang").kv_cache_fraction(H100, tp=1)
    assert f == round(1 - 13440 * 2**20 / H100.memory_bytes, 3) == 0.835


def _file(tmp_path, **change):
    data = json.loads(open("engines/vllm.json").read())
    data.update(change)
    p = tmp_path / "e.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize("change, field", [
    ({"max_seqs": {"value": 0, "source": "V-args"}}, "max_seqs.value"),
    ({"kv_cache_rule": {"value": "half", "source": "V-worker"}}, "kv_cache_rule.value"),
    ({"page_tokens": {"value": 16, "source": "nowhere"}}, "page_tokens.source"),
    ({"max_seqs": {"value": 256, "source": "V-args", "tiers": [{"value": 8}]}}, "max_seqs.tiers[0]"),
    ({"kv_cache_fraction": {"value": 1.5, "source": "V-cache"}}, "kv_cache_fraction.value"),
])
def test_a_bad_field_names_itself(tmp_path, change, field):
    with pytest.raises(RooflineError) as e:
        load_engine(str(_file(tmp_path, **change)))
    assert f"'{field}'" in e.value.message and e.value.hint


def test_unknown_and_missing_fields(tmp_path):
    with pytest.raises(RooflineError, match="unknown field 'max_seq'"):
        load_engine(str(_file(tmp_path, max_seq=1)))
    data = json.loads(open("engines/vllm.json").read())
    del data["preemption"]
    with pytest.raises(RooflineError, match="missing field 'preemption'"):
        parse_engine(json.dumps(data), "x.json")
    with pytest.raises(RooflineError, match="unknown engine 'vlm'") as e:
        load_engine("vlm")
    assert "did you mean 'vllm'" in e.value.hint and e.value.exit_code == 2


def test_each_engines_kv_rule_by_hand():
    """Llama-3.1-70B bf16 at TP 2 on H100 SXM (M = 85,520,809,984 B per GPU)."""
    s = make_setup(H100, load_model("llama-3.1-70b"), tp=2)
    W = float(mem.weights_bytes(s))
    R = 1.0 * GiB
    kv = {}
    for name in ("vllm", "trtllm", "sglang"):
        ms = mem.engine_settings(load_engine(name), H100, tp=2)
        A = float(mem.activation_bytes(s, ms))
        kv[name] = float(mem.kv_cache_capacity_bytes(s, ms))
        M, f = H100.memory_bytes, ms.memory_utilization
        expected = {"vllm": f * M - W - A - R,            # 0.9 x total - weights - activations - runtime
                    "trtllm": f * (M - W - A - R),        # 0.9 x what is free after them
                    "sglang": f * M - W - R}[name]        # mem_fraction_static x total - weights - runtime
        assert kv[name] == pytest.approx(expected)
    # weights 70.55e9 B; vLLM: 76.97e9 - 70.55e9 - 1.59e9 - 1.07e9 = 3.75e9
    assert kv["vllm"] == pytest.approx(3.75e9, rel=0.01)
    # TensorRT-LLM: 0.9 x (85.52 - 70.55 - 1.85 - 1.07)e9 = 10.84e9, 2.9x vLLM's
    assert kv["trtllm"] == pytest.approx(10.84e9, rel=0.01)
    # SGLang: 0.834 x 85.52e9 = 71.32e9 < weights + runtime: no KV cache at its default fraction
    assert kv["sglang"] < 0


def test_max_batch_is_the_smaller_of_kv_and_max_seqs():
    s = make_setup(H100, load_model("llama-3.1-8b"))
    ms = mem.engine_settings(load_engine("vllm"), H100)
    kv_b = int(mem.kv_limited_batch(s, ms, 256))
    assert kv_b > 1024 and int(mem.max_batch(s, ms, 256)) == 1024
    small = replace(ms, max_seqs=7)
    assert int(mem.max_batch(s, small, 256)) == 7
    assert int(mem.max_batch(s, ms, 100_000)) == int(mem.kv_limited_batch(s, ms, 100_000)) < 1024


def test_knobs_override_and_are_checked():
    e = load_engine("vllm")
    ms = mem.engine_settings(e, H100, max_seqs=64, max_batched_tokens=4096, kv_cache_fraction=0.8, page_tokens=32,
                             chunked_prefill=False, cuda_graphs=False)
    assert (ms.max_seqs, ms.max_batched_tokens, ms.memory_utilization, ms.page_tokens) == (64, 4096, 0.8, 32)
    assert ms.to_dict()["prefill_launch"] == "eager" and ms.to_dict()["cuda_graph_max_batch"] == 0
    with pytest.raises(RooflineError) as err:
        mem.engine_settings(e, H100, kv_cache_fraction=1.2)
    assert err.value.param == "kv_cache_fraction"
    with pytest.raises(RooflineError) as err:
        mem.engine_settings(e, H100, page_tokens=0)
    assert err.value.param == "page_tokens"


def test_cli_engine_options(run_cli):
    code, out, err = run_cli("analyze", "--engine", "trtllm", "--max-seqs", "8", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["engine"]["name"] == "trtllm" and doc["engine"]["max_seqs"] == 8 and doc["memory"]["max_batch"] == 8
    code, out, _ = run_cli("analyze", "--memory-utilization", "0.5", "--format", "json")
    assert code == 0 and json.loads(out)["engine"]["kv_cache_fraction"] == 0.5
    code, _, err = run_cli("analyze", "--engine", "nope")
    assert code == 2 and "unknown engine 'nope'" in err
    code, _, err = run_cli("analyze", "--kv-cache-fraction", "0")
    assert code == 2 and "--kv-cache-fraction must be in (0, 1]" in err
    code, _, err = run_cli("analyze", "--kv-cache-fraction", "0.8", "--memory-utilization", "0.7")
    assert code == 2 and "disagree" in err
