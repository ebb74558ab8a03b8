"""Running the microbenchmark suite behind `roofline bench`: pick the device, plan the points, run them, save the profile.

The CLI parses options and calls these; they raise RooflineError for user mistakes and never print:
progress is reported through a callback.
"""
from __future__ import annotations

import re
import socket
from pathlib import Path

from roofline.errors import RooflineError
from roofline.specs.hardware import GPUSpec, load_gpu, resolve_gpu_name
from roofline.measure.runner import REMEASURE_DISAGREEMENT, Progress

DEVICES = ("cpu", "cuda")


# ----------------------------------------------------------------------------------------- bench


def resolve_device(device: str | None) -> str:
    """'cuda' when available and not asked otherwise; RooflineError for cuda without CUDA or without torch."""
    try:
        import torch
    except ImportError:
        raise RooflineError("roofline bench needs torch, which is not installed",
                            hint="pip install torch==2.13.0 (CPU build), or the CUDA build that matches your driver",
                            exit_code=1) from None

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    d = device.strip().lower()
    if d not in DEVICES:
        raise RooflineError(f"unknown device {device!r}", hint="use `device=cuda` or `device=cpu`", exit_code=2)
    if d == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise RooflineError(f"CUDA is not available ({why}; torch {torch.__version__})",
                            hint="use `device=cpu` to measure this machine's CPU")
    return d


def detect_gpu_spec(device_name: str) -> GPUSpec | None:
    """The built-in spec whose alias matches the CUDA device name, or None."""
    try:
        return load_gpu(resolve_gpu_name(device_name))
    except RooflineError:
        return None


def default_output(device: str, quick: bool) -> Path:
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()) or "host"
    return Path("profiles") / f"{device}-{'quick' if quick else 'full'}-{host}.json"


def run_notes(profile: dict | str | Path) -> list[str]:
    """What a finished run should tell its user beyond the profile path (a profile, or its path): the points
    not measured (grouped by reason, e.g. bf16 without a fast kernel), the points still unstable after
    re-measurement (left out of the fit) and the contention detected during the run."""
    if not isinstance(profile, dict):
        from roofline.measure.profile import load_profile

        profile = load_profile(profile)
    def first3(ids: list[str]) -> str:
        return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    notes = []
    by_reason: dict[str, list[str]] = {}
    for pid, why in (profile.get("skipped") or {}).items():
        by_reason.setdefault(str(why), []).append(pid)
    for why, ids in by_reason.items():
        notes.append(f"{len(ids)} points not measured ({why}): {first3(ids)}")
    unstable = profile.get("unstable") or []
    if unstable:
        notes.append(f"{len(unstable)} points stayed unstable after re-measurement (their rounds disagree by more "
                     f"than {100 * REMEASURE_DISAGREEMENT:.0f}%) and are left out of the fit: {first3(unstable)}")
    c = profile.get("contention") or {}
    if c.get("detected"):
        notes.append("contention during the run: " + "; ".join(c.get("reasons") or [])
                     + " (the profile's ceilings may be low; re-run on a quiet machine)")
    return notes


def run_bench(device: str | None = None, quick: bool = False, output: Path | None = None,
              gpu_spec: str | None = None, progress: Progress | None = None, model: str = "llama-3.1-8b",
              command: list[str] | None = None) -> Path:
    """Measure the device and write its profile; returns the profile path.

    `progress(done, total, what)` is called as points finish (the CLI passes a progress bar).
    RooflineError (exit 130) after SIGINT/SIGTERM, once the partial profile is saved."""
    from roofline.measure.points import BenchContext
    from roofline.measure.profile import provenance
    from roofline.measure.runner import BenchInterrupted, plan, run_points
    from roofline.measure.telemetry import cpu_info, gpu_info

    dev = resolve_device(device)
    if dev == "cpu" and gpu_spec:
        raise RooflineError("gpu_spec names a GPU spec to compare against; a CPU run has no datasheet",
                            hint="drop `gpu_spec`, or run with `device=cuda`", exit_code=2, param="gpu_spec")
    info = gpu_info(0) if dev == "cuda" else cpu_info()
    spec = load_gpu(gpu_spec) if gpu_spec else (detect_gpu_spec(info["name"]) if dev == "cuda" else None)
    ctx = BenchContext(dev, quick, float(info["cache_bytes"] or 32 * 2**20), float(info["memory_bytes"]), model)
    points = plan(ctx)
    out = Path(output) if output else default_output(dev, quick)
    settings = {"device": dev, "quick": quick, "model": model, "budget": ctx.budget.__dict__}
    prov = provenance(command, spec, settings)
    if dev == "cuda" and spec is None:
        prov["spec_note"] = f"no built-in spec matches {info['name']!r}: no datasheet comparison (pass --gpu)"
    try:
        return run_points(points, ctx, out, info, prov, progress)
    except BenchInterrupted as e:
        raise RooflineError(f"interrupted by {e.signame} after {e.done} of {e.total} points",
                            hint=f"the partial profile {e.path} keeps them; its 'missing' field lists the rest",
                            exit_code=130) from None
