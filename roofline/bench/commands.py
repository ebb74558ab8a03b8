"""Plain functions behind `roofline bench` and `roofline validate` (and `--profile` for analyze / sweep).

The CLI parses options and calls these; they raise RooflineError for user mistakes and never print,
except the optional progress bar of `run_bench(progress=True)` (on stderr).
"""
from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

from ..efficiency import Efficiency
from ..errors import RooflineError
from ..hardware import GPUSpec, load_gpu, resolve_gpu_name
from .profile import load_profile

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
        raise RooflineError(f"unknown device {device!r}", hint="use --device cuda or --device cpu", exit_code=2)
    if d == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise RooflineError(f"CUDA is not available ({why}; torch {torch.__version__})",
                            hint="use --device cpu to measure this machine's CPU")
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


def run_bench(device: str | None = None, quick: bool = False, output: Path | None = None,
              gpu_spec: str | None = None, progress: bool = False, model: str = "llama-3.1-8b",
              command: list[str] | None = None) -> Path:
    """Measure the device and write its profile; returns the profile path.

    RooflineError (exit 130) after SIGINT/SIGTERM, once the partial profile is saved."""
    from .points import BenchContext
    from .profile import provenance
    from .runner import BenchInterrupted, plan, run_points
    from .telemetry import cpu_info, gpu_info

    dev = resolve_device(device)
    if dev == "cpu" and gpu_spec:
        raise RooflineError("--gpu names a GPU spec to compare against; a CPU run has no datasheet",
                            hint="drop --gpu, or run with --device cuda", exit_code=2)
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
        if progress:
            with _ProgressBar() as bar:
                return run_points(points, ctx, out, info, prov, bar.update)
        return run_points(points, ctx, out, info, prov)
    except BenchInterrupted as e:
        raise RooflineError(f"interrupted by {e.signame} after {e.done} of {e.total} points",
                            hint=f"the partial profile {e.path} keeps them; its 'missing' field lists the rest",
                            exit_code=130) from None


class _ProgressBar:
    """A rich progress bar on stderr: which point runs, how many are done."""

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=Console(stderr=True), transient=False)
        self.p.__enter__()
        self.task = None
        return self

    def update(self, i: int, n: int, what: str) -> None:
        if self.task is None:
            self.task = self.p.add_task("bench", total=n)
        self.p.update(self.task, completed=i, description=f"bench {what[:60]:60s}")

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)


# ----------------------------------------------------------------------------------------- devices


def datasheet_spec(profile: dict[str, Any]) -> GPUSpec | None:
    """The spec the profile was compared against (GPU runs), or None (CPU, unknown GPU)."""
    s = (profile.get("provenance") or {}).get("spec")
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
    """The measured device: the datasheet with measured ceilings (GPU) or the CPU as a GPUSpec."""
    from .specs import build_spec, cpu_spec, measured_gpu_spec

    c, dev, where = profile["ceilings"], profile["device"], profile.get("_path", "this run")
    if not c.get("memory_bandwidth_bytes_per_s") or not c.get("peak_flops_per_s"):
        raise RooflineError(f"profile {where} has no measured ceilings (interrupted before the stream and GEMM "
                            "points?)", hint="re-run `roofline bench` to completion")
    if dev.get("kind") == "cpu":
        return cpu_spec(dev, c, where)
    sheet = datasheet_spec(profile)
    if sheet is not None:
        return measured_gpu_spec(sheet, c, where)
    return build_spec(name=dev.get("name", "gpu"), display_name=dev.get("name", "GPU"), vendor="NVIDIA",
                      architecture=str(dev.get("compute_capability", "")), memory_bytes=dev.get("memory_bytes", 0.0),
                      memory_bandwidth_bytes_per_s=c["memory_bandwidth_bytes_per_s"],
                      l2_cache_bytes=dev.get("cache_bytes", 0.0), sm_count=int(dev.get("sm_count", 0)),
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
    from .calibrate import efficiency_for

    profile = load_profile(path)
    kind = profile["device"].get("kind")
    if gpu and gpu.strip().lower() == "cpu" and kind != "cpu":
        raise RooflineError(f"--gpu cpu, but {path} measured a {kind} device ({profile['device'].get('name')})",
                            hint="pass the GPU name, or a profile from `roofline bench --device cpu`", exit_code=2)
    if kind != "cpu" and gpu and gpu.strip().lower() != "cpu" and datasheet_spec(profile) is None:
        profile["provenance"]["spec"] = {"name": gpu, "path": None}
    spec = measured_spec(profile)
    rec = profile.get("calibration")
    if not rec:
        return spec, Efficiency(source=f"defaults (profile {path} has no calibration)")
    return spec, efficiency_for(rec, precision or ("fp32" if kind == "cpu" else "bf16"))


# ----------------------------------------------------------------------------------------- validate


def validate_profile(path: str | Path) -> dict[str, Any]:
    """Per-point predictions (datasheet, measured ceilings, calibrated on a split) and per-family errors."""
    from .validate import validate

    return validate(load_profile(path))


def render_validation(result: dict[str, Any], fmt: str = "table") -> str:
    """The validation as a table (text), one JSON document, or CSV rows (one per point)."""
    from .validate import render

    return render(result, getattr(fmt, "value", fmt))
