"""`roofline published`: the model's predictions against published serving measurements (roofline/measure/published.py)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from roofline.cli.common import FormatOpt, out, path_option
from roofline.report.render import Format, emit, table

_SUMMARY_HEADERS = ["points", "median |error|", "p90 |error|", "bias", "median speed ratio"]


def _tables(result: dict) -> list:
    from roofline.measure.published import (SCOPES, format_batch, format_error, format_layout, format_ratio,
                                            format_row_error, format_summary, format_value)
    rows = [(r["id"], r["engine"], r["gpu"], format_layout(r), r["model"],
             f"{r['weights']}/{r['activations']}/{r['kv']}", format_batch(r), f"{r['prompt']}/{r['output']}",
             r["metric"], format_value(r["metric"], r["measured"]), format_value(r["metric"], r["predicted"]),
             format_row_error(r), "-" if r["speed_ratio"] is None else f"{r['speed_ratio']:.2f}")
            for r in result["rows"]]
    points = table("Published measurements vs roofline (error = predicted/measured - 1; speed ratio > 1: model "
                   "optimistic; layout: tp x pp x dp_attention / GPUs the value covers)",
                   ["id", "engine", "gpu", "layout/gpus", "model", "w/a/kv", "batch", "in/out", "metric",
                    "measured", "predicted", "error", "speed ratio"], rows)
    groups = [("overall", result["summary"]["overall"])] + list(result["summary"]["by_metric"].items())
    summary = table("Summary (bias = median signed error; overall bias mixes times and rates, read the speed "
                    "ratio)", ["metric", *_SUMMARY_HEADERS], [(name, *format_summary(s)) for name, s in groups])
    scope_rows = []
    for key, label in SCOPES.items():
        g = result["summary_by_scope"][key]
        scope_rows.append((label, g["not_predicted"], *format_summary(g["overall"])))
        scope_rows += [(f"  {label} {metric}", "", *format_summary(s)) for metric, s in g["by_metric"].items()]
    ratio = result["multi_over_single"]
    verdict = "-" if ratio["meets_goal"] is None else ("met" if ratio["meets_goal"] else "not met")
    scopes = table(f"single-GPU vs multi-GPU (one GPU per replica vs tp x pp x dp_attention > 1): multi/single "
                   f"median |error| {format_ratio(ratio['median_abs_error'])}, p90 "
                   f"{format_ratio(ratio['p90_abs_error'])}; goal median <= {ratio['goal']:g}x: {verdict}",
                   ["scope", "not predicted", *_SUMMARY_HEADERS], scope_rows)
    engine_rows = []
    for name, g in result["summary_by_engine"].items():
        groups = [(name, g["overall"])] + [(f"  {name} {k}", v) for k, v in g["by_metric"].items()]
        engine_rows += [(label, v["count"], format_error(v["median_abs_error"], False),
                         format_error(v["max_abs_error"], False), format_error(v["bias"]),
                         g["not_predicted"] if label == name else "") for label, v in groups]
    engines = table("Errors per engine (each entry predicted with its engine's settings and fixed costs)",
                    ["engine", "points", "median |error|", "max |error|", "bias", "not predicted"], engine_rows)
    tables = [points, summary, engines, scopes]
    if result["not_predicted"]:
        tables.append(table("Not predicted (kept out of the figures above)", ["id", "scope", "metric", "reason"],
                            [(n["id"], SCOPES[n["scope"]], n["metric"], n["reason"])
                             for n in result["not_predicted"]], justify_right=False))
    return tables


def register(app: typer.Typer) -> None:
    """Add `roofline published` to `app`."""

    @app.command("published")
    def published(
        data: Annotated[Optional[str], typer.Option("--data", metavar="FILE", help="Measurements JSON file "
                                                    "(default: the shipped "
                                                     "datasets, roofline/measure/data/published_measurements.json "
                                                     "and published_engines.json).")] = None,
        fmt: FormatOpt = Format.table,
    ) -> None:
        """Compare roofline's predictions with published measurements of real serving stacks, each predicted with
        its serving engine: errors overall, per metric, per engine, and single-GPU against multi-GPU; entries the
        model cannot predict are listed with the reason.
        Published training runs (achieved TFLOP/s per GPU against `roofline train`) are reported separately."""
        from roofline.measure.published import CSV_FIELDS, compare, load_engine_measurements, load_measurements
        from roofline.measure.published_training import compare_training
        data = path_option(data, "--data")
        measurements = load_measurements(data) if data is not None else \
            load_measurements() + load_engine_measurements()
        result = compare(measurements)
        result["training"] = compare_training()  # published training runs, reported separately
        emit(result, fmt, out, lambda: _tables(result) + _training_tables(result["training"]),
             lambda: [{k: r[k] for k in CSV_FIELDS} for r in result["rows"]], width=240)


def _training_tables(t: dict) -> list:
    """The training runs (roofline/measure/published_training.py): achieved TFLOP/s per GPU, predicted vs
    published, and the median and max error."""
    s = t["summary"]
    rows = [(r["id"], r["gpu"], r["gpus"], f"{r['tp']}x{r['pp']}x{r['dp']}x{r['cp']}", r["seq"], r["zero"],
             r["recompute"], f"{r['measured_tflops_per_gpu']:.0f}", f"{r['predicted_tflops_per_gpu']:.0f}",
             f"{r['error']:+.1%}") for r in t["rows"]]
    return [table(f"Published training runs vs roofline train (TFLOP/s per GPU; median |error| "
                  f"{s['median_abs_error']:.1%}, max {s['max_abs_error']:.1%}, goal median <= {s['goal_median']:.0%})",
                  ["id", "gpu", "gpus", "tp x pp x dp x cp", "seq", "zero", "recompute", "measured", "predicted",
                   "error"], rows)]
