"""What every command module shares: consoles, the common options, comma-separated values, loading a device,
warnings, and the library's argument names shown as flags."""
from __future__ import annotations

import contextlib
import re
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from roofline.errors import RooflineError
from roofline.specs.hardware import DEFAULT_GPU
from roofline.specs.precision import ACTIVATION_PRECISIONS, PRECISION_SET_RULE, PrecisionSet
from roofline.units import MAX_COUNT
from roofline.report.render import Format

#: the table width when stdout is not a terminal (a pipe, a file, the tests): fixed, so output does not depend on
#: where it is written
PIPE_WIDTH = 200
#: the width --wide allows (a table's natural width up to this)
WIDE_WIDTH = 10_000

out = Console(soft_wrap=False, width=PIPE_WIDTH, emoji=False)
err = Console(stderr=True, emoji=False)


def table_width(wide: bool = False) -> int:
    """The width tables are laid out in: the terminal's when stdout is one (rich wraps cells to fit), else
    PIPE_WIDTH; with `wide` the tables' natural width (the terminal wraps the lines)."""
    if wide:
        return WIDE_WIDTH
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size((PIPE_WIDTH, 24)).columns, 40)
    return PIPE_WIDTH


def set_table_width(wide: bool = False) -> None:
    """Lay the next tables out in table_width(wide) characters (called once per command)."""
    out.width = table_width(wide)


WideOpt = Annotated[bool, typer.Option("--wide", help="Tables at their full width (default: wrapped to the "
                                       "terminal's width).")]


def status(message: str):
    """A transient status line (spinner) on stderr while the work runs, only when stderr is a terminal: never
    in a pipe, a file or the JSON/CSV on stdout."""
    if not err.is_terminal:
        return contextlib.nullcontext()
    return err.status(message, spinner="dots")

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format: table, json or csv.")]
GpuOpt = Annotated[Optional[str], typer.Option("--gpu", help="GPU short name (see `roofline gpus`) or a spec file "
                                               f"path [default: {DEFAULT_GPU}; with --profile: the profile's device].")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model name (see `roofline models`) or a config.json path.")]
ProfileOpt = Annotated[Optional[Path], typer.Option("--profile", help="Measured profile (from `roofline bench`): "
                                                    "use its ceilings and fitted efficiencies.")]
# The request and deployment of one scenario (analyze, plot, report, spreadsheet).
BatchOpt = Annotated[int, typer.Option("--batch", help="Concurrent sequences.")]
PromptOpt = Annotated[int, typer.Option("--prompt", help="Prompt length in tokens (prefill).")]
OutputOpt = Annotated[int, typer.Option("--output", help="Output length in tokens (decode steps + 1).")]
ContextOpt = Annotated[Optional[int], typer.Option("--context", help="Decode position: tokens already cached "
                                                   "[default: prompt + output].")]
TpOpt = Annotated[int, typer.Option("--tp", help="Tensor-parallel degree.")]
PpOpt = Annotated[int, typer.Option("--pp", help="Pipeline-parallel stages (the layers split over pp groups of "
                                   "tp GPUs; pp micro-batches in flight).")]
EpOpt = Annotated[int, typer.Option("--ep", help="Expert-parallel degree for MoE models: 1 (experts TP-sharded) "
                                   "or tp x dp-attention (whole experts spread over every GPU of a stage; "
                                   "tokens dispatched and combined by all-to-all).")]
DpAttentionOpt = Annotated[int, typer.Option("--dp-attention", help="Attention data-parallel ranks (each runs "
                                             "its own sequences' attention; with --ep = tp x dp-attention).")]
EpImbalanceOpt = Annotated[float, typer.Option("--ep-imbalance", help="Expert parallelism: the busiest GPU's "
                                               "routed tokens over the mean (>= 1; 1 = uniform routing).")]
# Precision sets (sweep, capacity): one meaning, PrecisionSet's.
PrecisionsOpt = Annotated[str, typer.Option("--precision", help="Precision sets, comma-separated: "
                                            f"{PRECISION_SET_RULE}.")]

#: library argument -> flag: the CLI shows RooflineError.param, and the `name` / `name=value` references of
#: library messages and hints, as the flag that sets the argument
FLAGS: dict[str, str] = {
    "batch": "--batch", "prompt": "--prompt", "output": "--output", "context": "--context", "tp": "--tp",
    "weights": "--weights", "activations": "--activations", "kv": "--kv", "model": "--model", "gpu": "--gpu",
    "gpu_spec": "--gpu", "device": "--device", "quick": "--quick", "profile": "--profile",
    "memory_utilization": "--memory-utilization", "engine": "--engine", "max_seqs": "--max-seqs",
    "max_batched_tokens": "--max-batched-tokens", "kv_cache_fraction": "--kv-cache-fraction",
    "page_tokens": "--page-tokens",
    "rate_per_s": "--rate", "turns": "--turns", "think_time_s": "--think-time-s", "ttft_p99_s": "--ttft-p99-s",
    "tpot_p99_s": "--tpot-p99-s", "price": "--price", "pp": "--pp", "ep": "--ep", "dp_attention": "--dp-attention",
    "ep_imbalance": "--ep-imbalance", "requests": "--requests", "replicas": "--replicas", "seed": "--seed",
    "disaggregated": "--disaggregated", "prefill_gpus": "--prefill-gpu",
    "decode_gpus": "--decode-gpu", "force": "--force",
    # roofline train (model/training.py, plan/training.py)
    "gpus": "--gpus", "dp": "--dp", "cp": "--cp", "micro_batch": "--micro-batch", "global_batch": "--global-batch",
    "seq": "--seq", "zero": "--zero", "recompute": "--recompute", "virtual_stages": "--virtual-stages",
    "dp_overlap": "--dp-overlap", "tokens": "--tokens", "compute": "--precision", "grads": "--grads",
    "master": "--master", "optimizer": "--optimizer-states", "attention_kernel": "--attention-kernel",
    "budget_flops": "--budget-flops", "requests_per_s": "--rate",
    # roofline search (plan/search.py, plan/executors.py): its axes are plural; its `gpus` is --gpu, checked
    # in cli/search.py, since train's `gpus` (a count) is --gpus
    "models": "--model", "workloads": "--workload", "prices": "--price", "engines": "--engine",
    "precisions": "--precision", "max_gpus": "--max-gpus", "kv_cache_fractions": "--kv-cache-fraction",
    "top": "--top", "sim_requests": "--sim-requests", "executor": "--executor", "workers": "--workers",
    "results_dir": "--results-dir", "resume": "--resume", "address": "--address",
}
_ARGUMENT = re.compile(r"`(\w+)(?:=([^`]*))?`")


def flag_text(text: str, param: str | None = None) -> str:
    """A library message or hint in the CLI's words: a leading `param` ("tp must be >= 1", "tp=3 does not
    divide ...") and every backquoted `name` or `name=value` that FLAGS knows become the flag ("--tp must be >= 1",
    "--tp 3 does not divide ...", "--device cpu"); anything else is left as it is."""
    flag = FLAGS.get(param or "")
    if flag and text.startswith(f"{param}="):
        text = f"{flag} {text[len(param) + 1:]}"
    elif flag and (text == param or text.startswith(f"{param} ")):
        text = flag + text[len(param):]

    def argument(m: re.Match) -> str:
        f = FLAGS.get(m.group(1))
        return m.group(0) if f is None else f if m.group(2) is None else f"{f} {m.group(2)}"

    return _ARGUMENT.sub(argument, text)


def comma_list(text: str) -> list[str]:
    """The items of a comma-separated value, stripped, empty ones dropped (' 1, 8,,64' -> ['1', '8', '64'])."""
    return [x.strip() for x in text.split(",") if x.strip()]


def ints(text: str, flag: str, example: str = "1,8,64") -> list[int]:
    """A comma-separated value of `flag` as integers; RooflineError (exit 2) when it holds none or a non-integer."""
    try:
        values = [int(x) for x in comma_list(text)]
    except ValueError:
        values = []
    if not values:
        raise RooflineError(f"{flag} takes comma-separated integers, got {text!r}", hint=f"e.g. {flag} {example}",
                            exit_code=2)
    big = [v for v in values if abs(v) > MAX_COUNT]
    if big:
        raise RooflineError(f"{flag} takes integers up to {MAX_COUNT:,}, got {big[0]}", hint=f"e.g. {flag} {example}",
                            exit_code=2)
    return values


def precision_list(text: str) -> list[str]:
    """The comma-separated precision sets as written, each checked (PrecisionSet.parse: RooflineError, exit 2)."""
    sets = comma_list(text)
    for p in sets:
        PrecisionSet.parse(p)
    return sets


def strict_list(text: str, flag: str, example: str) -> list[str]:
    """The items of a comma-separated value, stripped; RooflineError (exit 2) for an empty item between others
    ('h100-sxm,,a100': a typo, not a wish). The empty value itself is the empty list."""
    if not text.strip():
        return []
    items = [x.strip() for x in text.split(",")]
    if not all(items):
        raise RooflineError(f"{flag} has an empty item: {text!r}", hint=f"separate the items by single commas, "
                            f"e.g. {flag} {example}", exit_code=2)
    return items


def alias(value, old, flag: str, old_flag: str, scale: float = 1.0):
    """The value of `flag`, or of `old_flag`, its old spelling kept as a hidden alias for a release (`scale`
    converts the old unit to the new one, e.g. 1e-3 for milliseconds to seconds); a warning naming the new flag
    follows the command's output (DEPRECATED). RooflineError (exit 2) when both are given with different values."""
    if old is None:
        return value
    new = old * scale if scale != 1.0 else old
    if value is not None and value != new:
        raise RooflineError(f"{flag} and {old_flag} (its old name) disagree", hint=f"give {flag} only",
                            exit_code=2)
    DEPRECATED.append(f"{old_flag} is the old name of {flag}" + (" (which takes seconds, not milliseconds)"
                      if scale == 1e-3 else "") + "; it is kept for one release")
    return new


#: the old flag names the running command was given: `main` warns about them once the command has succeeded
#: (a failing command prints its one `Error:` line and nothing else)
DEPRECATED: list[str] = []


#: the precision set a command uses when none is given
DEFAULT_PRECISION = "bf16"
#: --precision on the commands of one scenario (analyze, plot, report, spreadsheet)
ScenarioPrecisionOpt = Annotated[Optional[str], typer.Option("--precision", help="Precision set (shorthand for "
                                                             f"--weights/--activations/--kv): {PRECISION_SET_RULE}; "
                                                             "a --weights, --activations or --kv given beside it "
                                                             "overrides its part [default: bf16; a device without "
                                                             "bf16 computes in its fastest precision].")]
OptWeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="Weights precision (fp32 bf16 fp16 fp8 "
                                                      "int8 int4 fp4) [default: the --precision set's].")]
OptActOpt = Annotated[Optional[str], typer.Option("--activations", help="Activations = compute precision (fp32 "
                                                  "tf32 bf16 fp16 fp8 int8 fp4) [default: the --precision set's].")]
OptKvOpt = Annotated[Optional[str], typer.Option("--kv", help="KV-cache precision (fp32 bf16 fp16 fp8 int8 int4 "
                                                 "fp4) [default: the --precision set's].")]


def fastest_precision(spec) -> str:
    """The activations (compute) precision with the highest measured / datasheet peak of `spec` (fp32 on a CPU
    that measured fp32 only)."""
    usable = {p: f for p, f in spec.peak_flops_per_s.items() if p in ACTIVATION_PRECISIONS} or spec.peak_flops_per_s
    return max(usable, key=usable.get)


def scenario_device(gpu: Optional[str], profile: Optional[Path], precision: Optional[str],
                    weights: Optional[str], activations: Optional[str], kv: Optional[str]):
    """(GPUSpec, Efficiency or None, (weights, activations, kv)) of a one-scenario command: --precision (one
    set) with --weights/--activations/--kv overriding its parts. With none of them given, the default set is
    bf16, or on a device that lacks bf16 (a CPU profile that measured fp32 only) its fastest measured precision,
    with a warning that says so."""
    if precision is not None and "," in precision:
        raise RooflineError(f"--precision takes one precision set here, got {precision!r}",
                            hint="e.g. --precision fp8 or --precision int4/bf16/fp8", exit_code=2)
    base = PrecisionSet.parse(precision if precision is not None else DEFAULT_PRECISION)
    w, a, k = (x.strip().lower() if x is not None else None for x in (weights, activations, kv))
    compute = a or base.activations
    from roofline.measure.device import resolve_device
    spec, eff, notes = resolve_device(check_gpu_option(gpu), profile, compute)
    if precision is None and a is None and compute not in spec.peak_flops_per_s:
        best = fastest_precision(spec)  # the compute precision; weights and KV keep their (storage) formats
        base = PrecisionSet(base.weights, best, base.kv)
        spec, eff, notes = resolve_device(check_gpu_option(gpu), profile, best)
        measured = "measured " if profile is not None else ""
        notes = [*notes, f"{spec.display_name} has no {measured}{compute} throughput: computing in {best}, its "
                 f"fastest {measured}precision (weights/activations/KV {w or base.weights}/{best}/"
                 f"{k or base.kv}; set --precision or --activations to choose)"]
    warn(notes)
    return spec, eff, (w or base.weights, a or base.activations, k or base.kv)


#: rows `sweep` writes without --limit, per format (measured on one core: a rich table renders ~700 rows/s, so
#: 2,000 rows take ~3 s; JSON ~10,000 rows/s and ~12 kB of memory per row, CSV ~13,000 rows/s and ~4 kB per row)
ROW_LIMITS = {Format.table: 2_000, Format.json: 100_000, Format.csv: 100_000}
#: the largest --limit (as JSON about 12 GB of memory)
MAX_ROW_LIMIT = 1_000_000
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, max=MAX_ROW_LIMIT, help="Most rows to write: "
                                                 "a larger grid is refused before it is evaluated [default: "
                                                 f"{ROW_LIMITS[Format.table]:,} as a table, "
                                                 f"{ROW_LIMITS[Format.csv]:,} as JSON or CSV; at most "
                                                 f"{MAX_ROW_LIMIT:,}].")]


def check_rows(sizes: dict[str, int], limit: Optional[int], fmt: Format) -> int:
    """The number of rows of a grid (the product of `sizes`, e.g. {"batches": 9, "contexts": 3}); RooflineError
    (exit 2) saying how many and how to proceed when it is above `limit` (None: ROW_LIMITS[fmt])."""
    rows = 1
    for n in sizes.values():
        rows *= n
    cap = ROW_LIMITS[fmt] if limit is None else limit
    if rows > cap:
        parts = " x ".join(f"{n:,} {what}" for what, n in sizes.items())
        other = "" if fmt != Format.table else f", write --format csv (up to {ROW_LIMITS[Format.csv]:,} rows)"
        raise RooflineError(f"the grid has {rows:,} rows ({parts}), more than the limit of {cap:,}",
                            hint=f"use fewer values per list{other}, or raise the limit with --limit {rows}"
                            if rows <= MAX_ROW_LIMIT else f"use fewer values per list (--limit goes up to "
                            f"{MAX_ROW_LIMIT:,})", exit_code=2)
    return rows


def warn(messages) -> None:
    """Each non-empty message as one `Warning: ...` line on stderr."""
    for m in messages:
        if m:
            err.print(f"Warning: {m}", highlight=False, markup=False, soft_wrap=True)


def path_option(value: Optional[str], flag: str) -> Optional[Path]:
    """A file path option as a Path (None when the flag was left out); RooflineError (exit 2) for an empty value,
    which typer would turn into '.' (the current directory). The file itself is checked where it is read
    (roofline.jsonfile.read_text: a regular file, its size, UTF-8)."""
    if value is None:
        return None
    if not value.strip():
        raise RooflineError(f"{flag} is empty", hint=f"pass a file path, e.g. {flag} FILE, or leave {flag} out",
                            exit_code=2)
    return Path(value)


def check_gpu_option(gpu: Optional[str], flag: str = "--gpu") -> Optional[str]:
    """`gpu` as given, None when the flag was left out; RooflineError (exit 2) for an empty or blank value (which
    would otherwise mean the default GPU)."""
    if gpu is not None and not gpu.strip():
        raise RooflineError(f"{flag} is empty", hint=f"name a GPU (see `roofline gpus`) or a spec file, e.g. "
                            f"{flag} {DEFAULT_GPU}; leave {flag} out for the default", exit_code=2)
    return gpu


def load_device(gpu: Optional[str], profile: Optional[Path], precision: Optional[str] = None):
    """(GPUSpec, Efficiency or None): the datasheet, or a measured profile's ceilings and the efficiency
    curves fitted for the compute `precision`. With a profile its device wins; a --gpu the user gave that names
    another device is warned about (gpu None: no --gpu given, nothing to warn about)."""
    from roofline.measure.device import resolve_device
    spec, eff, notes = resolve_device(check_gpu_option(gpu), profile, precision)
    warn(notes)
    return spec, eff
