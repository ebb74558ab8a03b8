"""What every command module shares: consoles, the common options, comma-separated values, loading a device,
warnings, and the library's argument names shown as flags."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from roofline.errors import RooflineError
from roofline.specs.hardware import DEFAULT_GPU
from roofline.specs.precision import PRECISION_SET_RULE, PrecisionSet
from roofline.model.analysis import MAX_COUNT
from roofline.model.memory import MemorySettings, check_memory_utilization
from roofline.report.render import Format

out = Console(soft_wrap=False, width=200, emoji=False)
err = Console(stderr=True, emoji=False)

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
WeightsOpt = Annotated[str, typer.Option("--weights", help="Weights precision (fp32 bf16 fp16 fp8 int8 int4 fp4).")]
ActOpt = Annotated[str, typer.Option("--activations", help="Activations = compute precision (fp32 tf32 bf16 fp16 "
                                     "fp8 int8 fp4).")]
KvOpt = Annotated[str, typer.Option("--kv", help="KV-cache precision (fp32 bf16 fp16 fp8 int8 int4 fp4).")]
PpOpt = Annotated[int, typer.Option("--pp", help="Pipeline-parallel stages (the layers split over pp groups of "
                                   "tp GPUs; pp micro-batches in flight).")]
EpOpt = Annotated[int, typer.Option("--ep", help="Expert-parallel degree for MoE models: 1 (experts TP-sharded) "
                                   "or tp x dp-attention (whole experts spread over every GPU of a stage; "
                                   "tokens dispatched and combined by all-to-all).")]
DpAttentionOpt = Annotated[int, typer.Option("--dp-attention", help="Attention data-parallel ranks (each runs "
                                             "its own sequences' attention; with --ep = tp x dp-attention).")]
EpImbalanceOpt = Annotated[float, typer.Option("--ep-imbalance", help="Expert parallelism: the busiest GPU's "
                                               "routed tokens over the mean (>= 1; 1 = uniform routing).")]
MemOpt = Annotated[float, typer.Option("--memory-utilization", help="Fraction of GPU memory the engine may use "
                                       "(vLLM's gpu_memory_utilization).")]
# Precision sets (sweep, capacity, simulate; plot --precisions): one meaning, PrecisionSet's.
PrecisionsOpt = Annotated[str, typer.Option("--precision", help="Precision sets, comma-separated: "
                                            f"{PRECISION_SET_RULE}.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help=f"Precision set: {PRECISION_SET_RULE}.")]

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
    "ep_imbalance": "--ep-imbalance", "requests": "--requests", "replicas": "--replicas",
    "disaggregated": "--disaggregated", "prefill_gpus": "--prefill-gpu",
    "decode_gpus": "--decode-gpu", "force": "--force",
    # roofline train (model/training.py, plan/training.py)
    "gpus": "--gpus", "dp": "--dp", "cp": "--cp", "micro_batch": "--micro-batch", "global_batch": "--global-batch",
    "seq": "--seq", "zero": "--zero", "recompute": "--recompute", "virtual_stages": "--virtual-stages",
    "dp_overlap": "--dp-overlap", "tokens": "--tokens", "compute": "--precision", "grads": "--grads",
    "master": "--master", "optimizer": "--optimizer-states", "attention_kernel": "--attention-kernel",
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


def memory_settings(memory_utilization: float) -> MemorySettings:
    """MemorySettings for --memory-utilization (RooflineError, exit 2, outside (0, 1])."""
    return MemorySettings(memory_utilization=check_memory_utilization(memory_utilization))


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
