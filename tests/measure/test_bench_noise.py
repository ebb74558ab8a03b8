"""The bench on a noisy machine: contention detected (round spread, /proc/stat steal and other processes'
CPU time, reference kernels before / between / after the rounds), unstable points re-measured then marked
and left out of the fit, and `validate` telling a cache-resident point from a counting bug.

Timing here runs on a deterministic fake clock: each call of a fake kernel advances it by a scripted time,
so a "noisy" point is noisy the same way on a quiet laptop and on a loaded CI box."""
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from roofline.measure import calibrate, runner, telemetry, timing
from roofline.measure.points import BenchContext, PointSpec
from roofline.measure.profile import load_profile, provenance

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "profiles" / "cpu-quick-vm.json"

# ------------------------------------------------------------------------------------------ /proc/stat

SAMPLE_STAT_0 = """cpu  1000 20 300 8000 50 0 30 100 0 0
cpu0 500 10 150 4000 25 0 15 50 0 0
cpu1 500 10 150 4000 25 0 15 50 0 0
intr 123456 0 0
ctxt 987654
btime 1700000000
processes 4242
procs_running 3
procs_blocked 0
"""
# one second later on 2 CPUs at 100 ticks/s (200 ticks): user +100, system +20, idle +40, steal +10,
# softirq +2, nice +28 -> 100 + 28 + 20 + 40 + 0 + 0 + 2 + 10 = 200 ticks
SAMPLE_STAT_1 = """cpu  1100 48 320 8040 50 0 32 110 0 0
procs_running 2
"""


def test_parse_proc_stat_reads_the_aggregate_cpu_line_and_runnable_tasks():
    s = telemetry.parse_proc_stat(SAMPLE_STAT_0)
    assert s["ticks"] == {"user": 1000, "nice": 20, "system": 300, "idle": 8000, "iowait": 50, "irq": 0,
                          "softirq": 30, "steal": 100, "guest": 0, "guest_nice": 0}
    assert s["procs_running"] == 3
    # an old kernel with four columns: the rest are 0; text without a cpu line (not Linux): None
    assert telemetry.parse_proc_stat("cpu 1 2 3 4\n")["ticks"]["steal"] == 0
    assert telemetry.parse_proc_stat("") is None and telemetry.parse_proc_stat("cpu0 1 2 3 4\n") is None


def test_steal_and_other_processes_fractions_by_hand():
    a, b = telemetry.parse_proc_stat(SAMPLE_STAT_0), telemetry.parse_proc_stat(SAMPLE_STAT_1)
    # this process used 0.9 s = 90 ticks; busy = user 100 + nice 28 + system 20 + softirq 2 = 150 ticks
    c = telemetry.contention_between(a, b, own_s=0.9, ticks_per_s=100.0)
    assert c["ticks"] == 200
    assert c["steal_fraction"] == pytest.approx(10 / 200)  # 0.05
    assert c["other_cpu_fraction"] == pytest.approx((150 - 90) / 200)  # 0.30
    # we cannot have used more than the machine did (tick rounding): clamped at 0, never negative
    assert telemetry.contention_between(a, b, own_s=2.0)["other_cpu_fraction"] == 0.0
    assert telemetry.contention_between(None, b, 0.0) == {"available": False}


def test_cpu_sampler_records_contention_on_linux():
    if telemetry.parse_proc_stat(telemetry._read("/proc/stat")) is None:
        pytest.skip("no /proc/stat (not Linux)")
    with telemetry.CpuSampler() as s:
        sum(i * i for i in range(200_000))
    r = s.result()
    assert 0.0 <= r["steal_fraction"] <= 1.0 and 0.0 <= r["other_cpu_fraction"] <= 1.0
    assert len(r["loadavg"]) == 2 and len(r["procs_running"]) == 2 and r["procs_running"][0] >= 1


# ------------------------------------------------------------------------------------------ fake clock


class FakeClock:
    """perf_counter for timing.py: advanced only by the fake kernels."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def scripted_point(clock, pid: str, durations_s, family: str = "gemm", flops: float = 2e9) -> PointSpec:
    """A point whose k-th measurement (k-th setup: one per round) takes durations_s[k] per call (the last
    one repeated)."""
    rounds = {"k": -1}

    def setup():
        rounds["k"] += 1
        d = durations_s[min(rounds["k"], len(durations_s) - 1)]

        def fn():
            clock.now += d
        return fn, (lambda: None)

    return PointSpec(id=pid, family=family, kind="test", precision="fp32", flops=flops, bytes_read=1e6,
                     bytes_written=1e6, kernels=1.0, working_set_bytes=2e6, setup=setup, every_round=True)


@pytest.fixture
def fake_run(monkeypatch, tmp_path):
    """run(points, reference_times) -> the written profile, on the fake clock; the reference GEMM takes
    reference_times[i] at its i-th check."""
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    budget = timing.TimingBudget(0.0, 0.0, 6, 6)
    monkeypatch.setattr(BenchContext, "budget", property(lambda self: budget))
    monkeypatch.setattr(runner, "REFERENCE_BUDGET", budget)

    def run(points, reference_times=(1e-3,), rounds=2):
        from roofline.measure import compute

        ref = scripted_point(clock, "reference/gemm", list(reference_times))
        monkeypatch.setattr(compute, "reference_points", lambda ctx: {"gemm": ref})
        ctx = BenchContext("cpu", True, 32 * 2**20, 8e9, n_rounds=rounds)
        out = tmp_path / "p.json"
        runner.run_points(points, ctx, out, telemetry.cpu_info(), provenance(["test"], None, {"quick": True}))
        return load_profile(out)
    return clock, run


def test_a_point_whose_rounds_never_agree_is_remeasured_then_marked_unstable(fake_run):
    clock, run = fake_run
    # rounds of 1, 1.5, 2, 2.5, ... ms: the two fastest always 1 and 1.5 ms apart by 50% > 20%
    noisy = scripted_point(clock, "gemm/noisy", [1e-3 * (1 + 0.5 * k) for k in range(10)])
    steady = scripted_point(clock, "gemm/steady", [1e-3])
    p = run([noisy, steady])
    rec = {q["id"]: q for q in p["points"]}
    assert p["unstable"] == ["gemm/noisy"] and rec["gemm/noisy"]["unstable"] is True
    assert "unstable" not in rec["gemm/steady"]
    # re-measured REMEASURE_PASSES times (2 planned rounds + 3 more), the steady point never
    assert p["remeasured"] == {"gemm/noisy": runner.REMEASURE_PASSES}
    assert rec["gemm/noisy"]["rounds_done"] == 2 + runner.REMEASURE_PASSES
    assert rec["gemm/noisy"]["round_p25_s"] == pytest.approx([1e-3, 1.5e-3, 2e-3, 2.5e-3, 3e-3])
    assert rec["gemm/steady"]["rounds_done"] == 2 and rec["gemm/noisy"]["summary"]["round_disagreement"] == \
        pytest.approx(0.5)


def test_a_burst_in_one_round_is_remeasured_and_the_point_stays_stable(fake_run):
    clock, run = fake_run
    burst = scripted_point(clock, "gemm/burst", [1e-3, 3e-3, 1.05e-3])  # round 2 slowed 3x; the re-run agrees
    p = run([burst])
    assert p["unstable"] == [] and p["remeasured"] == {"gemm/burst": 1}
    assert p["points"][0]["summary"]["robust_s"] == pytest.approx(1.025e-3)  # mean of the two fastest rounds


def test_reference_kernel_drift_is_recorded_as_contention(fake_run):
    clock, run = fake_run
    # checks: start 1.0 ms, after round 1 1.0 ms, after round 2 1.4 ms: slowdown 1.4 / 1.0 - 1 = 40% > 15%
    p = run([scripted_point(clock, "gemm/a", [1e-3])], reference_times=[1e-3, 1e-3, 1.4e-3])
    c = p["contention"]
    assert [ch["at"] for ch in c["reference_checks"]] == ["start", "after round 1", "after round 2"]
    assert c["reference_slowdown"]["gemm"] == pytest.approx(0.4) and c["reference_drift"]["gemm"] == pytest.approx(0.4)
    assert c["detected"] is True and any("reference gemm ran 40% slower" in r for r in c["reasons"])
    assert len(c["rounds"]) == 2 and {"steal_fraction", "other_cpu_fraction"} <= set(c["rounds"][0])
    assert c["run"]["available"] is (telemetry.parse_proc_stat(telemetry._read("/proc/stat")) is not None)


def test_a_steady_reference_is_not_contention(fake_run):
    clock, run = fake_run
    p = run([scripted_point(clock, "gemm/a", [1e-3])], reference_times=[1e-3, 1.05e-3, 1.02e-3])
    c = p["contention"]
    assert c["reference_slowdown"]["gemm"] == pytest.approx(0.05)
    assert not any("reference" in r for r in c["reasons"])  # others' CPU time may still be reported


def test_contention_summary_limits_by_hand():
    checks = [{"at": "start", "times_s": {"gemm": 3.0e-3, "copy": 5.0e-3}},
              {"at": "end", "times_s": {"gemm": 3.3e-3, "copy": 5.0e-3}}]
    quiet = {"available": True, "steal_fraction": 0.0, "other_cpu_fraction": 0.01}
    c = runner.contention_summary(checks, quiet)
    assert c["detected"] is False and c["reference_slowdown"] == pytest.approx({"gemm": 0.1, "copy": 0.0})
    busy = {"available": True, "steal_fraction": 0.05, "other_cpu_fraction": 0.45}
    c = runner.contention_summary(checks, busy)
    assert c["detected"] is True and len(c["reasons"]) == 2
    assert "other processes used 45%" in c["reasons"][0] and "took 5.0%" in c["reasons"][1]


# ------------------------------------------------------------------------------------------ the fit


def _gemm(pid, flops, t, **extra):
    return {"id": pid, "family": "gemm", "kind": "ksweep", "precision": "fp32", "status": "ok", "flops": flops,
            "bytes_read": flops / 100, "bytes_written": 0.0, "kernels": 1.0, "working_set_bytes": 1e9,
            "summary": {"median_s": t}, **extra}


def test_unstable_points_are_left_out_of_the_fit():
    ceil = {"memory_bandwidth_bytes_per_s": 30e9, "peak_flops_per_s": {"fp32": 200e9}}
    good = _gemm("gemm/a", 2e9, 0.02)  # 2e9 / 0.02 s = 100 GFLOP/s: c = 0.5 of the 200 GFLOP/s peak
    bad = _gemm("gemm/b", 4e9, 0.2, unstable=True)  # a contended 20 GFLOP/s: c = 0.1, must not be fitted
    rec = calibrate.fit_record([good, bad], ceil)
    assert len(rec["compute_samples"]["fp32"]) == 1
    assert rec["compute_samples"]["fp32"][0][2] == pytest.approx(math.log(0.5), abs=1e-4)
    assert len(calibrate.fit_record([good, {**bad, "unstable": False}], ceil)["compute_samples"]["fp32"]) == 2


@pytest.fixture(scope="module")
def shipped_validation():
    pytest.importorskip("torch")
    from roofline.measure.validate import validate

    prof = load_profile(SHIPPED)
    assert prof["unstable"] == []  # the shipped profile: an older run, no per-point flags, no contention
    return validate, prof


def test_validate_excludes_and_reports_the_profiles_unstable_list(shipped_validation):
    validate, prof = shipped_validation
    base = validate(prof)
    assert base["unstable"] == {"points": [], "excluded_from_fit": 0, "excluded_from_errors": 0}
    assert base["contention"] is None
    rows = {r["id"]: r for r in base["points"]}
    cal = next(i for i, r in rows.items() if r["family"] == "gemm" and r["split"] == "calibration")
    held = next(i for i, r in rows.items() if r["family"] == "gemm" and r["split"] == "held_out")
    marked = validate({**prof, "unstable": [cal, held]})  # the list alone, as a profile before the flags
    assert marked["unstable"] == {"points": sorted([cal, held]), "excluded_from_fit": 1, "excluded_from_errors": 1}
    assert marked["families"]["gemm"]["held_out"] == base["families"]["gemm"]["held_out"] - 1
    assert {r["id"] for r in marked["points"] if r["unstable"]} == {cal, held}

    from roofline.report.validation import render_validation

    text = render_validation(marked)
    assert "Unstable: 2 points whose rounds still disagreed after re-measurement: 1 excluded from the fit, " \
           "1 from the error statistics" in text and cal in text
    assert "Contention: not recorded" in text


# ------------------------------------------------------------------------------------------ cache or bug


def _row(fraction, compute_fraction, working_set, memory_bound=True, cache=32 * 2**20):
    from roofline.measure.calibrate import CACHE_RESIDENT_FACTOR

    return {"roofline_fraction": fraction, "compute_fraction": compute_fraction, "memory_bound": memory_bound,
            "cache_resident": working_set < CACHE_RESIDENT_FACTOR * cache}


def test_cache_resident_gemv_is_told_from_a_counting_bug():
    from roofline.measure.validate import ceiling_check

    # fp32 GEMV 512 x 1024: weights 2 MiB; with x and y the working set is 2,101,248 B < 2 x 32 MiB.
    # 2 FLOPs per weight: 1,048,576 FLOPs over 2,101,248 B. Measured 35 us on a 25 GB/s DRAM, 200 GFLOP/s
    # CPU: 2,101,248 / 35e-6 = 60.0 GB/s = 2.40x DRAM; FLOPs 1,048,576 / 35e-6 = 30 GFLOP/s = 0.15 of the peak
    bw, peak, t = 25e9, 200e9, 35e-6
    frac, cfrac = 2_101_248 / bw / t, 1_048_576 / peak / t
    assert frac == pytest.approx(2.4014, rel=1e-4) and cfrac == pytest.approx(0.1498, rel=1e-3)
    assert ceiling_check(_row(frac, cfrac, 2_101_248)) == "cache_resident"
    # the same speed with a 256 MiB working set (weights cycled past the cache): a counting or timing bug
    assert ceiling_check(_row(frac, cfrac, 256 * 2**20)) == "above_ceiling"
    # in cache but its FLOP rate over the peak (FLOPs counted 8x): no cache explains it
    assert ceiling_check(_row(frac, 8 * cfrac, 2_101_248)) == "above_ceiling"
    # compute-bound and above the ceiling: a bug whatever the working set
    assert ceiling_check(_row(1.2, 1.2, 1e6, memory_bound=False)) == "above_ceiling"
    assert ceiling_check(_row(0.9, 0.1, 1e6)) is None and ceiling_check(_row(None, None, 1e6)) is None


def test_cache_size_comes_from_the_profile_then_the_caches_then_the_datasheet():
    from roofline.measure.validate import cache_bytes_of
    from roofline.specs.hardware import load_gpu

    assert cache_bytes_of({"device": {"cache_bytes": 33554432.0}}) == 32 * 2**20
    caches = [{"level": 1, "type": "Data", "size_bytes": 32768.0}, {"level": 2, "type": "Instruction",
              "size_bytes": 64 * 2**20}, {"level": 3, "type": "Unified", "size_bytes": 16 * 2**20}]
    assert cache_bytes_of({"device": {"cache_bytes": 0.0, "caches": caches}}) == 16 * 2**20
    h100 = load_gpu("h100-sxm")
    assert cache_bytes_of({"device": {"kind": "cuda"}}, h100) == h100.l2_cache_bytes > 0
    assert cache_bytes_of({"device": {}}) == 0.0


def test_measurement_notes_say_what_was_skipped_and_why():
    from roofline.report.validation import measurement_notes

    result = {"contention": {"detected": True, "reasons": ["other processes used 45% of the CPU time"],
                             "reference_slowdown": {}}, "unstable": {"points": [], "excluded_from_fit": 0,
                                                                     "excluded_from_errors": 0},
              "skipped": {"gemm/gemm_peak/bf16/1024x1024x1024": "bf16 GEMM has no fast kernel here",
                          "gemm/gemm_peak/bf16/2048x2048x2048": "bf16 GEMM has no fast kernel here"},
              "cache_resident": ["gemm/msweep/fp32/1x512x1024"], "cache_bytes": 32 * 2**20,
              "cache_resident_below_bytes": 64 * 2**20, "above_ceiling": []}
    lines = measurement_notes(result)
    assert lines[0] == "Contention DETECTED during the run: other processes used 45% of the CPU time"
    assert "Not measured: 2 points (bf16 GEMM has no fast kernel here): gemm/gemm_peak/bf16/1024x1024x1024" in lines[2]
    assert lines[3].startswith("Cache-resident, not an error") and "64.00 MiB" in lines[3]


def test_run_notes_tell_the_user_about_skipped_unstable_and_contention():
    from roofline.measure.bench import run_notes

    notes = run_notes({"skipped": {"gemm/gemm_peak/bf16/1024x1024x1024": "bf16 GEMM has no fast kernel here"},
                       "unstable": ["gemm/ksweep/fp32/4096x4096x64"],
                       "contention": {"detected": True, "reasons": ["steal 5%"]}})
    assert notes[0] == "1 points not measured (bf16 GEMM has no fast kernel here): gemm/gemm_peak/bf16/1024x1024x1024"
    assert "left out of the fit: gemm/ksweep/fp32/4096x4096x64" in notes[1] and "steal 5%" in notes[2]
    assert run_notes({"skipped": {}, "unstable": [], "contention": {"detected": False}}) == []
