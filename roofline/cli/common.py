"""What every command module shares: consoles, the common options, loading a device, warnings."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.model.memory import MemorySettings, check_memory_utilization
from roofline.report.render import Format

out = Console(soft_wrap=False, width=200)
err = Console(stderr=True)

DEFAULT_GPU = "h100-sxm"
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format: table, json or csv.")]
GpuOpt = Annotated[Optional[str], typer.Option("--gpu", help="GPU short name (see `roofline gpus`) or a spec file "
                                               f"path [default: {DEFAULT_GPU}; with --profile: the profile's device].")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model name (see `roofline models`) or a config.json path.")]
ProfileOpt = Annotated[Optional[Path], typer.Option("--profile", help="Measured profile (from `roofline bench`): "
                                                    "use its ceilings and fitted efficiencies.")]
MemOpt = Annotated[float, typer.Option("--memory-utilization", help="Fraction of GPU memory the engine may use "
                                       "(vLLM's gpu_memory_utilization).")]


def warn(messages) -> None:
    """Each non-empty message as one `Warning: ...` line on stderr."""
    for m in messages:
        if m:
            err.print(f"Warning: {m}", highlight=False, markup=False, soft_wrap=True)


def memory_settings(memory_utilization: float) -> MemorySettings:
    """MemorySettings for --memory-utilization (RooflineError, exit 2, outside (0, 1])."""
    return MemorySettings(memory_utilization=check_memory_utilization(memory_utilization))


def load_device(gpu: Optional[str], profile: Optional[Path], precision: Optional[str] = None):
    """(GPUSpec, Efficiency or None): the datasheet, or a measured profile's ceilings and the efficiency
    curves fitted for the compute `precision`. With a profile its device wins; a different --gpu is warned about."""
    if profile is None:
        if (gpu or "").lower() == "cpu":
            raise RooflineError("--gpu cpu needs a measured profile", hint="run `roofline bench --device cpu --quick` "
                                "and pass --profile PATH", exit_code=2)
        return load_gpu(gpu or DEFAULT_GPU), None
    from roofline.measure.device import load_profile_device
    spec, eff = load_profile_device(profile, gpu, precision)
    if gpu and gpu.lower() != "cpu" and load_gpu(gpu).name != spec.name:
        warn([f"--gpu {gpu} ignored: {profile} measured {spec.display_name}"])
    return spec, eff
