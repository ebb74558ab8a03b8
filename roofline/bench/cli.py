"""`roofline bench` and `roofline validate`: parse options, call roofline.bench.commands, print.

Mounted on the main app by `register(app)`; `bench_app` is the same two commands as a typer sub-app.
"""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .commands import render_validation, run_bench, validate_profile


class Device(str, Enum):
    cuda = "cuda"
    cpu = "cpu"


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def bench(
    device: Annotated[Optional[Device], typer.Option("--device", help="cuda or cpu [default: cuda when "
                                                      "available, else cpu].")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes and short timing (CPU: under 3 minutes).")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Profile path [default: "
                                                   "profiles/<device>-<quick|full>-<host>.json].")] = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", help="Spec to compare against [default: detected from "
                                               "the CUDA device name; none on a CPU].")] = None,
    model: Annotated[str, typer.Option("--model", help="Catalog model the attention and layer points are "
                                       "shaped after (dense GQA/MHA).")] = "llama-3.1-8b",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on "
                                           "stderr.")] = True,
) -> None:
    """Measure the device (streaming, GEMM ceilings, intensity sweeps, attention, a decoder layer) with
    NVML telemetry, and write a versioned JSON profile; prints the profile path."""
    import time

    t0 = time.monotonic()
    path = run_bench(device.value if device else None, quick, output, gpu, progress, model, command=sys.argv)
    typer.echo(f"bench finished in {time.monotonic() - t0:.1f} s", err=True)
    typer.echo(str(path))


def validate(
    profile: Annotated[Path, typer.Argument(help="Profile written by `roofline bench`.")],
    fmt: Annotated[Fmt, typer.Option("--format", "-f", help="Output format: table, json or csv.")] = Fmt.table,
) -> None:
    """Predicted vs measured for every point of a profile: datasheet, bare measured ceilings and the
    calibrated model (fit on half the points, errors on the other half), per-family errors and outliers."""
    typer.echo(render_validation(validate_profile(profile), fmt.value), nl=False)


bench_app = typer.Typer(help="Measure the device and validate the model against it.", no_args_is_help=True)
bench_app.command("bench")(bench)
bench_app.command("validate")(validate)


def register(app: typer.Typer) -> None:
    """Add `bench` and `validate` to the main app."""
    app.command("bench")(bench)
    app.command("validate")(validate)
