"""`roofline validate` output: the validation of a profile as tables, one JSON document, or CSV rows."""
from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from roofline.measure.validate import POINT_COLUMNS
from roofline.report.render import dumps_json, rows_to_csv, table
from roofline.units import format_bytes, format_rate, format_time_s

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render_validation(result: dict[str, Any], fmt: str = "table") -> str:
    """The validation as a table (text), one JSON document, or CSV rows (one per point)."""
    fmt = getattr(fmt, "value", fmt)
    if fmt == "json":
        return dumps_json(result) + "\n"
    if fmt == "csv":
        return rows_to_csv([{c: r[c] for c in POINT_COLUMNS} for r in result["points"]])
    return _collective_tables(result) if result.get("profile_kind") == "collectives" else _tables(result)


def _collective_tables(result: dict[str, Any]) -> str:
    """A collectives profile: what was measured, the fit per collective and group, the held-out errors."""
    buf = io.StringIO()
    con = Console(file=buf, width=160, force_terminal=False, color_system=None)
    head = [("devices", f"{result['device']} ({result['kind']}, {result['backend']}, {result['world_size']} ranks "
                        f"on {', '.join(result['hosts'] or [])})"), ("profile", result["profile"])]
    con.print(table("Validation (collectives)", ["", ""], head, justify_right=False))
    rows = [(c["collective"], c["group"], format_time_s(c["latency_s"]), format_rate(c["bandwidth_bytes_per_s"], "B/s"),
             format_rate(c["peak_busbw_bytes_per_s"], "B/s"), c["points"], c["held_out"],
             _pct(c["held_out_median_abs_error"]), _pct(c["held_out_p90_abs_error"])) for c in result["curves"]]
    con.print(table("Fit t = latency + S x busbw factor / bandwidth on every other size, errors on the others",
                    ["collective", "group", "latency", "bus bandwidth", "peak busbw", "sizes", "held out",
                     "median", "p90"], rows))
    fam_rows = [(f, s["points"], s["held_out"], _pct(s["median_abs_error"]), _pct(s["p90_abs_error"]),
                 _pct(s["target"]), {True: "yes", False: "NO", None: "-"}[s["meets_target"]])
                for f, s in result["families"].items()]
    con.print(table("Error on sizes not used by the fit (|predicted - measured| / measured)",
                    ["family", "points", "held out", "median", "p90", "target", "met"], fam_rows))
    for s in result["skipped"]:
        con.print(f"skipped: {s['collective']} over {s['group']} ranks: {s['reason']}")
    return buf.getvalue()


def _tables(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    con = Console(file=buf, width=160, force_terminal=False, color_system=None)
    c = result["ceilings"]
    peaks = ", ".join(f"{k} {format_rate(v, 'FLOP/s')}" for k, v in (c["peak_flops_per_s"] or {}).items())
    head = [("device", f"{result['device']} ({result['kind']})"), ("profile", result["profile"]),
            ("complete", f"{result['complete']} (missing {result['missing']})"),
            ("memory bandwidth", format_rate(c["memory_bandwidth_bytes_per_s"] or 0, "B/s")), ("peaks", peaks),
            ("launch overhead", format_time_s(c["launch_overhead_s"] or 0)),
            ("calibration", f"{result['calibration']['calibration_points']} stream/GEMM/attention points fit, "
                            f"{result['calibration']['held_out_points']} held out, "
                            f"{result['calibration']['not_fitted_points']} never fitted (layer, cache sweep, ...); "
                            f"per-kernel overhead {format_time_s(result['calibration']['kernel_overhead_s'])}")]
    con.print(table("Validation", ["", ""], head, justify_right=False))
    for k, v in (result["ceilings_vs_datasheet"] or {}).items():
        con.print(f"  {k}: {_pct(v['fraction'])} of datasheet (target {_pct(v['target'])})")
    fam_rows = [(f, s["points"], s["held_out"], _pct(s["median_abs_error"]), _pct(s["p90_abs_error"]),
                 _pct(s["median_abs_error_ceilings"]), _pct(s["median_abs_error_datasheet"]), _pct(s["target"]),
                 {True: "yes", False: "NO", None: "-"}[s["meets_target"]]) for f, s in result["families"].items()]
    con.print(table("Error on points not used by the fit, by family (|predicted - measured| / measured)",
                    ["family", "points", "not fitted", "median", "p90", "median (bare ceilings)",
                     "median (datasheet)", "target", "met"], fam_rows))
    out_rows = [(o["id"], _pct(o["error"]), o["cause"]) for o in result["outliers"]]
    if out_rows:
        con.print(table("Outliers", ["point", "error", "likely cause"], out_rows, justify_right=False))
    for line in measurement_notes(result):
        con.print(line, highlight=False, markup=False, soft_wrap=True)
    return buf.getvalue()


def measurement_notes(result: dict[str, Any]) -> list[str]:
    """What the table's numbers rest on: contention during the run, the unstable points left out, the points
    not measured and why, the cache-resident points and those above a ceiling (older results lack some keys)."""
    lines = []
    c = result.get("contention")
    if c is None:
        lines.append("Contention: not recorded (profile written before contention detection)")
    elif c["detected"]:
        lines.append("Contention DETECTED during the run: " + "; ".join(c["reasons"]))
    else:
        figures = [f"reference {k} within {_pct(v)}" for k, v in c["reference_slowdown"].items()]
        if c.get("other_cpu_fraction") is not None:
            figures.append(f"other processes {_pct(c['other_cpu_fraction'])} of the CPU time")
        if c.get("steal_fraction") is not None:
            figures.append(f"steal {_pct(c['steal_fraction'])}")
        lines.append("Contention: none detected (" + ", ".join(figures) + ")")
    u = result.get("unstable")
    if u and u["points"]:
        lines.append(f"Unstable: {len(u['points'])} points whose rounds still disagreed after re-measurement: "
                     f"{u['excluded_from_fit']} excluded from the fit, {u['excluded_from_errors']} from the error "
                     f"statistics: " + ", ".join(u["points"]))
    elif u is not None:
        lines.append("Unstable: none (every point's rounds agree)")
    by_reason: dict[str, list[str]] = {}
    for pid, why in (result.get("skipped") or {}).items():
        by_reason.setdefault(str(why), []).append(pid)
    for why, ids in by_reason.items():
        lines.append(f"Not measured: {len(ids)} points ({why}): " + ", ".join(ids))
    if result.get("cache_resident"):
        lines.append(f"Cache-resident, not an error (bandwidth above the DRAM/HBM ceiling, working set under "
                     f"{format_bytes(result['cache_resident_below_bytes'], binary=True)}, the cache being "
                     f"{format_bytes(result['cache_bytes'], binary=True)}): " + ", ".join(result["cache_resident"]))
    if result["above_ceiling"]:
        lines.append("Above 105% of a ceiling (counting bug?): " + ", ".join(result["above_ceiling"]))
    return lines

