"""Engine files of older releases (sglang-0.4.6, vllm-v0): they load and validate, `versions` picks the file a
published row's `engine_version` names, SGLang 0.4.6's mem_fraction_static by TP size by hand, bad fields
name themselves."""
import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from roofline.errors import RooflineError
from roofline.measure import published
from roofline.model import memory as mem
from roofline.model.engine import make_setup
from roofline.specs import engines
from roofline.specs.engines import engine_release, list_engines, load_engine, parse_engine, parse_version
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

A100_40, A100_80, H200, L4 = (load_gpu(g) for g in ("a100-sxm-40gb", "a100-sxm-80gb", "h200-sxm", "l4"))
SGLANG_046 = Path(__file__).resolve().parents[2] / "engines" / "sglang-0.4.6.json"


def test_version_files_load_with_a_source_for_every_value_and_their_range():
    assert {"sglang-0.4.6", "vllm-v0"} <= set(list_engines())
    for name, engine, start, stop in (("sglang-0.4.6", "sglang", (0, 4, 6, -1), (0, 4, 6, 2)),
                                      ("vllm-v0", "vllm", (0, 7, 3, -1), (0, 8, 0, -1))):
        e = load_engine(name)
        assert set(e.sources) == set(e.figures) and all("http" in t for t in e.sources.values())
        assert (e.versions.engine, e.versions.start, e.versions.stop) == (engine, start, stop)
    assert load_engine("sglang").versions is None and load_engine("vllm").versions is None


@pytest.mark.parametrize("text, expected", [
    ("0.7.3 (ROCm build, rocm/vllm-dev:main, ROCm 6.3.1)", (0, 7, 3, -1)),   # the first number, not ROCm's
    ("main branch of 2025-05-01 (between v0.4.6 and v0.4.6.post2)", (0, 4, 6, -1)),  # a date is no version
    ("0.4.6.post2", (0, 4, 6, 2)),
    ("v0.4.6post1", (0, 4, 6, 1)),
    ("~0.2.6 (Dec 2023)", (0, 2, 6, -1)),
    ("1.0 (PyTorch backend)", (1, 0, 0, -1)),
    ("0.5.0rc1", (0, 5, 0, -1)),
    ("not stated (May 2025 main branch)", None),
    ("1.x (developer-guide docs at commit 03e27c7d)", None),
    ("", None),
])
def test_parse_version_by_hand(text, expected):
    assert parse_version(text) == expected


@given(st.tuples(*[st.integers(0, 30)] * 3, st.integers(-1, 9)), st.tuples(*[st.integers(0, 30)] * 3, st.integers(-1, 9)))
def test_parsed_versions_order_like_releases(a, b):
    def text(v):
        return f"{v[0]}.{v[1]}.{v[2]}" + (f".post{v[3]}" if v[3] >= 0 else "")
    assert parse_version(text(a)) == a and parse_version(f"v{text(b)} (notes)") == b
    assert (parse_version(text(a)) < parse_version(text(b))) == (a < b)


@pytest.mark.parametrize("engine, version, expected", [
    ("sglang", "main branch of 2025-05-01 (between v0.4.6 and v0.4.6.post2)", "sglang-0.4.6"),
    ("sglang", "0.4.6.post1", "sglang-0.4.6"),
    ("sglang", "0.4.6.post2", "sglang"),          # 'before' is excluded
    ("sglang", "0.4.5", "sglang"),                # no file covers it: the engine's own
    ("sglang", "not stated (May 2025 main branch)", "sglang"),
    ("vllm", "0.7.3 (ROCm build)", "vllm-v0"),
    ("vllm", "0.8.0", "vllm"),
    ("vllm", "~0.2.6 (Dec 2023)", "vllm"),
    ("trt-llm", "0.5", "trtllm"),
])
def test_engine_release_picks_the_file_whose_range_contains_the_version(engine, version, expected):
    assert engine_release(engine, version).name == expected


def test_published_rows_use_the_release_they_were_measured_with():
    rows = {m["id"]: m for m in published.load_engine_measurements() + published.load_measurements()}
    picked = {i: (published.engine_for(m).name if published.engine_for(m) else None) for i, m in rows.items()}
    assert picked["sglang046-a100-40gb-llama-3.1-8b-tp1-50req-1000-2000-tput"] == "sglang-0.4.6"
    assert picked["vllm073-rocm-mi300x-llama31-70b-fp8-tp8-b1-128-2048-e2e"] == "vllm-v0"
    for i, m in rows.items():
        if m["engine"] in ("nim", "gpt-fast"):
            assert picked[i] is None
        elif parse_version(m["engine_version"]) is None:  # unparsed text keeps the engine's own file
            assert picked[i] == published.engine_key(m["engine"])


def test_sglang_046_fraction_by_tp_by_hand():
    # server_args.py v0.4.6 on GPUs of at most 81,920 MiB: TP 1 0.88, >= 2 0.87, >= 4 0.85, >= 8 0.81, >= 16 0.79
    e = load_engine("sglang-0.4.6")
    for gpu in (L4, A100_40, A100_80):   # 23,034 / 40,441 / 81,116 MiB
        assert [e.kv_cache_fraction(gpu, tp) for tp in (1, 2, 3, 4, 8, 16, 32)] == \
            [0.88, 0.87, 0.87, 0.85, 0.81, 0.79, 0.79]
    # H200 (143,771 MiB > 81,920): (143771 - 13 x 1024) / 143771 = 130459 / 143771 = 0.9074 at every TP
    assert [e.kv_cache_fraction(H200, tp) for tp in (1, 8)] == [0.907, 0.907]
    # chunked_prefill_size 2048 below 25,000 MiB else 8192; graphs up to 8 / 160 / 256 (above 81,920 MiB)
    assert [e.value("max_batched_tokens", g) for g in (L4, A100_40, H200)] == [2048, 8192, 8192]
    assert [e.value("cuda_graph_max_batch", g) for g in (L4, A100_40, A100_80, H200)] == [8, 160, 160, 256]


def test_sglang_046_kv_cache_of_llama_8b_on_a100_40gb_by_hand():
    """static_fraction: KV = f x M - W - R (roofline.model.memory.kv_cache_capacity_bytes)."""
    s = make_setup(A100_40, load_model("llama-3.1-8b"), tp=1)
    ms = mem.engine_settings(load_engine("sglang-0.4.6"), A100_40, tp=1)
    # f = 0.88, M = 42,405,462,016 B (40,441 MiB), W = 8,030,261,248 params x 2 B = 16,060,522,496 B,
    # R = 1 GiB = 1,073,741,824 B: KV = 37,316,806,574.08 - 16,060,522,496 - 1,073,741,824 = 20,182,542,254.08 B
    assert ms.memory_utilization == 0.88
    assert float(mem.kv_cache_capacity_bytes(s, ms)) == pytest.approx(20_182_542_254.08)
    # a token: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 B = 131,072 B -> floor(20,182,542,254 / 131,072)
    assert float(mem.kv_cache_capacity_tokens(s, ms)) == 153_980
    # 0.5.4's reserve (engines/sglang.json) leaves 0.668 x M - W - R = 11.19e9 B: 85,392 tokens
    new = mem.engine_settings(load_engine("sglang"), A100_40, tp=1)
    assert float(mem.kv_cache_capacity_tokens(s, new)) == 85_392


def test_vllm_v0_defaults():
    e = load_engine("vllm-v0")
    ms = mem.engine_settings(e, load_gpu("h100-sxm"), tp=1)
    # V0: 256 sequences on every GPU, chunks of 2048, graphs up to 256 decode sequences, prefill eager, no
    # prefix cache (V1 on an H100: 1024 / 8192 / 512 / piecewise / prefix cache on)
    assert (ms.max_seqs, ms.max_batched_tokens, ms.cuda_graph_max_batch) == (256, 2048, 256)
    assert (ms.prefill_launch, ms.prefix_caching, ms.memory_utilization) == ("eager", False, 0.9)


def test_analyze_takes_a_version_engine(run_cli):
    code, out, err = run_cli("analyze", "--gpu", "a100-sxm-40gb", "--engine", "sglang-0.4.6", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["engine"]["name"] == "sglang-0.4.6"
    code, _, err = run_cli("analyze", "--engine", "sglang-0.4")
    assert code == 2 and "did you mean 'sglang-0.4.6'" in err


def _with(change) -> str:
    data = json.loads(SGLANG_046.read_text())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize("change, field", [
    (lambda d: d["max_seqs"].update(tiers=[{"min_memory_bytes": 0, "min_tp": 2, "value": 8}]),
     "max_seqs.tiers[0].min_tp"),
    (lambda d: d["kv_cache_fraction"]["tiers"][1].update(min_tp=0), "kv_cache_fraction.tiers[1].min_tp"),
    (lambda d: d["kv_cache_fraction"]["tiers"][2].update(value=1.5), "kv_cache_fraction.tiers[2].value"),
    (lambda d: d["versions"].update(before="0.4.5"), "versions.before"),
    (lambda d: d["versions"].update({"from": "latest"}), "versions.from"),
    (lambda d: d["versions"].update(source="S-nowhere"), "versions.source"),
    (lambda d: d["versions"].pop("engine"), "versions"),
    (lambda d: d.pop("reserve_base_bytes"), "reserve_base_bytes"),  # a tier of "auto" needs the reserve
])
def test_a_bad_field_names_itself(change, field):
    with pytest.raises(RooflineError) as e:
        parse_engine(_with(change), "x.json")
    assert e.value.message.startswith("x.json") and f"'{field}'" in e.value.message


def test_overlapping_ranges_of_one_engine_are_an_error(monkeypatch):
    twin = parse_engine(_with(lambda d: d.update(name="sglang-twin")), "engines/sglang-twin.json")
    real = engines._load_builtin
    monkeypatch.setattr(engines, "list_engines", lambda: ["sglang", "sglang-0.4.6", "sglang-twin"])
    monkeypatch.setattr(engines, "_load_builtin", lambda n: twin if n == "sglang-twin" else real(n))
    with pytest.raises(RooflineError) as e:
        engine_release("sglang", "0.4.6")
    assert "'versions'" in e.value.message and "sglang-twin.json" in e.value.message
    assert engine_release("sglang", "0.5.5").name == "sglang"  # outside both ranges
