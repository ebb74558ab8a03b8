"""Predicted vs measured, per point and per benchmark family.

The stream, GEMM and attention points (the ones the efficiency curves are fitted on) are split within
each (family, kind, precision) group (an M-sweep: each weight shape apart), ordered by size: even positions calibrate (ceilings, the GEMM/stream
curves, the attention table), odd positions are HELD OUT. Decoder-layer and cache-sweep points are never
fitted: the layer is the end-to-end check of all the curves. Family errors are computed on the held-out and
never-fitted points only, so they are not a fit to themselves. The per-kernel overhead comes from the
tiny-layer `launch` point, not from any validated point.
Each point gets three predictions:
  datasheet    the spec file's peaks/bandwidth with the default Efficiency (GPU runs with a known spec)
  ceilings     the measured ceilings, fraction 1, measured per-kernel overhead: the bare roofline
  calibrated   the measured ceilings (from the calibration half) and the fitted curves
error = (predicted - measured) / measured, measured = the point's reference statistic (GPU: the median of
its samples; CPU: the 25th percentile, as other processes only slow a shared machine down). A point whose bare roofline time exceeds its measured time by
more than 5% (measured above 105% of a ceiling) is flagged: a byte/FLOP count or timing bug, unless the
working set fits in cache.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from roofline.model.efficiency import Efficiency
from roofline.measure.collectives import is_collectives_profile, load_collectives_profile, validate_collectives
from roofline.measure.calibrate import CACHE_RESIDENT_FACTOR, ceilings, efficiency_for, fit_record, hot_cache_bytes, overhead_of, roofline_s
from roofline.measure.predict import predict_point
from roofline.measure.profile import load_profile, ok_points
from roofline.measure.timing import REFERENCE, reference_s

FAMILY_ORDER = ("stream", "gemm", "attention", "layer", "cache_sweep", "copy_engine")
FITTED_FAMILIES = ("stream", "gemm", "attention")  # the curves are fitted on these; the rest only validate
CPU_TARGETS = {"stream": 0.10, "gemm": 0.10, "layer": 0.20}
GPU_TARGETS = {"layer": 0.10}  # decode-step error (the GPU target); ceilings are checked apart
GPU_CEILING_TARGETS = {"memory_bandwidth": 0.90, "bf16": 0.80, "fp8": 0.70}
OUTLIER_ERROR = 0.25
ABOVE_CEILING = 1.05
LAUNCH_BOUND_FACTOR = 10.0  # measured time < 10x (kernels x launch overhead)
#: the columns of one point in `roofline validate --format csv` and `roofline.validate()`
POINT_COLUMNS: tuple[str, ...] = ("id", "family", "kind", "precision", "split", "measured_s", "predicted_s", "error",
                                  "predicted_s_ceilings", "error_ceilings", "predicted_s_datasheet",
                                  "error_datasheet", "roofline_fraction", "flops", "bytes", "intensity_flops_per_byte",
                                  "cache_resident", "throttled", "cause")


def sweep_line(p: dict) -> tuple:
    """The sweep a point lies on within its (family, kind, precision) group: the weight shape (n, k) of an
    M-sweep point (each shape is its own curve over M); () for the others."""
    if p["family"] == "gemm" and p["kind"] == "msweep":
        pr = p.get("params") or {}
        return (pr.get("n"), pr.get("k"))
    return ()


def split(points: list[dict]) -> tuple[list[dict], list[dict]]:
    """(calibration, held-out): alternate within each (family, kind, precision, sweep line) group sorted by
    size, so every held-out point but a group's largest lies between two calibration points of its own
    sweep (mixing the M-sweep's three weight shapes in one size order held out runs of consecutive M)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in points:
        groups[(p["family"], p["kind"], p["precision"], sweep_line(p))].append(p)
    train, test = [], []
    for g in groups.values():
        g.sort(key=lambda p: (p["flops"], p["bytes_read"] + p["bytes_written"], p["id"]))
        train += g[0::2]
        test += g[1::2]
    return train, test


def _bare_roofline_s(p: dict, spec) -> float | None:
    prec = p["precision"] if p["family"] in ("gemm", "attention", "layer") else "fp32"
    peak = spec.peak_flops_per_s.get(prec) or spec.peak_flops_per_s.get("fp32")
    if not peak:
        return None
    if p["family"] in ("attention", "layer"):
        bare = Efficiency(compute=1.0, vector=1.0, memory=1.0, kernel_overhead_s=0.0, overlap_p=None)
        return predict_point(p, spec, bare)
    return float(roofline_s(p["flops"], p["bytes_read"] + p["bytes_written"], peak, spec.memory_bandwidth_bytes_per_s))


def _memory_bound(p: dict, spec) -> bool | None:
    """Below the ridge point of its precision (stream kernels: always); None where the profile has no peak
    for its precision (an interrupted run, or a ceiling left out), so no ridge to compare with."""
    if p["family"] not in ("gemm", "attention", "layer"):
        return True
    peak = spec.peak_flops_per_s.get(p["precision"]) or spec.peak_flops_per_s.get("fp32")
    if not peak:
        return None
    return p["flops"] / max(p["bytes_read"] + p["bytes_written"], 1.0) < peak / spec.memory_bandwidth_bytes_per_s


def ceiling_fraction(p: dict, spec, cache_bytes: float) -> float | None:
    """Bare roofline time / measured time of point `p` on the measured `spec` (above ABOVE_CEILING: faster
    than the ceilings allow, a counting or timing bug); None where the spec lacks the point's precision.
    A memory-bound point with a cache-resident working set may beat DRAM/HBM by right: its FLOP rate over
    the peak instead (None without FLOPs). The rule behind the report's `above_ceiling` (ceiling_check)."""
    roof = _bare_roofline_s(p, spec)
    if roof is None:
        return None
    if p["working_set_bytes"] < CACHE_RESIDENT_FACTOR * cache_bytes and _memory_bound(p, spec):
        return _compute_fraction(p, spec)  # its bandwidth may exceed DRAM's; its FLOP rate never the peak
    return roof / reference_s(p)


def _err(pred: float | None, meas: float) -> float | None:
    return None if pred is None else (pred - meas) / meas


def unstable_points(profile: dict[str, Any]) -> set[str]:
    """Ids of the points the bench marked unstable: the profile's `unstable` list and the points flagged
    `unstable: true` (profiles before the flag have only the list)."""
    return set(profile.get("unstable") or []) | {p["id"] for p in profile["points"] if p.get("unstable")}


def cache_bytes_of(profile: dict[str, Any], sheet=None) -> float:
    """The cache a working set may sit in: the profile's `device.cache_bytes` (the CPU's last-level cache
    read from /sys/devices/system/cpu/cpu0/cache/index*/size, or the GPU's L2 as CUDA reports it); else the
    largest data cache in `device.caches`; else the datasheet's L2 (a GPU); else 0 (nothing is cache-resident)."""
    dev = profile["device"]
    if dev.get("cache_bytes"):
        return float(dev["cache_bytes"])
    sizes = [float(c.get("size_bytes") or 0.0) for c in dev.get("caches") or [] if c.get("type") != "Instruction"]
    if max(sizes, default=0.0) > 0:
        return max(sizes)
    return float(getattr(sheet, "l2_cache_bytes", 0.0) or 0.0) if sheet is not None else 0.0


def _compute_fraction(p: dict, spec) -> float | None:
    """FLOP rate / the measured peak of its precision (stream kernels: fp32): above ABOVE_CEILING no cache
    explains it, only a FLOP count or timing bug."""
    prec = p["precision"] if p["family"] in ("gemm", "attention", "layer") else "fp32"
    peak = spec.peak_flops_per_s.get(prec) or spec.peak_flops_per_s.get("fp32")
    return p["flops"] / peak / reference_s(p) if peak and p["flops"] > 0 else None


def ceiling_check(row: dict) -> str | None:
    """"above_ceiling" when the point ran faster than a measured ceiling allows (roofline fraction above
    ABOVE_CEILING): a byte/FLOP count or timing bug; "cache_resident" when only its bandwidth exceeds the
    DRAM/HBM ceiling, it is memory-bound and its working set fits in the cache (reading from the cache is
    faster than DRAM by right; its FLOP rate must still be within the peak); None when within the ceilings.

    e.g. a 2 MiB GEMV (working set 2.1 MB < 2 x 32 MiB LLC) reaching 60 GB/s on a 25 GB/s DRAM ceiling:
    fraction 2.4, memory-bound, cache-resident; the same at 256 MiB: above_ceiling."""
    above = row["roofline_fraction"] is not None and row["roofline_fraction"] > ABOVE_CEILING
    if not above:
        return None
    flops_above = (row.get("compute_fraction") or 0.0) > ABOVE_CEILING
    if row["cache_resident"] and row["memory_bound"] and not flops_above:
        return "cache_resident"
    return "above_ceiling"


def _cause(row: dict, p: dict, cache_bytes: float, launch_s: float) -> str | None:
    check = ceiling_check(row)
    above = check == "above_ceiling"
    err = row["error"]
    if not above and (err is None or abs(err) <= OUTLIER_ERROR):
        return None
    if above:
        return "above 105% of a measured ceiling: likely a byte/FLOP count or timing bug"
    if row["cache_resident"] and row["memory_bound"]:
        return "cache-resident (working set fits in the last-level cache / L2: faster than DRAM/HBM)"
    if row.get("unstable"):
        return "unstable measurement (its rounds disagree after re-measurement: contention); not fitted"
    if (p.get("telemetry") or {}).get("throttled"):
        return "throttled (clock-event reason or violation time during the run)"
    if launch_s and row["measured_s"] < LAUNCH_BOUND_FACTOR * p["kernels"] * launch_s:
        return "launch-overhead-bound (time is a few kernel launches)"
    if p["family"] == "attention":
        return "attention kernel efficiency at this shape differs from the fitted attention curve"
    return "kernel efficiency at this shape differs from the fitted r(intensity, size) curve"


def _stats(rows: list[dict], key: str) -> tuple[float | None, float | None]:
    v = np.abs([r[key] for r in rows if r[key] is not None])
    if not v.size:
        return None, None
    return float(np.median(v)), float(np.quantile(v, 0.9))


def validate(profile: dict[str, Any]) -> dict[str, Any]:
    """The validation report of a loaded profile (see the module docstring)."""
    from roofline.measure.device import datasheet_spec, measured_spec

    unstable_ids = unstable_points(profile)
    ok = [{**p, "unstable": True} if p["id"] in unstable_ids else p for p in ok_points(profile)]
    pts = [p for p in ok if p["family"] != "launch"]
    launch = [p for p in ok if p["family"] == "launch"]
    fitted = [p for p in pts if p["family"] in FITTED_FAMILIES]
    train, test = split(fitted)
    held = {p["id"] for p in test}
    train_ids = {p["id"] for p in train}
    ceil_train = ceilings(train + launch)
    spec_train = measured_spec({**profile, "ceilings": ceil_train})
    rec = fit_record(train, ceil_train, hot_cache_bytes(profile["device"]))
    effs: dict[str, Any] = {}

    def eff(prec: str):  # one fitted Efficiency per precision (building one smooths three tables)
        if prec not in effs:
            effs[prec] = efficiency_for(rec, prec)
        return effs[prec]
    ceil_all = profile["ceilings"] if profile["ceilings"].get("memory_bandwidth_bytes_per_s") else ceilings(pts + launch)
    spec_all = measured_spec({**profile, "ceilings": ceil_all})
    sheet = datasheet_spec(profile)
    launch_s = ceil_all.get("launch_overhead_s") or 0.0
    bare = Efficiency(compute=1.0, memory=1.0, vector=1.0, kernel_overhead_s=overhead_of(ceil_all), overlap_p=None)
    cache_bytes = cache_bytes_of(profile, sheet)
    rows = []
    for p in pts:
        t = reference_s(p)
        roof = _bare_roofline_s(p, spec_all)
        split_of = "held_out" if p["id"] in held else ("calibration" if p["id"] in train_ids else "not_fitted")
        row = {"id": p["id"], "family": p["family"], "kind": p["kind"], "precision": p["precision"],
               "split": split_of, "measured_s": t,
               "spread": (p["summary"]["p90_s"] - p["summary"]["p10_s"]) / t, "flops": p["flops"],
               "bytes": p["bytes_read"] + p["bytes_written"],
               "intensity_flops_per_byte": p["flops"] / max(p["bytes_read"] + p["bytes_written"], 1.0),
               "predicted_s": predict_point(p, spec_train, eff(p["precision"])),
               "predicted_s_ceilings": predict_point(p, spec_all, bare),
               "predicted_s_datasheet": predict_point(p, sheet, Efficiency()) if sheet else None,
               "roofline_fraction": None if roof is None else roof / t,
               "compute_fraction": _compute_fraction(p, spec_all),
               "unstable": bool(p.get("unstable")),
               "roofline_fraction_datasheet": (_bare_roofline_s(p, sheet) or 0.0) / t if sheet else None,
               "cache_resident": p["working_set_bytes"] < CACHE_RESIDENT_FACTOR * cache_bytes,
               "memory_bound": _memory_bound(p, spec_all),
               "throttled": bool((p.get("telemetry") or {}).get("throttled"))}
        row["error"] = _err(row["predicted_s"], t)
        row["error_ceilings"] = _err(row["predicted_s_ceilings"], t)
        row["error_datasheet"] = _err(row["predicted_s_datasheet"], t)
        row["cause"] = _cause(row, p, cache_bytes, launch_s)
        rows.append(row)
    return _report(profile, rows, rec, ceil_all, sheet, len(train), len(test))


def _report(profile, rows, rec, ceil, sheet, n_train, n_test) -> dict[str, Any]:
    kind = profile["device"].get("kind")
    targets = CPU_TARGETS if kind == "cpu" else GPU_TARGETS
    families = {}
    for fam in [f for f in FAMILY_ORDER if any(r["family"] == f for r in rows)]:
        fr = [r for r in rows if r["family"] == fam]
        ho = [r for r in fr if r["split"] != "calibration" and not r["unstable"]]
        med, p90 = _stats(ho, "error")
        families[fam] = {"points": len(fr), "held_out": len(ho), "median_abs_error": med, "p90_abs_error": p90,
                         "median_abs_error_ceilings": _stats(ho, "error_ceilings")[0],
                         "median_abs_error_datasheet": _stats(ho, "error_datasheet")[0] if sheet else None,
                         "median_abs_error_by_kind": {k: _stats([r for r in ho if r["kind"] == k], "error")[0]
                                                      for k in sorted({r["kind"] for r in ho})},
                         "target": targets.get(fam),
                         "meets_target": None if fam not in targets or med is None else bool(med <= targets[fam])}
    return {
        "profile": profile.get("_path"), "device": profile["device"].get("name"), "kind": kind,
        "complete": profile["complete"], "missing": len(profile["missing"]),
        "datasheet": sheet.name if sheet else None,
        "reference_statistic": REFERENCE.get(kind, "median_s"),
        "ceilings": {k: ceil.get(k) for k in ("memory_bandwidth_bytes_per_s", "peak_flops_per_s",
                                              "launch_overhead_s", "cache_bytes_per_s", "copy_engine_bytes_per_s")},
        "ceilings_vs_datasheet": _vs_datasheet(ceil, sheet),
        "calibration": {"calibration_points": n_train, "held_out_points": n_test,
                        "not_fitted_points": sum(r["split"] == "not_fitted" for r in rows),
                        "kernel_overhead_s": rec["kernel_overhead_s"]},
        "families": families,
        "outliers": [{"id": r["id"], "family": r["family"], "error": r["error"], "cause": r["cause"]}
                     for r in rows if r["cause"]],
        "above_ceiling": [r["id"] for r in rows if ceiling_check(r) == "above_ceiling"],
        "cache_resident": [r["id"] for r in rows if ceiling_check(r) == "cache_resident"],
        "cache_bytes": cache_bytes_of(profile, sheet),
        "cache_resident_below_bytes": CACHE_RESIDENT_FACTOR * cache_bytes_of(profile, sheet),
        "unstable": {"points": sorted(r["id"] for r in rows if r["unstable"]),
                     "excluded_from_fit": sum(r["unstable"] and r["split"] == "calibration" for r in rows),
                     "excluded_from_errors": sum(r["unstable"] and r["split"] != "calibration" for r in rows)},
        "skipped": {p["id"]: p.get("reason") or p.get("status") for p in profile["points"] if p.get("status") != "ok"},
        "contention": _contention(profile.get("contention")),
        "points": rows,
    }


def _contention(c: dict[str, Any] | None) -> dict[str, Any] | None:
    """The profile's contention record, without the per-check and per-round detail (None: an older profile)."""
    if not isinstance(c, dict):
        return None
    run = c.get("run") if isinstance(c.get("run"), dict) else {}
    reasons = c.get("reasons") if isinstance(c.get("reasons"), list) else []
    slow = c.get("reference_slowdown") if isinstance(c.get("reference_slowdown"), dict) else {}

    def fraction(v):  # a finite number, else None (a damaged field is left out, never trusted)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None
    return {"detected": c.get("detected") is True, "reasons": [str(r) for r in reasons],
            "reference_slowdown": {str(k): fraction(v) for k, v in slow.items() if fraction(v) is not None},
            "other_cpu_fraction": fraction(run.get("other_cpu_fraction")),
            "steal_fraction": fraction(run.get("steal_fraction"))}


def _vs_datasheet(ceil: dict, sheet) -> dict[str, Any] | None:
    if sheet is None:
        return None
    out: dict[str, Any] = {}
    bw = ceil.get("memory_bandwidth_bytes_per_s")
    if bw:
        f = bw / sheet.memory_bandwidth_bytes_per_s
        out["memory_bandwidth"] = {"fraction": f, "target": GPU_CEILING_TARGETS["memory_bandwidth"],
                                   "meets_target": f >= GPU_CEILING_TARGETS["memory_bandwidth"]}
    for prec, peak in (ceil.get("peak_flops_per_s") or {}).items():
        if prec in sheet.peak_flops_per_s:
            f = peak / sheet.peak_flops_per_s[prec]
            t = GPU_CEILING_TARGETS.get(prec)
            out[prec] = {"fraction": f, "target": t, "meets_target": None if t is None else f >= t}
    return out


def validate_profile(path: str | Path) -> dict[str, Any]:
    """`validate` of the profile at `path` (RooflineError for a missing or malformed profile); a collectives
    profile (`roofline bench-collectives`) gets collectives.validate_collectives, its `collective` family."""
    if is_collectives_profile(path):
        return validate_collectives(load_collectives_profile(path))
    return validate(load_profile(path))
