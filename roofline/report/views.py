"""Rich tables and CSV rows for the core reports (gpus, models, analyze, sweep)."""
from __future__ import annotations

from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.report.render import table
from roofline.units import format_bytes, format_count, format_rate, format_time_s


def _ai(x) -> str:
    return "-" if x is None else f"{x:,.1f}"


def gpu_row(g: GPUSpec) -> dict:
    row = {"name": g.name, "display_name": g.display_name, "memory_bytes": g.memory_bytes,
           "memory_bandwidth_bytes_per_s": g.memory_bandwidth_bytes_per_s}
    for p, v in g.peak_flops_per_s.items():
        row[f"peak_{p}_dense_flops_per_s"] = v
    row["ridge_point_flops_per_byte_bf16"] = g.ridge_point_flops_per_byte("bf16") if "bf16" in g.peak_flops_per_s else None
    row["ridge_point_flops_per_byte_fp8"] = g.ridge_point_flops_per_byte("fp8") if "fp8" in g.peak_flops_per_s else None
    return row


_SPEC_FIELDS = ("memory_bytes", "memory_bandwidth_bytes_per_s", "l2_cache_bytes", "sm_count", "clock_hz", "tdp_w",
                "scaleup_bandwidth_bytes_per_s", "scaleup_domain_gpus", "pcie_bandwidth_bytes_per_s",
                "gpus_per_node", "scaleout_bandwidth_bytes_per_s", "nvlink_sharp", "scaleup_topology")


def _spec_value(x) -> str:
    """A spec figure as the detail table shows it: numbers with 6 significant digits, true/false, names."""
    if isinstance(x, bool):
        return "true" if x else "false"
    return x if isinstance(x, str) else f"{x:,.6g}"


def gpu_detail(g: GPUSpec) -> dict:
    """Everything a spec file says, with ridge points and the source of each figure."""
    return {"name": g.name, "display_name": g.display_name, "vendor": g.vendor, "architecture": g.architecture,
            **{f: getattr(g, f) for f in _SPEC_FIELDS}, "peak_flops_per_s": dict(g.peak_flops_per_s),
            "flops_are": "dense",
            "ridge_point_flops_per_byte": {p: g.ridge_point_flops_per_byte(p) for p in g.peak_flops_per_s},
            "sources": dict(g.sources), "path": g.path, "aliases": list(g.aliases)}


def gpus_table(gpus: list[GPUSpec]):
    rows = [(g.name, g.display_name, format_bytes(g.memory_bytes, binary=True),
             format_rate(g.memory_bandwidth_bytes_per_s, "B/s"),
             format_rate(g.peak_flops_per_s.get("bf16", 0), "FLOP/s"),
             format_rate(g.peak_flops_per_s["fp8"], "FLOP/s") if "fp8" in g.peak_flops_per_s else "-",
             _ai(g.ridge_point_flops_per_byte("bf16")),
             _ai(g.ridge_point_flops_per_byte("fp8") if "fp8" in g.peak_flops_per_s else None))
            for g in gpus]
    return [table("GPUs (dense peaks; memory in GiB = 2**30 B, rates decimal)",
                  ["name", "GPU", "memory", "HBM bandwidth", "bf16 dense", "fp8 dense", "ridge bf16 FLOP/B",
                   "ridge fp8 FLOP/B"], rows)]


def gpu_detail_table(g: GPUSpec):
    rows = [(f, _spec_value(getattr(g, f)), g.sources.get(f, "")) for f in _SPEC_FIELDS]
    rows += [(f"peak_flops_per_s.{p} (dense)", f"{v:,.6g}", g.sources.get(f"peak_flops_per_s.{p}", ""))
             for p, v in g.peak_flops_per_s.items()]
    rows += [(f"ridge_point_flops_per_byte.{p}", f"{g.ridge_point_flops_per_byte(p):,.1f}", "peak / bandwidth")
             for p in g.peak_flops_per_s]
    return [table(f"{g.display_name} ({g.name}) from {g.path}", ["field", "value (SI units)", "source"], rows,
                  justify_right=False)]


def model_row(m: ModelConfig) -> dict:
    return {"name": m.name, "model_type": m.model_type, "parameters": m.parameters(),
            "active_parameters": m.active_parameters(), "num_layers": m.num_layers, "hidden_size": m.hidden_size,
            "num_heads": m.num_heads, "num_kv_heads": m.num_kv_heads, "max_position_embeddings": m.max_position_embeddings}


def models_table(models: list[ModelConfig]):
    rows = [(m.name, m.model_type, format_count(m.parameters()), format_count(m.active_parameters()), m.num_layers,
             m.hidden_size, f"{m.num_heads}/{m.num_kv_heads}", m.max_position_embeddings) for m in models]
    return [table("Models", ["name", "type", "parameters", "active", "layers", "hidden", "heads q/kv",
                             "max positions"], rows)]


def model_detail_table(d: dict):
    rows = [(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)) for k, v in d.items()
            if not isinstance(v, dict)]
    return [table(f"Model {d['name']}", ["field", "value"], rows, justify_right=False)]


def _op_rows(phase: dict):
    for o in phase["operators"]:
        yield (o["name"], o["count"], format_rate(o["flops"], "FLOP"), format_bytes(o["bytes"]),
               _ai(o["arithmetic_intensity_flops_per_byte"]), o["bound"], format_time_s(o["time_s"]))
    for c in phase["communication"]:
        yield (c["name"], c["count"], "-", f"{format_bytes(c['bytes'])} ({c['collective']} x{c['group']}, "
               f"{c['link']}, {c['algorithm']})", "-", c["limiter"], format_time_s(c["time_s"]))


def request_text(c: dict) -> str:
    """The request every latency figure describes: 'batch 64 x (prompt 1,024 + output 256 tokens)'."""
    return f"batch {c['batch']:,} x (prompt {c['prompt']:,} + output {c['output']:,} tokens)"


def decode_step_text(c: dict) -> str:
    """Where the decode step (TPOT, max batch, KV per sequence) is taken, and whether the request reaches it."""
    end = c["prompt"] + c["output"]
    if c["context"] == end:
        return f"context {c['context']:,} (the request's last step)"
    return (f"context {c['context']:,} (set apart from the request, which decodes at contexts "
            f"{c['prompt']:,}-{end:,})")


def latency_rows(r: dict) -> list[tuple[str, str]]:
    """TTFT, TPOT, mean TPOT, end-to-end and tokens/s, each labelled with the request or step it describes."""
    c = r["config"]
    end = c["prompt"] + c["output"]
    return [(f"TTFT (prefill of {c['batch']:,} x {c['prompt']:,}-token prompts)", format_time_s(r["ttft_s"])),
            (f"TPOT at context {c['context']:,}", format_time_s(r["tpot_s"])),
            (f"mean TPOT over the request (contexts {c['prompt']:,}-{end:,})", format_time_s(r["mean_tpot_s"])),
            ("end-to-end latency of the request", format_time_s(r["e2e_latency_s"])),
            ("output tokens/s over the request (batch)", f"{r['output_tokens_per_s']:,.1f}")]


def batch_fit_text(r: dict) -> str:
    """'yes' or 'NO: 64 > max batch 27 at context 32,768'."""
    m, c = r["memory"], r["config"]
    if m["batch_fits"]:
        return "yes"
    return f"NO: {c['batch']:,} > max batch {m['max_batch']:,} at context {c['context']:,}"


def analyze_tables(r: dict):
    c, m = r["config"], r["memory"]
    layout = f"tp {c['tp']}" + "".join(f", {k.replace('_', ' ')} {c[k]}" for k in ("pp", "ep", "dp_attention")
                                      if c[k] > 1)
    head = [("GPU", f"{r['gpu_display_name']} x {c['gpus']} ({layout})" if c["gpus"] > 1 else
             f"{r['gpu_display_name']} x tp {c['tp']}"), ("model", f"{r['model']} ({format_count(r['parameters'])} parameters)"),
            ("precisions w/a/kv", f"{c['weights']}/{c['activations']}/{c['kv']}"),
            ("request", request_text(c)), ("decode step at", decode_step_text(c)),
            ("ridge point", f"{r['ridge_point_flops_per_byte']:,.1f} FLOP/B ({c['activations']} dense peak / HBM bandwidth)"),
            *latency_rows(r), ("critical batch (decode)", str(r["critical_batch"]))]
    if c["pp"] > 1:
        head.append(("pipeline bubble (prefill)", f"{r['pipeline_bubble_fraction']:.0%} of the stages' time idle"))
    mem = [("weights", format_bytes(m["weights_bytes"], True)), ("KV cache per token", format_bytes(m["kv_cache_bytes_per_token"], True)),
           (f"KV cache per sequence of {c['context']:,} tokens", format_bytes(m["kv_cache_bytes_per_sequence"], True)),
           ("activations", format_bytes(m["activation_bytes"], True)), ("runtime reserve", format_bytes(m["runtime_reserve_bytes"], True)),
           ("KV cache capacity", f"{format_bytes(m['kv_cache_capacity_bytes'], True)} = {m['kv_cache_capacity_tokens']:,} tokens"),
           (f"max batch at context {c['context']:,}", f"{m['max_batch']:,}"),
           ("KV utilisation of batch", f"{m['kv_cache_utilization']:.1%}"),
           ("weights fit", "yes" if m["fits"] else f"no: smallest TP that fits = {m['min_tp_that_fits']}"),
           ("batch fits", batch_fit_text(r))]
    phases = [(name, format_rate(r[name]["flops"], "FLOP"), format_bytes(r[name]["bytes"]),
               _ai(r[name]["arithmetic_intensity_flops_per_byte"]), r[name]["bound"], format_time_s(r[name]["time_s"]))
              for name in ("prefill", "decode")]
    hdr = ["operator", "count", "FLOPs", "bytes", "FLOP/B", "bound", "time"]
    return [table("Deployment", ["", ""], head, justify_right=False),
            table("Memory per GPU (GiB = 2**30 B)", ["", ""], mem, justify_right=False),
            table("Phases (per GPU)", ["phase", "FLOPs", "bytes", "FLOP/B", "bound", "time"], phases),
            table(f"Prefill of {c['batch']} x {c['prompt']} tokens", hdr, list(_op_rows(r["prefill"]))),
            table(f"Decode step at context {c['context']}", hdr, list(_op_rows(r["decode"])))]


_OP_COLUMNS = ("name", "count", "flops", "bytes_read", "bytes_written", "bytes", "arithmetic_intensity_flops_per_byte",
               "bound", "time_s")
_SUMMARY_KEYS = ("ttft_s", "tpot_s", "mean_tpot_s", "e2e_latency_s", "output_tokens_per_s", "critical_batch",
                 "ridge_point_flops_per_byte", "pipeline_bubble_fraction")
_MEMORY_KEYS = ("weights_bytes", "kv_cache_bytes_per_token", "kv_cache_bytes_per_sequence", "activation_bytes",
                "runtime_reserve_bytes", "kv_cache_capacity_bytes", "kv_cache_capacity_tokens", "max_batch",
                "kv_cache_utilization", "fits", "batch_fits", "min_tp_that_fits")


def analyze_csv_rows(r: dict) -> list[dict]:
    """One row per operator and collective, a `total` row per phase, then `summary` rows (name, value)."""
    rows = []
    for phase in ("prefill", "decode"):
        rows += [{"phase": phase, **{k: o[k] for k in _OP_COLUMNS}} for o in r[phase]["operators"]]
        rows += [{"phase": phase, "name": c["name"], "count": c["count"], "bytes": c["bytes"], "bound": c["limiter"],
                  "time_s": c["time_s"]} for c in r[phase]["communication"]]
        s = r[phase]
        rows.append({"phase": phase, "name": "total", "flops": s["flops"], "bytes": s["bytes"],
                     "arithmetic_intensity_flops_per_byte": s["arithmetic_intensity_flops_per_byte"],
                     "bound": s["bound"], "time_s": s["time_s"]})
    rows += [{"phase": "summary", "name": k, "value": r[k]} for k in _SUMMARY_KEYS]
    rows += [{"phase": "memory", "name": k, "value": r["memory"][k]} for k in _MEMORY_KEYS]
    return rows


def sweep_table(rows: list[dict]):
    out = [(r["batch"], r["context"], r["tp"], r["precision"], format_time_s(r["ttft_s"]), format_time_s(r["tpot_s"]),
            r["decode_bound"], _ai(r["decode_flops"] / r["decode_bytes"]), f"{r['decode_tokens_per_s']:,.0f}",
            str(r["critical_batch"]), f"{r['max_batch']:,}", "yes" if r["batch_fits"] else "no") for r in rows]
    return [table("Sweep (decode step at context; prefill of a prompt of context tokens)",
                  ["batch", "context", "tp", "precision", "TTFT", "TPOT", "decode bound", "FLOP/B", "decode tok/s",
                   "critical batch", "max batch", "batch fits"], out)]
