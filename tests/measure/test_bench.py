"""roofline.bench pieces that need no measurement: timing arithmetic, telemetry parsing, profile IO,
calibration curves, the CUDA error, point counting."""
import json
import math

import numpy as np
import pytest

from roofline.measure import calibrate, profile, telemetry, timing
from roofline.measure.points import BenchContext, PointSpec
from roofline.measure.runner import measure
from roofline.errors import RooflineError

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------------------------- timing


def test_reps_for_derives_counts_from_the_budget():
    b = timing.TimingBudget(warmup_s=0.05, measure_s=0.25, min_reps=5, max_reps=200)
    # 10 ms kernel: 0.05 / 0.01 = 5 warm-up runs, 0.25 / 0.01 = 25 timed runs
    assert timing.reps_for(0.01, b) == (5, 25)
    # 1 s kernel: at least 1 warm-up and min_reps timed runs
    assert timing.reps_for(1.0, b) == (1, 5)
    # 1 us kernel: capped at max_reps
    assert timing.reps_for(1e-6, b) == (200, 200)


def test_samples_summary_is_median_not_mean():
    s = timing.Samples((1.0, 2.0, 3.0, 4.0, 100.0)).summary()
    assert s["median_s"] == 3.0 and s["mean_s"] == 22.0 and s["min_s"] == 1.0 and s["n"] == 5
    # numpy linear quantile: p10 = 1 + 0.4 * (2 - 1) = 1.4
    assert s["p10_s"] == pytest.approx(1.4)


def test_time_fn_cpu_counts_every_rep():
    calls = []
    # no warm-up asked for: the first call warms, the second (the estimate) is the first of the 7 timed runs
    s = timing.time_fn(lambda: calls.append(1), "cpu", timing.TimingBudget(0.0, 0.0, min_reps=7, max_reps=7))
    assert len(s.times_s) == 7 and all(t >= 0 for t in s.times_s)
    assert len(calls) == 1 + 7
    # 1 s of warm-up for a sub-millisecond call: capped at max_reps = 7 warm-up runs, the two estimate runs
    # among them, then 7 timed runs: 7 + 7 calls
    calls.clear()
    s = timing.time_fn(lambda: calls.append(1), "cpu", timing.TimingBudget(1.0, 0.0, min_reps=7, max_reps=7))
    assert len(s.times_s) == 7 and len(calls) == 7 + 7


# -------------------------------------------------------------------------------------------- telemetry


def test_parse_size_and_reason_names():
    assert telemetry.parse_size("32768K") == 32 * 2**20  # 32768 * 1024 = 33554432
    assert telemetry.parse_size("1M") == 2**20
    assert telemetry.parse_size("garbage") == 0.0
    assert telemetry.reason_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]


def test_cpu_info_has_cores_caches_memory():
    info = telemetry.cpu_info()
    assert info["kind"] == "cpu" and info["cores"] >= 1
    assert info["memory_bytes"] > 0 and isinstance(info["caches"], list)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-NVML path")
def test_gpu_sampler_without_nvml_records_unavailable():
    with telemetry.sampler_factory("cuda")() as s:
        pass
    r = s.result()
    assert r["available"] is False and r["reason"] and r["throttled"] is False


# -------------------------------------------------------------------------------------------- profile


def _tiny_profile():
    pts = [{"id": "stream/read/8", "family": "stream", "kind": "read", "precision": "fp32", "params": {},
            "flops": 2.0, "bytes_read": 8.0, "bytes_written": 0.0, "kernels": 1.0, "working_set_bytes": 8.0,
            "status": "ok", "samples_s": [1e-9, 2e-9],
            "summary": {"median_s": 1.5e-9, "p10_s": 1.1e-9, "p90_s": 1.9e-9}}]
    p = profile.new_profile({"kind": "cpu", "name": "x", "memory_bytes": 8e9}, profile.provenance(["roofline", "bench"]),
                            pts)
    p["points"] = pts
    p["missing"] = []
    return p


def test_profile_round_trip(tmp_path):
    p = _tiny_profile()
    path = profile.write_profile(p, tmp_path / "sub" / "p.json")
    back = profile.load_profile(path)
    assert back.pop("_path") == str(path)
    assert back == json.loads(json.dumps(p))
    assert not list((tmp_path / "sub").glob(".*tmp"))  # no temp file left behind


def test_profile_write_replaces_non_finite_and_is_strict_json(tmp_path):
    p = _tiny_profile()
    p["ceilings"] = {"memory_bandwidth_bytes_per_s": math.inf, "x": np.float64(2.5)}
    text = profile.write_profile(p, tmp_path / "p.json").read_text()
    assert json.loads(text)["ceilings"] == {"memory_bandwidth_bytes_per_s": None, "x": 2.5}


def test_load_profile_errors_name_the_file(tmp_path):
    with pytest.raises(RooflineError, match="profile not found"):
        profile.load_profile(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    with pytest.raises(RooflineError, match="not a roofline profile"):
        profile.load_profile(bad)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**_tiny_profile(), "version": 99}))
    with pytest.raises(RooflineError, match="version 99"):
        profile.load_profile(old)


def test_provenance_hashes_the_spec_file():
    from roofline.specs.hardware import load_gpu

    spec = load_gpu("h100-sxm")
    prov = profile.provenance(["x"], spec)
    assert prov["spec"]["name"] == "h100-sxm" and len(prov["spec"]["sha256"]) == 64


# -------------------------------------------------------------------------------------------- runner


def _point(setup):
    return PointSpec(id="t/x", family="gemm", kind="k", precision="fp32", flops=1.0, bytes_read=1.0,
                     bytes_written=0.0, kernels=1.0, working_set_bytes=1e12, setup=setup)


def test_out_of_memory_point_is_skipped_and_recorded():
    def setup():
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000000000000 bytes")
    rec = measure(_point(setup), BenchContext("cpu", True, 1e6, 1e9), telemetry.CpuSampler)
    assert rec["status"] == "skipped" and rec["reason"].startswith("out of memory")


def test_unsupported_precision_is_skipped_with_reason():
    from roofline.measure.compute import Unsupported

    def setup():
        raise Unsupported("fp8 GEMM needs torch._scaled_mm on CUDA")
    rec = measure(_point(setup), BenchContext("cpu", True, 1e6, 1e9), telemetry.CpuSampler)
    assert rec == {**rec, "status": "skipped", "reason": "fp8 GEMM needs torch._scaled_mm on CUDA"}


# -------------------------------------------------------------------------------------------- counting


def test_gemm_point_counts_with_the_model_formula():
    from roofline.measure.compute import gemm_point

    p = gemm_point(BenchContext("cpu", True, 1e6, 1e9), "fp32", 4, 8, 16, "ksweep")
    assert p.flops == 2 * 4 * 8 * 16  # = 1024
    assert p.bytes_read == 4 * (16 * 8 + 4 * 16)  # B (k x n) + A (m x k) fp32 = 768
    assert p.bytes_written == 4 * 4 * 8  # C (m x n) = 128


def test_stream_point_counts():
    from roofline.measure.stream import stream_point

    p = stream_point(BenchContext("cpu", True, 1e6, 1e9), "triad", 4096, "stream")
    # 1024 fp32 elements: reads a and b (2 * 4096 B), writes c (4096 B), 2 FLOPs each
    assert (p.flops, p.bytes_read, p.bytes_written) == (2048, 8192, 4096)


def test_layer_point_counts_match_the_engine():
    from roofline.measure.layer import layer_point, scaled_model

    m = scaled_model("llama-3.1-8b", 4, 2)
    assert (m.hidden_size, m.num_heads, m.num_kv_heads, m.head_dim, m.intermediate_size) == (1024, 8, 2, 128, 3584)
    p = layer_point(BenchContext("cpu", True, 1e6, 1e9), "llama-3.1-8b", 4, 2, "fp32", 1, 1, 256)
    # per layer: qkv 1024 x (1024 + 2 * 256) + o 1024 x 1024 + mlp 3 x 1024 x 3584 = 13,631,488 weights;
    # a batch-1 decode reads each once, 2 layers, fp32: 13,631,488 * 2 * 4 B = 109,051,904 B
    # + K and V of 257 tokens: 257 * 2 heads * (128 + 128) * 4 B * 2 layers = 1,052,672 B
    # + activations (under 0.5 MB)
    assert 110_104_576 < p.bytes_read < 110_104_576 + 0.5e6
    assert p.kernels == 24  # 12 kernels per layer in the engine's count


# -------------------------------------------------------------------------------------------- calibrate


def test_constant_samples_give_a_constant_fraction():
    rows = tuple((x, y, math.log(0.5)) for x in (-1.0, 0.0, 1.0) for y in (6.0, 8.0))
    eff = calibrate.CalibratedEfficiency(compute_samples=rows, memory_samples=rows, kernel_overhead_s=1e-6)
    flops = np.array([1e3, 1e9, 1e12])
    assert np.allclose(eff.compute_fraction(flops, flops / 10), 0.5)
    assert np.allclose(eff.memory_fraction(np.zeros((2, 3)), np.full((2, 3), 1e7)), 0.5)


def test_fraction_follows_intensity_and_extrapolates_flat():
    # fraction 0.1 at I = 1 and 0.9 at I = 100 (log10 I = 0 and 2), all at B = 1e8 bytes
    rows = ((0.0, 8.0, math.log(0.1)), (2.0, 8.0, math.log(0.9)))
    eff = calibrate.CalibratedEfficiency(compute_samples=rows)
    b = 1e8
    lo, hi, far_lo, far_hi = eff.compute_fraction(np.array([1.0, 100.0, 1e-3, 1e5]) * b, b)
    assert lo == pytest.approx(0.1, rel=0.02) and hi == pytest.approx(0.9, rel=0.02)
    assert far_lo == pytest.approx(0.1, rel=0.02) and far_hi == pytest.approx(0.9, rel=0.02)


def test_efficiency_for_borrows_curves_when_a_precision_has_few_points():
    rec = {"kernel_overhead_s": 2e-6, "memory_samples": [[0.0, 8.0, 0.0]],
           "compute_samples": {"fp32": [[float(i), 8.0, -1.0] for i in range(6)], "bf16": [[3.0, 8.0, 0.0]]}}
    assert len(calibrate.efficiency_for(rec, "fp32").compute_samples) == 6
    assert len(calibrate.efficiency_for(rec, "bf16").compute_samples) == 7
    assert calibrate.efficiency_for(rec, "fp32").kernel_overhead_s == 2e-6


def _attention_point(batch, new, cached, t, working_set=1e12):
    """An ok fp32 attention point of llama-3.1-8b measured at t seconds (counts from the model's formulas)."""
    from roofline.measure.attention import attention_cost

    c = attention_cost(calibrate_model(), batch, new, cached, "fp32")
    return {"id": f"attention/{batch}/{new}/{cached}", "family": "attention", "kind": "decode" if new == 1 else "prefill",
            "precision": "fp32", "status": "ok", "summary": {"median_s": t}, "working_set_bytes": working_set,
            "params": {"model": "llama-3.1-8b", "batch": batch, "new": new, "cached": cached}, **c}


def calibrate_model():
    from roofline.measure.attention import attention_model

    return attention_model("llama-3.1-8b")


CEIL = {"memory_bandwidth_bytes_per_s": 30e9, "peak_flops_per_s": {"fp32": 200e9}, "layer_kernel_overhead_s": 1e-5}


def test_attention_table_reproduces_its_calibration_points():
    from roofline.measure.predict import predict_point
    from roofline.measure.device import cpu_spec

    pts = [_attention_point(8, 1, 4096, 0.03), _attention_point(1, 1024, 0, 0.08)]
    rec = calibrate.fit_record(pts, CEIL)
    assert len(rec["attention_samples"]["fp32"]) == 4  # attn_scores + attn_context of each point
    eff = calibrate.efficiency_for(rec, "fp32")
    spec = cpu_spec({"name": "cpu"}, CEIL, "test")
    for p in pts:  # both fitted exactly: decode on the memory side, prefill on the compute side
        assert predict_point(p, spec, eff) == pytest.approx(p["summary"]["median_s"], rel=0.02), p["id"]
    # decode reaches r = bare roofline / net time of the bandwidth: its KV bytes / 0.03 s / 30 GB/s
    dec = pts[0]
    b = dec["bytes_read"] + dec["bytes_written"]
    assert eff.attention_memory_fraction(dec["flops"] / 2, b / 2) == pytest.approx(b / 30e9 / (0.03 - 1e-5), rel=0.05)


def test_attention_falls_back_to_the_gemm_curves_in_an_old_profile():
    rows = [[0.3, 7.5, math.log(0.4)], [2.0, 8.0, math.log(0.7)]]
    old = {"kernel_overhead_s": 1e-6, "memory_samples": rows, "compute_samples": {"fp32": rows}}
    eff = calibrate.efficiency_for(old, "fp32")
    f, b = np.array([2e7, 1e10]), np.array([1e7, 1e8])
    assert np.allclose(eff.attention_memory_fraction(f, b), eff.memory_fraction(f, b))
    assert np.allclose(eff.attention_compute_fraction(f, b), eff.compute_fraction(f, b))
    assert eff.to_dict()["attention_points"] == 0


def test_cache_resident_decode_attention_is_not_fitted_on_a_cpu():
    hot = _attention_point(1, 1, 1024, 3e-4, working_set=8.4e6)  # 8.4 MB in a 32 MB last-level cache
    cold = _attention_point(8, 1, 4096, 0.03)
    cpu = calibrate.hot_cache_bytes({"kind": "cpu", "cache_bytes": 32 * 2**20})
    assert cpu == 32 * 2**20 and calibrate.hot_cache_bytes({"kind": "cuda", "cache_bytes": 50e6}) == 0.0
    assert len(calibrate.fit_record([hot, cold], CEIL, cpu)["attention_samples"]["fp32"]) == 2
    assert len(calibrate.fit_record([hot, cold], CEIL, 0.0)["attention_samples"]["fp32"]) == 4


def test_ceilings_pick_the_best_points():
    def pt(fam, kind, prec, flops, nbytes, t, kernels=1.0):
        return {"id": f"{fam}/{kind}/{t}", "family": fam, "kind": kind, "precision": prec, "flops": flops,
                "bytes_read": nbytes, "bytes_written": 0.0, "kernels": kernels, "status": "ok",
                "summary": {"median_s": t}}
    c = calibrate.ceilings([pt("stream", "read", "fp32", 0, 1e9, 0.05), pt("stream", "copy", "fp32", 0, 2e9, 0.05),
                            pt("gemm", "gemm_peak", "fp32", 2e9, 1e6, 0.01), pt("launch", "launch", "fp32", 0, 0, 1e-4, 100)])
    assert c["memory_bandwidth_bytes_per_s"] == pytest.approx(40e9)  # 2e9 B / 0.05 s
    assert c["peak_flops_per_s"] == {"fp32": pytest.approx(200e9)}  # 2e9 / 0.01 s
    assert c["launch_overhead_s"] == pytest.approx(1e-6)  # 1e-4 s / 100 ops


# -------------------------------------------------------------------------------------------- CLI


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bench_cuda_without_cuda_is_a_clear_error(run_cli):
    code, out, err = run_cli("bench", "--device", "cuda", "--quick")
    assert code == 1 and out == ""
    assert err.startswith("Error: CUDA is not available")
    assert "Hint: use --device cpu" in err


def test_validate_missing_profile(run_cli, tmp_path):
    code, _, err = run_cli("validate", str(tmp_path / "none.json"))
    assert code == 1 and "Error: profile not found" in err


def test_bench_cpu_with_gpu_spec_is_a_usage_error(run_cli):
    code, out, err = run_cli("bench", "--device", "cpu", "--gpu", "h100-sxm")
    assert code == 2 and out == ""
    assert "Error: --gpu names a GPU spec to compare against; a CPU run has no datasheet" in err


# ------------------------------------------------------------------------------- noisy-machine robustness


def test_robust_round_statistic_is_the_median_of_the_faster_half():
    assert timing.robust_round_s([2.0]) == 2.0
    assert timing.robust_round_s([1.0, 3.0, 1.2]) == pytest.approx(1.1)  # the two fastest of three
    assert timing.robust_round_s([5.0, 1.0, 1.1, 9.0, 1.2, 7.0]) == pytest.approx(1.1)  # 3 bursts do not move it
    assert timing.round_disagreement([1.0]) == 0.0
    assert timing.round_disagreement([3.0, 1.0, 1.5]) == pytest.approx(0.5)


def test_sample_weight_falls_with_round_disagreement():
    assert calibrate.sample_weight({"summary": {}}) == 1.0  # older profiles: no rounds recorded
    assert calibrate.sample_weight({"round_p25_s": [1.0, 1.0, 3.0]}) == pytest.approx(1.0)
    assert calibrate.sample_weight({"round_p25_s": [1.0, 1.1, 3.0]}) == pytest.approx(0.5)
    assert calibrate.sample_weight({"round_p25_s": [1.0, 1.3]}) == pytest.approx(0.1)


def test_a_badly_measured_sample_cannot_drag_its_neighbourhood():
    # two well-measured samples at fraction 0.5 bracket a sample at 0.1 whose rounds disagreed by 60%
    good = [(0.0, 8.0, math.log(0.5), 1.0), (0.4, 8.0, math.log(0.5), 1.0)]
    bad = (0.2, 8.0, math.log(0.1), 1.0 / (1.0 + 6.0**2))
    eff = calibrate.CalibratedEfficiency(compute_samples=tuple(good + [bad]))
    naive = calibrate.CalibratedEfficiency(compute_samples=tuple(good + [bad[:3]]))
    f = np.array([10**0.2 * 1e8])
    assert eff.compute_fraction(f, 1e8)[0] > 0.4 > naive.compute_fraction(f, 1e8)[0]


def test_split_alternates_along_each_m_sweep_line():
    from roofline.measure.validate import split

    pts = [{"id": f"gemm/msweep/fp32/{m}x{n}x{k}", "family": "gemm", "kind": "msweep", "precision": "fp32",
            "params": {"m": m, "n": n, "k": k}, "flops": 2.0 * m * n * k, "bytes_read": 4.0 * n * k,
            "bytes_written": 4.0 * m * n} for (n, k) in ((1024, 1024), (4096, 2048)) for m in (2, 4, 8, 16, 32)]
    train, test = split(pts)
    held = {(p["params"]["n"], p["params"]["m"]) for p in test}
    assert held == {(1024, 4), (1024, 16), (4096, 4), (4096, 16)}
    assert len(train) == 6


def test_unstable_points_are_remeasured_and_recorded(tmp_path, monkeypatch):
    from roofline.measure import runner
    from roofline.measure.profile import load_profile, provenance
    from roofline.measure.telemetry import cpu_info

    calls = {"n": 0}

    def setup():
        def fn():  # rounds 1 and 2 disagree (the second is 3x slower); later rounds agree with the first
            calls["n"] += 1
            import time
            time.sleep(0.003 if calls["n"] <= 8 or calls["n"] > 16 else 0.009)
        return fn, (lambda: None)

    spec = PointSpec(id="gemm/test/fp32/1", family="gemm", kind="test", precision="fp32", flops=1e6,
                     bytes_read=1e3, bytes_written=1e3, kernels=1.0, working_set_bytes=2e3, setup=setup)
    monkeypatch.setattr(timing, "QUICK_CPU", timing.TimingBudget(0.0, 0.0, 6, 6))
    ctx = BenchContext("cpu", True, 32 * 2**20, 8e9, n_rounds=2)
    monkeypatch.setattr(BenchContext, "budget", property(lambda self: timing.TimingBudget(0.0, 0.0, 6, 6)))
    spec.every_round = True
    out = tmp_path / "p.json"
    runner.run_points([spec], ctx, out, cpu_info(), provenance(["test"], None, {"quick": True}))
    p = load_profile(out)
    rec = p["points"][0]
    assert p["remeasured"] == {spec.id: rec["remeasured_rounds"]} and rec["remeasured_rounds"] >= 1
    assert rec["rounds_done"] == 2 + rec["remeasured_rounds"] and p["unstable"] == []
    assert rec["summary"]["robust_s"] < 0.006 and p["elapsed_s"] > 0


def test_bench_without_torch_is_one_error_line(run_cli, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)  # an import of torch now fails as if it were not installed
    code, _, err = run_cli("bench", "--device", "cpu", "--quick", "--output", "/tmp/never-written.json")
    assert code == 1 and err.startswith("Error: roofline bench needs torch") and "Traceback" not in err
