"""The CUDA path for real: CUDA events, L2 flush, NVML telemetry, bf16/fp8 GEMMs. Skipped without CUDA."""
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from roofline.measure import compute, stream, intensity, telemetry, timing
from roofline.measure.points import BenchContext  # noqa: E402

MiB = 2**20


@pytest.fixture(scope="module")
def ctx():
    info = telemetry.gpu_info(0)
    return BenchContext("cuda", True, float(info["cache_bytes"]), float(info["memory_bytes"]))


def test_gpu_info_names_the_device_and_nvml():
    info = telemetry.gpu_info(0)
    assert info["name"] and info["memory_bytes"] > 0 and info["cache_bytes"] > 0
    assert "available" in info["nvml"]
    if info["nvml"]["available"]:
        assert info["nvml"]["max_sm_clock_hz"] > 1e8 and info["nvml"]["driver_version"]


def test_cuda_events_with_flush(ctx):
    x = torch.randn(64 * MiB // 4, device="cuda")
    s = timing.time_fn(lambda: x.mul_(1.0), "cuda", timing.TimingBudget(0.01, 0.02, 5, 20), flush=True,
                       l2_bytes=ctx.cache_bytes)
    assert 5 <= len(s.times_s) <= 20 and min(s.times_s) > 0


def test_nvml_sampler_reports_clocks_and_throttle_bits():
    sampler = telemetry.sampler_factory("cuda")()
    x = torch.randn(4096, 4096, device="cuda")
    with sampler:
        for _ in range(50):
            x @ x
        torch.cuda.synchronize()
    r = sampler.result()
    if r["available"]:
        assert r["sm_clock_hz"]["median"] > 0 and isinstance(r["clock_event_reasons"], int)
        assert "gpm" in r


def test_stream_and_gemm_below_datasheet(ctx):
    from roofline.measure.bench import detect_gpu_spec
    from roofline.measure.runner import measure

    spec = detect_gpu_spec(torch.cuda.get_device_name())
    sampler = telemetry.sampler_factory("cuda")
    recs = [measure(p, ctx, sampler) for p in (stream.stream_point(ctx, "triad", 256 * MiB, "stream"),
                                                compute.gemm_point(ctx, "bf16", 4096, 4096, 4096, "gemm_peak"),
                                                intensity.linear_point(ctx, "bf16", 1, 8192, 8192))]
    assert all(r["status"] == "ok" for r in recs), recs
    if spec is not None:
        bw = [(r["bytes_read"] + r["bytes_written"]) / r["summary"]["median_s"] for r in recs]
        flops = recs[1]["flops"] / recs[1]["summary"]["median_s"]
        assert max(bw[0], bw[2]) <= 1.05 * spec.memory_bandwidth_bytes_per_s
        assert flops <= 1.05 * spec.peak_flops("bf16")


def test_fp8_gemm_runs_or_is_skipped_with_reason(ctx):
    from roofline.measure.runner import measure

    rec = measure(compute.gemm_point(ctx, "fp8", 4096, 4096, 4096, "gemm_peak", probe=True), ctx,
                  telemetry.sampler_factory("cuda"))
    assert rec["status"] == "ok" or rec["reason"]
