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
from roofline.measure.telemetry import ContentionWindow, sampler_factory
from roofline.measure.timing import (REFERENCE, ROUND_AGREEMENT, TimingBudget, reps_for, robust_round_s,
                                     round_disagreement, time_fn)

Progress = Callable[[int, int, str], None]
#: re-measurement after the planned rounds (CPU): points whose two fastest rounds disagree by more than
#: REMEASURE_DISAGREEMENT (2x timing.ROUND_AGREEMENT: on this shared VM half of the points disagree by
#: more than 7%, a quarter by more than 17%) get up to REMEASURE_PASSES more rounds, the worst first,
#: within REMEASURE_BUDGET_S seconds (quick, full)
REMEASURE_DISAGREEMENT = 2.0 * ROUND_AGREEMENT
REMEASURE_PASSES = 3
REMEASURE_BUDGET_S = {True: 15.0, False: 60.0}

#: contention detection (the profile's `contention`): the reference kernels (compute.reference_points) are
#: timed before the run, after every round and after the re-measurement; the run is marked contended when
#: one of them ran more than REFERENCE_DRIFT slower at its slowest check than at its fastest, when other
#: processes used more than OTHER_CPU_LIMIT of all CPUs' time over the run, or the hypervisor stole more
#: than STEAL_LIMIT of it (/proc/stat). A quick run on the shared 2-core VM while other test suites ran
#: (load average ~6): other processes 80% of the CPU time, the reference GEMM took 3.85x as long at its
#: slowest check as at its fastest, 24 of 96 points still unstable after re-measurement.
REFERENCE_DRIFT = 0.15
OTHER_CPU_LIMIT = 0.10
STEAL_LIMIT = 0.02
REFERENCE_BUDGET = TimingBudget(warmup_s=0.01, measure_s=0.05, min_reps=5, max_reps=50)


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
    """One point -> its JSON record (status ok / skipped / error); `wall_s`: the seconds it took in all
    (set-up, warm-up, timed runs, clean-up)."""
    t_start = time.perf_counter()
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
    rec["wall_s"] = round(time.perf_counter() - t_start, 4)
    return rec


def measure_block(specs: list[PointSpec], ctx: BenchContext, sampler: Callable[[], Any]) -> list[dict[str, Any]]:
    """The CPU `stream` points of one round, timed in turns: every kernel of every size is set up (their
    arrays held together), warmed up, then each cycle times one call of each kernel, so whatever state the
    host's memory bandwidth is in (it switches between ~35 and ~55 GB/s for seconds at a time on the shared
    VM) reaches every stream point alike, instead of the sizes measured during a fast spell alone.
    One record per spec, as `measure` returns; they share the block's telemetry."""
    from roofline.measure.timing import Samples

    t_start = time.perf_counter()
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
                t0 = time.perf_counter()
                fns[i]()
                est[i] = time.perf_counter() - t0
            # as many cycles as the slowest kernel gets timed runs alone (the budget's minimum on a CPU)
            cycles = min((reps_for(est[i], ctx.budget)[1] for i in live), default=0)
            times: dict[int, list[float]] = {i: [] for i in live}
            with sampler() as smp:
                for _ in range(cycles):
                    for i in live:
                        t0 = time.perf_counter()
                        fns[i]()
                        times[i].append(time.perf_counter() - t0)
            tel = smp.result()
            for i in live:
                recs[i].update(status="ok", samples_s=times[i], telemetry=tel, params={**recs[i]["params"],
                               "interleaved": len(live)},
                               summary=Samples(tuple(times[i])).summary(REFERENCE[ctx.device]))
    finally:
        fns.clear()
        stream.release()
        _release(ctx)
    for r in recs:  # the block's time, shared out
        r["wall_s"] = round((time.perf_counter() - t_start) / len(recs), 4)
    return recs


def reference_check(ctx: BenchContext, label: str, started: float) -> dict[str, Any]:
    """Time the reference kernels once: {"at": label, "elapsed_s", "times_s": {kernel: median s}} (a kernel
    that fails is left out and its error kept under "errors": a check never stops the run)."""
    from roofline.measure.compute import reference_points

    out: dict[str, Any] = {"at": label, "elapsed_s": round(time.monotonic() - started, 3), "times_s": {}}
    for name, spec in reference_points(ctx).items():
        fn = teardown = None
        try:
            fn, teardown = spec.setup()
            s = time_fn(fn, ctx.device, REFERENCE_BUDGET, flush=spec.flush, l2_bytes=ctx.cache_bytes)
            out["times_s"][name] = float(s.summary()["median_s"])
        except Exception as e:  # noqa: BLE001 - a failed check is recorded, the run goes on
            out.setdefault("errors", {})[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        finally:
            if teardown is not None:
                teardown()
            del fn, teardown
    _release(ctx)
    return out


def contention_summary(checks: list[dict[str, Any]], run: dict[str, Any],
                       rounds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The profile's `contention` record from the reference checks, the whole run's ContentionWindow and
    each round's. `reference_slowdown` per kernel: slowest / fastest check - 1; `reference_drift`: last /
    first - 1. `detected` with the `reasons` when a figure passes its limit (see REFERENCE_DRIFT).

    e.g. reference GEMM checks 3.0, 3.1, 4.2 ms: slowdown 4.2 / 3.0 - 1 = 0.40 > 0.15: detected."""
    kernels = sorted({k for c in checks for k in c.get("times_s", {})})
    slowdown, drift = {}, {}
    for k in kernels:
        t = [c["times_s"][k] for c in checks if k in c.get("times_s", {}) and c["times_s"][k] > 0]
        if len(t) >= 2:
            slowdown[k], drift[k] = max(t) / min(t) - 1.0, t[-1] / t[0] - 1.0
    reasons = [f"the reference {k} ran {100 * v:.0f}% slower at its slowest check than at its fastest "
               f"(limit {100 * REFERENCE_DRIFT:.0f}%)" for k, v in slowdown.items() if v > REFERENCE_DRIFT]
    if run.get("available"):
        if run["other_cpu_fraction"] > OTHER_CPU_LIMIT:
            reasons.append(f"other processes used {100 * run['other_cpu_fraction']:.0f}% of the CPU time during "
                           f"the run (limit {100 * OTHER_CPU_LIMIT:.0f}%)")
        if run["steal_fraction"] > STEAL_LIMIT:
            reasons.append(f"the hypervisor took {100 * run['steal_fraction']:.1f}% of the CPU time (steal; "
                           f"limit {100 * STEAL_LIMIT:.0f}%)")
    return {"detected": bool(reasons), "reasons": reasons, "reference_checks": checks,
            "reference_slowdown": slowdown, "reference_drift": drift, "run": run, "rounds": list(rounds or []),
            "limits": {"reference_drift": REFERENCE_DRIFT, "other_cpu_fraction": OTHER_CPU_LIMIT,
                       "steal_fraction": STEAL_LIMIT}}


def finalize(profile: dict[str, Any]) -> dict[str, Any]:
    """Derive the ceilings and the calibration (fitted on the points not marked unstable) from what was
    measured."""
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
    prev.setdefault("round_wall_s", []).extend(rec.get("round_wall_s") or [rec.get("wall_s")])


def _first_round(rec: dict[str, Any]) -> dict[str, Any]:
    if rec.get("status") == "ok":
        tel = rec["telemetry"]
        rec["telemetry"] = {"throttled": bool(tel.get("throttled")), "rounds": [tel]}
        rec["round_medians_s"] = [rec["summary"]["median_s"]]
        rec["round_p25_s"] = [rec["summary"]["p25_s"]]
        rec["summary"]["robust_s"] = rec["summary"]["p25_s"]
        rec["summary"]["round_disagreement"] = 0.0
        rec["rounds_done"] = 1
        rec["round_wall_s"] = [rec.pop("wall_s", None)]
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
    whole = ContentionWindow().__enter__()
    checks: list[dict[str, Any]] = []
    round_windows: list[dict[str, Any]] = []
    try:
        block = [p for p in points if p.family == "stream"] if ctx.device == "cpu" else []
        if progress:
            progress(done, total, "[reference] GEMM and copy")
        checks.append(reference_check(ctx, "start", started))
        for r in range(ctx.rounds):
            window = ContentionWindow().__enter__()
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
            window.__exit__(None, None, None)
            round_windows.append({"round": r, **window.result()})
            checks.append(reference_check(ctx, f"after round {r + 1}", started))
        if ctx.rounds >= 2 and _remeasure(points, ctx, by_id, profile, output, sampler, progress, total):
            checks.append(reference_check(ctx, "after re-measurement", started))
        if progress:
            progress(total, total, "done")
    except KeyboardInterrupt:
        if not caught:
            caught.append("SIGINT")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        whole.__exit__(None, None, None)
        profile["contention"] = contention_summary(checks, whole.result(), round_windows)
        _mark_unstable(profile)
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


def _mark_unstable(profile: dict[str, Any]) -> None:
    """`unstable: true` on each point still unstable after the re-measurement (calibrate leaves them out
    of the fit) and their ids in the profile's `unstable` list; `skipped` lists the points not measured,
    each with its reason ({id: reason}: an unsupported precision, out of memory, an error)."""
    ids = []
    for p in profile["points"]:
        p.pop("unstable", None)
        if unstable(p):
            p["unstable"] = True
            ids.append(p["id"])
    profile["unstable"] = ids
    profile["skipped"] = {p["id"]: p.get("reason") or p.get("status") for p in profile["points"]
                          if p.get("status") != "ok"}


def _remeasure(points: list[PointSpec], ctx: BenchContext, by_id: dict[str, dict], profile: dict[str, Any],
               output: Path, sampler, progress: Progress | None, total: int) -> bool:
    """Extra rounds for the unstable points, the most disagreeing first, until their
    rounds agree, REMEASURE_PASSES passes are done or the time budget is spent. Each re-measured point
    records `remeasured_rounds`; the profile lists them under `remeasured` ({id: extra rounds}) and the
    ones still unstable afterwards under `unstable` (`_mark_unstable`). Nothing is dropped: extra rounds only
    add samples. True when a point was re-measured."""
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
    return bool(profile["remeasured"])


def _finalize_safely(profile: dict[str, Any]) -> None:
    """finalize(), but a partial profile without enough points for ceilings is still written."""
    try:
        finalize(profile)
    except Exception as e:  # noqa: BLE001 - never lose measured points over a derived field
        profile["finalize_error"] = f"{type(e).__name__}: {e}"
