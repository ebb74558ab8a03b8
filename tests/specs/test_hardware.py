"""Spec files and their loader. Numbers are checked by hand against the datasheets (arithmetic in comments)."""
import copy
import json
from pathlib import Path

import pytest

from roofline.errors import RooflineError
from roofline.specs.hardware import (
    GPUSpec,
    gpu_aliases,
    list_gpus,
    load_gpu,
    normalize_gpu_name,
    resolve_gpu_name,
)
from roofline.specs.precision import COMPUTE_PRECISIONS

SPEC_DIR = Path(__file__).resolve().parents[2] / "hardware_specs"
REQUIRED_SKUS = {
    "h100-sxm", "h100-pcie", "h100-nvl", "h200-sxm", "h200-nvl", "a100-sxm-40gb", "a100-sxm-80gb",
    "a100-pcie-80gb", "l40s", "l4", "b200", "mi300x", "mi325x",
}


# ---------------------------------------------------------------- every built-in file


def test_required_skus_are_built_in():
    assert REQUIRED_SKUS <= set(list_gpus())


@pytest.mark.parametrize("name", sorted(p.stem for p in SPEC_DIR.glob("*.json")))
def test_every_spec_file_loads(name):
    spec = load_gpu(name)
    assert isinstance(spec, GPUSpec)
    assert spec.name == name
    assert spec.path.endswith(f"{name}.json")
    assert set(spec.peak_flops_per_s) <= set(COMPUTE_PRECISIONS)
    assert "bf16" in spec.peak_flops_per_s
    # every figure has provenance that names a source
    for field in ("memory_bytes", "memory_bandwidth_bytes_per_s", "clock_hz", "peak_flops_per_s.bf16"):
        assert spec.sources[field].startswith("[")


@pytest.mark.parametrize("name", sorted(REQUIRED_SKUS))
def test_spec_file_says_dense_and_schema_1(name):
    data = json.loads((SPEC_DIR / f"{name}.json").read_text())
    assert data["flops_are"] == "dense"
    assert data["schema_version"] == 1


def test_list_gpus_is_sorted_names():
    names = list_gpus()
    assert names == sorted(names)
    assert "h100-sxm" in names


# ---------------------------------------------------------------- numbers


def test_h100_sxm_figures():
    h = load_gpu("h100-sxm")
    assert h.memory_bytes == 81559 * 2**20  # nvidia-smi 81559 MiB = 85_520_809_984 B
    assert h.memory_bandwidth_bytes_per_s == 3.35e12
    assert h.sm_count == 132
    assert h.clock_hz == 1.83e9  # 132 SM * 4096 FLOP/clk * 1.83e9 = 989.4e12 (the dense BF16 peak)
    assert h.peak_flops("bf16") == 989.5e12  # 1979 sparse / 2
    assert h.peak_flops("fp8") == 1979e12  # 3958 sparse / 2
    assert h.scaleup_bandwidth_bytes_per_s == 450e9  # 900 GB/s bidirectional / 2
    assert h.pcie_bandwidth_bytes_per_s == 64e9  # Gen5 x16 per direction


def test_h100_sxm_ridge_points():
    h = load_gpu("h100-sxm")
    # 1979e12 / 3.35e12 = 590.75 -> 591 FLOP/byte (dense FP8)
    assert round(h.ridge_point_flops_per_byte("fp8")) == 591
    # 989.5e12 / 3.35e12 = 295.37 FLOP/byte (dense BF16)
    assert h.ridge_point_flops_per_byte("bf16") == pytest.approx(295.4, abs=0.05)


def test_ridge_table_matches_reference():
    # bf16 dense TF / TB/s: A100 80GB SXM 312/2.039 = 153.0; H200 989.5/4.8 = 206.1;
    # B200 2250/7.7 = 292.2; MI300X 1307.4/5.3 = 246.7; L4 121/0.3 = 403.3
    expected = {"a100-sxm-80gb": 153.0, "h200-sxm": 206.1, "b200": 292.2, "mi300x": 246.7, "l4": 403.3}
    for name, ridge in expected.items():
        assert load_gpu(name).ridge_point_flops_per_byte("bf16") == pytest.approx(ridge, abs=0.05), name


def test_a100_has_no_fp8():
    a = load_gpu("a100-sxm-80gb")
    assert "fp8" not in a.peak_flops_per_s
    with pytest.raises(RooflineError) as exc:
        a.peak_flops("fp8")
    assert "no fp8 peak" in exc.value.message
    assert "bf16" in exc.value.hint  # lists what it has
    with pytest.raises(RooflineError):
        a.ridge_point_flops_per_byte("fp8")


def test_unknown_precision_name():
    with pytest.raises(RooflineError) as exc:
        load_gpu("h100-sxm").peak_flops("fp7")
    assert "fp7" in exc.value.message
    assert "bf16" in exc.value.hint


def test_precision_is_case_insensitive():
    assert load_gpu("h100-sxm").peak_flops("BF16") == 989.5e12


@pytest.mark.parametrize("name", ["h100-sxm", "h100-pcie", "h100-nvl", "h200-sxm", "h200-nvl"])
def test_hopper_dense_not_sparse(name):
    p = load_gpu(name).peak_flops_per_s
    # fp8 = 2 * bf16 up to NVIDIA's rounding: SXM 1979 = 2 * 989.5; NVL 1670.5 vs 2 * 835.5 = 1671
    assert p["fp8"] == pytest.approx(2 * p["bf16"], rel=1e-3)
    assert p["bf16"] == p["fp16"]
    # bf16 = 2 * tf32 up to NVIDIA's rounding: 2 * 494.5 = 989 vs 989.5
    assert p["bf16"] == pytest.approx(2 * p["tf32"], rel=1e-3)
    # a sparse figure slipped in would make bf16 ~ 30x fp32 instead of ~15x (989.5 / 67 = 14.8)
    assert p["bf16"] / p["fp32"] < 16


@pytest.mark.parametrize("name", ["a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-80gb"])
def test_ampere_dense_not_sparse(name):
    p = load_gpu(name).peak_flops_per_s
    assert p["bf16"] == 312e12 == 2 * p["tf32"]  # 312 = 2 * 156 (dense column of the datasheet)
    assert p["int8"] == 2 * p["bf16"]  # 624 TOPS dense


def test_blackwell_and_cdna3_dense():
    b = load_gpu("b200").peak_flops_per_s
    assert b["fp4"] == 2 * b["fp8"] == 4 * b["bf16"] == 9000e12  # 18 PF sparse / 2
    m = load_gpu("mi300x").peak_flops_per_s
    assert m["bf16"] == 1307.4e12  # 304 CU * 2048 * 2.1e9 = 1307.4e12 (AMD prints dense)


def test_interconnect_falls_back_to_pcie():
    assert load_gpu("l40s").scaleup_bandwidth_bytes_per_s == 0
    assert load_gpu("l40s").interconnect_bandwidth_bytes_per_s() == 32e9  # PCIe Gen4 x16 per direction
    assert load_gpu("h100-sxm").interconnect_bandwidth_bytes_per_s() == 450e9


# ---------------------------------------------------------------- names and aliases


@pytest.mark.parametrize(
    "text, name",
    [
        ("H100", "h100-sxm"),
        ("nvidia h100 80gb hbm3", "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("h200", "h200-sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm-40gb"),
        ("AMD Instinct MI300X", "mi300x"),
        ("  H100_SXM  ", "h100-sxm"),
        ("L40S", "l40s"),
    ],
)
def test_alias_resolution(text, name):
    assert resolve_gpu_name(text) == name
    assert load_gpu(text).name == name


def test_normalize_gpu_name():
    assert normalize_gpu_name(" NVIDIA  H100_80GB ") == "nvidia-h100-80gb"


def test_aliases_are_unique_and_include_short_names():
    table = gpu_aliases()  # raises if two files claim one alias
    for name in list_gpus():
        assert table[name] == name


def test_unknown_name_suggests_nearest():
    with pytest.raises(RooflineError) as exc:
        load_gpu("h100-sxn")
    assert "h100-sxn" in exc.value.message
    assert "h100-sxm" in exc.value.hint
    assert "roofline gpus" in exc.value.hint


def test_unknown_name_without_close_match():
    with pytest.raises(RooflineError) as exc:
        load_gpu("tpu-v5e")
    assert "roofline gpus" in exc.value.hint


# ---------------------------------------------------------------- user files and validation


def _h100_data():
    return json.loads((SPEC_DIR / "h100-sxm.json").read_text())


def _write(tmp_path, data, name="my-gpu.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_user_file_by_path(tmp_path):
    data = _h100_data()
    data["name"] = "my-h100"
    data["memory_bandwidth_bytes_per_s"]["value"] = 3.0e12
    path = _write(tmp_path, data)
    spec = load_gpu(str(path))
    assert spec.name == "my-h100"
    assert spec.path == str(path.resolve())
    assert spec.ridge_point_flops_per_byte("bf16") == pytest.approx(329.8, abs=0.05)  # 989.5 / 3.0
    assert load_gpu(path) == spec  # a Path works too


def test_missing_file():
    with pytest.raises(RooflineError) as exc:
        load_gpu("/nonexistent/gpu.json")
    assert "/nonexistent/gpu.json" in exc.value.message


def _error_for(tmp_path, mutate):
    data = copy.deepcopy(_h100_data())
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(RooflineError) as exc:
        load_gpu(str(path))
    assert "my-gpu.json" in exc.value.message
    return exc.value


def test_missing_field(tmp_path):
    err = _error_for(tmp_path, lambda d: d.pop("tdp_w"))
    assert "missing field 'tdp_w'" in err.message


def test_missing_value_in_figure(tmp_path):
    err = _error_for(tmp_path, lambda d: d["clock_hz"].pop("value"))
    assert "clock_hz.value" in err.message


def test_unknown_field(tmp_path):
    err = _error_for(tmp_path, lambda d: d.update(memory_bandwith_bytes_per_s={"value": 1, "source": "S4"}))
    assert "unknown field 'memory_bandwith_bytes_per_s'" in err.message
    assert "memory_bandwidth_bytes_per_s" in err.hint  # close-match suggestion


def test_unknown_key_in_figure(tmp_path):
    err = _error_for(tmp_path, lambda d: d["tdp_w"].update(unit="W"))
    assert "tdp_w.unit" in err.message


def test_negative_number(tmp_path):
    err = _error_for(tmp_path, lambda d: d["memory_bandwidth_bytes_per_s"].update(value=-3.35e12))
    assert "memory_bandwidth_bytes_per_s.value" in err.message
    assert "positive number" in err.message
    assert "-3350000000000.0" in err.message


def test_zero_is_rejected_except_scaleup(tmp_path):
    err = _error_for(tmp_path, lambda d: d["pcie_bandwidth_bytes_per_s"].update(value=0))
    assert "pcie_bandwidth_bytes_per_s.value" in err.message
    data = _h100_data()
    data["scaleup_bandwidth_bytes_per_s"]["value"] = 0  # no NVLink is legal
    assert load_gpu(str(_write(tmp_path, data, "ok.json"))).interconnect_bandwidth_bytes_per_s() == 64e9


def test_string_instead_of_number(tmp_path):
    err = _error_for(tmp_path, lambda d: d["memory_bandwidth_bytes_per_s"].update(value="3.35 TB/s"))
    assert "memory_bandwidth_bytes_per_s.value" in err.message
    assert '"3.35 TB/s"' in err.message


def test_bool_and_fraction_rejected_for_sm_count(tmp_path):
    assert "sm_count.value" in _error_for(tmp_path, lambda d: d["sm_count"].update(value=True)).message
    assert "whole number" in _error_for(tmp_path, lambda d: d["sm_count"].update(value=131.5)).message


def test_unknown_source_key(tmp_path):
    err = _error_for(tmp_path, lambda d: d["peak_flops_per_s"]["fp8"].update(source="S99"))
    assert "peak_flops_per_s.fp8.source" in err.message
    assert '"S99"' in err.message


def test_unknown_precision_in_file(tmp_path):
    err = _error_for(tmp_path, lambda d: d["peak_flops_per_s"].update(fp6={"value": 1e15, "source": "S4"}))
    assert "peak_flops_per_s.fp6" in err.message


def test_sparse_flag_rejected(tmp_path):
    err = _error_for(tmp_path, lambda d: d.update(flops_are="sparse"))
    assert "flops_are" in err.message


def test_bad_json(tmp_path):
    path = _write(tmp_path, '{"name": "x",\n  "vendor": }')
    with pytest.raises(RooflineError) as exc:
        load_gpu(str(path))
    assert "my-gpu.json" in exc.value.message
    assert "line 2" in exc.value.message


def test_duplicate_key(tmp_path):
    path = _write(tmp_path, '{"name": "x", "name": "y"}')
    with pytest.raises(RooflineError) as exc:
        load_gpu(str(path))
    assert "duplicate key 'name'" in exc.value.message


def test_top_level_not_an_object(tmp_path):
    with pytest.raises(RooflineError) as exc:
        load_gpu(str(_write(tmp_path, "[1, 2]")))
    assert "JSON object" in exc.value.message


# ---------------------------------------------------------------- node shape and scale-out network

NODE_FIELDS = ("gpus_per_node", "scaleout_bandwidth_bytes_per_s", "nvlink_sharp")


@pytest.mark.parametrize("name", sorted(REQUIRED_SKUS))
def test_every_shipped_file_states_the_node_and_network(name):
    data = json.loads((SPEC_DIR / f"{name}.json").read_text())
    spec = load_gpu(name)
    for field in NODE_FIELDS:
        assert field in data, field
        assert spec.sources[field].startswith("["), field  # a source key, not the default
    assert spec.gpus_per_node == 8  # HGX/DGX, 8-OAM platforms; PCIe cards: the assumed 8-card server
    assert spec.scaleout_bandwidth_bytes_per_s > 0
    # a PCIe card's server and network are assumptions, and the file says so
    if "PCIe" in data["form_factor"]:
        assert "ASSUMPTION" in data["scaleout_bandwidth_bytes_per_s"]["note"]


def test_node_and_network_figures():
    for name in ("h100-sxm", "h200-sxm", "b200"):
        g = load_gpu(name)
        # one 400 Gb/s ConnectX-7 per GPU = 400e9 / 8 = 5e10 B/s per direction; NVSwitch gen3+ reduces (NVLS)
        assert (g.gpus_per_node, g.scaleout_bandwidth_bytes_per_s, g.nvlink_sharp) == (8, 5e10, True), name
        assert g.scaleup_topology == "switch"
    a = load_gpu("a100-sxm-80gb")
    # DGX A100: 200 Gb/s HDR per GPU = 2.5e10 B/s; NVSwitch gen2 has no NVLS
    assert (a.scaleout_bandwidth_bytes_per_s, a.nvlink_sharp, a.scaleup_topology) == (2.5e10, False, "switch")
    m = load_gpu("mi300x")
    assert (m.scaleout_bandwidth_bytes_per_s, m.nvlink_sharp, m.scaleup_topology) == (5e10, False, "mesh")
    # L4 (assumed 8 per 100 Gb/s VM): 100e9 / 8 / 8 = 1.5625e9 B/s per GPU
    assert load_gpu("l4").scaleout_bandwidth_bytes_per_s == 1.5625e9
    for name in ("h100-pcie", "h100-nvl", "h200-nvl", "a100-pcie-80gb", "l40s", "l4"):
        assert not load_gpu(name).nvlink_sharp, name  # bridges and PCIe: no switch to reduce in


def test_missing_node_fields_get_documented_defaults(tmp_path):
    data = _h100_data()
    for field in (*NODE_FIELDS, "scaleup_topology"):
        data.pop(field)
    data["scaleup_domain_gpus"]["value"] = 4
    spec = load_gpu(str(_write(tmp_path, data)))
    assert spec.gpus_per_node == 4  # = scaleup_domain_gpus
    assert spec.scaleout_bandwidth_bytes_per_s == 0  # no network: single node only
    assert spec.nvlink_sharp is False and spec.scaleup_topology == "switch"
    assert all(spec.sources[f].startswith("default") for f in (*NODE_FIELDS, "scaleup_topology"))


def test_a_spec_built_in_code_has_a_node_of_its_domain():
    g = load_gpu("h100-sxm")
    kw = {f: getattr(g, f) for f in ("name", "display_name", "vendor", "architecture", "memory_bytes",
                                      "memory_bandwidth_bytes_per_s", "l2_cache_bytes", "sm_count", "clock_hz",
                                      "tdp_w", "scaleup_bandwidth_bytes_per_s", "pcie_bandwidth_bytes_per_s",
                                      "scaleup_domain_gpus", "peak_flops_per_s", "sources")}
    spec = GPUSpec(**kw)
    assert (spec.gpus_per_node, spec.scaleout_bandwidth_bytes_per_s, spec.nvlink_sharp) == (8, 0.0, False)
    assert GPUSpec(**{**kw, "scaleup_domain_gpus": 1, "scaleup_bandwidth_bytes_per_s": 0.0}).gpus_per_node == 1


def test_bad_node_fields(tmp_path):
    err = _error_for(tmp_path, lambda d: d["nvlink_sharp"].update(value="yes"))
    assert "nvlink_sharp.value" in err.message and "true or false" in err.message
    err = _error_for(tmp_path, lambda d: d["nvlink_sharp"].update(value=1))  # a number is not a bool
    assert "nvlink_sharp.value" in err.message
    err = _error_for(tmp_path, lambda d: d["gpus_per_node"].update(value=0))
    assert "gpus_per_node.value" in err.message and "whole number" in err.message
    err = _error_for(tmp_path, lambda d: d["scaleout_bandwidth_bytes_per_s"].update(value=-1))
    assert "scaleout_bandwidth_bytes_per_s.value" in err.message
    err = _error_for(tmp_path, lambda d: d["scaleup_topology"].update(value="ring"))
    assert "scaleup_topology.value" in err.message and "'mesh'" in err.message
    err = _error_for(tmp_path, lambda d: d["gpus_per_node"].update(source="S99"))
    assert "gpus_per_node.source" in err.message
    data = _h100_data()
    data["scaleout_bandwidth_bytes_per_s"]["value"] = 0  # no network is legal
    assert load_gpu(str(_write(tmp_path, data, "ok.json"))).scaleout_bandwidth_bytes_per_s == 0
