"""Operator formulas: hand-checked shapes and the registry's rules."""
import numpy as np
import pytest

from roofline.model import ops
from roofline.model.engine import make_setup
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.model.phases import make_pass


def test_matmul_counts():
    c = ops.matmul(4, 6, 5, 2.0, 2.0, 2.0)
    assert c.flops == 240  # 2 * 4 * 6 * 5
    assert c.bytes_read == (5 * 6 + 4 * 5) * 2  # W (k*n) + x (m*k), 2 bytes each = 100
    assert c.bytes_written == 4 * 6 * 2  # y (m*n) = 48


def test_register_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        ops.register("qkv_proj", "tensor", "layer")(lambda p: None)


def test_unknown_operator_lists_known():
    with pytest.raises(RooflineError) as e:
        ops.get_operator("qkv")
    assert "qkv_proj" in e.value.hint


def _decode_ops(model, batch=1, context=0, tp=1):
    s = make_setup(load_gpu("h100-sxm"), load_model(model), tp=tp)
    p = make_pass(s, batch, 1.0, context)
    return {op.name: op.formula(p) for op, _ in ops.operators_for(s.model)}


def test_llama2_7b_decode_projection_flops():
    c = _decode_ops("llama-2-7b")
    assert c["qkv_proj"].flops == 2 * 1 * 4096 * 3 * 4096  # 100,663,296: MHA, q,k,v each 4096 wide
    assert c["mlp_up"].flops == 2 * 4096 * 2 * 11008  # gate + up fused: 180,355,072
    assert c["mlp_down"].bytes_read == 11008 * 4096 * 2 + 11008 * 2  # weights + one token's activations
    assert c["lm_head"].flops == 2 * 4096 * 32000  # one token, full vocab


def test_decode_attention_reads_the_whole_cache():
    # llama-3.1-8b: 8 KV heads x 128 dims; context 1000 cached + the new token = 1001 keys, bf16
    c = _decode_ops("llama-3.1-8b", context=1000)
    assert c["attn_scores"].bytes_read == 1 * 32 * 128 * 2 + 1001 * 8 * 128 * 2
    assert c["attn_scores"].flops == 2 * 1001 * 32 * 128


def test_tp_shards_heads_and_replicates_kv_heads():
    # llama-3.1-8b has 8 KV heads: tp 16 leaves max(8/16, 1) = 1 KV head and 32/16 = 2 query heads per GPU
    c = _decode_ops("llama-3.1-8b", tp=16)
    assert c["qkv_proj"].flops == 2 * 4096 * (2 * 128 + 1 * (128 + 128))


def test_experts_touched():
    assert ops.experts_touched(1, 8, 2) == pytest.approx(2.0)  # one token touches top-k experts
    assert ops.experts_touched(10_000, 8, 2) == pytest.approx(8.0)  # many tokens touch all of them


def test_mla_decode_reads_the_latent_cache():
    # deepseek-v3: the cache holds kv_lora_rank 512 + rope 64 = 576 elements per token per layer
    c = _decode_ops("deepseek-v3", context=99)
    lat_read = 100 * 576 * 2
    assert c["attn_scores"].bytes_read >= lat_read
    assert c["kv_cache_write"].bytes_written == 576 * 2


LAYOUT_ONLY = {"moe_dispatch", "moe_combine", "pp_send"}


def test_every_catalog_model_has_positive_costs():
    """Every operator of a decode step costs something (> 0): FLOPs or HBM bytes, or bytes on the link for an
    all-reduce; no count is negative. A single count may be 0 (embedding: a lookup, no FLOPs; softmax: fused
    into the attention kernel, no HBM bytes of its own; kv_cache_write: a store, no FLOPs)."""
    from roofline.specs.models import list_models
    for name in list_models():
        model = load_model(name)
        units = {op.name: op.unit for op, _ in ops.operators_for(model)}
        for opname, c in _decode_ops(name, batch=4, context=100).items():
            moved = np.asarray(c.bytes_read) + np.asarray(c.bytes_written)
            assert np.all(moved >= 0) and np.all(np.asarray(c.flops) >= 0), (name, opname)
            if opname in LAYOUT_ONLY:  # expert-parallel all-to-alls and pipeline sends: empty on one stage, ep 1
                assert np.all(np.asarray(c.comm_bytes) == 0), (name, opname)
                continue
            work = np.asarray(c.comm_bytes) if units[opname] == "link" else np.asarray(c.flops) + moved
            assert np.all(work > 0), (name, opname)
