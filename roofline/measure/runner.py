"""Run a plan of points: measure each with telemetry, save the profile after every point, survive signals.

The profile on disk is rewritten (atomically) after each point, so even a hard kill leaves everything
measured so far. SIGINT / SIGTERM stop the run between two Python bytecodes (a long torch op finishes
first); the profile is then finalised with `complete: false`, `interrupted: <signal>` and `missing`, and
`BenchInterrupted` is raised. Out-of-memory points are recorded as skipped and the run goes on.
"""
from __future__ import annotations

import gc
import signal
import time
from pathlib import Path
from typing import Any, Callable


from roofline.measure import attention, compute, layer, stream, intensity
from roofline.measure.calibrate import ceilings, fit_record, hot_cache_bytes
from roofline.measure.compute import Unsupported
from roofline.measure.points import STREAM_FAMILIES, BenchContext, PointSpec, set_cpu_threads
from roofline.measure.profile import new_profile, write_profile
from roofline.measure.telemetry import sampler_factory
from roofline.measure.timing import REFERENCE, reps_for, ROUND_AGREEMENT, robust_round_s, round_disagreement, time_fn

Progress = Callable[[int, int, str], None]
#: re-measurement after the planned rounds (CPU): points whose two fastest rounds disagree by more than
#: REMEASURE_DISAGREEMENT (2x timing.ROUND_AGREEMENT: on this shared VM half of the points disagree by
#: more than 7%, a quarter by more than 17%) get up to REMEASURE_PASSES more rounds, the worst first,
#: within REMEASURE_BUDGET_S seconds (quick, full)
REMEASURE_DISAGREEMENT = 2.0 * ROUND_AGREEMENT
REMEASURE_PASSES = 3
REMEASURE_BUDGET_S = {True: 15.0, False: 60.0}


class BenchInterrupted(Exception):
    def __init__(self, signame: str, path: Path, done: int, total: int):
        super().__init__(signame)
        self.signame, self.path, self.done, self.total = signame, path, done, total


def plan(ctx: BenchContext) -> list[PointSpec]:
    """Every point of a run, in order: launch + GEMM ceilings, streams, sweeps, attention, layer."""
    return compute.points(ctx) + stream.points(ctx) + intensity.points(ctx) + attention.points(ctx) + layer.points(ctx)


def _is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "out of memory" in text \
        or "can't allocate memory" in text or "cannot allocate memory" in text


def _release(ctx: BenchContext) -> None:
    """Free what a point left behind. CPU: its tensors go with their last reference; a young-generation
    collection catches small cycles (a full gc.collect() costs ~75 ms with torch loaded: 25 s of a quick
    run's ~330 measurements). CUDA: a full collection, then the caching allocator is emptied."""
    if ctx.device != "cuda":
        gc.collect(1)
        return
    gc.collect()
    if ctx.device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _cuda_graph(fn):
    """Capture fn in a CUDA graph (after warm-up on a side stream); returns graph.replay."""
    import torch

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def measure(spec: PointSpec, ctx: BenchContext, sampler: Callable[[], Any]) -> dict[str, Any]:
    """One point -> its JSON record (status ok / skipped / error)."""
    rec = spec.record()
    fn = teardown = None
    try:
        fn, teardown = spec.setup()
        if spec.graph and ctx.device == "cuda":
            try:
                fn = _cuda_graph(fn)
                rec["params"]["cuda_graph"] = True
            except RuntimeError as e:
                rec["params"]["cuda_graph"] = f"capture failed, eager: {str(e).splitlines()[0]}"
        with sampler() as s:
            samples = time_fn(fn, ctx.device, ctx.budget, flush=spec.flush, l2_bytes=ctx.cache_bytes)
        rec.update(status="ok", samples_s=list(samples.times_s), summary=samples.summary(REFERENCE[ctx.device]),
                   telemetry=s.result())
    except Unsupported as e:
        rec.update(status="skipped", reason=str(e))
    except Exception as e:  # noqa: BLE001 - one broken point must not end the run; it is recorded
        if not _is_oom(e):
            rec.update(status="error", reason=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        else:
            rec.update(status="skipped", reason=f"out of memory ({spec.working_set_bytes / 1e9:.2f} GB working set)")
    finally:
        if teardown is not None:
            teardown()
        del fn, teardown
        if spec.family not in STREAM_FAMILIES:
            stream.release()
        if not spec.id.startswith("gemm/msweep/"):
            intensity.release()
        _release(ctx)
    return rec


def measure_block(specs: list[PointSpec], ctx: BenchContext, sampler: Callable[[], Any]) -> list[dict[str, Any]]:
    """The CPU `stream` points of one round, timed in turns: every kernel of every size is set up (their
    arrays held together), warmed up, then each cycle times one call of each kernel, so whatever state the
    host's memory bandwidth is in (it switches between ~35 and ~55 GB/s for seconds at a time on the shared
    VM) reaches every stream point alike, instead of the sizes measured during a fast spell alone.
    One record per spec, as `measure` returns; they share the block's telemetry."""
    import time as _time

    from roofline.measure.timing import Samples

    recs = [spec.record() for spec in specs]
    fns: list[Any] = [None] * len(specs)
    try:
        with stream.hold_sizes():
            for i, spec in enumerate(specs):
                try:
                    fns[i] = spec.setup()[0]
                except Exception as e:  # noqa: BLE001 - recorded, the others go on
                    why = f"out of memory ({spec.working_set_bytes / 1e9:.2f} GB working set)" if _is_oom(e) \
                        else f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                    recs[i].update(status="skipped" if _is_oom(e) else "error", reason=why)
            live = [i for i, f in enumerate(fns) if f is not None]
            est = {}
            for i in live:
                fns[i]()
                t0 = _time.perf_counter()
                fns[i]()
                est[i] = _time.perf_counter() - t0
            # as many cycles as the slowest kernel gets timed runs alone (the budget's minimum on a CPU)
            cycles = min((reps_for(est[i], ctx.budget)[1] for i in live), default=0)
            times: dict[int, list[float]] = {i: [] for i in live}
            with sampler() as smp:
                for _ in range(cycles):
                    for i in live:
                        t0 = _time.perf_counter()
                        fns[i]()
                        times[i].append(_time.perf_counter() - t0)
            tel = smp.result()
            for i in live:
                recs[i].update(status="ok", samples_s=times[i], telemetry=tel, params={**recs[i]["params"],
                               "interleaved": len(live)},
                               summary=Samples(tuple(times[i])).summary(REFERENCE[ctx.device]))
    finally:
        fns.clear()
        stream.release()
        _release(ctx)
    return recs


def finalize(profile: dict[str, Any]) -> dict[str, Any]:
    """Derive the ceilings and the calibration (fitted on all points) from what was measured."""
    profile["ceilings"] = ceilings(profile["points"])
    c = profile["ceilings"]
    if c["memory_bandwidth_bytes_per_s"] and c["peak_flops_per_s"]:
        profile["calibration"] = fit_record(profile["points"], c, hot_cache_bytes(profile["device"]))
    return profile


def merge_round(prev: dict[str, Any], rec: dict[str, Any]) -> None:
    """Add a later round's samples and telemetry to the point's record."""
    from roofline.measure.timing import Samples

    if rec.get("status") != "ok":
        prev.setdefault("round_errors", []).append(rec.get("reason"))
        return
    prev["samples_s"] += rec["samples_s"]
    prev["round_medians_s"].append(rec["summary"]["median_s"])
    prev["round_p25_s"].append(rec["summary"]["p25_s"])
    prev["summary"] = Samples(tuple(prev["samples_s"])).summary(prev["summary"]["ref"])
    prev["summary"]["robust_s"] = robust_round_s(prev["round_p25_s"], best=prev["family"] in STREAM_FAMILIES)
    prev["summary"]["round_disagreement"] = round_disagreement(prev["round_p25_s"])
    prev["telemetry"]["rounds"].append(rec["telemetry"]["rounds"][0])
    prev["telemetry"]["throttled"] = prev["telemetry"]["throttled"] or rec["telemetry"]["throttled"]
    prev["rounds_done"] += 1


def _first_round(rec: dict[str, Any]) -> dict[str, Any]:
    if rec.get("status") == "ok":
        tel = rec["telemetry"]
        rec["telemetry"] = {"throttled": bool(tel.get("throttled")), "rounds": [tel]}
        rec["round_medians_s"] = [rec["summary"]["median_s"]]
        rec["round_p25_s"] = [rec["summary"]["p25_s"]]
        rec["summary"]["robust_s"] = rec["summary"]["p25_s"]
        rec["summary"]["round_disagreement"] = 0.0
        rec["rounds_done"] = 1
    return rec


def run_points(points: list[PointSpec], ctx: BenchContext, output: Path, device: dict, prov: dict,
               progress: Progress | None = None) -> Path:
    """Measure `points` (ctx.rounds passes) into the profile at `output`; BenchInterrupted on SIGINT/SIGTERM.

    `missing` lists the points not measured at all; `incomplete_rounds` those measured in fewer rounds."""
    started = time.monotonic()
    if ctx.device == "cpu":
        set_cpu_threads()
    profile = new_profile(device, prov, [p.record() for p in points])
    profile["rounds"] = ctx.rounds
    write_profile(profile, output)
    sampler = sampler_factory(ctx.device)
    caught: list[str] = []
    by_id: dict[str, dict] = {}

    def on_signal(signum, frame):
        caught.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    total, done = sum(p.planned_rounds(ctx.rounds) for p in points), 0
    try:
        block = [p for p in points if p.family == "stream"] if ctx.device == "cpu" else []
        for r in range(ctx.rounds):
            for spec in points:
                if not spec.in_round(r) or (spec in block and spec is not block[0]):
                    continue
                group = block if spec in block else [spec]
                todo = [g for g in group if r == 0 or by_id[g.id].get("status") == "ok"]
                if progress:
                    progress(done, total, f"[{r + 1}/{ctx.rounds}] {spec.id}" + (f" (+{len(group) - 1} in turns)"
                                                                                 if len(group) > 1 else ""))
                done += len(group)
                if not todo:
                    continue
                recs = measure_block(todo, ctx, sampler) if len(group) > 1 else [measure(spec, ctx, sampler)]
                for g, rec in zip(todo, recs):
                    if r == 0:
                        by_id[g.id] = _first_round(rec)
                        profile["points"].append(by_id[g.id])
                        profile["missing"].remove(g.id)
                    else:
                        merge_round(by_id[g.id], _first_round(rec))
                write_profile(profile, output)
        if ctx.rounds >= 2:
            _remeasure(points, ctx, by_id, profile, output, sampler, progress, total)
        if progress:
            progress(total, total, "done")
    except KeyboardInterrupt:
        if not caught:
            caught.append("SIGINT")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        profile["interrupted"] = caught[0] if caught else None
        planned = {p.id: p.planned_rounds(ctx.rounds) for p in points}
        profile["incomplete_rounds"] = [p["id"] for p in profile["points"]
                                        if p.get("status") == "ok" and p["rounds_done"] < planned[p["id"]]]
        profile["complete"] = not caught and not profile["missing"] and not profile["incomplete_rounds"]
        stream.release()
        intensity.release()
        _finalize_safely(profile)
        profile["elapsed_s"] = round(time.monotonic() - started, 2)
        write_profile(profile, output)
    if caught:
        raise BenchInterrupted(caught[0], output, len(profile["points"]), len(points))
    return output


def unstable(rec: dict[str, Any]) -> bool:
    """A measured point none of whose rounds confirms another (see timing.round_disagreement); not the
    streaming points: measured in every round and compared by their best one, they need no confirmation."""
    return rec.get("status") == "ok" and rec.get("family") not in STREAM_FAMILIES \
        and round_disagreement(rec.get("round_p25_s") or [1.0]) > REMEASURE_DISAGREEMENT


def _remeasure(points: list[PointSpec], ctx: BenchContext, by_id: dict[str, dict], profile: dict[str, Any],
               output: Path, sampler, progress: Progress | None, total: int) -> None:
    """Extra rounds for the unstable points, the most disagreeing first, until their
    rounds agree, REMEASURE_PASSES passes are done or the time budget is spent. Each re-measured point
    records `remeasured_rounds`; the profile lists them under `remeasured` ({id: extra rounds}) and the
    ones still unstable afterwards under `unstable`. Nothing is dropped: extra rounds only add samples."""
    budget = REMEASURE_BUDGET_S[ctx.quick]
    t0 = time.monotonic()
    profile["remeasured"] = {}
    for _ in range(REMEASURE_PASSES):
        todo = sorted((spec for spec in points if spec.id in by_id and unstable(by_id[spec.id])),
                      key=lambda spec: -round_disagreement(by_id[spec.id]["round_p25_s"]))
        if not todo:
            break
        for spec in todo:
            if time.monotonic() - t0 > budget:
                break
            if progress:
                progress(total, total, f"[re-measure] {spec.id}")
            rec = by_id[spec.id]
            merge_round(rec, _first_round(measure(spec, ctx, sampler)))
            rec["remeasured_rounds"] = rec.get("remeasured_rounds", 0) + 1
            profile["remeasured"][spec.id] = rec["remeasured_rounds"]
            write_profile(profile, output)
        if time.monotonic() - t0 > budget:
            break
    profile["remeasure_s"] = round(time.monotonic() - t0, 2)
    profile["unstable"] = [p["id"] for p in profile["points"] if unstable(p)]


def _finalize_safely(profile: dict[str, Any]) -> None:
    """finalize(), but a partial profile without enough points for ceilings is still written."""
    try:
        finalize(profile)
    except Exception as e:  # noqa: BLE001 - never lose measured points over a derived field
        profile["finalize_error"] = f"{type(e).__name__}: {e}"
