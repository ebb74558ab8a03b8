"""How far the model is from reality: roofline's predictions against published serving measurements.

The dataset (`roofline/measure/data/published_measurements.json`) holds measurements read from public sources
(TensorRT-LLM performance pages, NVIDIA NIM benchmarks, vLLM CI and pull requests, SGLang, gpt-fast, blog
posts), each with the snippet it was read from. `compare()` rebuilds every point as a `Scenario` and reads the
matching number from `analyze()`:

| metric                | prediction                                                                          |
|-----------------------|-------------------------------------------------------------------------------------|
| `tpot_s`              | `mean_tpot_s`: mean decode-step time over the generation (what benchmarks call TPOT/ITL) |
| `ttft_s`              | `ttft_s`: prefill of the whole batch                                                |
| `output_tokens_per_s` | `output_tokens_per_s` (batch * output / e2e, of one replica) * num_gpus / GPUs per replica |
| `e2e_latency_s`       | `e2e_latency_s`: prefill + every decode step                                        |

The parallel layout of one replica is `tp` x `pp` (pipeline stages) x `dp_attention` (attention data-parallel
ranks) GPUs, with `ep` the expert-parallel degree (1, or tp x dp_attention); `batch` counts the sequences of
the whole replica (all attention-DP ranks together). `num_gpus` is the number of GPUs the published value
covers: 1 for a per-GPU throughput, or GPUs per replica x `replicas` (one replica, or a node of several
data-parallel replicas, said explicitly). Throughput scales by `num_gpus` / GPUs per replica (`replicas`, or a
fraction for per-GPU figures); latencies do not scale.

`load` says what `batch` means: `static_batch` (one batch prefilled and decoded together, the model's own
picture), `concurrency` (closed-loop serving at that many requests in flight), `request_rate` (Poisson
arrivals; batch = the mean number in flight, see the entry's notes), `offline_max_throughput` (every request
queued at once; batch = the requests offered, the running batch is what the KV cache holds: the prediction
uses min(batch, max_batch)), `decode_only` / `prefill_only` (one phase of a disaggregated deployment measured
alone). Entries the model cannot predict (a layout it does not take yet, a model that does not fit) come back
with `status` "not_predicted" and the `reason`, and stay out of the error figures.

Errors are summarised overall, per metric, and per scope: `single_gpu` (one GPU per replica) against
`multi_gpu` (tp x pp x dp_attention > 1, however the value is normalised), with the ratio of their median and
p90 absolute errors.

Each entry is predicted with its engine's settings and fixed costs when `engine` names a built-in engine
(vllm, trtllm or trt-llm, sglang: engines/*.json), in the release its `engine_version` names where an engine
file covers it (`engine_for`: sglang-0.4.6, vllm-v0), else with the default engine's; errors are also summarised
per engine (`summary_by_engine`: count, median and max |error|). The per-engine set
`published_engines.json` (batch-1 TTFT and maximum-load throughput, loaded by `load_engine_measurements`)
has the same format.

error = predicted / measured - 1. Its sign means opposite things for times and rates, so every row also
carries `speed_ratio` = predicted speed / measured speed (> 1: the model is optimistic), uniform across metrics.
"""
from __future__ import annotations

import dataclasses
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from roofline.model.analysis import Scenario, analyze
from roofline.model.efficiency import Efficiency
from roofline.errors import RooflineError
from roofline.jsonfile import read_json
from roofline.model.memory import engine_settings
from roofline.specs.engines import ALIASES as ENGINE_ALIASES, engine_release, load_engine
from roofline.specs.hardware import list_gpus, load_gpu
from roofline.specs.models import list_models, load_model
from roofline.specs.precision import check_precision

SCHEMA_VERSION = 2
#: schema versions `validate` reads (version 1: no layout, load or engine_version fields)
READABLE_VERSIONS = (1, 2)
DATA_FILE = "published_measurements.json"
#: the per-engine set (batch-1 TTFT, maximum-load throughput per engine), same format
ENGINE_DATA_FILE = "published_engines.json"

#: published metric -> key of `analyze()`'s report it is compared with
METRICS: dict[str, str] = {
    "tpot_s": "mean_tpot_s",
    "ttft_s": "ttft_s",
    "output_tokens_per_s": "output_tokens_per_s",
    "e2e_latency_s": "e2e_latency_s",
}
#: metrics where bigger is faster (the rest are times)
RATE_METRICS = frozenset({"output_tokens_per_s"})
#: what an entry's `batch` means (see the module docstring)
LOADS: dict[str, str] = {
    "static_batch": "one batch prefilled and decoded together (batch = its size)",
    "concurrency": "closed-loop serving, batch = requests in flight",
    "request_rate": "Poisson arrivals, batch = the mean number of requests in flight",
    "offline_max_throughput": "every request queued at once, batch = requests offered; predicted at "
                              "min(batch, max_batch)",
    "decode_only": "the decode phase of a disaggregated deployment measured alone",
    "prefill_only": "the prefill phase of a disaggregated deployment measured alone",
}
DEFAULT_LOAD = "static_batch"
#: scope of an entry: one GPU per replica, or a multi-GPU layout
SCOPES: dict[str, str] = {"single_gpu": "single-GPU", "multi_gpu": "multi-GPU"}
#: the issue's goal: the multi-GPU median |error| at most this many times the single-GPU one
MULTI_OVER_SINGLE_GOAL = 1.2
PREDICTED, NOT_PREDICTED = "predicted", "not_predicted"

#: the columns of one compared point in `roofline published --format csv` and `roofline.published()`
CSV_FIELDS: tuple[str, ...] = ("id", "engine", "gpu", "model", "tp", "num_gpus", "batch", "prompt", "output",
                               "weights", "activations", "kv", "metric", "measured", "predicted", "error",
                               "speed_ratio", "basis", "decode_bound", "batch_fits", "source_url",
                               "pp", "ep", "dp_attention", "replicas", "load", "engine_version", "predicted_batch",
                               "scope", "status", "reason")

_TEXT = ("id", "source_url", "source_title", "quote", "engine", "gpu", "model", "weights", "activations", "kv",
         "metric", "notes")
_INTS = ("num_gpus", "tp", "batch", "prompt", "output")
#: the fields of a schema-version-1 entry, all required
REQUIRED_FIELDS: tuple[str, ...] = ("id", "source_url", "source_title", "quote", "engine", "gpu", "num_gpus", "tp",
                                    "model", "weights", "activations", "kv", "batch", "prompt", "output", "metric",
                                    "value", "notes")
#: fields schema version 2 adds, optional, with their defaults (what a version-1 entry means)
OPTIONAL_FIELDS: dict[str, Any] = {"pp": 1, "ep": 1, "dp_attention": 1, "replicas": 1, "load": DEFAULT_LOAD,
                                   "engine_version": ""}
_LAYOUT = ("pp", "ep", "dp_attention", "replicas")
#: every field of an entry, in the documented order
FIELDS: tuple[str, ...] = ("id", "source_url", "source_title", "quote", "engine", "engine_version", "gpu",
                           "num_gpus", "tp", "pp", "ep", "dp_attention", "replicas", "model", "weights",
                           "activations", "kv", "batch", "prompt", "output", "load", "metric", "value", "notes")
_TOP_LEVEL = ("schema_version", "measurements", "description")
#: what a layout field adds to the model, for the reason of an entry the model cannot take yet
_LAYOUT_WHAT = {"pp": "pipeline parallelism", "ep": "expert parallelism", "dp_attention": "attention data parallelism"}

_HINT = (f"each entry needs these fields: {', '.join(REQUIRED_FIELDS)}; schema version 2 adds the optional "
         f"{', '.join(OPTIONAL_FIELDS)} (see roofline/measure/published.py and docs/published-comparison.md)")


def default_path() -> Path:
    """The dataset shipped in the package (works from a source checkout and after `pip install`)."""
    return Path(str(resources.files("roofline.measure") / "data" / DATA_FILE))


def load_engine_measurements() -> list[dict]:
    """The shipped per-engine set (`published_engines.json`), validated like `load_measurements`."""
    return load_measurements(default_path().with_name(ENGINE_DATA_FILE))


def engine_for(m: dict):
    """The EngineSpec of the release an entry was measured with: among the built-in files of the engine its
    `engine` names (vllm, trtllm/trt-llm, sglang), the one whose `versions` range contains the first version
    number of its `engine_version` text (`engines.parse_version`: 'between v0.4.6 and v0.4.6.post2' -> 0.4.6
    -> sglang-0.4.6; '0.7.3 (ROCm build ...)' -> vllm-v0); the engine's own file where no range contains it or
    the text names no version ('not stated'); None for another engine (NIM, gpt-fast: predicted with the
    default engine settings)."""
    try:
        load_engine(m["engine"])
    except RooflineError:
        return None
    return engine_release(m["engine"], m.get("engine_version", ""))


def load_measurements(path: str | Path | None = None) -> list[dict]:
    """Read and validate a measurements file (default: the shipped dataset). RooflineError names file, entry, field."""
    p = Path(path).expanduser() if path is not None else default_path()
    if str(p).strip() and not p.exists():
        raise RooflineError(f"cannot read measurements file {p}: not found",
                            hint="pass the path of a JSON file in the published-measurements format", exit_code=2)
    data = read_json(path if path is not None else p, "measurements file", f"roofline/measure/data/{DATA_FILE}",
                     exit_code=2)
    return validate(data, str(p))


def validate(data: Any, where: str = "<measurements>") -> list[dict]:
    """Check a parsed measurements document (schema version 1 or 2); return its entries, every field present
    (version-1 entries and omitted optional fields get the defaults) and precision names normalised."""
    if not isinstance(data, dict):
        raise RooflineError(f"{where}: expected a JSON object with 'schema_version' and 'measurements'", hint=_HINT,
                            exit_code=2)
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise RooflineError(f"{where}: unknown top-level field {unknown[0]!r}",
                            hint=f"allowed: {', '.join(_TOP_LEVEL)}", exit_code=2)
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise RooflineError(f"{where}: field 'schema_version' must be "
                            f"{' or '.join(str(v) for v in READABLE_VERSIONS)}, got {version!r}", hint=_HINT,
                            exit_code=2)
    entries = data.get("measurements")
    if not isinstance(entries, list):
        raise RooflineError(f"{where}: field 'measurements' must be a list of entries", hint=_HINT, exit_code=2)
    gpus, models = set(list_gpus()), set(list_models())
    out, seen = [], set()
    for i, raw in enumerate(entries):
        m = _check_entry(raw, i, where, gpus, models, version)
        if m["id"] in seen:
            raise RooflineError(f"{where}: entry {m['id']!r}: field 'id' is used by an earlier entry",
                                hint="give every measurement a unique id", exit_code=2)
        seen.add(m["id"])
        out.append(m)
    return out


def _fail(where: str, label: str, field: str, problem: str, hint: str = _HINT) -> RooflineError:
    return RooflineError(f"{where}: entry {label}: field {field!r} {problem}", hint=hint, exit_code=2)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _check_entry(raw: Any, index: int, where: str, gpus: set[str], models: set[str], version: int) -> dict:
    label = f"#{index}"
    if not isinstance(raw, dict):
        raise RooflineError(f"{where}: entry {label} is not a JSON object", hint=_HINT, exit_code=2)
    if isinstance(raw.get("id"), str) and raw["id"].strip():
        label = repr(raw["id"])
    for f in REQUIRED_FIELDS:
        if f not in raw:
            raise _fail(where, label, f, "is missing")
    known = FIELDS if version >= 2 else REQUIRED_FIELDS
    extra = sorted(set(raw) - set(known))
    if extra:
        later = " in schema version 1 (it is a version-2 field)" if extra[0] in OPTIONAL_FIELDS else ""
        raise _fail(where, label, extra[0], f"is not a known field{later}")
    m = {**OPTIONAL_FIELDS, **raw}
    for f in _TEXT:
        if not isinstance(m[f], str) or (f != "notes" and not m[f].strip()):
            raise _fail(where, label, f, f"must be a non-empty string, got {m[f]!r}")
    if not isinstance(m["engine_version"], str):
        raise _fail(where, label, "engine_version", f"must be a string, got {m['engine_version']!r}")
    for f in (*_INTS, *_LAYOUT):
        if not _is_count(m[f]):
            raise _fail(where, label, f, f"must be an integer >= 1, got {m[f]!r}")
    v = m["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise _fail(where, label, "value", f"must be a positive number (SI units), got {v!r}")
    m["value"] = float(v)
    if m["gpu"] not in gpus:
        raise _fail(where, label, "gpu", f"names unknown GPU {m['gpu']!r}",
                    hint=f"use a short name from `roofline gpus`: {', '.join(sorted(gpus))}")
    if m["model"] not in models:
        raise _fail(where, label, "model", f"names unknown model {m['model']!r}",
                    hint=f"use a catalog name from `roofline models`: {', '.join(sorted(models))}")
    for role in ("weights", "activations", "kv"):
        try:
            m[role] = check_precision(m[role], role)
        except RooflineError as e:
            raise _fail(where, label, role, f"is invalid: {e.message}", hint=e.hint)
    if not isinstance(m["metric"], str) or m["metric"] not in METRICS:
        raise _fail(where, label, "metric", f"must be one of {', '.join(METRICS)}, got {m['metric']!r}",
                    hint=f"metrics: {', '.join(METRICS)}")
    if not isinstance(m["load"], str) or m["load"] not in LOADS:
        raise _fail(where, label, "load", f"must be one of {', '.join(LOADS)}, got {m['load']!r}",
                    hint="; ".join(f"{k}: {v}" for k, v in LOADS.items()))
    if m["ep"] not in (1, m["tp"] * m["dp_attention"]):
        raise _fail(where, label, "ep", f"must be 1 or tp x dp_attention = {m['tp'] * m['dp_attention']}, "
                    f"got {m['ep']}", hint="expert parallelism spreads the experts over every GPU of a stage")
    if version == 1:
        _v1_replicas(m, where, label)
    _check_num_gpus(m, where, label)
    return m


def _v1_replicas(m: dict, where: str, label: str) -> None:
    """Version 1 said 'a node of replicas' with num_gpus alone: num_gpus = k x tp means k replicas."""
    if m["num_gpus"] > 1:
        if m["num_gpus"] % m["tp"]:
            raise _fail(where, label, "num_gpus", f"must be 1 (a per-GPU figure) or a multiple of tp = {m['tp']}, "
                        f"got {m['num_gpus']}")
        m["replicas"] = m["num_gpus"] // m["tp"]


def _check_num_gpus(m: dict, where: str, label: str) -> None:
    per_replica = replica_gpus(m)
    if m["num_gpus"] == 1 and m["replicas"] == 1:
        return
    if m["num_gpus"] != per_replica * m["replicas"]:
        raise _fail(where, label, "num_gpus", "must be 1 (a per-GPU figure) or tp x pp x dp_attention x replicas "
                    f"= {m['tp']} x {m['pp']} x {m['dp_attention']} x {m['replicas']} = "
                    f"{per_replica * m['replicas']}, got {m['num_gpus']}",
                    hint="num_gpus is the number of GPUs the published value covers; the field 'replicas' counts the "
                         "data-parallel replicas among them")


def replica_gpus(m: dict) -> int:
    """GPUs of one replica: tp x pp x dp_attention."""
    return m["tp"] * m.get("pp", 1) * m.get("dp_attention", 1)


def scope(m: dict) -> str:
    """'single_gpu' when one replica is one GPU, else 'multi_gpu' (whatever GPUs the published value covers)."""
    return "single_gpu" if replica_gpus(m) == 1 else "multi_gpu"


def scenario_for(m: dict, batch: int | None = None) -> Scenario:
    """m as a Scenario (at `batch` when given). RooflineError when m's layout needs a Scenario field the model
    does not have yet (pp, ep, dp_attention)."""
    kw: dict[str, Any] = {"batch": m["batch"] if batch is None else batch, "prompt": m["prompt"],
                          "output": m["output"], "context": None, "tp": m["tp"], "weights": m["weights"],
                          "activations": m["activations"], "kv": m["kv"]}
    supported = {f.name for f in dataclasses.fields(Scenario)}
    layout = {f: m.get(f, 1) for f in _LAYOUT_WHAT if m.get(f, 1) != 1}
    missing = [f for f in layout if f not in supported]
    if missing:
        raise RooflineError(f"{', '.join(f'{f}={layout[f]}' for f in missing)}: the model does not take "
                            f"{' or '.join(f'`{f}`' for f in missing)} yet "
                            f"({', '.join(_LAYOUT_WHAT[f] for f in missing)}: not modelled)",
                            hint="the entry stays in the dataset and is predicted once the model supports it",
                            exit_code=2, param=missing[0])
    spec = engine_for(m)
    if spec is not None and "memory" in supported:
        kw["memory"] = engine_settings(spec, load_gpu(m["gpu"]), m["tp"], m.get("pp", 1))
    return Scenario(**kw, **layout)


def predict(m: dict, efficiency: Efficiency | None = None) -> tuple[float, dict]:
    """(predicted value of m's metric in m's units, the analyze() report it came from). With
    load='offline_max_throughput' the report is at min(batch, max_batch). RooflineError when the model cannot
    predict m: a layout it does not take, or a model that does not fit (not even one sequence)."""
    gpu, model = load_gpu(m["gpu"]), load_model(m["model"])
    report = analyze(gpu, model, scenario_for(m), efficiency)
    mem = report["memory"]
    if not mem["fits"]:
        raise RooflineError(f"{model.name} does not fit: not even one sequence of {report['config']['context']} "
                            f"tokens on {replica_gpus(m)} {gpu.name} GPUs (the entry's tp {m['tp']}, pp {m.get('pp', 1)}, "
                            f"dp_attention {m.get('dp_attention', 1)}) at the default memory settings",
                            hint="a layout with more GPUs, or lower-precision weights, fits", exit_code=2)
    if m.get("load") == "offline_max_throughput" and mem["max_batch"] < m["batch"]:
        report = analyze(gpu, model, scenario_for(m, batch=mem["max_batch"]), efficiency)
    value = float(report[METRICS[m["metric"]]])
    if m["metric"] in RATE_METRICS:
        value *= m["num_gpus"] / replica_gpus(m)
    return value, report


def basis(m: dict, batch: int | None = None) -> str:
    """One line saying how the prediction for `m` is derived (`batch`: the batch it was predicted at)."""
    key = METRICS[m["metric"]]
    g = replica_gpus(m)
    if m["metric"] in RATE_METRICS:
        scale = m["num_gpus"] / g
        if g == m["tp"]:
            text = f"{key} of one TP{m['tp']} replica x {scale:g} (num_gpus/tp)"
        else:
            text = (f"{key} of one TP{m['tp']} x PP{m.get('pp', 1)} x DP{m.get('dp_attention', 1)} replica "
                    f"({g} GPUs) x {scale:g} (num_gpus/GPUs per replica)")
    else:
        text = key
    if batch is not None and batch != m["batch"]:
        text += f", at batch {batch} (the most that fits; {m['batch']} offered)"
    return text


def _row(m: dict) -> dict:
    return {"id": m["id"], "engine": m["engine"], "gpu": m["gpu"], "model": m["model"], "tp": m["tp"],
            "num_gpus": m["num_gpus"], "batch": m["batch"], "prompt": m["prompt"], "output": m["output"],
            "weights": m["weights"], "activations": m["activations"], "kv": m["kv"], "metric": m["metric"],
            "measured": m["value"], "predicted": None, "error": None, "abs_error": None, "speed_ratio": None,
            "basis": basis(m), "decode_bound": None, "prefill_bound": None, "batch_fits": None,
            "source_url": m["source_url"], "pp": m.get("pp", 1), "ep": m.get("ep", 1),
            "dp_attention": m.get("dp_attention", 1), "replicas": m.get("replicas", 1),
            "load": m.get("load", DEFAULT_LOAD), "engine_version": m.get("engine_version", ""),
            "predicted_batch": None, "scope": scope(m), "status": NOT_PREDICTED, "reason": None}


def compare(measurements: Iterable[dict], efficiency: Efficiency | None = None) -> dict:
    """Predict every measurement; rows plus error summaries (overall, per metric, per scope). An entry the
    model cannot predict stays in `rows` with status 'not_predicted' and its reason, and in `not_predicted`."""
    rows = []
    for m in measurements:
        row = _row(m)
        try:
            pred, report = predict(m, efficiency)
        except (RooflineError, NotImplementedError) as e:
            row["reason"] = e.message if isinstance(e, RooflineError) else (str(e) or type(e).__name__)
            rows.append(row)
            continue
        meas = m["value"]
        ratio = pred / meas
        used = report["config"]["batch"]
        row.update({"predicted": pred, "error": ratio - 1.0, "abs_error": abs(ratio - 1.0),
                    "speed_ratio": ratio if m["metric"] in RATE_METRICS else 1.0 / ratio,
                    "basis": basis(m, used), "decode_bound": report["decode"]["bound"],
                    "prefill_bound": report["prefill"]["bound"], "batch_fits": report["memory"]["batch_fits"],
                    "predicted_batch": used, "status": PREDICTED})
        rows.append(row)
    eff = (efficiency or Efficiency()).to_dict()
    by_scope = {k: summarize_group([r for r in rows if r["scope"] == k]) for k in SCOPES}
    return {"schema_version": SCHEMA_VERSION, "efficiency": eff, "rows": rows,
            "summary_by_engine": summarize_by_engine(rows),
            "summary": summarize_group(rows, with_not_predicted=False), "summary_by_scope": by_scope,
            "multi_over_single": scope_ratio(by_scope["single_gpu"]["overall"], by_scope["multi_gpu"]["overall"]),
            "not_predicted": [{"id": r["id"], "scope": r["scope"], "metric": r["metric"], "reason": r["reason"]}
                              for r in rows if r["status"] == NOT_PREDICTED],
            "error_definition": "error = predicted / measured - 1; speed_ratio = predicted speed / measured speed "
                                "(> 1: model optimistic); summaries cover the predicted rows only"}


def engine_key(name: str) -> str:
    """An entry's engine as the built-in engine's name when it names one ('trt-llm' -> 'trtllm'), else as
    written."""
    key = name.strip().lower()
    return ENGINE_ALIASES.get(key, key)


def summarize_by_engine(rows: list[dict]) -> dict:
    """Per engine (built-in names merged with their aliases), over the predicted rows: count, median and max
    |error|, per metric too; engines in name order."""
    done = [r for r in rows if r.get("status", PREDICTED) == PREDICTED]
    out = {}
    for name in sorted({engine_key(r["engine"]) for r in rows}):
        mine = [r for r in done if engine_key(r["engine"]) == name]
        metrics = [k for k in METRICS if any(r["metric"] == k for r in mine)]
        out[name] = {"overall": _median_max(mine),
                     "by_metric": {k: _median_max([r for r in mine if r["metric"] == k]) for k in metrics},
                     "not_predicted": sum(1 for r in rows if engine_key(r["engine"]) == name) - len(mine)}
    return out


def _median_max(rows: list[dict]) -> dict:
    """count, median and max |error| and the bias (median signed error) of predicted rows."""
    if not rows:
        return {"count": 0, "median_abs_error": None, "max_abs_error": None, "bias": None}
    err = np.array([r["error"] for r in rows], dtype=float)
    return {"count": len(rows), "median_abs_error": float(np.median(np.abs(err))),
            "max_abs_error": float(np.max(np.abs(err))), "bias": float(np.median(err))}


def summarize_group(rows: list[dict], with_not_predicted: bool = True) -> dict:
    """{'overall': summarize(predicted rows), 'by_metric': {metric: ...}} (metrics that have predicted rows),
    plus 'not_predicted': how many rows were not predicted."""
    done = [r for r in rows if r.get("status", PREDICTED) == PREDICTED]
    metrics = [k for k in METRICS if any(r["metric"] == k for r in done)]
    out = {"overall": summarize(done), "by_metric": {k: summarize([r for r in done if r["metric"] == k])
                                                     for k in metrics}}
    if with_not_predicted:
        out["not_predicted"] = len(rows) - len(done)
    return out


def scope_ratio(single: dict, multi: dict) -> dict:
    """Multi-GPU over single-GPU median and p90 |error| (None where a group is empty or error-free), against
    the goal: multi-GPU median no worse than MULTI_OVER_SINGLE_GOAL x single-GPU."""
    def ratio(key: str) -> float | None:
        a, b = multi[key], single[key]
        return None if a is None or not b else a / b
    med = ratio("median_abs_error")
    return {"median_abs_error": med, "p90_abs_error": ratio("p90_abs_error"), "goal": MULTI_OVER_SINGLE_GOAL,
            "meets_goal": None if med is None else med <= MULTI_OVER_SINGLE_GOAL}


def summarize(rows: list[dict]) -> dict:
    """count, median/p90 absolute error, bias (median signed error), median speed ratio."""
    if not rows:
        return {"count": 0, "median_abs_error": None, "p90_abs_error": None, "bias": None,
                "median_speed_ratio": None}
    err = np.array([r["error"] for r in rows], dtype=float)
    speed = np.array([r["speed_ratio"] for r in rows], dtype=float)
    return {"count": len(rows), "median_abs_error": float(np.median(np.abs(err))),
            "p90_abs_error": float(np.percentile(np.abs(err), 90)), "bias": float(np.median(err)),
            "median_speed_ratio": float(np.median(speed))}


def format_value(metric: str, value: float | None) -> str:
    """A measured or predicted value in readable units: '12.3 ms', '2,657 tok/s'."""
    from roofline.units import format_time_s
    if value is None:
        return "-"
    if metric in RATE_METRICS:
        return f"{value:,.4g} tok/s" if value < 1000 else f"{value:,.0f} tok/s"
    return format_time_s(value)


def format_error(x: float | None, signed: bool = True) -> str:
    """0.234 -> '+23%' (signed) or '23%'."""
    if x is None:
        return "-"
    return f"{x * 100:+.0f}%" if signed else f"{x * 100:.0f}%"


def format_ratio(x: float | None) -> str:
    """1.234 -> '1.23x'."""
    return "-" if x is None else f"{x:.2f}x"


def format_summary(s: dict) -> list:
    """A summarize() dict as table cells: points, median |error|, p90 |error|, bias, median speed ratio."""
    return [s["count"], format_error(s["median_abs_error"], False), format_error(s["p90_abs_error"], False),
            format_error(s["bias"]), "-" if s["median_speed_ratio"] is None else f"{s['median_speed_ratio']:.2f}"]


def format_layout(r: dict) -> str:
    """A row's layout / GPUs the value covers: '2/1' (TP2, per GPU), '1x1x8 ep8/1' (tp x pp x dp_attention)."""
    layout = f"{r['tp']}x{r['pp']}x{r['dp_attention']}" if (r["pp"], r["dp_attention"]) != (1, 1) else str(r["tp"])
    ep = f" ep{r['ep']}" if r["ep"] > 1 else ""
    return f"{layout}{ep}/{r['num_gpus']}"


def format_batch(r: dict) -> str:
    """A row's batch: '64', or '237 of 3000' when an offline run offered more requests than fit."""
    used = r["predicted_batch"]
    return f"{used} of {r['batch']}" if used is not None and used != r["batch"] else str(r["batch"])


def format_row_error(r: dict) -> str:
    """A row's signed error, or 'not predicted'."""
    return format_error(r["error"]) if r["status"] == PREDICTED else "not predicted"
