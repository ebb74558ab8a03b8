"""Device descriptions built from measurements: a measured GPU (datasheet spec with measured ceilings) and a
CPU as a GPUSpec (the engine only needs peaks, bandwidth and memory; the rest is recorded as unknown), and
loading a profile as (device, calibrated efficiency) for `--profile`."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from pathlib import Path

from roofline.errors import RooflineError
from roofline.measure.profile import load_profile
from roofline.model.efficiency import Efficiency
from roofline.specs.hardware import DEFAULT_GPU, GPUSpec, load_gpu

_NUMBER_DEFAULT = 0.0


def build_spec(**values: Any) -> GPUSpec:
    """A GPUSpec from keyword values; numeric fields not given are 0 (unknown), text fields ''."""
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(GPUSpec):
        if f.name in values:
            kw[f.name] = values[f.name]
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:  # type: ignore
            continue
        elif f.type in ("int", int):
            kw[f.name] = 0
        elif f.type in ("str", str):
            kw[f.name] = ""
        else:
            kw[f.name] = _NUMBER_DEFAULT
    return GPUSpec(**kw)


def unit_spec(precision: str) -> GPUSpec:
    """1 FLOP/s and 1 byte/s: engine times equal the FLOP and byte counts (used to count a layer's work)."""
    return build_spec(name="unit", display_name="unit device", vendor="", architecture="", memory_bytes=1.0,
                      memory_bandwidth_bytes_per_s=1.0, peak_flops_per_s={precision: 1.0, "fp32": 1.0},
                      pcie_bandwidth_bytes_per_s=1.0, sources={}, path="")


def cpu_spec(device: Mapping[str, Any], ceilings: Mapping[str, Any], profile_path: str) -> GPUSpec:
    """The measured CPU as a GPUSpec: measured DRAM bandwidth and GEMM peaks, RAM as memory.

    The CPU has no interconnect: pcie_bandwidth is set to the memory bandwidth only so TP > 1 arithmetic
    stays finite (a CPU is a single device; analyze it with --tp 1)."""
    bw = ceilings["memory_bandwidth_bytes_per_s"]
    peaks = dict(ceilings["peak_flops_per_s"])
    src = f"measured by `roofline bench --device cpu` (profile {profile_path})"
    return build_spec(
        name="cpu", display_name=device.get("name") or "CPU", vendor=device.get("vendor") or "",
        architecture=device.get("architecture") or "cpu", memory_bytes=device.get("memory_bytes") or 0.0,
        memory_bandwidth_bytes_per_s=bw, l2_cache_bytes=device.get("cache_bytes") or 0.0,
        sm_count=device.get("cores") or 0, clock_hz=device.get("clock_hz") or 0.0, tdp_w=0.0,
        scaleup_bandwidth_bytes_per_s=0.0, pcie_bandwidth_bytes_per_s=bw, scaleup_domain_gpus=1,
        peak_flops_per_s=peaks,
        sources={"memory_bandwidth_bytes_per_s": src, **{f"peak_flops_per_s.{k}": src for k in peaks},
                 "memory_bytes": "/proc/meminfo MemTotal", "pcie_bandwidth_bytes_per_s": "placeholder (no link)"},
        path=profile_path)


def measured_gpu_spec(datasheet: GPUSpec, ceilings: Mapping[str, Any], profile_path: str) -> GPUSpec:
    """The datasheet spec with the measured HBM bandwidth and the measured peaks (precisions not measured
    keep the datasheet value)."""
    src = f"measured by `roofline bench --device cuda` (profile {profile_path})"
    peaks = dict(datasheet.peak_flops_per_s)
    peaks.update(ceilings["peak_flops_per_s"])
    sources = dict(datasheet.sources)
    sources.update({f"peak_flops_per_s.{k}": src for k in ceilings["peak_flops_per_s"]})
    sources["memory_bandwidth_bytes_per_s"] = src
    return dataclasses.replace(datasheet, memory_bandwidth_bytes_per_s=ceilings["memory_bandwidth_bytes_per_s"],
                               peak_flops_per_s=peaks, sources=sources)


def datasheet_spec(profile: dict[str, Any]) -> GPUSpec | None:
    """The spec the profile was compared against (GPU runs), or None (CPU, unknown GPU)."""
    s = profile["provenance"].get("spec")
    if not s:
        return None
    for ref in (s.get("path"), s.get("name")):
        if ref:
            try:
                return load_gpu(ref)
            except RooflineError:
                continue
    return None


def measured_spec(profile: dict[str, Any]) -> GPUSpec:
    """The measured device: the datasheet with measured ceilings (GPU) or the CPU as a GPUSpec. `profile`: as
    load_profile returns it (every field typed and ranged, profile.check_profile) or as a run builds it."""
    c, dev, where = profile["ceilings"], profile["device"], profile.get("_path", "this run")
    if not c.get("memory_bandwidth_bytes_per_s") or not c.get("peak_flops_per_s"):
        raise RooflineError(f"profile {where} has no measured ceilings (interrupted before the stream and GEMM "
                            "points?)", hint="re-run `roofline bench` to completion")
    if dev.get("kind") == "cpu":
        return cpu_spec(dev, c, where)
    sheet = datasheet_spec(profile)
    if sheet is not None:
        return measured_gpu_spec(sheet, c, where)
    return build_spec(name=dev.get("name") or "gpu", display_name=dev.get("name") or "GPU", vendor="NVIDIA",
                      architecture=dev.get("compute_capability") or "", memory_bytes=dev.get("memory_bytes") or 0.0,
                      memory_bandwidth_bytes_per_s=c["memory_bandwidth_bytes_per_s"],
                      l2_cache_bytes=dev.get("cache_bytes") or 0.0, sm_count=dev.get("sm_count") or 0,
                      peak_flops_per_s=dict(c["peak_flops_per_s"]),
                      pcie_bandwidth_bytes_per_s=c["memory_bandwidth_bytes_per_s"], scaleup_domain_gpus=1,
                      sources={"*": f"measured (profile {where})",
                               "pcie_bandwidth_bytes_per_s": "placeholder (no spec file: link unknown; use --tp 1)"},
                      path=where)


def load_profile_device(path: str | Path, gpu: str | None = None,
                        precision: str | None = None) -> tuple[GPUSpec, Efficiency]:
    """(measured device spec, calibrated Efficiency) for `analyze/sweep --profile PATH`.

    `gpu` is checked against the profile: `cpu` needs a CPU profile; a GPU name is used only as the
    datasheet when the profile names none. `precision` picks the compute precision's fitted GEMM curve
    (default: bf16 on a GPU, fp32 on a CPU); pass the activations precision."""
    from roofline.measure.calibrate import efficiency_for

    profile = load_profile(path)
    kind = profile["device"].get("kind")
    if gpu and gpu.strip().lower() == "cpu" and kind != "cpu":
        raise RooflineError(f"gpu=cpu, but {path} measured a {kind} device ({profile['device'].get('name')})",
                            hint="pass the GPU name, or a profile measured with `device=cpu`", exit_code=2,
                            param="gpu")
    if kind != "cpu" and gpu and gpu.strip().lower() != "cpu" and datasheet_spec(profile) is None:
        profile["provenance"]["spec"] = {"name": gpu, "path": None}
    spec = measured_spec(profile)
    rec = profile.get("calibration")
    if not rec:
        return spec, Efficiency(source=f"defaults (profile {path} has no calibration)")
    return spec, efficiency_for(rec, precision or ("fp32" if kind == "cpu" else "bf16"))


def with_measured_collectives(spec: GPUSpec, path: str | Path) -> GPUSpec:
    """`spec` with the collectives fitted from a `roofline bench-collectives` profile: for every collective and
    group size the profile measured, the fitted latency + S x busbw factor / fitted bus bandwidth replaces the
    communication model's time (the profile's topology stands for the deployment's). RooflineError for an
    unreadable profile or one without a usable fit."""
    from roofline.measure.collectives import fit, load_collectives_profile

    profile = load_collectives_profile(path)
    fits = [(name, int(g), float(f["latency_s"]), float(f["bandwidth_bytes_per_s"]))
            for name, by_group in fit(profile["results"]).items() for g, f in by_group.items()
            if f.get("bandwidth_bytes_per_s") and math.isfinite(f["bandwidth_bytes_per_s"])
            and f["bandwidth_bytes_per_s"] > 0 and math.isfinite(f["latency_s"]) and f["latency_s"] >= 0]
    if not fits:
        raise RooflineError(f"collectives profile {path} has no usable fit (the time did not grow with the size)",
                            hint="measure up to larger messages (`max_bytes`)")
    sources = {**spec.sources, "measured_collectives": f"fitted from {path}"}
    return dataclasses.replace(spec, measured_collectives=tuple(fits), sources=sources)


def resolve_device(gpu: str | Path | GPUSpec | None, profile: str | Path | None = None,
                   precision: str | None = None) -> tuple[GPUSpec, Efficiency | None, list[str]]:
    """(device spec, Efficiency or None, notes) for `--gpu` and `--profile`, as every command and the Python
    API resolve them. A collectives profile (`roofline bench-collectives`) keeps the datasheet `gpu` and
    replaces its collectives by the measured fits (see with_measured_collectives). Without a profile: the
    datasheet `gpu` (default DEFAULT_GPU) and no efficiency (the
    defaults apply); `cpu` needs a profile (RooflineError). With a profile: its measured device and the
    efficiency fitted for the compute `precision` (see `load_profile_device`); the profile's device wins, and
    a `gpu` naming another device gives a note (the caller warns)."""
    from roofline.measure.collectives import is_collectives_profile

    if profile is not None and is_collectives_profile(profile):
        base = gpu if isinstance(gpu, GPUSpec) else load_gpu(gpu or DEFAULT_GPU)
        return with_measured_collectives(base, profile), None, []
    if profile is None:
        if isinstance(gpu, GPUSpec):
            return gpu, None, []
        if str(gpu or "").lower() == "cpu":
            raise RooflineError("gpu=cpu needs a measured profile", hint="measure it first (`roofline bench` with "
                                "`device=cpu`, `quick`) and pass `profile=PATH`", exit_code=2, param="gpu")
        return load_gpu(gpu or DEFAULT_GPU), None, []
    name = gpu.name if isinstance(gpu, GPUSpec) else (str(gpu) if gpu else None)
    spec, eff = load_profile_device(profile, name, precision)
    notes = []
    if name and name.lower() != "cpu":
        wanted = gpu.name if isinstance(gpu, GPUSpec) else load_gpu(name).name
        if wanted != spec.name:
            notes.append(f"--gpu {name} ignored: {profile} measured {spec.display_name}")
    return spec, eff, notes
