"""`roofline published`: the model's predictions against published serving measurements (roofline/measure/published.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from roofline.cli.common import FormatOpt, out
from roofline.report.render import Format, emit, table

def _tables(result: dict) -> list:
    from roofline.measure.published import format_error, format_value
    rows = [(r["id"], r["engine"], r["gpu"], f"{r['tp']}/{r['num_gpus']}", r["model"],
             f"{r['weights']}/{r['activations']}/{r['kv']}", r["batch"], f"{r['prompt']}/{r['output']}",
             r["metric"], format_value(r["metric"], r["measured"]), format_value(r["metric"], r["predicted"]),
             format_error(r["error"]), f"{r['speed_ratio']:.2f}")
            for r in result["rows"]]
    points = table("Published measurements vs roofline (error = predicted/measured - 1; speed ratio > 1: model "
                   "optimistic)", ["id", "engine", "gpu", "tp/gpus", "model", "w/a/kv", "batch", "in/out", "metric",
                                   "measured", "predicted", "error", "speed ratio"], rows)
    groups = [("overall", result["summary"]["overall"])] + list(result["summary"]["by_metric"].items())
    srows = [(name, s["count"], format_error(s["median_abs_error"], False),
              format_error(s["p90_abs_error"], False),
              format_error(s["bias"]), "-" if s["median_speed_ratio"] is None else f"{s['median_speed_ratio']:.2f}")
             for name, s in groups]
    summary = table("Summary (bias = median signed error; overall bias mixes times and rates, read the speed "
                    "ratio)", ["metric", "points", "median |error|", "p90 |error|", "bias", "median speed ratio"],
                    srows)
    return [points, summary]


def register(app: typer.Typer) -> None:
    """Add `roofline published` to `app`."""

    @app.command("published")
    def published(
        data: Annotated[Optional[Path], typer.Option("--data", help="Measurements JSON file (default: the shipped "
                                                     "dataset, roofline/measure/data/published_measurements.json).")] = None,
        fmt: FormatOpt = Format.table,
    ) -> None:
        """Compare roofline's predictions with published measurements of real serving stacks."""
        from roofline.measure.published import CSV_FIELDS, compare, load_measurements
        result = compare(load_measurements(data))
        emit(result, fmt, out, lambda: _tables(result),
             lambda: [{k: r[k] for k in CSV_FIELDS} for r in result["rows"]], width=240)
