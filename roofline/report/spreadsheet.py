"""Capacity-sizing workbook (.xlsx) whose figures are LIVE Excel formulas of an `Inputs` sheet.

Sheets: Inputs (GPU, efficiency, model dimensions, precisions, deployment, traffic, SLOs, $/GPU-hour, each a
defined name `in_<key>`), Memory (weights, activations, KV bytes/token, KV capacity, max batch), Prefill /
Decode / Decode mean (one row per operator of `roofline.ops`, FLOPs and bytes as formulas, time =
MAX(compute, memory) + kernels x overhead), Sizing (TTFT, TPOT, throughput per GPU, GPUs needed, $/1M tokens)
and Sweep (values, not formulas). The operator formulas mirror `roofline/ops.py`, `engine.py`, `memory.py`
and `phases.py`; the tests recalculate the workbook and compare with `analyze` (1%).

The architecture (which operators, gated MLP, biases, MLA/MoE) is fixed when the workbook is written;
every dimension, precision, batch, context, efficiency and price is an input cell. Only the formula subset
MAX, MIN, IF, INT, ROUNDUP and arithmetic is used, so Excel, LibreOffice and the `formulas` package agree.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName

from roofline.model.analysis import Scenario
from roofline.model.efficiency import Efficiency
from roofline.model.engine import attention_peak, compute_peak, make_setup
from roofline.errors import RooflineError
from roofline.outfile import check_target, write_bytes
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.model.comm import collective_time
from roofline.model.ops import operators_for
from roofline.model.phases import make_pass
from roofline.specs.precision import EMBEDDING_MIN_BYTES, bytes_per_element
from roofline.report.formulas import OPERATOR_FORMULAS, PassRefs

BOLD = Font(bold=True)
HEAD = PatternFill("solid", fgColor="DDEBF7")
INPUT = PatternFill("solid", fgColor="FFF2CC")
#: the engine's rules as formulas of the Inputs sheet: ModelConfig.kv_heads_per_gpu, embedding_bytes_per_element
KV_HEADS_PER_GPU = "MAX(in_kvh/in_tp,1)"
EMBEDDING_BYTES = f"MAX(in_w,{EMBEDDING_MIN_BYTES:g})"


@dataclass(frozen=True)
class Traffic:
    """Demand, service-level objectives and price for the Sizing sheet (illustrative defaults: set your own)."""

    requests_per_s: float = 10.0
    slo_ttft_s: float = 0.5
    slo_tpot_s: float = 0.05
    gpu_hour_usd: float = 2.5

    def __post_init__(self):
        for name, v in vars(self).items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise RooflineError(f"{name} must be a finite number > 0, got {v}", exit_code=2, param=name,
                                    hint="the request rate (per s), the SLOs (in seconds) and the GPU-hour price "
                                    "are all > 0")


def _inputs(gpu: GPUSpec, model: ModelConfig, sc: Scenario, eff: Efficiency, traffic: Traffic) -> list:
    """(key, label, value, unit) rows and ('#', section title) headers of the Inputs sheet."""
    m, ms = model, sc.memory
    win = m.sliding_window or 0
    br = m.parameter_breakdown()
    return [
        ("#", "GPU (datasheet, dense peaks)"),
        ("gpu", "GPU", gpu.display_name, ""),
        ("mem", "memory per GPU", gpu.memory_bytes, "bytes"),
        ("bw", "HBM bandwidth", gpu.memory_bandwidth_bytes_per_s, "bytes/s"),
        ("peak", f"tensor peak at the compute precision ({sc.activations})",
         compute_peak(gpu, sc.activations, sc.weights), "FLOP/s"),
        ("attn_peak", "attention peak (16-bit when the activations are 8-bit)", attention_peak(gpu, sc.activations),
         "FLOP/s"),
        ("fp32", "fp32 (vector) peak", gpu.peak_flops("fp32"), "FLOP/s"),
        ("#", f"Efficiency ({eff.source})"),
        ("eff_c", "tensor compute efficiency (16-bit and wider; attention)", float(eff.compute), "fraction"),
        ("eff_c8", "tensor compute efficiency, 8-bit activations", float(eff.compute_8bit), "fraction"),
        ("eff_v", "vector compute efficiency", float(eff.vector), "fraction"),
        ("eff_m", "memory bandwidth efficiency", float(eff.memory), "fraction"),
        ("overhead", "per-kernel launch overhead", float(eff.kernel_overhead_s), "s"),
        ("#", f"Model {m.name} (architecture fixed; dimensions editable)"),
        ("layers", "layers", m.num_layers, ""), ("h", "hidden size", m.hidden_size, ""),
        ("heads", "attention heads", m.num_heads, ""), ("kvh", "KV heads", m.num_kv_heads, ""),
        ("d", "q/k head dim", m.head_dim, ""), ("vd", "v head dim", m.v_head_dim, ""),
        ("rot", "rotary dims per head", m.rotary_dim, ""),
        ("inter", "MLP intermediate size", m.intermediate_size, ""), ("vocab", "vocabulary", m.vocab_size, ""),
        ("window", "sliding window (0 = none)", win, "tokens"),
        ("win_layers", "layers using the window", m.sliding_window_layers if win else 0, ""),
        ("experts", "routed experts (0 = dense)", m.num_experts, ""),
        ("topk", "experts per token", m.num_experts_per_tok, ""),
        ("moe_inter", "expert intermediate size", m.moe_intermediate_size, ""),
        ("shared", "shared experts", m.num_shared_experts, ""),
        ("moe_layers", "MoE layers", m.num_moe_layers, ""), ("dense_layers", "dense-MLP layers", m.num_dense_layers, ""),
        ("q_lora", "MLA q_lora_rank", m.q_lora_rank or 0, ""), ("kv_lora", "MLA kv_lora_rank", m.kv_lora_rank or 0, ""),
        ("rope", "MLA rope head dim", m.qk_rope_head_dim or 0, ""), ("nope", "MLA nope head dim", m.qk_nope_head_dim or 0, ""),
        ("params", "parameters (total)", m.parameters(), ""),
        ("emb_params", "embedding + LM-head parameters (kept >= 16 bit)",
         br.get("embedding", 0) + br.get("lm_head", 0), ""),
        ("#", f"Precisions (weights/activations/KV = {sc.weights}/{sc.activations}/{sc.kv})"),
        ("w", "weight bytes per element", bytes_per_element(sc.weights), "bytes"),
        ("a", "activation bytes per element", bytes_per_element(sc.activations), "bytes"),
        ("kv", "KV-cache bytes per element", bytes_per_element(sc.kv), "bytes"),
        ("#", "Deployment"),
        ("tp", "tensor-parallel degree (GPUs per replica)", sc.tp, ""),
        ("batch", "batch (concurrent sequences per replica)", sc.batch, ""),
        ("prompt", "prompt length", sc.prompt, "tokens"), ("output", "output length", sc.output, "tokens"),
        ("context", "decode position for TPOT (prompt + output)", sc.decode_context, "tokens"),
        ("util", "memory utilization (vLLM gpu_memory_utilization)", ms.memory_utilization, "fraction"),
        ("reserve", "runtime reserve per GPU", ms.runtime_reserve_bytes, "bytes"),
        ("mbt", "max batched tokens (activation workspace)", ms.max_batched_tokens, "tokens"),
        ("maxseqs", "max sequences per step (the engine's cap; logits buffer)", ms.max_seqs, ""),
        ("#", f"Serving engine ({ms.engine}; engines/{ms.engine}.json): KV-cache rule and fixed costs of a pass"),
        ("kvrule", "KV-cache rule (total_fraction, free_fraction or static_fraction)", ms.kv_cache_rule, ""),
        ("graphmax", "largest pass replayed from a CUDA graph (0: graphs off)",
         ms.cuda_graph_max_batch if ms.cuda_graphs else 0, "tokens"),
        ("prefill_graph", "prefill replays graphs up to graphmax (1: graph or piecewise, 0: eager)",
         int(ms.prefill_launch in ("graph", "piecewise")), ""),
        ("attn_eager", "prefill attention always eager (1: piecewise graphs)", int(ms.prefill_launch == "piecewise"),
         ""),
        ("eager", "host cost per kernel launched outside a graph", ms.eager_launch_s, "s"),
        ("step", "host overhead per step (scheduling, input preparation)", ms.step_overhead_s, "s"),
        ("#", "Traffic, SLOs, price"),
        ("rps", "requests per second", traffic.requests_per_s, "1/s"),
        ("slo_ttft", "TTFT SLO", traffic.slo_ttft_s, "s"), ("slo_tpot", "TPOT SLO", traffic.slo_tpot_s, "s"),
        ("usd", "price per GPU-hour", traffic.gpu_hour_usd, "USD"),
        *_comm_inputs(gpu, model, sc, eff),
    ]


#: the sheets' passes: (key prefix, new tokens, cached tokens) of the scenario
def _passes(sc: Scenario) -> tuple:
    return (("prefill", sc.prompt, 0.0), ("decode", 1.0, sc.decode_context),
            ("decode_mean", 1.0, sc.prompt + (sc.output - 2) / 2))


def _comm_inputs(gpu: GPUSpec, model: ModelConfig, sc: Scenario, eff: Efficiency) -> list:
    """Per pass and collective: the communication model's time (roofline.model.comm: algorithm picked by the
    message size, link by the group) as latency + bytes x seconds-per-byte, fitted at the scenario's message
    size S and 2S. Live for sizes near the scenario's; a change of batch or TP that switches the algorithm
    or the link needs a new workbook."""
    s = make_setup(gpu, model, sc.tp, sc.weights, sc.activations, sc.kv, eff)
    rows = [("#", "Collectives (communication model at this scenario: latency + bytes x s/byte)")]
    for prefix, new, cached in _passes(sc):
        p = make_pass(s, sc.batch, new, cached)
        for op, _ in operators_for(model):
            if op.unit != "link":
                continue
            size = float(np.asarray(op.formula(p).comm_bytes))
            lat = spb = 0.0
            if size > 0:
                t1, t2 = (collective_time(gpu, op.collective, k * size, op.group(p), op.span(p),
                                          custom_allreduce=s.custom_allreduce) for k in (1.0, 2.0))
                spb = float(np.asarray(t2.time_s) - np.asarray(t1.time_s)) / size
                lat = float(np.asarray(t1.time_s)) - spb * size
                how = f"{np.asarray(t1.algorithm)} on {np.asarray(t1.link)}"
            else:
                how = "none at this layout"
            rows += [(f"cl_{prefix}_{op.name}", f"{prefix} {op.name}: latency ({how})", lat, "s"),
                     (f"cb_{prefix}_{op.name}", f"{prefix} {op.name}: seconds per byte", spb, "s/byte")]
    return rows


def _write_inputs(wb: Workbook, rows: list) -> None:
    ws = wb.active
    ws.title = "Inputs"
    ws.append(["input", "value", "unit", "defined name"])
    for c in ws[1]:
        c.font, c.fill = BOLD, HEAD
    for row in rows:
        if row[0] == "#":
            ws.append([row[1]])
            ws.cell(ws.max_row, 1).font = BOLD
            continue
        key, label, value, unit = row
        if not isinstance(value, (str, int)):
            value = float(np.asarray(value))
        ws.append([label, value, unit, f"in_{key}"])
        r = ws.max_row
        ws.cell(r, 2).fill = INPUT
        if isinstance(value, float) and abs(value) >= 1e5:
            ws.cell(r, 2).number_format = "0.000E+00"
        wb.defined_names[f"in_{key}"] = DefinedName(f"in_{key}", attr_text=f"Inputs!$B${r}")
    _widths(ws, (58, 22, 10, 16))


def _widths(ws, widths) -> None:
    for i, w in enumerate(widths):
        ws.column_dimensions[chr(65 + i)].width = w


def _named_block(ws, title: str, rows: list[tuple[str, str, str, str]], cells: dict, prefix: str,
                 start: int = 1) -> int:
    """Write (key, label, formula, unit) rows under a title; record each value cell as cells[prefix.key]."""
    ws.cell(start, 1, title).font = BOLD
    r = start + 1
    for key, label, formula, unit in rows:
        ws.cell(r, 1, label)
        ws.cell(r, 2, formula)
        ws.cell(r, 3, unit)
        cells[f"{prefix}.{key}"] = f"'{ws.title}'!B{r}"
        r += 1
    return r


def _write_memory(wb: Workbook, model: ModelConfig, cells: dict) -> None:
    ws = wb.create_sheet("Memory")
    kvh = KV_HEADS_PER_GPU
    kv_layer = "(in_kv_lora+in_rope)*in_kv" if model.is_mla else f"{kvh}*(in_d+in_vd)*in_kv"
    per_seq = "((in_layers-in_win_layers)*{c}+in_win_layers*MIN({c},in_window))*B4"
    rows = [
        ("weights_bytes", "weights per GPU", f"=((in_params-in_emb_params)*in_w+in_emb_params*{EMBEDDING_BYTES})/in_tp",
         "bytes"),
        ("activation_bytes", "activation workspace per GPU",
         f"=in_mbt*(4*in_h+in_heads/in_tp*in_d+{kvh}*(in_d+in_vd)+3*MAX(in_inter,in_moe_inter*MAX(in_topk,1))/in_tp)"
         "*in_a+in_maxseqs*in_vocab/in_tp*4", "bytes"),
        ("kv_bytes_per_token_layer", "KV bytes per token per layer", "=" + kv_layer, "bytes"),
        ("kv_cache_bytes_per_token", "KV bytes per token (all layers)", "=in_layers*B4", "bytes"),
        ("kv_cache_bytes_per_sequence", "KV bytes per sequence at the decode context",
         "=" + per_seq.format(c="in_context"), "bytes"),
        ("memory_budget_bytes", "memory budget (the engine's rule)",
         '=IF(in_kvrule="free_fraction",in_mem-(1-in_util)*MAX(in_mem-B2-B3-in_reserve,0),in_util*in_mem)', "bytes"),
        ("kv_cache_capacity_bytes", "KV-cache capacity per GPU (the engine's rule)",
         '=MAX(IF(in_kvrule="free_fraction",in_util*(in_mem-B2-B3-in_reserve),IF(in_kvrule="static_fraction",'
         'in_util*in_mem-B2-in_reserve,B7-B2-B3-in_reserve)),0)', "bytes"),
        ("kv_cache_capacity_tokens", "KV-cache capacity", "=INT(B8/B5)", "tokens"),
        ("max_batch", "max batch at the decode context (KV-limited, at most max sequences)",
         "=MIN(INT(B8/(" + per_seq.format(c="MAX(in_context,1)") + ")),in_maxseqs)", "sequences"),
        ("kv_cache_utilization", "KV-cache utilization of the batch", '=IF(B8>0,in_batch*B6/B8,"no KV cache")',
         "fraction"),
        ("batch_fits", "batch fits?", f'=IF(B10<1,"{NO_ROOM}",IF(in_batch<=B10,"yes","{NO_BATCH}"))', ""),
    ]
    _named_block(ws, "Memory per GPU", rows, cells, "memory")
    _widths(ws, (46, 22, 12))
    for r in range(2, 12):
        ws.cell(r, 2).number_format = "#,##0.000"


PASS_COLUMNS = ("operator", "unit", "count", "kernels", "flops", "bytes_read", "bytes_written",
                "arithmetic_intensity_flops_per_byte", "compute_s", "memory_s", "overhead_s", "time_s", "bound")


def _write_pass(wb: Workbook, model: ModelConfig, title: str, new: str, cached: str, note: str,
                cells: dict, prefix: str) -> None:
    """One sheet per forward pass: a header of pass aggregates (B2..B10) and one row per operator."""
    ws = wb.create_sheet(title)
    ws.cell(1, 1, f"{title}: {note}").font = BOLD
    head = [("batch", "=in_batch"), ("new tokens per sequence", "=" + new),
            ("cached tokens per sequence", "=" + cached),
            ("windowed-layer fraction", "=in_win_layers/in_layers"),
            ("window pairs breakpoint", "=MIN(MAX(in_window,B4),B4+B3)"),
            ("query-key pairs (T*)", "=B2*((1-B5)*(B3*B4+B3*(B3+1)/2)+B5*((B6*(B6+1)-B4*(B4+1))/2+in_window*(B4+B3-B6)))"),
            ("KV tokens read", "=B2*((1-B5)*(B4+B3)+B5*MIN(B4+B3,in_window+B3-1))"),
            ("new tokens (T)", "=B2*B3"), ("heads per GPU", "=in_heads/in_tp"),
            ("KV heads per GPU", "=" + KV_HEADS_PER_GPU), ("embedding bytes per element", "=" + EMBEDDING_BYTES),
            ("kernels launched eagerly (1) or from a graph (0)",
             "=IF(AND(in_graphmax>0,B9<=in_graphmax),0,1)" if new.strip() == "1" else
             "=IF(AND(in_prefill_graph=1,in_graphmax>0,B9<=in_graphmax),0,1)"),
            ("attention kernels eager", "=B13" if new.strip() == "1" else "=MAX(B13,in_attn_eager)")]
    for i, (label, f) in enumerate(head, start=2):
        ws.cell(i, 1, label)
        ws.cell(i, 2, f)
    refs = PassRefs(T="$B$9", S="$B$2", pairs="$B$7", reads="$B$8", heads="$B$10", kvh="$B$11", emb="$B$12",
                    decode=new.strip() == "1")
    top = len(head) + 3
    for j, name in enumerate(PASS_COLUMNS, start=1):
        c = ws.cell(top, j, name)
        c.font, c.fill = BOLD, HEAD
    r = top + 1
    for op, count in operators_for(model):
        if op.name not in OPERATOR_FORMULAS:
            raise RooflineError(f"the spreadsheet has no formula for operator {op.name!r}",
                                hint="add it to roofline/report/formulas.py")
        _op_row(ws, r, op, count, OPERATOR_FORMULAS[op.name](model, refs), cells, prefix)
        r += 1
    ws.cell(r, 1, "engine_step")  # the engine's host overhead per step (roofline.model.phases)
    ws.cell(r, 2, "host")
    for col in (3, 4, 5, 6, 7, 9, 10):
        ws.cell(r, col, 0)
    ws.cell(r, 11, "=in_step")
    ws.cell(r, 12, f"=K{r}")
    ws.cell(r, 13, "host")
    for key, col in (("flops", "E"), ("bytes_read", "F"), ("bytes_written", "G"), ("time_s", "L")):
        cells[f"{prefix}.op.engine_step.{key}"] = f"'{ws.title}'!{col}{r}"
    r += 1
    first, last = top + 1, r - 1
    ws.cell(r, 1, "total").font = BOLD
    for col in "EFGIJKL":
        ws[f"{col}{r}"] = f"=SUM({col}{first}:{col}{last})"
    for key, col in (("flops", "E"), ("time_s", "L")):
        cells[f"{prefix}.{key}"] = f"'{title}'!{col}{r}"
    _widths(ws, (30, 14, 8, 8, 16, 16, 16, 14, 14, 14, 14, 14, 10))


def _op_row(ws, r: int, op, count: int, f, cells: dict, prefix: str) -> None:
    flops, read, write, kernels, comm = f
    ws.cell(r, 1, op.name)
    ws.cell(r, 2, op.unit)
    ws.cell(r, 3, count)
    ws.cell(r, 4, kernels)
    ws.cell(r, 5, f"=C{r}*({flops})")
    ws.cell(r, 6, f"=C{r}*({read})")
    ws.cell(r, 7, f"=C{r}*({write})")
    ws.cell(r, 8, f'=IF(F{r}+G{r}>0,E{r}/(F{r}+G{r}),"-")')
    if op.unit == "link":
        ws.cell(r, 9, 0)
        ws.cell(r, 10, 0)
        ws.cell(r, 11, 0)
        lat, spb = f"in_cl_{prefix}_{op.name}", f"in_cb_{prefix}_{op.name}"
        ws.cell(r, 12, f"=IF(({comm})>0,C{r}*D{r}*({lat}+({comm})*{spb}),0)+C{r}*D{r}*in_eager*$B$13")
        ws.cell(r, 13, "interconnect")
    else:
        peak = {"tensor": "in_peak*IF(in_a<=1,in_eff_c8,in_eff_c)", "attention": "in_attn_peak*in_eff_c",
                "vector": "in_fp32*in_eff_v"}[op.unit]
        ws.cell(r, 9, f"=E{r}/({peak})")
        ws.cell(r, 10, f"=(F{r}+G{r})/(in_bw*in_eff_m)")
        eager = "$B$14" if op.unit == "attention" else "$B$13"
        ws.cell(r, 11, f"=C{r}*D{r}*(in_overhead+in_eager*{eager})")
        ws.cell(r, 12, f"=MAX(I{r},J{r})+K{r}")
        ws.cell(r, 13, f'=IF(I{r}>=J{r},"compute","memory")')
    for key, col in (("flops", "E"), ("bytes_read", "F"), ("bytes_written", "G"), ("time_s", "L")):
        cells[f"{prefix}.op.{op.name}.{key}"] = f"'{ws.title}'!{col}{r}"


#: what the memory and sizing cells say for a deployment that does not fit (no number of GPUs is sized for it)
NO_ROOM = "NO: the weights leave no room for the KV cache (raise the TP degree)"
NO_BATCH = "NO: the batch exceeds the max batch"
DOES_NOT_FIT = "does not fit"


def _write_sizing(wb: Workbook, cells: dict) -> None:
    ws = wb.create_sheet("Sizing")
    pre, dec, mean = cells["prefill.time_s"], cells["decode.time_s"], cells["decode_mean.time_s"]
    unfit = f"in_batch>{cells['memory.max_batch']}"  # also true when not one sequence fits (max batch 0)
    rows = [
        ("ttft_s", "TTFT (prefill of the batch)", f"={pre}", "s"),
        ("tpot_s", "TPOT (decode step at the decode context)", f"={dec}", "s"),
        ("mean_tpot_s", "mean TPOT over the generation", f"=IF(in_output>1,{mean},B3)", "s"),
        ("e2e_latency_s", "end-to-end latency per request", "=B2+(in_output-1)*B4", "s"),
        ("output_tokens_per_s", "output tokens/s per replica", "=in_batch*in_output/B5", "tokens/s"),
        ("output_tokens_per_s_per_gpu", "output tokens/s per GPU", "=B6/in_tp", "tokens/s"),
        ("decode_tokens_per_s_per_gpu", "decode tokens/s per GPU (batch / TPOT)", "=in_batch/B3/in_tp", "tokens/s"),
        ("concurrency", "sequences in flight (requests/s x latency)", "=in_rps*B5", "sequences"),
        ("replicas", "replicas needed", f'=IF({unfit},"{DOES_NOT_FIT}",ROUNDUP(B9/in_batch,0))', ""),
        ("gpus", "GPUs needed", f'=IF({unfit},"{DOES_NOT_FIT}",B10*in_tp)', "GPUs"),
        ("usd_per_hour", "cost per hour", f'=IF({unfit},"{DOES_NOT_FIT}",B11*in_usd)', "USD"),
        ("usd_per_1m_tokens", "cost per 1M output tokens at this traffic",
         f'=IF({unfit},"{DOES_NOT_FIT}",B12/(in_rps*in_output*3600)*1000000)', "USD"),
        ("usd_per_1m_tokens_full", "cost per 1M output tokens at full load",
         f'=IF({unfit},"{DOES_NOT_FIT}",in_usd/(B7*3600)*1000000)', "USD"),
        ("ttft_ok", "TTFT SLO met?", '=IF(B2<=in_slo_ttft,"yes","NO")', ""),
        ("tpot_ok", "TPOT SLO met?", '=IF(B3<=in_slo_tpot,"yes","NO")', ""),
        ("fits", "batch fits the KV cache?", f"={cells['memory.batch_fits']}", ""),
    ]
    _named_block(ws, "Capacity sizing (per replica of in_tp GPUs)", rows, cells, "sizing")
    _widths(ws, (46, 18, 12))
    for r in range(2, 15):
        ws.cell(r, 2).number_format = "#,##0.0000"


def _write_sweep(wb: Workbook, rows: list[dict]) -> None:
    ws = wb.create_sheet("Sweep")
    if not rows:
        return
    ws.append(list(rows[0]))
    for c in ws[1]:
        c.font, c.fill = BOLD, HEAD
    for row in rows:
        ws.append([v if isinstance(v, (int, float, str)) else str(v) for v in row.values()])


def build_workbook(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None,
                   efficiency: Efficiency | None = None, traffic: Traffic | None = None,
                   sweep_rows: list[dict] | None = None, training=None) -> tuple[Workbook, dict]:
    """The workbook and a map of result keys ('memory.max_batch', 'decode.op.qkv_proj.time_s', 'sizing.gpus',
    ...) to their cells, for tests and tools that read it back. `training` (a `training_sheet.TrainingSheetSpec`)
    adds the Training inputs and Training sheets ('training.step_time_s', ...)."""
    sc = (scenario or Scenario()).checked(model)
    eff, cells = efficiency or Efficiency(), {}
    wb = Workbook()
    _write_inputs(wb, _inputs(gpu, model, sc, eff, traffic or Traffic()))
    _write_memory(wb, model, cells)
    _write_pass(wb, model, "Prefill", "in_prompt", "0", "the prompts of the batch in one pass (TTFT)", cells,
                "prefill")
    _write_pass(wb, model, "Decode", "1", "in_context", "one decode step at the decode context (TPOT)", cells,
                "decode")
    _write_pass(wb, model, "Decode mean", "1", "in_prompt+(in_output-2)/2",
                "the step at the mid-generation context = mean step time (exact while no operator changes bound)",
                cells, "decode_mean")
    _write_sizing(wb, cells)
    if training is not None:
        from roofline.report.training_sheet import write_training_sheets
        write_training_sheets(wb, gpu, model, training, cells)
    _write_sweep(wb, sweep_rows or [])
    return wb, cells


def write_workbook(path: str | Path, *args, **kw) -> tuple[Path, dict]:
    """Build and save the workbook through `outfile.write_bytes` (a workbook already at `path` is replaced: it
    is regenerated from its command; a link, directory or device is refused); returns (path, cell map). The
    workbook is zipped in memory first, so a full disk leaves neither a half-written file nor an open archive."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise RooflineError(f"cannot write a workbook to {path.name}", hint="use a .xlsx file name", exit_code=2)
    check_target(path, True, "workbook")  # before building it: a bad path fails fast
    wb, cells = build_workbook(*args, **kw)
    buf = io.BytesIO()
    wb.save(buf)
    return write_bytes(path, buf.getvalue(), True, "workbook"), cells
