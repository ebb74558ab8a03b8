"""`roofline bench`, `roofline bench-collectives` and `roofline validate`: parse options, call roofline.measure,
print.

Mounted on the main app by `register(app)`."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from roofline.cli.common import FormatOpt, alias, check_gpu_option, err, warn
from roofline.errors import RooflineError
from roofline.measure.bench import run_bench, run_notes
from roofline.measure.validate import validate_profile
from roofline.report.render import Format
from roofline.outfile import check_target
from roofline.report.validation import render_validation


class Device(str, Enum):
    cuda = "cuda"
    cpu = "cpu"


def bench(
    device: Annotated[Optional[Device], typer.Option("--device", help="cuda or cpu [default: cuda when "
                                                      "available, else cpu].")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes and short timing (CPU: under 3 minutes).")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Profile path [default: "
                                                "profiles/<device>-<quick|full>-<host>.json]; an existing "
                                                "file is kept (bench stops before measuring) unless "
                                                "--force.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile at the output "
                                        "path.")] = False,
    gpu: Annotated[Optional[str], typer.Option("--gpu", help="Spec to compare against [default: detected from "
                                               "the CUDA device name; none on a CPU].")] = None,
    model: Annotated[str, typer.Option("--model", help="Catalog model the attention and layer points are "
                                       "shaped after (dense GQA/MHA).")] = "llama-3.1-8b",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on "
                                           "stderr.")] = True,
    output: Annotated[Optional[Path], typer.Option("--output", hidden=True, help="Old name of --out.")] = None,
) -> None:
    """Measure the device (streaming, GEMM ceilings, intensity sweeps, attention, a decoder layer) with
    NVML telemetry, and write a versioned JSON profile; prints the profile path. A profile already at the path
    is never replaced without --force (a measurement cannot be regenerated from its command)."""
    import time

    from roofline.measure.bench import default_output, resolve_device

    check_gpu_option(gpu)
    output = alias(out, output, "--out", "--output")
    dev = resolve_device(device.value if device else None)
    target = check_target(output or default_output(dev, quick), force, "profile")
    t0 = time.monotonic()
    if progress:
        with _ProgressBar() as bar:
            path = run_bench(dev, quick, target, gpu, bar.update, model, command=sys.argv)
    else:
        path = run_bench(dev, quick, target, gpu, None, model, command=sys.argv)
    typer.echo(f"bench finished in {time.monotonic() - t0:.1f} s", err=True)
    warn(run_notes(path))
    typer.echo(str(path))


def bench_collectives(
    nproc: Annotated[int, typer.Option("--nproc", min=2, help="Local ranks (GPUs, or CPU processes with gloo).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Profile path [default: "
                                                "profiles/collectives-<device>-<N>x-<host>.json]; an "
                                                "existing file is kept unless --force.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile at the output "
                                        "path.")] = False,
    max_bytes: Annotated[Optional[int], typer.Option("--max-bytes", min=8, help="Largest message in bytes "
                                                     "[default: 1 GiB on GPUs, 16 MiB on a CPU].")] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", min=1, help="Timed samples per size [default: GPU 20, "
                                                 "CPU 30].")] = None,
    device: Annotated[Optional[Device], typer.Option("--device", help="cuda (NCCL) or cpu (gloo) [default: cuda "
                                                      "when available, else cpu].")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Pass torchrun's output to "
                                           "stderr.")] = True,
    output: Annotated[Optional[Path], typer.Option("--output", hidden=True, help="Old name of --out.")] = None,
) -> None:
    """Measure all-reduce, reduce-scatter, all-gather, all-to-all, broadcast and send/recv over N local ranks
    (starts torchrun; multi-node: run `torchrun ... -m roofline.measure.collectives` on every node), fit
    latency and bandwidth per collective and group size, and write a JSON profile; prints its path. A profile
    already at the path is never replaced without --force."""
    from roofline.measure.bench import resolve_device
    from roofline.measure.collectives import default_output, spawn

    output = alias(out, output, "--out", "--output")
    dev = resolve_device(device.value if device else None)
    target = check_target(output or default_output(nproc, dev), force, "profile")
    show = (lambda line: typer.echo(line, err=True)) if progress else None
    typer.echo(str(spawn(nproc, target, max_bytes, iters, dev, progress=show)))


def validate(
    profile: Annotated[str, typer.Argument(metavar="PROFILE", help="Profile written by `roofline bench` or "
                                           "`roofline bench-collectives`.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """Predicted vs measured for every point of a profile: datasheet, bare measured ceilings and the
    calibrated model (fit on half the points, errors on the other half), per-family errors and outliers."""
    if not profile.strip():  # typer would read an empty path as '.', the current directory
        raise RooflineError("the profile path is empty", hint="pass a profile file, e.g. roofline validate "
                            "profiles/cpu-quick-vm.json", exit_code=2)
    typer.echo(render_validation(validate_profile(Path(profile)), fmt.value), nl=False)


def register(app: typer.Typer) -> None:
    """Add `bench`, `bench-collectives` and `validate` to the main app."""
    app.command("bench")(bench)
    app.command("bench-collectives")(bench_collectives)
    app.command("validate")(validate)


class _ProgressBar:
    """A rich progress bar on stderr: which point runs, how many are done. Shown from the first update on, so
    that an error before the first point prints nothing but the error."""

    def __enter__(self):
        self.p = self.task = None
        return self

    def update(self, i: int, n: int, what: str) -> None:
        if self.p is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              console=err, transient=False)
            self.p.__enter__()
            self.task = self.p.add_task("bench", total=n)
        self.p.update(self.task, completed=i, description=f"bench {what[:60]:60s}")

    def __exit__(self, *exc):
        return self.p.__exit__(*exc) if self.p is not None else None
