"""`roofline report`: one folder per deployment with a self-contained index.html (plots embedded as base64
PNG, tables, the inputs and the exact command that reproduces it), report.md, the plots as PNG and SVG, the
analysis as JSON and a sweep as CSV; given a workload, a Capacity section first (`roofline capacity` over the
report's GPUs: its verdict above the fold, the candidates, capacity.json). Everything is computed from spec
files and, optionally, a saved measured profile, so a report re-renders anywhere without the device.
"""
from __future__ import annotations

import base64
import html
import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from roofline.report import plots
from roofline.model.analysis import Scenario, analyze, decode_batching
from roofline.model.efficiency import Efficiency
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.specs.precision import PrecisionSet
from roofline.report.render import columns_to_rows, dumps_json, rows_to_csv
from roofline.report.training_section import LAYOUT_HEADERS
from roofline.model.sweep import sweep
from roofline.units import format_bytes, format_count, format_rate, format_time_s
from roofline.report.verdict import analyze_verdict, best_comparison, capacity_verdict, layout_text, number, slos_text
from roofline.report.views import batch_fit_text, decode_step_text, latency_rows, request_text

SWEEP_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SWEEP_CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768)


@dataclass
class ReportSpec:
    """What a report shows. `profile` is the parsed profile JSON (measured roofs and points are overlaid);
    `efficiency` the calibrated one from it, or None for the documented defaults."""

    gpu: GPUSpec
    model: ModelConfig
    scenario: Scenario
    command: str
    efficiency: Efficiency | None = None
    profile: dict | None = None
    profile_path: str | None = None
    compare: list[GPUSpec] = field(default_factory=list)
    slo_tpot_s: float = 0.05
    training: object | None = None  # a training_section.TrainingReport: adds the Training section and training.json
    workload: object | None = None  # a specs.workload.Workload: adds the Capacity section (first) and capacity.json
    workload_path: str | None = None  # the workload file it was read from (None: built from the rate and SLOs)
    prices: dict = field(default_factory=dict)  # {GPU name: USD per GPU-hour} for the Capacity section
    engine: object | None = None  # the engine and knobs (memory.EngineKnobs) capacity resolves on each candidate
    notes: tuple[str, ...] = ()  # what the front end decided for the user (e.g. GPUs left out of the comparison)


def default_name(model: ModelConfig, gpu: GPUSpec) -> str:
    """Folder name `<model>-<gpu>` with anything but letters, digits, '.', '_' and '-' replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model.name}-{gpu.name}")


def _gpus(spec: ReportSpec) -> list[GPUSpec]:
    return [spec.gpu] + [c for c in spec.compare if c.name != spec.gpu.name]


def figures(spec: ReportSpec, result: dict, rows: list[dict] | None = None) -> dict[str, tuple[str, object]]:
    """name -> (caption, Figure) for every plot of the report (`rows`: the comparison, if already computed)."""
    sc, g, m, eff = spec.scenario, spec.gpu, spec.model, spec.efficiency
    prec = f"{sc.weights}/{sc.activations}/{sc.kv}"
    series = [(f"{g.name}, weights/activations/KV {prec}", g, prec)]
    if sc.activations in ("bf16", "fp16") and "fp8" in g.peak_flops_per_s:
        series.append((f"{g.name}, weights/activations/KV fp8/fp8/fp8", g, "fp8"))
    series += [(f"{c.name}, weights/activations/KV {prec} (datasheet)", c, prec)
               for c in spec.compare if c.name != g.name]
    out = {
        "roofline": ("Roofline: every operator of prefill and of one decode step at its arithmetic intensity and "
                     "achieved FLOP/s" + ("; measured roofs (dashed) and kernels (x) from the profile"
                                          if spec.profile else ""),
                     plots.roofline_chart(g, m, sc, eff, spec.profile, result=result)),
        "regime": ("Regime map: where decode and prefill are memory- or compute-bound over batch x context, "
                   "with the largest batch whose KV cache fits and your batch and context (star)",
                   plots.regime_map(g, m, sc, eff)),
        "latency": (f"Latency vs throughput: decode TPOT against output tokens/s per GPU as the batch grows; the "
                    f"{format_time_s(spec.slo_tpot_s)} TPOT SLO dashed (the GPU comparison is taken at it)",
                    plots.latency_throughput(series, m, sc, eff, spec.slo_tpot_s)),
        "memory": ("Memory per GPU across batch sizes (GiB, as the tables)",
                   plots.memory_breakdown(g, m, sc, "batch", None, eff)),
    }
    gpus = _gpus(spec)
    if len(gpus) > 1:
        out["compare"] = (f"GPU comparison, decode throughput within the {format_time_s(spec.slo_tpot_s)} TPOT SLO. "
                          + compare_note(spec), plots.gpu_comparison(gpus, m, sc, None, rows=rows or compare_table(spec)))
    return out


def compare_note(spec: ReportSpec) -> str:
    """One sentence on where the comparison's numbers come from (a profile measures only its own device)."""
    others = ", ".join(c.name for c in spec.compare if c.name != spec.gpu.name)
    if spec.profile is None:
        return "Every GPU is modelled from its datasheet peaks with the default efficiencies."
    return (f"Only {spec.gpu.name} uses the profile's measured ceilings and fitted efficiencies; the other GPUs "
            f"({others}) use datasheet peaks with the default efficiencies (nothing was measured on them), so "
            "their bars are datasheet estimates, not measurements.")


def compare_table(spec: ReportSpec) -> list[dict]:
    """The comparison rows, decode throughput taken at the report's TPOT SLO (the one the latency plot draws)."""
    rows = plots.compare_rows([spec.gpu], spec.model, spec.scenario, spec.efficiency, spec.slo_tpot_s)
    others = [c for c in spec.compare if c.name != spec.gpu.name]
    return rows + (plots.compare_rows(others, spec.model, spec.scenario, None, spec.slo_tpot_s) if others else [])


def headline(spec: ReportSpec, r: dict, rows: list[dict] | None = None) -> str:
    """The report's verdict: the analyze verdict with batching taken to the TPOT SLO, and the best other GPU
    at that SLO when the report compares GPUs."""
    b = decode_batching(spec.gpu, spec.model, spec.scenario, spec.efficiency, spec.slo_tpot_s)
    return analyze_verdict(r, b, best_comparison(rows, spec.gpu.name) if rows else None)


#: candidate rows the report's Capacity table shows (every row is in capacity.json)
CAPACITY_SHOWN = 12


def capacity_precisions(spec: ReportSpec) -> list[str]:
    """The precision sets capacity sizes: the report's, and fp8 beside a 16-bit one (as the latency plot)."""
    sc = spec.scenario
    own = PrecisionSet(sc.weights, sc.activations, sc.kv).label
    return [own] + (["fp8"] if sc.activations in ("bf16", "fp16") and own != "fp8" else [])


def capacity_command(spec: ReportSpec) -> str:
    """The `roofline capacity` command that gives the same candidates and verdict as the report's section."""
    w, parts = spec.workload, ["roofline", "capacity", "--model", spec.model.name]
    for g in _gpus(spec):
        parts += ["--gpu", g.name]
    parts += ["--precision", ",".join(capacity_precisions(spec))]
    if spec.workload_path:
        parts += ["--workload", spec.workload_path]
    else:  # built from the report's request: fixed lengths
        parts += ["--prompt", str(spec.scenario.prompt), "--output", str(spec.scenario.output)]
    parts += ["--rate", format(w.rate_per_s, ".15g")]
    for k in ("ttft_p99_s", "tpot_p99_s"):
        if getattr(w.slo, k) is not None:
            parts += [f"--{k.replace('_', '-')}", format(getattr(w.slo, k), ".15g")]
    parts += [x for g, usd in spec.prices.items() for x in ("--price", f"{g}={format(usd, '.15g')}")]
    if spec.engine is not None:  # the engine and the knobs set, as the report's own command spells them
        parts += engine_args(spec.engine)
    return shlex.join(parts)


def engine_args(knobs) -> list[str]:
    """`--engine` and every knob set in `knobs` (model.memory.EngineKnobs), as a command line spells them."""
    from roofline.specs.engines import list_engines
    args = ["--engine", knobs.spec.name if knobs.spec.name in list_engines() else str(knobs.spec.path)]
    for knob in ("max_seqs", "max_batched_tokens", "kv_cache_fraction", "page_tokens"):
        if getattr(knobs, knob) is not None:
            args += [f"--{knob.replace('_', '-')}", str(getattr(knobs, knob))]
    for knob in ("chunked_prefill", "cuda_graphs"):
        if getattr(knobs, knob) is not None:
            args.append(f"--{'' if getattr(knobs, knob) else 'no-'}{knob.replace('_', '-')}")
    return args


def capacity_result(spec: ReportSpec) -> dict | None:
    """`roofline capacity` for the report's model over its GPUs (the --gpu with its efficiency, the compared
    ones with the defaults) x the default TP degrees x `capacity_precisions`, at `spec.workload`: the capacity
    document ('verdict', 'candidates', 'best', 'workload') plus the 'command' that reproduces it; None
    without a workload. A GPU that does not compute in a precision gets an infeasible row saying so, as in
    `roofline capacity`."""
    if spec.workload is None:
        return None
    from roofline.plan.capacity import candidates, capacity_table

    w, m, prec = spec.workload, spec.model, capacity_precisions(spec)
    cands = [c for i, g in enumerate(_gpus(spec))
             for c in candidates([g], m, None, prec, spec.efficiency if i == 0 else None)]
    rows = capacity_table(cands, m, w, spec.prices, spec.engine)
    feasible = [r for r in rows if r["feasible"]]
    res = {"model": m.name, "workload": w.to_dict(), "candidates": rows, "best": feasible[0] if feasible else None}
    return {"verdict": capacity_verdict(res), **res, "command": capacity_command(spec)}


CAPACITY_HEADERS = ["GPU", "layout", "precision", "req/s per replica", "replicas", "GPUs", "$/h", "$/1M output",
                    "headroom", "limited by", "batch", "TPOT p99", "TTFT p99", "note"]


def capacity_rows(res: dict) -> list[list[str]]:
    """The first CAPACITY_SHOWN candidates (feasible, cheapest first; then the infeasible) for people."""
    def t(x):
        return "-" if x is None else format_time_s(x)

    def usd(x, spec=",.2f"):
        return "-" if x is None else f"${x:{spec}}"
    return [[r["gpu"], layout_text(r), r["precision"], number(r.get("max_request_rate_per_replica") or 0),
             f"{r['replicas']:,}" if r.get("replicas") else "-", f"{r['gpus']:,}" if r.get("gpus") else "-",
             usd(r.get("cost_per_hour")), usd(r.get("cost_per_million_output_tokens"), ".3g"),
             "-" if r.get("headroom") is None else f"{r['headroom']:.0%}",
             _limit_text(r.get("limited_by") or "-"), "-" if not r.get("batch") else f"{r['batch']:,.0f}",
             t(r.get("tpot_p99_s")), t(r.get("ttft_p99_s")), r.get("reason", "")]
            for r in res["candidates"][:CAPACITY_SHOWN]]


def _limit_text(limit: str) -> str:
    """'tpot_p99_slo' -> 'TPOT p99 SLO'; other limits in words ('kv_capacity' -> 'kv capacity')."""
    parts = limit.split("_")
    return f"{parts[0].upper()} {parts[1]} SLO" if len(parts) == 3 and parts[2] == "slo" else limit.replace("_", " ")


def capacity_note(res: dict) -> str:
    w, n = res["workload"], len(res["candidates"])
    shown = f"the first {CAPACITY_SHOWN} of {n} candidates" if n > CAPACITY_SHOWN else f"all {n} candidates"
    return (f"Each GPU x TP degree x precision sized for {number(w['peak_rate_per_s'])} req/s peak within "
            f"{slos_text(w['slo']) or 'no SLO'} by roofline capacity's steady-state model of continuous batching "
            f"(feasible ones first, cheapest first; {shown}; every one in capacity.json). Reproduce with:")


def summary_rows(r: dict) -> list[tuple[str, str]]:
    mem, c = r["memory"], r["config"]
    return [
        ("request", request_text(c)), ("decode step at", decode_step_text(c)),
        *latency_rows(r),
        ("prefill / decode bound", f"{r['prefill']['bound']} / {r['decode']['bound']}"),
        ("decode arithmetic intensity", f"{r['decode']['arithmetic_intensity_flops_per_byte']:,.1f} FLOP/B "
         f"(ridge {r['ridge_point_flops_per_byte']:,.0f})"),
        ("critical batch (decode turns compute-bound)", str(r["critical_batch"])),
        ("weights per GPU", format_bytes(mem["weights_bytes"], binary=True)),
        ("KV cache per token", format_bytes(mem["kv_cache_bytes_per_token"], binary=True)),
        ("KV-cache capacity", f"{format_bytes(mem['kv_cache_capacity_bytes'], binary=True)} = "
         f"{mem['kv_cache_capacity_tokens']:,} tokens"),
        (f"max batch at context {c['context']:,}", f"{mem['max_batch']:,}"),
        ("weights fit", "yes" if mem["fits"] else f"NO: smallest TP that fits = {mem['min_tp_that_fits']}"),
        ("batch fits", batch_fit_text(r)),
    ]


def operator_rows(r: dict, phase: str) -> list[list[str]]:
    return [[o["name"], str(o["count"]), format_count(o["flops"]), format_bytes(o["bytes"]),
             "-" if o["arithmetic_intensity_flops_per_byte"] is None else f"{o['arithmetic_intensity_flops_per_byte']:,.1f}",
             o["bound"], format_time_s(o["time_s"]), f"{100 * o['time_s'] / r[phase]['time_s']:.1f}%"]
            for o in r[phase]["operators"]]


OP_HEADERS = ["operator", "count", "FLOPs", "bytes", "FLOP/B", "bound", "time", "share"]


def communication_rows(r: dict) -> list[list[str]]:
    """Every collective of both phases: what, how big, over whom, on which link, by which algorithm, how long."""
    return [[phase, c["name"], c["collective"], str(c["messages"]), format_bytes(c["message_bytes"]),
             str(c["group"]), c["link"], c["algorithm"], format_time_s(c["time_s"]),
             f"{100 * c['time_s'] / r[phase]['time_s']:.1f}%"]
            for phase in ("prefill", "decode") for c in r[phase]["communication"]]


COMM_HEADERS = ["phase", "collective", "kind", "messages", "message", "group", "link", "algorithm", "time", "share"]
COMM_NOTE = ("Collectives of the layout, timed by the communication model (latency + nccl-tests bus bytes / achieved "
             "link bandwidth, the algorithm picked by message size); no overlap with compute is assumed.")


def input_rows(spec: ReportSpec, r: dict) -> dict[str, list[tuple[str, str]]]:
    g, m, c = spec.gpu, spec.model, r["config"]
    gpu = [("GPU", f"{g.display_name} ({g.name})"), ("spec file", str(g.path)),
           ("memory", format_bytes(g.memory_bytes, binary=True)),
           ("HBM bandwidth", format_rate(g.memory_bandwidth_bytes_per_s, "B/s"))]
    gpu += [(f"{p} dense peak", format_rate(v, "FLOP/s")) for p, v in g.peak_flops_per_s.items()]
    model = [(k, str(v)) for k, v in m.to_dict().items() if not isinstance(v, (dict, list))]
    model.append(("parameters", format_count(r["parameters"])))
    scen = [(k, str(v)) for k, v in c.items()]
    eff = [(k, str(v)) for k, v in r["efficiency"].items()]
    out = {"GPU": gpu, "Model": model, "Scenario": scen, "Efficiency": eff}
    if spec.profile is not None:
        ceil = plots.measured_ceilings(spec.profile)
        prof = [("profile", str(spec.profile_path)),
                ("measured device", str((spec.profile.get("device") or {}).get("name", "?"))),
                ("measured HBM bandwidth", format_rate(ceil["memory_bandwidth_bytes_per_s"] or 0, "B/s"))]
        prof += [(f"measured {p} peak", format_rate(v, "FLOP/s")) for p, v in ceil["peak_flops_per_s"].items()]
        prof.append(("measured kernels plotted", str(len(plots.measured_points(spec.profile)))))
        out["Measured profile"] = prof
    return out


def sweep_rows(spec: ReportSpec) -> list[dict]:
    sc = spec.scenario
    cols = sweep(spec.gpu, spec.model, SWEEP_BATCHES, SWEEP_CONTEXTS, [sc.tp], [f"{sc.weights}/{sc.activations}/{sc.kv}"],
                 spec.efficiency, sc.memory)
    return columns_to_rows(cols)


# ------------------------------------------------------------------------------------------------ rendering

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1500px;margin:24px auto;
padding:0 24px;color:#222}h1{margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
pre{background:#f4f4f4;padding:10px;white-space:pre-wrap;word-break:break-all;font-size:14px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 9px;font-size:14px}th{background:#eef3fa}td.n{text-align:right}
figure{margin:18px 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:15px;color:#444}
.grid{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}.muted{color:#666}
.verdict{font-size:21px;line-height:1.4;background:#eef6ee;border-left:6px solid #2e7d32;padding:12px 16px;margin:12px 0}"""


def _html_table(headers: list[str] | None, rows) -> str:
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i else ''}>{e(str(c))}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _md_table(headers: list[str], rows) -> str:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    with plots.plt.rc_context(plots.SLIDE_STYLE):
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _compare_display(rows: list[dict]) -> list[list[str]]:
    def t(x):
        return "does not fit" if x is None else format_time_s(x)

    def n(x):
        return "-" if x is None else f"{x:,.0f}"
    return [[r["gpu"], t(r["ttft_s"]), t(r["tpot_s"]), f"{r['max_batch']:,}", f"{r['batch_at_slo']:,}",
             n(r["decode_tokens_per_s_per_gpu"]), n(r["peak_decode_tokens_per_s_per_gpu"]), r["decode_bound"]]
            for r in rows]


def compare_headers(spec: ReportSpec) -> list[str]:
    slo = format_time_s(spec.slo_tpot_s)
    return ["GPU", "TTFT", "TPOT", "max batch", f"batch within {slo} TPOT", f"decode tokens/s/GPU within {slo} TPOT",
            "decode tokens/s/GPU at max batch", "decode bound"]


def write_report(out_dir: str | Path, spec: ReportSpec) -> Path:
    """Write the report folder; returns the path of index.html. The folder is created if missing, and the
    report's own files in it are regenerated (replaced) through `outfile`; other files are left alone."""
    from roofline.outfile import make_folder, write_bytes, write_text

    out = make_folder(out_dir)
    r = analyze(spec.gpu, spec.model, spec.scenario, spec.efficiency)
    rows = compare_table(spec) if len(_gpus(spec)) > 1 else None
    figs = figures(spec, r, rows)
    pngs = {}
    for name, (_, fig) in figs.items():
        pngs[name] = _png(fig)
        write_bytes(out / f"{name}.png", pngs[name], True, "report file")
        plots.save(fig, out / f"{name}.svg")
    write_text(out / "analysis.json", dumps_json(r) + "\n", True, "report file")
    write_text(out / "sweep.csv", rows_to_csv(sweep_rows(spec)), True, "report file")
    if spec.training is not None:
        write_text(out / "training.json", dumps_json(spec.training.to_dict()) + "\n", True, "report file")
    cap = capacity_result(spec)
    if cap is not None:
        write_text(out / "capacity.json", dumps_json(cap) + "\n", True, "report file")
    comp = _compare_display(rows or [])
    verdict = headline(spec, r, rows)
    title = f"{spec.model.name} on {spec.gpu.display_name}"
    write_text(out / "index.html", _html(spec, r, figs, pngs, comp, title, verdict, cap), True, "report file")
    write_text(out / "report.md", _markdown(spec, r, figs, comp, title, verdict, cap), True, "report file")
    return out / "index.html"


def _html(spec, r, figs, pngs, comp, title, verdict, cap=None) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style>"
             f"</head><body><h1>{e(title)}</h1>"]
    if cap is not None:  # the capacity answer first: how many GPUs, which, what it costs, what binds
        parts.append(f"<p id=capacity-verdict class=verdict>{e(cap['verdict'])}</p>")
    parts.append(f"<p id=verdict class=verdict>{e(verdict)}</p>")
    for w in r["warnings"]:
        parts.append(f"<p><b>Warning:</b> {e(w)}</p>")
    for n in spec.notes:
        parts.append(f"<p class=note><b>Note:</b> {e(n)}</p>")
    parts.append("<p class=muted>roofline (ops:bytes) model of LLM inference. Reproduce with:</p>"
                 f"<pre>{e(spec.command)}</pre>")
    if cap is not None:
        parts.append(f"<h2 id=capacity>Capacity</h2><p>{e(capacity_note(cap))}</p><pre>{e(cap['command'])}</pre>"
                     + _html_table(CAPACITY_HEADERS, capacity_rows(cap)))
    parts.append("<h2>Summary</h2>" + _html_table(["quantity", "value"], summary_rows(r)))
    parts.append("<h2>Plots</h2>")
    for name, (caption, _) in figs.items():
        data = base64.b64encode(pngs[name]).decode("ascii")
        parts.append(f"<figure id='{name}'><img alt='{e(name)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    if comp:
        parts.append(f"<h2>GPU comparison</h2><p>{e(compare_note(spec))}</p>" + _html_table(compare_headers(spec), comp))
    if communication_rows(r):
        parts.append(f"<h2>Communication</h2><p>{e(COMM_NOTE)}</p>" + _html_table(COMM_HEADERS, communication_rows(r)))
    for phase in ("decode", "prefill"):
        parts.append(f"<h2>{phase.capitalize()} operators</h2>" + _html_table(OP_HEADERS, operator_rows(r, phase)))
    if (t := spec.training) is not None:
        parts.append(f"<h2 id=training>Training</h2><p>{e(t.note)}</p><pre>{e(t.command)}</pre>"
                     + _html_table(["quantity", "value"], t.rows) + _html_table(LAYOUT_HEADERS, t.layout_rows))
    parts.append("<h2>Inputs</h2><div class=grid>")
    for section, rows in input_rows(spec, r).items():
        parts.append(f"<div><h3>{e(section)}</h3>{_html_table(None, rows)}</div>")
    parts.append("</div><p class=muted>Files beside this page: report.md, the plots as PNG and SVG, "
                 "analysis.json (the full analysis), sweep.csv (batch x context)"
                 + (", capacity.json (every capacity candidate)" if cap is not None else "") + ".</p></body></html>")
    return "\n".join(parts)


def _markdown(spec, r, figs, comp, title, verdict, cap=None) -> str:
    md = [f"# {title}", ""] + ([f"**{cap['verdict']}**", ""] if cap is not None else []) + [f"**{verdict}**", ""]
    md += [f"> Warning: {w}" for w in r["warnings"]] + [f"> Note: {n}" for n in spec.notes]
    md += ["", "Reproduce with:", "", "```", spec.command, "```", ""]
    if cap is not None:
        md += ["## Capacity", "", capacity_note(cap), "", "```", cap["command"], "```", "",
               _md_table(CAPACITY_HEADERS, capacity_rows(cap)), ""]
    md += ["## Summary", "", _md_table(["quantity", "value"], summary_rows(r)), "", "## Plots", ""]
    for name, (caption, _) in figs.items():
        md += [f"![{name}]({name}.png)", "", f"*{caption}*", ""]
    if comp:
        md += ["## GPU comparison", "", compare_note(spec), "", _md_table(compare_headers(spec), comp), ""]
    if communication_rows(r):
        md += ["## Communication", "", COMM_NOTE, "", _md_table(COMM_HEADERS, communication_rows(r)), ""]
    for phase in ("decode", "prefill"):
        md += [f"## {phase.capitalize()} operators", "", _md_table(OP_HEADERS, operator_rows(r, phase)), ""]
    if (t := spec.training) is not None:
        md += ["## Training", "", t.note, "", "```", t.command, "```", "", _md_table(["quantity", "value"], t.rows),
               "", _md_table(LAYOUT_HEADERS, t.layout_rows), ""]
    md += ["## Inputs", ""]
    for section, rows in input_rows(spec, r).items():
        md += [f"### {section}", "", _md_table(["field", "value"], rows), ""]
    return "\n".join(md) + "\n"
