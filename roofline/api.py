"""The Python API: what the `roofline` commands compute, as typed objects and pandas DataFrames for notebooks.

    >>> import roofline
    >>> a = roofline.analyze(gpu="h100-sxm", model="llama-3.1-8b", batch=1)
    >>> a.decode_bound
    'memory'

Every function here calls the same library functions as the command of the same name, and every table has
the columns of that command's `--format csv` output (`Analysis.to_dict()` is the `analyze --format json`
document), so numbers from a notebook and from the command line agree. SI units throughout: seconds, bytes,
FLOPs, tokens, requests per second, USD per GPU-hour.

Bad arguments raise `RooflineError` (message and hint); nothing is printed. What a command prints as a
`Warning:` line (a model context exceeded, a `gpu` the profile overrides) is issued as a `RooflineWarning`
through Python's `warnings` module. pandas is imported only when a table is built.
"""
from __future__ import annotations

import copy
import numbers
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from roofline.errors import RooflineError
from roofline.jsonfile import to_jsonable
from roofline.measure.device import resolve_device
from roofline.measure.profile import load_profile as _load_profile
from roofline.model.analysis import Scenario, analyze as _analyze
from roofline.model.efficiency import Efficiency
from roofline.model.memory import EngineKnobs, check_memory_utilization
from roofline.specs.engines import DEFAULT_ENGINE, EngineSpec, load_engine
from roofline.model.sweep import sweep as _sweep
from roofline.plan.capacity import capacity_table
from roofline.plan.disagg import disaggregated_table
from roofline.plan.options import (CAPACITY_COLUMNS, DEFAULT_GPUS, MODE_COLUMNS, check_tp_degrees, device_candidates,
                                   gpu_prices, mode_rows)
from roofline.specs.hardware import GPUSpec, list_gpus as _list_gpus, load_gpu as _load_gpu
from roofline.specs.models import ModelConfig, list_models as _list_models, load_model as _load_model
from roofline.specs.precision import PrecisionSet
from roofline.specs.workload import Workload, context_warning, workload_from_options

if TYPE_CHECKING:  # pandas is imported when a table is built, not with the package
    import pandas as pd

__all__ = ["Analysis", "RooflineError", "RooflineWarning", "analyze", "capacity", "list_gpus", "list_models",
           "load_gpu", "load_model", "load_profile", "published", "sweep", "train", "train_search", "validate"]

class RooflineWarning(UserWarning):
    """What a `roofline` command prints as a `Warning:` line (filter it with the `warnings` module)."""


# ------------------------------------------------------------------------------------------------ inputs


def load_gpu(name_or_path: str | Path) -> GPUSpec:
    """A GPU spec: a built-in short name or alias (case-insensitive, see `list_gpus()`) or a spec JSON file.

    Peaks are dense FLOP/s per precision (`peak_flops_per_s`), memory in bytes, bandwidths in bytes/s.

    >>> g = roofline.load_gpu("h100-sxm")
    >>> g.name, round(g.ridge_point_flops_per_byte("bf16"))
    ('h100-sxm', 295)
    """
    return _load_gpu(name_or_path)


def load_model(name_or_path: str | Path) -> ModelConfig:
    """A model: a catalog name (see `list_models()`) or a Hugging Face config.json path / model directory.

    >>> m = roofline.load_model("llama-3.1-8b")
    >>> m.num_layers, m.num_kv_heads
    (32, 8)
    """
    return _load_model(name_or_path)


def load_profile(path: str | Path) -> dict[str, Any]:
    """A measured device profile written by `roofline bench` (the JSON document: device, provenance, points
    with their samples in seconds, ceilings in bytes/s and FLOP/s, calibration), checked on load: a field of the
    wrong type or out of range raises RooflineError naming its JSON path. Pass the path itself as
    `profile=` to `analyze`, `sweep` or `capacity` to use the measured device.

    >>> p = roofline.load_profile("profiles/cpu-quick-vm.json")
    >>> p["device"]["kind"]
    'cpu'
    """
    return _load_profile(path)


def list_gpus() -> list[str]:
    """Short names of the built-in GPU specs, sorted.

    >>> "h100-sxm" in roofline.list_gpus()
    True
    """
    return _list_gpus()


def list_models() -> list[str]:
    """Names of the built-in catalog models, sorted.

    >>> "llama-3.1-8b" in roofline.list_models()
    True
    """
    return _list_models()


# ------------------------------------------------------------------------------------------------ analyze

#: Analysis attribute -> where it stands in the `analyze --format json` document
_REPORT_KEYS: dict[str, tuple[str, ...]] = {
    "gpu": ("gpu",), "gpu_display_name": ("gpu_display_name",), "model": ("model",),
    "parameters": ("parameters",),
    **{k: ("config", k) for k in ("batch", "prompt", "output", "context", "tp", "weights", "activations", "kv",
                                  "memory_utilization")},
    "ridge_point_flops_per_byte": ("ridge_point_flops_per_byte",),
    **{k: (k,) for k in ("ttft_s", "tpot_s", "mean_tpot_s", "e2e_latency_s", "output_tokens_per_s")},
    **{f"{ph}_{k}": (ph, k) for ph in ("prefill", "decode")
       for k in ("bound", "flops", "bytes", "arithmetic_intensity_flops_per_byte")},
    **{k: ("memory", k) for k in ("memory_bytes", "memory_budget_bytes", "weights_bytes", "activation_bytes",
                                  "runtime_reserve_bytes", "kv_cache_bytes_per_token", "kv_cache_bytes_per_sequence",
                                  "kv_cache_capacity_bytes", "kv_cache_capacity_tokens", "max_batch",
                                  "kv_cache_utilization", "fits", "batch_fits", "min_tp_that_fits")},
}

#: columns of `Analysis.operators`
_OPERATOR_COLUMNS = ("phase", "name", "unit", "count", "flops", "bytes_read", "bytes_written", "bytes",
                     "arithmetic_intensity_flops_per_byte", "bound", "time_s", "compute_s", "memory_s", "overhead_s")


@dataclass(frozen=True)
class Analysis:
    """One deployment analysed end to end (`roofline analyze`): memory, prefill, a decode step, a generation.

    Figures are per GPU of the TP group, SI units: seconds (`*_s`), bytes (`*_bytes`), FLOPs, tokens.

    Deployment: `gpu`, `gpu_display_name`, `model`, `parameters` (count), `batch` (sequences), `prompt`,
    `output` (tokens; output = decode steps + 1), `context` (decode position in tokens), `tp`, `weights`,
    `activations` (= compute precision), `kv` (precision names), `memory_utilization` (fraction of GPU memory).

    Latency and throughput: `ttft_s` (prefill of the whole batch), `tpot_s` (one decode step at `context`),
    `mean_tpot_s` (mean decode step over the generation), `e2e_latency_s` (prefill + every decode step),
    `output_tokens_per_s` (batch x output / e2e latency).

    Roofline: `ridge_point_flops_per_byte` (dense peak of the activations precision / HBM bandwidth);
    `prefill_bound`, `decode_bound` ('memory' or 'compute': which of the summed operator times is larger);
    `prefill_flops`, `decode_flops` (FLOPs), `prefill_bytes`, `decode_bytes` (HBM bytes),
    `prefill_arithmetic_intensity_flops_per_byte`, `decode_arithmetic_intensity_flops_per_byte`;
    `critical_batch`: the smallest batch at which a decode step at `context` turns compute-bound, None when
    it never does.

    Memory: `memory_bytes`, `memory_budget_bytes` (memory_utilization x memory), `weights_bytes`,
    `activation_bytes`, `runtime_reserve_bytes`, `kv_cache_bytes_per_token`, `kv_cache_bytes_per_sequence`
    (at `context`), `kv_cache_capacity_bytes`, `kv_cache_capacity_tokens`, `max_batch` (sequences of
    `context` tokens that fit), `kv_cache_utilization` (fraction of the KV cache `batch` sequences use),
    `fits` (one sequence fits), `batch_fits`, `min_tp_that_fits` (None: no TP degree up to 64).

    `warnings`: what `roofline analyze` prints as warnings. `to_dict()` is the `analyze --format json`
    document less its `verdict` sentence (written by the presentation layer, `roofline.report.verdict`);
    `operators` the per-operator table.

    >>> a = roofline.analyze(model="llama-3.1-8b", batch=1, prompt=1024, output=256)
    >>> a.decode_bound, a.critical_batch
    ('memory', None)
    >>> a.e2e_latency_s > a.ttft_s
    True
    """

    gpu: str
    gpu_display_name: str
    model: str
    parameters: int
    batch: int
    prompt: int
    output: int
    context: int
    tp: int
    weights: str
    activations: str
    kv: str
    memory_utilization: float
    ridge_point_flops_per_byte: float
    ttft_s: float
    tpot_s: float
    mean_tpot_s: float
    e2e_latency_s: float
    output_tokens_per_s: float
    critical_batch: int | None
    prefill_bound: str
    prefill_flops: float
    prefill_bytes: float
    prefill_arithmetic_intensity_flops_per_byte: float | None
    decode_bound: str
    decode_flops: float
    decode_bytes: float
    decode_arithmetic_intensity_flops_per_byte: float | None
    memory_bytes: float
    memory_budget_bytes: float
    weights_bytes: float
    activation_bytes: float
    runtime_reserve_bytes: float
    kv_cache_bytes_per_token: float
    kv_cache_bytes_per_sequence: float
    kv_cache_capacity_bytes: float
    kv_cache_capacity_tokens: int
    max_batch: int
    kv_cache_utilization: float | None
    fits: bool
    batch_fits: bool
    min_tp_that_fits: int | None
    warnings: tuple[str, ...]
    _report: dict[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_dict(cls, report: Mapping[str, Any]) -> "Analysis":
        """An Analysis from an `analyze --format json` document (or `Analysis.to_dict()`).

        >>> a = roofline.analyze()
        >>> roofline.Analysis.from_dict(a.to_dict()) == a
        True
        """
        r = to_jsonable(dict(report))
        values: dict[str, Any] = {}
        try:
            for attr, path in _REPORT_KEYS.items():
                v: Any = r
                for k in path:
                    v = v[k]
                values[attr] = v
            crit = r["critical_batch"]
        except (KeyError, TypeError) as e:
            raise RooflineError(f"report is not an `analyze --format json` document: no {e}",
                                hint="pass Analysis.to_dict() or the output of `roofline analyze --format json`",
                                param="report") from None
        return cls(**values, critical_batch=None if crit == "never" else crit,
                   warnings=tuple(r.get("warnings", ())), _report=r)

    def to_dict(self) -> dict[str, Any]:
        """The `roofline analyze --format json` document (a fresh copy): every key of the JSON contract,
        per-operator lists under `prefill` and `decode`, numbers in SI units, `null` for a non-finite value.

        >>> a = roofline.analyze()
        >>> d = a.to_dict()
        >>> d["decode"]["bound"] == a.decode_bound and d["memory"]["max_batch"] == a.max_batch
        True
        """
        return copy.deepcopy(self._report)

    @property
    def operators(self) -> "pd.DataFrame":
        """One row per operator per phase (prefill first, then the decode step): `phase`, `name`, `unit`
        ('tensor', 'vector', ...; 'link' for a TP all-reduce), `count` (kernels per pass), `flops`,
        `bytes_read`, `bytes_written`, `bytes` (HBM bytes per GPU), `arithmetic_intensity_flops_per_byte`,
        `bound` ('memory', 'compute'; 'interconnect' for an all-reduce), `time_s`, `compute_s`, `memory_s`,
        `overhead_s` (seconds). An all-reduce row's `bytes` cross the link, not HBM; its FLOP and split-time
        columns are NaN. Per phase, `time_s` sums to `ttft_s` (prefill) and `tpot_s` (decode) without pipeline
        parallelism (with it, the rows are one micro-batch's pass through every stage).

        >>> a = roofline.analyze()
        >>> ops = a.operators
        >>> bool(abs(ops[ops.phase == "decode"].time_s.sum() - a.tpot_s) < 1e-12)
        True
        """
        import pandas as pd

        rows = []
        for phase in ("prefill", "decode"):
            rows += [{"phase": phase, **o} for o in self._report[phase]["operators"]]
            rows += [{"phase": phase, "name": c["name"], "unit": c["unit"], "count": c["count"], "bytes": c["bytes"],
                      "bound": c["limiter"], "time_s": c["time_s"]} for c in self._report[phase]["communication"]]
        return pd.DataFrame.from_records(rows, columns=list(_OPERATOR_COLUMNS))


def analyze(gpu: str | Path | GPUSpec | None = None, model: str | Path | ModelConfig = "llama-3.1-8b",
            batch: int = 1, prompt: int = 1024, output: int = 256, context: int | None = None, tp: int = 1,
            weights: str = "bf16", activations: str = "bf16", kv: str = "bf16",
            memory_utilization: float | None = None, profile: str | Path | None = None, pp: int = 1, ep: int = 1,
            dp_attention: int = 1, ep_imbalance: float = 1.0, engine: str | Path | EngineSpec = DEFAULT_ENGINE,
            max_seqs: int | None = None, max_batched_tokens: int | None = None,
            kv_cache_fraction: float | None = None, page_tokens: int | None = None,
            chunked_prefill: bool | None = None, cuda_graphs: bool | None = None) -> Analysis:
    """Analyse one deployment (`roofline analyze`): prefill of `batch` prompts of `prompt` tokens, a decode
    step at `context` tokens, the whole generation of `output` tokens, memory and KV-cache capacity.

    gpu: a name (see `list_gpus()`), a spec file path or a GPUSpec [default: h100-sxm; with `profile`: the
    profile's device]. model: a name (see `list_models()`), a config.json path or a ModelConfig.
    batch: concurrent sequences. prompt, output: tokens (output = decode steps + 1). context: the decode
    position in tokens [default: prompt + output]. tp: tensor-parallel degree (divides the attention heads).
    weights, activations (= compute), kv: precisions ('fp32', 'bf16', 'fp16', 'fp8', 'int8', 'int4', 'fp4').
    engine: the serving engine, 'vllm', 'trtllm' or 'sglang' (engines/*.json), an engine file path or an
    EngineSpec: its KV-cache rule, batch limits, CUDA graphs and fixed costs of a pass. Its knobs, None for the
    engine's default on this GPU: max_seqs (sequences per step), max_batched_tokens (tokens per step),
    kv_cache_fraction (read by the engine's rule, in (0, 1]; memory_utilization is its old name),
    page_tokens, chunked_prefill, cuda_graphs (False: every kernel launched eagerly).
    profile: a profile from `roofline bench`: its measured ceilings and fitted efficiencies.
    pp: pipeline stages. ep: expert-parallel degree of an MoE model (1, or tp x dp_attention). dp_attention:
    attention data-parallel ranks (with expert parallelism). ep_imbalance: busiest expert GPU's load over the
    mean (>= 1). The collectives of the layout are in `to_dict()[phase]["communication"]`.

    >>> a = roofline.analyze(gpu="h100-sxm", model="llama-3.1-8b", batch=8, weights="fp8", kv="fp8")
    >>> a.weights, a.decode_bound
    ('fp8', 'memory')
    """
    precision = _text(activations, "activations")
    g, eff = _device(gpu, profile, precision.strip().lower())
    m = _model(model)
    knobs = _engine(engine, memory_utilization, max_seqs, max_batched_tokens, kv_cache_fraction, page_tokens,
                    chunked_prefill, cuda_graphs)
    sc = Scenario(_int(batch, "batch"), _int(prompt, "prompt"), _int(output, "output"),
                  None if context is None else _int(context, "context"), _int(tp, "tp"), _text(weights, "weights"),
                  precision, _text(kv, "kv"), knobs.settings(g, _int(tp, "tp"), _int(pp, "pp")), pp=_int(pp, "pp"),
                  ep=_int(ep, "ep"),
                  dp_attention=_int(dp_attention, "dp_attention"), ep_imbalance=float(ep_imbalance))
    a = Analysis.from_dict(_analyze(g, m, sc, eff))
    _warn(a.warnings)
    return a


# ------------------------------------------------------------------------------------------------ tables


def sweep(gpu: str | Path | GPUSpec | None = None, model: str | Path | ModelConfig = "llama-3.1-8b",
          batch: int | Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
          context: int | Sequence[int] = (512, 2048, 8192), tp: int | Sequence[int] = (1,),
          precision: str | Sequence[str] = ("bf16",), memory_utilization: float | None = None,
          profile: str | Path | None = None, engine: str | Path | EngineSpec = DEFAULT_ENGINE,
          max_seqs: int | None = None, max_batched_tokens: int | None = None, kv_cache_fraction: float | None = None,
          page_tokens: int | None = None, chunked_prefill: bool | None = None,
          cuda_graphs: bool | None = None) -> "pd.DataFrame":
    """The grid batch x context x tp x precision in one vectorized evaluation (`roofline sweep`): one row per
    configuration (len = product of the four list lengths), columns as `roofline sweep --format csv`.

    Each row: prefill of a prompt of `context` tokens and one decode step at `context`. Columns: `batch`,
    `context`, `tp`, `precision`, `ttft_s`, `tpot_s` (s); `prefill_*` / `decode_*`: `flops`, `bytes`
    (HBM bytes per GPU), `time_s`, `bound` ('memory' or 'compute'); `decode_tokens_per_s`, `weights_bytes`,
    `kv_cache_capacity_tokens`, `max_batch`, `kv_cache_utilization`, `fits`, `batch_fits`, `critical_batch`
    (an int, 'never', or None on grids too large to search). Non-finite values are NaN (empty in the CSV).

    gpu, model, memory_utilization, profile, engine and its knobs: as in `analyze` (the engine's settings at
    the smallest `tp`). batch, context, tp: an int or a list of ints.
    precision: precision sets, each 'bf16' (one name) or 'weights/activations/kv' such as 'int4/bf16/fp8';
    a list, or one comma-separated string.

    >>> df = roofline.sweep(model="llama-3.1-8b", batch=[1, 64], context=[2048], tp=[1, 2], precision=["bf16", "fp8"])
    >>> len(df), list(df.columns[:4])
    (8, ['batch', 'context', 'tp', 'precision'])
    >>> int((df.decode_bound == "memory").sum()) > 0
    True
    """
    g, eff = _device(gpu, profile, None)
    m = _model(model)
    tps = _ints(tp, "tp")
    knobs = _engine(engine, memory_utilization, max_seqs, max_batched_tokens, kv_cache_fraction, page_tokens,
                    chunked_prefill, cuda_graphs)
    cols = _sweep(g, m, _ints(batch, "batch"), _ints(context, "context"), tps,
                  _precisions(precision), eff, knobs.settings(g, min(tps)))
    return _frame_from_columns(cols)


def capacity(model: str | Path | ModelConfig = "llama-3.1-70b", workload: str | Path | Workload | None = None,
             gpus: str | Path | GPUSpec | Sequence[str | Path | GPUSpec] | None = None,
             tp: int | Sequence[int] | None = None, precision: str | Sequence[str] = ("bf16", "fp8"),
             prices: Mapping[str, float] | None = None, ttft_p99_s: float | None = None,
             tpot_p99_s: float | None = None, rate_per_s: float | None = None, prompt: int | str | None = None,
             output: int | str | None = None, turns: int | None = None, think_time_s: float | None = None,
             memory_utilization: float | None = None, profile: str | Path | None = None, disaggregated: bool = False,
             prefill_gpus: str | Path | GPUSpec | Sequence[str | Path | GPUSpec] | None = None,
             decode_gpus: str | Path | GPUSpec | Sequence[str | Path | GPUSpec] | None = None,
             engine: str | Path | EngineSpec = DEFAULT_ENGINE, max_seqs: int | None = None,
             max_batched_tokens: int | None = None, kv_cache_fraction: float | None = None,
             page_tokens: int | None = None, chunked_prefill: bool | None = None,
             cuda_graphs: bool | None = None) -> "pd.DataFrame":
    """Fleet sizing for a workload (`roofline capacity`): one row per GPU x TP x precision candidate,
    columns as `roofline capacity --format csv`, feasible candidates first, cheapest (else fewest GPUs) first.

    Columns: `gpu`, `tp`, `precision`, `max_request_rate_per_replica` (requests/s within the SLOs),
    `replicas`, `gpus` (for the workload's peak rate), `cost_per_hour` (USD), `cost_per_million_output_tokens`
    (USD), `headroom` (fraction), `limited_by` (the binding limit), `bottleneck` (compute, bandwidth,
    interconnect, hbm_capacity), `batch` (sequences), `tpot_s`, `tpot_p99_s`, `ttft_p99_s` (s),
    `kv_cache_utilization`, `saturation_rate_per_replica` (requests/s), `reason` (why a candidate is
    infeasible). Missing values (no price, infeasible) are NaN/None.

    model: as in `analyze`. workload: a workload JSON file (see examples/workload-chat.json) or a Workload;
    without one, `rate_per_s` (requests/s) with `prompt` and `output` (tokens: an int, or 'uniform:MIN:MAX',
    'lognormal:MEDIAN:SIGMA[:MAX]', 'csv:PATH'). rate_per_s, prompt, output, turns, think_time_s (s), ttft_p99_s,
    tpot_p99_s (SLOs, s) override the workload's. gpus: GPU names, spec paths or GPUSpecs [default: h100-sxm
    and h200-sxm]. tp: degrees [default: 1, 2, 4, 8 that divide the heads]. precision: 'bf16', 'fp8' (W8A8, fp8
    KV), 'int4' (W4A16) or 'weights/activations/kv'. prices: USD per GPU-hour by GPU name (unpriced GPUs get
    no cost). memory_utilization, profile, engine and its knobs: as in `analyze` (the engine's defaults
    resolved on each candidate's GPU and layout).

    disaggregated: also size a prefill pool and a decode pool for every pair of candidates (roofline.plan.disagg;
    `roofline capacity --disaggregated`): the co-located rows (`mode` 'colocated') then the pairs (`mode`
    'disaggregated', with `prefill_*` and `decode_*` columns, `kv_transfer_s`), columns as `--format csv`.
    prefill_gpus, decode_gpus: the pools' GPUs (as `gpus`; either implies disaggregated) [default: `gpus`].

    >>> plans = roofline.capacity(model="llama-3.1-8b", workload="examples/workload-chat.json",
    ...                           gpus=["h100-sxm"], tp=[1], precision=["bf16"], prices={"h100-sxm": 2.5})
    >>> plans.loc[0, "gpu"], int(plans.loc[0, "gpus"]) >= 1
    ('h100-sxm', True)
    """
    ms = _engine(engine, memory_utilization, max_seqs, max_batched_tokens, kv_cache_fraction, page_tokens,
                 chunked_prefill, cuda_graphs)
    w = workload_from_options(workload, _number(rate_per_s, "rate_per_s"), _length(prompt, "prompt"),
                              _length(output, "output"), None if turns is None else _int(turns, "turns"),
                              _number(think_time_s, "think_time_s"), _number(ttft_p99_s, "ttft_p99_s"),
                              _number(tpot_p99_s, "tpot_p99_s"))
    m = _model(model)
    tps = None if tp is None else check_tp_degrees(_ints(tp, "tp"), m)
    precisions = _precisions(precision)
    price_table = gpu_prices((name, usd, f"{name}={usd}") for name, usd in _mapping(prices, "prices").items())
    names = _gpu_list(DEFAULT_GPUS if gpus is None else gpus, "gpus")
    cands = device_candidates((_device(g, profile, None) for g in names), m, tps, precisions)
    _warn([context_warning(w, m.name, m.max_position_embeddings)])
    rows = capacity_table(cands, m, w, price_table, ms)
    if not (disaggregated or prefill_gpus is not None or decode_gpus is not None):
        return _frame([{k: r.get(k) for k in CAPACITY_COLUMNS} for r in rows], CAPACITY_COLUMNS)
    pools = [cands if g is None else device_candidates((_device(x, profile, None) for x in _gpu_list(g, param)),
                                                      m, tps, precisions)
             for g, param in ((prefill_gpus, "prefill_gpus"), (decode_gpus, "decode_gpus"))]
    return _frame(mode_rows(rows, disaggregated_table(*pools, m, w, price_table, ms)), MODE_COLUMNS)


def _gpu_list(gpus, param: str) -> list:
    """One GPU or several as a non-empty list (RooflineError naming `param` when empty)."""
    names = [gpus] if isinstance(gpus, (str, Path, GPUSpec)) else list(gpus)
    if not names:
        raise RooflineError(f"{param} is empty", hint=f"name at least one GPU, e.g. {param}=['h100-sxm']",
                            exit_code=2, param=param)
    return names


def validate(profile_path: str | Path) -> "pd.DataFrame":
    """Predicted vs measured for every point of a profile (`roofline validate`): one row per measured point,
    columns as `roofline validate --format csv`.

    Columns: `id`, `family` (stream, gemm, attention, layer, ...), `kind`, `precision`, `split`
    ('calibration', 'held_out', 'not_fitted'), `measured_s`, `predicted_s` (calibrated model, s), `error`
    ((predicted - measured) / measured), `predicted_s_ceilings`, `error_ceilings` (bare measured ceilings),
    `predicted_s_datasheet`, `error_datasheet` (spec file; NaN for a CPU), `roofline_fraction` (bare
    roofline time / measured), `flops`, `bytes`, `intensity_flops_per_byte`, `cache_resident`, `throttled`,
    `cause` (why a point is an outlier, else None).

    >>> v = roofline.validate("profiles/cpu-quick-vm.json")
    >>> {"gemm", "stream"} <= set(v.family)
    True
    """
    from roofline.measure.validate import POINT_COLUMNS, validate_profile

    result = validate_profile(profile_path)
    return _frame([{c: r[c] for c in POINT_COLUMNS} for r in result["points"]], POINT_COLUMNS)


def published(path: str | Path | None = None) -> "pd.DataFrame":
    """The model against published measurements of real serving stacks (`roofline published`): one row per
    measurement, columns as `roofline published --format csv`.

    Columns: `id`, `engine`, `gpu`, `model`, `tp`, `num_gpus`, `batch`, `prompt`, `output`, `weights`,
    `activations`, `kv`, `metric` (tpot_s, ttft_s, e2e_latency_s in s; output_tokens_per_s), `measured`,
    `predicted` (the metric's units), `error` (predicted / measured - 1), `speed_ratio` (predicted speed /
    measured speed; > 1: the model is optimistic), `basis`, `decode_bound`, `batch_fits`, `source_url`, `pp`,
    `ep`, `dp_attention`, `replicas`, `load`, `engine_version`, `predicted_batch`, `scope` ('single_gpu' or
    'multi_gpu'), `status` ('predicted' or 'not_predicted': then `predicted`, `error` and `speed_ratio` are
    missing) and `reason`.

    path: a measurements JSON file [default: the datasets shipped with roofline, published_measurements.json
    and the per-engine published_engines.json]. Each entry is predicted with the engine it names.

    >>> p = roofline.published()
    >>> float(p.error.abs().median()) < 0.5
    True
    """
    from roofline.measure.published import CSV_FIELDS, compare, load_engine_measurements, load_measurements

    result = compare(load_measurements(path) if path is not None else load_measurements() + load_engine_measurements())
    return _frame([{k: r[k] for k in CSV_FIELDS} for r in result["rows"]], CSV_FIELDS)


def train(model: str | Path | ModelConfig = "llama-3.1-8b", gpu: str | Path | GPUSpec | None = None,
          gpus: int | None = None, tp: int = 1, pp: int = 1, dp: int | None = None, cp: int = 1, ep: int = 1,
          micro_batch: int = 1, global_batch: int = 512, seq: int = 4096, zero: int = 1,
          recompute: str = "selective", precision: str = "bf16", weights: str = "bf16", grads: str = "bf16",
          master: str = "fp32", optimizer: str = "fp32", virtual_stages: int = 1, dp_overlap: float = 1.0,
          attention_kernel: str = "flash2", tokens: float | None = None, storage_bytes_per_s: float | None = None,
          mtbf_s: float | None = None) -> dict[str, Any]:
    """One training layout end to end (`roofline train --format json`): memory per GPU by component and whether
    it fits, step time and its parts, tokens/s, TFLOP/s per GPU, MFU and HFU, time / GPU-hours / energy for
    `tokens`, and the checkpoint (size; write time for `storage_bytes_per_s`; Young interval for `mtbf_s`).

    `dp` defaults to gpus / (tp x pp x cp) (`gpus` to tp x pp x cp); `precision` is the GEMM precision. A layout
    that does not divide the model, the batch or the GPUs raises RooflineError naming the argument.

    >>> r = roofline.train(model="llama-3.1-8b", gpus=8, global_batch=64, seq=4096)
    >>> r["fits"], 0 < r["mfu"] < 1
    (True, True)
    """
    from roofline.model.training import Layout, Recipe
    from roofline.plan.training import plan

    spec, _ = _device(gpu, None, None)
    m = _model(model)
    tp, pp, cp, ep = (_int(v, n) for v, n in ((tp, "tp"), (pp, "pp"), (cp, "cp"), (ep, "ep")))
    base = tp * pp * cp
    if dp is None:
        total = base if gpus is None else _int(gpus, "gpus")
        if base < 1 or total % base:
            raise RooflineError(f"gpus={total} is not a multiple of `tp` x `pp` x `cp` = {base}", hint="pick `gpus` as `tp` x `pp` x `cp` x a data-parallel degree", exit_code=2,
                                param="gpus")
        dp = total // base
    recipe = Recipe(weights=_text(weights, "weights"), grads=_text(grads, "grads"), master=_text(master, "master"),
                    optimizer=_text(optimizer, "optimizer"), compute=_text(precision, "precision"),
                    zero=_int(zero, "zero"), recompute=recompute,
                    virtual_stages=_int(virtual_stages, "virtual_stages"), dp_overlap=_real(dp_overlap, "dp_overlap"),
                    attention_kernel=attention_kernel)
    layout = Layout.of(tp=tp, pp=pp, dp=_int(dp, "dp"), cp=cp, ep=ep, micro_batch=_int(micro_batch, "micro_batch"),
                       global_batch=_int(global_batch, "global_batch"), seq=_int(seq, "seq"))
    return to_jsonable(plan(m, spec, layout, recipe, gpus=None if gpus is None else _int(gpus, "gpus"),
                            tokens=_number(tokens, "tokens"),
                            storage_bytes_per_s=_number(storage_bytes_per_s, "storage_bytes_per_s"),
                            mtbf_s=_number(mtbf_s, "mtbf_s")))


def train_search(model: str | Path | ModelConfig = "llama-3.1-8b", gpu: str | Path | GPUSpec | None = None,
                 gpus: int = 8, global_batch: int = 512, seq: int = 4096, zero: int = 1,
                 recompute: str = "selective", precision: str = "bf16", dp_overlap: float = 1.0,
                 attention_kernel: str = "flash2", top: int = 10, ep: int = 1) -> "pd.DataFrame":
    """The layouts of `gpus` GPUs that divide the model and the batch and fit in memory, best first by predicted
    tokens/s (`roofline train --search --format csv`): one row per layout.

    Columns: `tp`, `pp`, `dp`, `cp`, `ep`, `micro_batch`, `tokens_per_s`, `step_time_s`, `tflops_per_gpu`,
    `mfu`, `hfu`, `memory_per_gpu_bytes`, `bubble_fraction`. Empty when nothing fits.

    >>> s = roofline.train_search(model="llama-3.1-8b", gpus=16, global_batch=64)
    >>> bool((s.tp * s.pp * s.dp * s.cp == 16).all())
    True
    """
    from roofline.model.training import Recipe
    from roofline.plan.training import search

    spec, _ = _device(gpu, None, None)
    recipe = Recipe(compute=_text(precision, "precision"), zero=_int(zero, "zero"),
                    recompute=recompute, dp_overlap=_real(dp_overlap, "dp_overlap"),
                    attention_kernel=attention_kernel)
    rows = search(_model(model), spec, _int(gpus, "gpus"), _int(global_batch, "global_batch"), _int(seq, "seq"),
                  recipe, top=_int(top, "top"), ep=_int(ep, "ep"))
    return _frame(rows, TRAIN_SEARCH_COLUMNS)


#: the columns of train_search (and `roofline train --search --format csv`)
TRAIN_SEARCH_COLUMNS = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "tokens_per_s", "step_time_s", "tflops_per_gpu",
                        "mfu", "hfu", "memory_per_gpu_bytes", "bubble_fraction")


# ------------------------------------------------------------------------------------------------ helpers


def _device(gpu: str | Path | GPUSpec | None, profile: str | Path | None,
            precision: str | None) -> tuple[GPUSpec, Efficiency | None]:
    if gpu is not None and not isinstance(gpu, (str, Path, GPUSpec)):
        raise RooflineError(f"gpu must be a name, a spec file path or a GPUSpec, got {gpu!r}",
                            hint="see roofline.list_gpus()", exit_code=2, param="gpu")
    spec, eff, notes = resolve_device(gpu, profile, precision)
    _warn(notes)
    return spec, eff


def _model(model: str | Path | ModelConfig) -> ModelConfig:
    if isinstance(model, ModelConfig):
        return model
    if not isinstance(model, (str, Path)):
        raise RooflineError(f"model must be a name, a config.json path or a ModelConfig, got {model!r}",
                            hint="see roofline.list_models()", exit_code=2, param="model")
    return _load_model(model)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn(messages: Iterable[str | None]) -> None:
    """Each non-empty message as a RooflineWarning attributed to the first caller outside roofline."""
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    for m in messages:
        if m:
            warnings.warn(m, RooflineWarning, stacklevel=level)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RooflineError(f"{name} must be an integer, got {value!r}", hint=f"e.g. {name}=8", exit_code=2,
                            param=name)
    return int(value)


def _ints(values: int | Iterable[int], name: str) -> list[int]:
    """An int or an iterable of ints as a non-empty list."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (numbers.Integral, Iterable)):
        raise RooflineError(f"{name} must be an integer or a list of integers, got {values!r}",
                            hint=f"e.g. {name}=[1, 8, 64]", exit_code=2, param=name)
    items = [values] if isinstance(values, numbers.Integral) else list(values)
    if not items:
        raise RooflineError(f"{name} is empty", hint=f"e.g. {name}=[1, 8, 64]", exit_code=2, param=name)
    return [_int(v, name) for v in items]


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RooflineError(f"{name} must be a number, got {value!r}", hint=f"pass an int or a float, e.g. "
                            f"{name}=0.9", exit_code=2, param=name)
    return float(value)


def _number(value: Any, name: str) -> float | None:
    return None if value is None else _real(value, name)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RooflineError(f"{name} must be a precision name such as 'bf16', got {value!r}", exit_code=2,
                            param=name, hint="a string: fp32, tf32, bf16, fp16, fp8, int8, int4 or fp4")
    return value


def _length(value: int | str | None, name: str) -> str | None:
    """A token count or length distribution as `workload_from_options` reads it ('512', 'uniform:100:2000')."""
    if value is None or isinstance(value, str):
        return value
    return str(_int(value, name))


def _mapping(value: Mapping[str, float] | None, name: str) -> Mapping[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise RooflineError(f"{name} must map GPU names to USD per GPU-hour, got {value!r}",
                            hint="e.g. prices={'h100-sxm': 2.49}", exit_code=2, param=name)
    return value


def _precisions(value: str | Iterable[str]) -> list[str]:
    """Precision sets from a list or one comma-separated string, each checked (RooflineError otherwise)."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, Iterable) else None
    if items is None or not all(isinstance(p, str) for p in items):
        raise RooflineError(f"precision must be a precision name or a list of them, got {value!r}",
                            hint="e.g. precision=['bf16', 'fp8', 'int4/bf16/fp8']", exit_code=2, param="precision")
    names = [p.strip() for p in items if p.strip()]
    if not names:
        raise RooflineError("precision is empty", hint="e.g. precision=['bf16', 'fp8']", exit_code=2,
                            param="precision")
    for p in names:
        PrecisionSet.parse(p)
    return names


def _engine(engine, memory_utilization, max_seqs, max_batched_tokens, kv_cache_fraction, page_tokens,
            chunked_prefill, cuda_graphs) -> EngineKnobs:
    """The engine (a name, a file path or an EngineSpec) and the knobs set, as EngineKnobs; each knob checked
    where it is resolved (memory.engine_settings), the fractions here."""
    spec = engine if isinstance(engine, EngineSpec) else load_engine(engine)
    if memory_utilization is not None:
        memory_utilization = check_memory_utilization(_real(memory_utilization, "memory_utilization"))
    if kv_cache_fraction is not None:
        kv_cache_fraction = check_memory_utilization(_real(kv_cache_fraction, "kv_cache_fraction"), "kv_cache_fraction")
    if memory_utilization is not None and kv_cache_fraction is not None and memory_utilization != kv_cache_fraction:
        raise RooflineError("memory_utilization and kv_cache_fraction disagree",
                            hint="give one: `memory_utilization` is the old name of `kv_cache_fraction`",
                            exit_code=2, param="kv_cache_fraction")
    frac = kv_cache_fraction if kv_cache_fraction is not None else memory_utilization
    return EngineKnobs(spec, frac, max_seqs, max_batched_tokens, page_tokens,
                       None if chunked_prefill is None else bool(chunked_prefill),
                       None if cuda_graphs is None else bool(cuda_graphs))


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> "pd.DataFrame":
    """Rows (JSON-ready: non-finite numbers become missing values) as a DataFrame with exactly `columns`."""
    import pandas as pd

    return pd.DataFrame.from_records(to_jsonable(rows), columns=list(columns))


def _frame_from_columns(cols: Mapping[str, np.ndarray]) -> "pd.DataFrame":
    """Column arrays as a DataFrame, in order, non-finite floats as NaN (as the CSV leaves them empty)."""
    import pandas as pd

    data = {}
    for k, v in cols.items():
        a = np.asarray(v)
        data[k] = np.where(np.isfinite(a), a, np.nan) if a.dtype.kind == "f" else a
    return pd.DataFrame(data)
