"""Tests for roofline.models: HF config.json parsing, the built-in catalog and the counts derived from it.

Every expected number is hand-checkable; the arithmetic is in the comment next to it.
"""
from __future__ import annotations

import json
from importlib import resources

import pytest

from roofline.errors import RooflineError
from roofline.specs.models import ModelConfig, list_models, load_model, parse_config

EXPECTED_CATALOG = {
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
    "llama-3.2-1b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-72b", "gpt-j-6b",
    "deepseek-v3", "gemma-2-9b", "qwen3-8b", "pythia-6.9b",
}


def catalog_json(name: str) -> dict:
    entry = resources.files("roofline.specs") / "model_catalog" / f"{name}.json"
    return json.loads(entry.read_text(encoding="utf-8"))


def within(value: float, reference: float, rel: float = 0.01) -> bool:
    return abs(value - reference) <= rel * reference


# ----------------------------------------------------------------------------- catalog
def test_catalog_lists_every_model():
    assert EXPECTED_CATALOG <= set(list_models())
    assert list_models() == sorted(list_models())


def test_every_supported_family_has_a_catalog_member():
    families = {load_model(n).model_type for n in list_models()}
    assert families == {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma2", "gptj", "gpt_neox", "deepseek_v3"}


@pytest.mark.parametrize("name", sorted(EXPECTED_CATALOG))
def test_catalog_model_loads_and_is_json_safe(name):
    model = load_model(name)
    assert isinstance(model, ModelConfig)
    assert model.name == name
    assert model.display_name and model.parameters_source
    json.dumps(model.to_dict())  # must not raise
    assert sum(model.parameter_breakdown().values()) == model.parameters()


@pytest.mark.parametrize("name", sorted(EXPECTED_CATALOG))
def test_parameters_within_one_percent_of_published(name):
    meta = catalog_json(name)["_roofline"]
    model = load_model(name)
    assert model.published_parameters == meta["published_parameters"]
    assert within(model.parameters(), meta["published_parameters"]), (model.parameters(), meta)
    if "published_non_embedding_parameters" in meta:
        assert within(model.non_embedding_parameters(), meta["published_non_embedding_parameters"])
    if "published_active_parameters" in meta:
        active = model.active_parameters(include_embedding=meta["active_parameters_include_embedding"])
        assert within(active, meta["published_active_parameters"]), (active, meta)


def test_loading_is_case_insensitive():
    assert load_model("Llama-2-7B") == load_model("llama-2-7b")
    assert load_model("MIXTRAL-8x7B.json").name == "mixtral-8x7b"


# ----------------------------------------------------------------------------- exact counts
def test_llama_2_7b_exact_parameters():
    # embedding 32000 x 4096 = 131,072,000, untied lm_head the same;
    # per layer: attention 4 x 4096^2 = 67,108,864; MLP 3 x 4096 x 11008 = 135,266,304; 2 norms 8192
    #   -> 202,383,360 x 32 layers = 6,476,267,520; + final norm 4096
    # total 2 x 131,072,000 + 6,476,267,520 + 4096 = 6,738,415,616
    model = load_model("llama-2-7b")
    assert model.parameters() == 6_738_415_616
    assert model.embedding_parameters() == 131_072_000


def test_tied_embeddings_are_not_double_counted():
    # Llama-3.2-1B: embedding 128256 x 2048 = 262,668,288, shared with the LM head;
    # per layer: q 2048^2 + k,v 2 x 2048 x 512 + o 2048^2 = 10,485,760; MLP 3 x 2048 x 8192 = 50,331,648;
    #   norms 2 x 2048 = 4096 -> 60,821,504 x 16 = 973,144,064; + final norm 2048
    # total 262,668,288 + 973,144,064 + 2048 = 1,235,814,400 (1.24B; untied would be 1.50B)
    model = load_model("llama-3.2-1b")
    assert model.tie_word_embeddings
    assert model.parameter_breakdown()["lm_head"] == 0
    assert model.parameters() == 1_235_814_400


def test_gemma2_is_tied_by_default_and_has_four_norms_per_layer():
    # gemma-2-9b's config.json has no tie_word_embeddings key: Gemma2Config defaults to tied.
    # per layer: q 3584 x (16 x 256) = 14,680,064; k, v 3584 x (8 x 256) = 7,340,032 each;
    #   o 4096 x 3584 = 14,680,064 -> attention 44,040,192; GeGLU 3 x 3584 x 14336 = 154,140,672;
    #   4 norms x 3584 = 14,336 -> 198,195,200 x 42 layers = 8,324,198,400
    # total = 256000 x 3584 (tied, once) 917,504,000 + 8,324,198,400 + final norm 3584 = 9,241,705,984
    model = load_model("gemma-2-9b")
    assert model.tie_word_embeddings and model.gated_mlp and model.norms_per_layer == 4
    assert model.head_dim == 256 and model.num_heads * model.head_dim == 4096
    assert model.attention_parameters_per_layer() == 44_040_192
    assert model.parameters() == 9_241_705_984


def test_gptj_structure_and_biases():
    # GPT-J: n_inner null -> 4 x 4096 = 16384; 2-matrix MLP with biases; one layernorm per layer;
    # per layer: attention 4 x 4096^2 = 67,108,864 (no bias); MLP 2 x 4096 x 16384 + 16384 + 4096 = 134,238,208;
    #   ln_1 weight+bias 8192 -> 201,355,264 x 28 = 5,637,947,392
    # + wte 50400 x 4096 = 206,438,400 + lm_head 206,438,400 + its bias 50400 + ln_f 8192 = 6,050,882,784
    model = load_model("gpt-j-6b")
    assert (model.intermediate_size, model.rotary_dim, model.head_dim) == (16384, 64, 256)
    assert model.parallel_attn_mlp and not model.gated_mlp and model.norm == "layernorm"
    assert model.parameters() == 6_050_882_784


def test_pythia_matches_paper_exactly():
    # Pythia paper Table 1: 6,857,302,016 total, 6,444,163,072 non-embedding; rotary_pct 0.25 x 128 = 32
    model = load_model("pythia-6.9b")
    assert model.parameters() == 6_857_302_016
    assert model.non_embedding_parameters() == 6_444_163_072
    assert model.rotary_dim == 32 and model.parallel_attn_mlp and model.qkv_bias


def test_qwen_biases_and_qk_norm():
    qwen2 = load_model("qwen2.5-7b")
    assert qwen2.qkv_bias and not qwen2.o_bias
    # Qwen2.5-7B attention per layer: q 3584^2 + 3584 bias, k,v 2 x (3584 x 512 + 512), o 3584^2
    #   = 12,845,056 + 3584 + 2 x 1,835,520 + 12,845,056 = 29,364,736
    assert qwen2.attention_parameters_per_layer() == 29_364_736
    qwen3 = load_model("qwen3-8b")
    assert qwen3.qk_norm and not qwen3.qkv_bias and qwen3.head_dim == 128
    # Qwen3-8B per-layer norms: 2 x 4096 + q_norm 128 + k_norm 128 = 8448
    assert qwen3.norm_parameters_per_layer() == 8448


# ----------------------------------------------------------------------------- attention / KV
def test_kv_elements_mha():
    # Llama-2-7B KV elements per token per layer = 2 x 32 heads x 128 = 8192
    assert load_model("llama-2-7b").kv_cache_elements_per_token_per_layer() == 8192


def test_kv_elements_gqa():
    # Llama-2-70B: 64 query heads share 8 KV heads; 2 x 8 x 128 = 2048
    model = load_model("llama-2-70b")
    assert (model.num_heads, model.num_kv_heads) == (64, 8)
    assert model.kv_cache_elements_per_token_per_layer() == 2048
    # Qwen2.5-7B: 28 query heads, 4 KV heads: 2 x 4 x 128 = 1024
    assert load_model("qwen2.5-7b").kv_cache_elements_per_token_per_layer() == 1024


def test_mqa_from_a_config(tmp_path):
    # MQA: one KV head -> 2 x 1 x 128 = 256 elements per token per layer
    cfg = {**_tiny_llama(), "num_key_value_heads": 1}
    model = parse_config(cfg, "mqa")
    assert model.num_kv_heads == 1
    assert model.kv_cache_elements_per_token_per_layer() == 256


def test_mla_kv_elements_and_shapes():
    # DeepSeek-V3 caches the latent: kv_lora_rank 512 + qk_rope_head_dim 64 = 576
    model = load_model("deepseek-v3")
    assert model.is_mla and model.kv_cache_elements_per_token_per_layer() == 576
    assert model.head_dim == 192 and model.v_head_dim == 128  # 128 nope + 64 rope; V 128
    assert (model.q_lora_rank, model.kv_lora_rank, model.rotary_dim) == (1536, 512, 64)


def test_sliding_window_layer_counts():
    mistral = load_model("mistral-7b")  # v0.1: window 4096 on all 32 layers
    assert (mistral.sliding_window, mistral.sliding_window_layers) == (4096, 32)
    gemma = load_model("gemma-2-9b")  # every other layer of 42: 21
    assert (gemma.sliding_window, gemma.sliding_window_layers) == (4096, 21)
    qwen = load_model("qwen2.5-7b")  # sliding_window 131072 present but use_sliding_window false
    assert (qwen.sliding_window, qwen.sliding_window_layers) == (None, 0)
    assert load_model("mixtral-8x7b").sliding_window is None  # null in config.json


def test_qwen_sliding_window_applies_from_max_window_layers():
    # use_sliding_window true, max_window_layers 20 of 28 layers -> layers 20..27 slide: 8
    cfg = {**catalog_json("qwen2.5-7b"), "use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 20}
    model = parse_config(cfg, "qwen-swa")
    assert (model.sliding_window, model.sliding_window_layers) == (4096, 8)


def test_layer_types_list_wins():
    # newer transformers write an explicit per-layer list: 3 of the 4 layers slide
    cfg = {**_tiny_llama(), "model_type": "qwen3", "sliding_window": 512, "use_sliding_window": True,
           "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"]}
    assert parse_config(cfg, "x").sliding_window_layers == 3
    # ...but Qwen ignores the window entirely unless use_sliding_window is true (as transformers does)
    assert parse_config({**cfg, "use_sliding_window": False}, "x").sliding_window_layers == 0
    assert parse_config({**cfg, "model_type": "mistral"}, "x").sliding_window_layers == 3


def test_kv_cache_elements_caps_windowed_layers():
    # gemma-2-9b at 8192 tokens: 21 full layers x 8192 + 21 windowed layers x 4096, x (2 x 8 x 256 = 4096)
    model = load_model("gemma-2-9b")
    assert model.kv_cache_elements(8192) == 4096 * (21 * 8192 + 21 * 4096)


# ----------------------------------------------------------------------------- MoE
def test_mixtral_total_and_active():
    # per layer: attention 2 x 4096^2 + 2 x 4096 x 1024 = 41,943,040; expert 3 x 4096 x 14336 = 176,160,768;
    #   router 4096 x 8 = 32,768; norms 8192
    # total = 2 x 32000 x 4096 + 32 x (41,943,040 + 8 x 176,160,768 + 32,768 + 8192) + 4096 = 46,702,792,704
    # active = total - 32 layers x 6 idle experts x 176,160,768 = 12,879,925,248 (Mistral: 12.9B)
    model = load_model("mixtral-8x7b")
    assert model.is_moe and (model.num_experts, model.num_experts_per_tok) == (8, 2)
    assert model.first_k_dense_layers == 0 and model.num_moe_layers == 32
    assert model.parameters() == 46_702_792_704
    assert model.active_parameters() == 12_879_925_248


def test_deepseek_v3_total_active_and_mtp():
    model = load_model("deepseek-v3")
    assert (model.num_moe_layers, model.num_dense_layers) == (58, 3)  # first_k_dense_replace 3 of 61
    assert within(model.parameters(), 671e9)
    # active: 58 MoE layers skip 248 of 256 routed experts, each 3 x 7168 x 2048 = 44,040,192
    idle = 58 * 248 * 44_040_192
    assert model.active_parameters() == model.parameters() - idle
    # DeepSeek's 36.6B (quoted as 37B) leaves out the 129280 x 7168 input embedding
    assert within(model.active_parameters(include_embedding=False), 36.6e9)
    assert within(model.active_parameters(include_embedding=False), 37e9, rel=0.02)
    # one MTP module as stored on the Hub: 685B with it
    assert model.mtp_layers == 1
    assert model.parameters(include_mtp=True) == model.parameters() + model.mtp_parameters()
    assert within(model.parameters(include_mtp=True), 685e9)


def test_dense_models_are_not_moe():
    model = load_model("llama-3.1-8b")
    assert not model.is_moe and not model.is_mla
    assert model.active_parameters() == model.parameters()


# ----------------------------------------------------------------------------- loading by path
def test_load_by_file_path_and_directory(tmp_path):
    model_dir = tmp_path / "My-Llama"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(catalog_json("llama-2-7b")))
    by_dir = load_model(model_dir)
    by_file = load_model(str(model_dir / "config.json"))
    assert by_dir.name == by_file.name == "My-Llama"
    assert by_dir.parameters() == by_file.parameters() == 6_738_415_616


def test_load_from_other_file_name(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(_tiny_llama()))
    model = load_model(path)
    assert model.name == "tiny" and model.published_parameters is None


def test_underscore_keys_are_ignored():
    cfg = {**_tiny_llama(), "_roofline": {"display_name": "Tiny"}, "_name_or_path": "x", "_hidden_size": "junk"}
    model = parse_config(cfg, "tiny")
    assert model.display_name == "Tiny" and model.hidden_size == 256


# ----------------------------------------------------------------------------- errors
def test_unsupported_model_type_names_file_type_and_supported(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**_tiny_llama(), "model_type": "bert"}))
    with pytest.raises(RooflineError) as err:
        load_model(path)
    assert str(path) in err.value.message and "bert" in err.value.message
    assert "llama" in err.value.hint and "deepseek_v3" in err.value.hint


def test_missing_field_names_file_and_field(tmp_path):
    cfg = _tiny_llama()
    del cfg["intermediate_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(RooflineError) as err:
        load_model(tmp_path)
    assert str(path) in err.value.message and "intermediate_size" in err.value.message


def test_missing_model_type(tmp_path):
    cfg = _tiny_llama()
    del cfg["model_type"]
    with pytest.raises(RooflineError, match="model_type"):
        parse_config(cfg, "nameless", source="/some/config.json")


def test_gptj_missing_field_mentions_hf_name():
    cfg = {k: v for k, v in catalog_json("gpt-j-6b").items() if k != "n_layer"}
    with pytest.raises(RooflineError, match="n_layer"):
        parse_config(cfg, "gptj")


def test_bad_values_are_reported():
    with pytest.raises(RooflineError, match="hidden_size"):
        parse_config({**_tiny_llama(), "hidden_size": "big"}, "x")
    with pytest.raises(RooflineError, match="num_key_value_heads"):
        parse_config({**_tiny_llama(), "num_key_value_heads": 3}, "x")


def test_invalid_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(RooflineError, match="not valid JSON"):
        load_model(path)


def test_directory_without_config(tmp_path):
    with pytest.raises(RooflineError, match="no config.json"):
        load_model(tmp_path)


def test_unknown_name_suggests_nearest():
    with pytest.raises(RooflineError) as err:
        load_model("llama-2-7")
    assert "llama-2-7" in err.value.message
    assert "llama-2-7b" in err.value.hint and "roofline models" in err.value.hint


def test_missing_path_is_reported_as_path():
    with pytest.raises(RooflineError) as err:
        load_model("/nonexistent/dir/config.json")
    assert "not found" in err.value.message


def _tiny_llama() -> dict:
    # 256 hidden / 2 heads = 128 head_dim, 4 layers
    return {
        "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 2,
        "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000, "max_position_embeddings": 2048,
    }


def test_window_defaults_follow_transformers():
    # MistralConfig defaults sliding_window to 4096 when the key is absent; an explicit null means none
    cfg = {**_tiny_llama(), "model_type": "mistral"}
    assert parse_config(cfg, "m").sliding_window == 4096
    assert parse_config({**cfg, "sliding_window": None}, "m").sliding_window is None
