"""How far the model is from reality: roofline's predictions against published serving measurements.

The dataset (`roofline/data/published_measurements.json`) holds measurements read from public sources
(TensorRT-LLM performance pages, NVIDIA NIM benchmarks, vLLM CI, gpt-fast, blog posts), each with the
snippet it was read from. `compare()` rebuilds every point as a `Scenario` and reads the matching number
from `analyze()`:

| metric                | prediction                                                                          |
|-----------------------|-------------------------------------------------------------------------------------|
| `tpot_s`              | `mean_tpot_s`: mean decode-step time over the generation (what benchmarks call TPOT/ITL) |
| `ttft_s`              | `ttft_s`: prefill of the whole batch                                                |
| `output_tokens_per_s` | `output_tokens_per_s` (batch * output / e2e, per TP replica) * num_gpus / tp         |
| `e2e_latency_s`       | `e2e_latency_s`: prefill + every decode step                                        |

`num_gpus` is the number of GPUs the published value covers: 1 for a per-GPU throughput, `tp` for one
replica, 8 for a node of replicas. Throughput scales by `num_gpus / tp` replicas (a fraction for per-GPU
figures); latencies do not scale.

error = predicted / measured - 1. Its sign means opposite things for times and rates, so every row also
carries `speed_ratio` = predicted speed / measured speed (> 1: the model is optimistic), uniform across metrics.
"""
from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from roofline.model.analysis import Scenario, analyze
from roofline.model.efficiency import Efficiency
from roofline.errors import RooflineError
from roofline.specs.hardware import list_gpus, load_gpu
from roofline.specs.models import list_models, load_model
from roofline.specs.precision import check_precision

SCHEMA_VERSION = 1
DATA_FILE = "published_measurements.json"

#: published metric -> key of `analyze()`'s report it is compared with
METRICS: dict[str, str] = {
    "tpot_s": "mean_tpot_s",
    "ttft_s": "ttft_s",
    "output_tokens_per_s": "output_tokens_per_s",
    "e2e_latency_s": "e2e_latency_s",
}
#: metrics where bigger is faster (the rest are times)
RATE_METRICS = frozenset({"output_tokens_per_s"})
#: the columns of one compared point in `roofline published --format csv` and `roofline.published()`
CSV_FIELDS: tuple[str, ...] = ("id", "engine", "gpu", "model", "tp", "num_gpus", "batch", "prompt", "output",
                               "weights", "activations", "kv", "metric", "measured", "predicted", "error",
                               "speed_ratio", "basis", "decode_bound", "batch_fits", "source_url")

_TEXT = ("id", "source_url", "source_title", "quote", "engine", "gpu", "model", "weights", "activations", "kv",
         "metric", "notes")
_INTS = ("num_gpus", "tp", "batch", "prompt", "output")
#: every field of an entry, in the documented order
FIELDS: tuple[str, ...] = ("id", "source_url", "source_title", "quote", "engine", "gpu", "num_gpus", "tp", "model",
                           "weights", "activations", "kv", "batch", "prompt", "output", "metric", "value", "notes")
_TOP_LEVEL = ("schema_version", "measurements", "description")

_HINT = (f"each entry needs exactly these fields: {', '.join(FIELDS)} "
         "(see roofline/published.py and docs/published-comparison.md)")


def default_path() -> Path:
    """The dataset shipped in the package (works from a source checkout and after `pip install`)."""
    return Path(str(resources.files("roofline.measure") / "data" / DATA_FILE))


def load_measurements(path: str | Path | None = None) -> list[dict]:
    """Read and validate a measurements file (default: the shipped dataset). RooflineError names file, entry, field."""
    p = Path(path) if path is not None else default_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RooflineError(f"cannot read measurements file {p}: {e.strerror or e}",
                            hint="pass the path of a JSON file in the published-measurements format", exit_code=2)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RooflineError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", hint=_HINT,
                            exit_code=2)
    return validate(data, str(p))


def validate(data: Any, where: str = "<measurements>") -> list[dict]:
    """Check a parsed measurements document; return its entries (precision names normalised)."""
    if not isinstance(data, dict):
        raise RooflineError(f"{where}: expected a JSON object with 'schema_version' and 'measurements'", hint=_HINT,
                            exit_code=2)
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise RooflineError(f"{where}: unknown top-level field {unknown[0]!r}",
                            hint=f"allowed: {', '.join(_TOP_LEVEL)}", exit_code=2)
    if data.get("schema_version") != SCHEMA_VERSION:
        raise RooflineError(f"{where}: field 'schema_version' must be {SCHEMA_VERSION}, "
                            f"got {data.get('schema_version')!r}", hint=_HINT, exit_code=2)
    entries = data.get("measurements")
    if not isinstance(entries, list):
        raise RooflineError(f"{where}: field 'measurements' must be a list of entries", hint=_HINT, exit_code=2)
    gpus, models = set(list_gpus()), set(list_models())
    out, seen = [], set()
    for i, raw in enumerate(entries):
        m = _check_entry(raw, i, where, gpus, models)
        if m["id"] in seen:
            raise RooflineError(f"{where}: entry {m['id']!r}: field 'id' is used by an earlier entry",
                                hint="give every measurement a unique id", exit_code=2)
        seen.add(m["id"])
        out.append(m)
    return out


def _fail(where: str, label: str, field: str, problem: str, hint: str = _HINT) -> RooflineError:
    return RooflineError(f"{where}: entry {label}: field {field!r} {problem}", hint=hint, exit_code=2)


def _check_entry(raw: Any, index: int, where: str, gpus: set[str], models: set[str]) -> dict:
    label = f"#{index}"
    if not isinstance(raw, dict):
        raise RooflineError(f"{where}: entry {label} is not a JSON object", hint=_HINT, exit_code=2)
    if isinstance(raw.get("id"), str) and raw["id"].strip():
        label = repr(raw["id"])
    for f in FIELDS:
        if f not in raw:
            raise _fail(where, label, f, "is missing")
    extra = sorted(set(raw) - set(FIELDS))
    if extra:
        raise _fail(where, label, extra[0], "is not a known field")
    m = dict(raw)
    for f in _TEXT:
        if not isinstance(m[f], str) or (f != "notes" and not m[f].strip()):
            raise _fail(where, label, f, f"must be a non-empty string, got {m[f]!r}")
    for f in _INTS:
        v = m[f]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise _fail(where, label, f, f"must be an integer >= 1, got {v!r}")
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
    if m["metric"] not in METRICS:
        raise _fail(where, label, "metric", f"must be one of {', '.join(METRICS)}, got {m['metric']!r}",
                    hint=f"metrics: {', '.join(METRICS)}")
    return m


def scenario_for(m: dict) -> Scenario:
    return Scenario(batch=m["batch"], prompt=m["prompt"], output=m["output"], context=None, tp=m["tp"],
                    weights=m["weights"], activations=m["activations"], kv=m["kv"])


def predict(m: dict, efficiency: Efficiency | None = None) -> tuple[float, dict]:
    """(predicted value of m's metric in m's units, the analyze() report it came from)."""
    report = analyze(load_gpu(m["gpu"]), load_model(m["model"]), scenario_for(m), efficiency)
    value = float(report[METRICS[m["metric"]]])
    if m["metric"] in RATE_METRICS:
        value *= m["num_gpus"] / m["tp"]
    return value, report


def basis(m: dict) -> str:
    """One line saying how the prediction for `m` is derived."""
    key = METRICS[m["metric"]]
    if m["metric"] in RATE_METRICS:
        scale = m["num_gpus"] / m["tp"]
        return f"{key} of one TP{m['tp']} replica x {scale:g} (num_gpus/tp)"
    return key


def compare(measurements: Iterable[dict], efficiency: Efficiency | None = None) -> dict:
    """Predict every measurement; rows plus error summaries (overall and per metric)."""
    rows = []
    for m in measurements:
        pred, report = predict(m, efficiency)
        meas = m["value"]
        ratio = pred / meas
        speed = ratio if m["metric"] in RATE_METRICS else 1.0 / ratio
        rows.append({
            "id": m["id"], "engine": m["engine"], "gpu": m["gpu"], "model": m["model"], "tp": m["tp"],
            "num_gpus": m["num_gpus"], "batch": m["batch"], "prompt": m["prompt"], "output": m["output"],
            "weights": m["weights"], "activations": m["activations"], "kv": m["kv"], "metric": m["metric"],
            "measured": meas, "predicted": pred, "error": ratio - 1.0, "abs_error": abs(ratio - 1.0),
            "speed_ratio": speed, "basis": basis(m), "decode_bound": report["decode"]["bound"],
            "prefill_bound": report["prefill"]["bound"], "batch_fits": report["memory"]["batch_fits"],
            "source_url": m["source_url"],
        })
    metrics = [k for k in METRICS if any(r["metric"] == k for r in rows)]
    summary = {"overall": summarize(rows), "by_metric": {k: summarize([r for r in rows if r["metric"] == k])
                                                        for k in metrics}}
    eff = (efficiency or Efficiency()).to_dict()
    return {"schema_version": SCHEMA_VERSION, "efficiency": eff, "rows": rows, "summary": summary,
            "error_definition": "error = predicted / measured - 1; speed_ratio = predicted speed / measured speed "
                                "(> 1: model optimistic)"}


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
