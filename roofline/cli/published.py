"""`roofline published`: the model's predictions against published serving measurements (roofline/measure/published.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from roofline.cli.common import FormatOpt, out
from roofline.report.render import Format, emit, table

_SUMMARY_HEADERS = ["points", "median |error|", "p90 |error|", "bias", "median speed ratio"]


def _tables(result: dict) -> list:
    from roofline.measure.published import (SCOPES, format_batch, format_layout, format_ratio, format_row_error,
                                            format_summary, format_value)
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
    tables = [points, summary, scopes]
    if result["not_predicted"]:
        tables.append(table("Not predicted (kept out of the figures above)", ["id", "scope", "metric", "reason"],
                            [(n["id"], SCOPES[n["scope"]], n["metric"], n["reason"])
                             for n in result["not_predicted"]], justify_right=False))
    return tables


def register(app: typer.Typer) -> None:
    """Add `roofline published` to `app`."""

    @app.command("published")
    def published(
        data: Annotated[Optional[Path], typer.Option("--data", help="Measurements JSON file (default: the shipped "
                                                     "dataset, roofline/measure/data/published_measurements.json).")] = None,
        fmt: FormatOpt = Format.table,
    ) -> None:
        """Compare roofline's predictions with published measurements of real serving stacks: errors overall, per
        metric, and single-GPU against multi-GPU; entries the model cannot predict are listed with the reason."""
        from roofline.measure.published import CSV_FIELDS, compare, load_measurements
        result = compare(load_measurements(data))
        emit(result, fmt, out, lambda: _tables(result),
             lambda: [{k: r[k] for k in CSV_FIELDS} for r in result["rows"]], width=240)
