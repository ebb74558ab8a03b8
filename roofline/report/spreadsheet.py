"""Capacity-sizing workbook (.xlsx) whose figures are LIVE Excel formulas of its input cells.

Sheets: Summary (first: the answer as a live sentence and key figures, the traffic / SLO / price inputs,
`roofline capacity`'s figure for the same inputs beside the workbook's with why they differ, then the model
and deployment), Inputs (GPU, efficiency, model dimensions, precisions, deployment, engine, collectives,
each a defined name `in_<key>`; the Summary's inputs are `in_rps`, `in_slo_ttft_ms`, `in_slo_tpot_ms`,
`in_usd`, `in_hours`), Memory (weights, activations, KV bytes/token, KV capacity, max batch), Prefill /
Decode / Decode mean (one row per operator of `roofline.ops`, FLOPs and bytes as formulas, time =
max(compute, memory) + kernels x overhead, tensor operators the p-norm of Efficiency.overlap_p), Sizing (TTFT, TPOT, throughput per GPU, GPUs needed by Little's
law at the fixed batch, $/h, $/month, $/1M tokens, the binding limit and its headroom) and Sweep (values, not
formulas). Every sheet prints one page wide (`_print_setup`); the Summary on one page. The operator formulas
mirror `roofline/ops.py`, `engine.py`, `memory.py` and `phases.py`; the tests recalculate the workbook and
compare with `analyze` (1%).

The architecture (which operators, gated MLP, biases, MLA/MoE) is fixed when the workbook is written;
every dimension, precision, batch, context, efficiency and price is an input cell. Only the formula subset
MAX, MIN, IF, AND, OR, ABS, INT, ROUNDUP, TEXT, `&` and arithmetic (`^` included) is used, so Excel, LibreOffice and the
`formulas` package agree. `workbook_answer` computes the Summary's answer in Python from `analyze` (what the
`spreadsheet` command prints); the tests check that the recalculated sheet says the same.
"""
from __future__ import annotations

import io
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.properties import PageSetupProperties

from roofline.model.analysis import Scenario
from roofline.model.efficiency import Efficiency
from roofline.model.engine import attention_peak, compute_peak, make_setup
from roofline.errors import RooflineError
from roofline.outfile import check_target, write_bytes
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.specs.workload import MAX_RATE_PER_S, MIN_RATE_PER_S
from roofline.model.comm import collective_time
from roofline.model.ops import operators_for
from roofline.model.phases import make_pass
from roofline.specs.precision import EMBEDDING_MIN_BYTES, bytes_per_element
from roofline.report.formulas import OPERATOR_FORMULAS, PassRefs

BOLD = Font(bold=True)
HEAD = PatternFill("solid", fgColor="DDEBF7")
INPUT = PatternFill("solid", fgColor="FFF2CC")
WRAP = Alignment(wrap_text=True, vertical="top")
#: the engine's rules as formulas of the Inputs sheet: ModelConfig.kv_heads_per_gpu, embedding_bytes_per_element
KV_HEADS_PER_GPU = "MAX(in_kvh/in_tp,1)"
EMBEDDING_BYTES = f"MAX(in_w,{EMBEDDING_MIN_BYTES:g})"


#: hours in an average month (8,760 h a year / 12): the default of the Summary's `in_hours`
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Traffic:
    """Demand, service-level objectives and price: the Summary sheet's inputs (illustrative defaults: set
    your own). The workbook compares the SLOs with the TTFT of the batch's prefill and the TPOT at the
    decode context; `roofline capacity` (beside it on the Summary) reads them as p99 targets."""

    requests_per_s: float = 10.0
    slo_ttft_s: float = 0.5
    slo_tpot_s: float = 0.05
    gpu_hour_usd: float = 2.5
    hours_per_month: float = HOURS_PER_MONTH

    @property
    def slo_ttft_ms(self) -> float:
        return _ms(self.slo_ttft_s)

    @property
    def slo_tpot_ms(self) -> float:
        return _ms(self.slo_tpot_s)

    def __post_init__(self):
        for name, v in vars(self).items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise RooflineError(f"{name} must be a finite number > 0, got {v}", exit_code=2, param=name,
                                    hint="the request rate (per s), the SLOs (in seconds), the GPU-hour price "
                                    "and the hours per month are all > 0")
        if not MIN_RATE_PER_S <= self.requests_per_s <= MAX_RATE_PER_S:
            raise RooflineError(f"requests_per_s must be between {MIN_RATE_PER_S:g} and {MAX_RATE_PER_S:g}, got "
                                f"{self.requests_per_s:g}", hint="the peak request rate of the service, per second",
                                exit_code=2, param="requests_per_s")


def _ms(seconds: float) -> float:
    """Seconds as the milliseconds an input cell shows (rounded to 1 ns: 0.05 s is 50, not 50.000000000000007)."""
    return round(seconds * 1e3, 6)


def device_rows(gpu: GPUSpec, compute: str, weights: str, eff: Efficiency) -> list:
    """The GPU's peaks and bandwidth at the compute precision, and the efficiency: the input rows the serving and
    the training sheets share (their formulas read `mem`, `bw`, `peak`, `attn_peak`, `fp32`, `eff_*`, `overhead`)."""
    return [
        ("mem", "memory per GPU", gpu.memory_bytes, "bytes"),
        ("bw", "HBM bandwidth", gpu.memory_bandwidth_bytes_per_s, "bytes/s"),
        ("peak", f"tensor peak at the compute precision ({compute})", compute_peak(gpu, compute, weights), "FLOP/s"),
        ("attn_peak", "attention peak (16-bit when the compute is 8-bit)", attention_peak(gpu, compute), "FLOP/s"),
        ("fp32", "fp32 (vector) peak", gpu.peak_flops("fp32"), "FLOP/s"),
        ("#", f"Efficiency ({eff.source})"),
        ("eff_c", "tensor compute efficiency (16-bit and wider; attention)", float(eff.compute), "fraction"),
        ("eff_c8", "tensor compute efficiency, 8-bit compute", float(eff.compute_8bit), "fraction"),
        ("eff_v", "vector compute efficiency", float(eff.vector), "fraction"),
        ("eff_m", "memory bandwidth efficiency", float(eff.memory), "fraction"),
        ("overhead", "per-kernel launch overhead", float(eff.kernel_overhead_s), "s"),
        ("knee_p", "GEMM overlap p: time = (compute^p + memory^p)^(1/p); 0 = max(compute, memory)",
         float(eff.overlap_p or 0.0), "p"),
    ]


def _inputs(gpu: GPUSpec, model: ModelConfig, sc: Scenario, eff: Efficiency) -> list:
    """(key, label, value, unit) rows and ('#', section title) headers of the Inputs sheet (the traffic, SLO
    and price inputs are on the Summary)."""
    m, ms = model, sc.memory
    win = m.sliding_window or 0
    br = m.parameter_breakdown()
    return [
        ("#", "GPU (datasheet, dense peaks)"),
        ("gpu", "GPU", gpu.display_name, ""),
        *device_rows(gpu, sc.activations, sc.weights, eff),
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
            lat, spb, how = (fit_collective(gpu, op.collective, size, op.group(p), op.span(p), s.custom_allreduce)
                             if size > 0 else (0.0, 0.0, "none at this layout"))
            rows += [(f"cl_{prefix}_{op.name}", f"{prefix} {op.name}: latency ({how})", lat, "s"),
                     (f"cb_{prefix}_{op.name}", f"{prefix} {op.name}: seconds per byte", spb, "s/byte")]
    return rows


def fit_collective(gpu: GPUSpec, collective: str, size: float, group, span,
                   custom_allreduce: bool) -> tuple[float, float, str]:
    """(latency_s, seconds per byte, how) of `model/comm.py`'s time of a collective fitted at `size` and
    2 x `size` bytes (`size` > 0): the workbooks' live collective time is latency + bytes x seconds-per-byte."""
    t1, t2 = (collective_time(gpu, collective, k * size, group, span, custom_allreduce=custom_allreduce)
              for k in (1.0, 2.0))
    spb = float(np.asarray(t2.time_s) - np.asarray(t1.time_s)) / size
    return float(np.asarray(t1.time_s)) - spb * size, spb, f"{np.asarray(t1.algorithm)} on {np.asarray(t1.link)}"


def _write_inputs(wb: Workbook, rows: list) -> None:
    ws = wb.active
    ws.title = "Inputs"
    write_input_rows(wb, ws, rows, "in_")
    _widths(ws, (58, 22, 10, 16))


def write_input_rows(wb: Workbook, ws, rows: list, prefix: str) -> None:
    """An inputs sheet: (key, label, value, unit) rows as editable cells, each a defined name `prefix + key`;
    ('#', title) rows as bold section headers."""
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
        ws.append([label, value, unit, f"{prefix}{key}"])
        r = ws.max_row
        ws.cell(r, 2).fill = INPUT
        ws.cell(r, 2).number_format = _input_format(value)
        wb.defined_names[f"{prefix}{key}"] = DefinedName(f"{prefix}{key}", attr_text=f"'{ws.title}'!$B${r}")


#: number formats for people: thousands separated, dollars with cents, percentages, milliseconds
COUNT, USD, USD0, PCT, MS = "#,##0", '"$"#,##0.00', '"$"#,##0', "0%", '#,##0.0" ms"'
SECONDS = "0.000000"  # microsecond resolution: the pass sheets' times


def _input_format(value) -> str:
    """An input's number format: whole numbers and large ones thousands-separated, tiny ones (seconds per
    byte, latencies) in scientific notation, fractions with 3 decimals."""
    if isinstance(value, str):
        return "General"
    if isinstance(value, int) or abs(value) >= 1e5 or float(value).is_integer():
        return COUNT
    return "0.000E+00" if abs(value) < 1e-3 else "0.000"


def _widths(ws, widths) -> None:
    for i, w in enumerate(widths):
        ws.column_dimensions[chr(65 + i)].width = w


class RowWriter:
    """(label, formula, unit) rows written top-down from row `r`; `add` returns the value cell ($B$r) and,
    given a key, records it as cells[prefix.key]."""

    def __init__(self, ws, cells: dict, prefix: str, r: int = 1):
        self.ws, self.cells, self.prefix, self.r = ws, cells, prefix, r

    def title(self, text: str) -> None:
        self.ws.cell(self.r, 1, text).font = BOLD
        self.r += 1

    def add(self, key: str, label: str, formula: str, unit: str = "") -> str:
        self.ws.cell(self.r, 1, label)
        self.ws.cell(self.r, 2, formula)
        self.ws.cell(self.r, 3, unit)
        if key:
            self.cells[f"{self.prefix}.{key}"] = f"'{self.ws.title}'!B{self.r}"
        self.r += 1
        return f"$B${self.r - 1}"


def _named_block(ws, title: str, rows: list[tuple[str, str, str, str]], cells: dict, prefix: str) -> None:
    """Write (key, label, formula, unit) rows under a title from row 1; record each value cell as
    cells[prefix.key]."""
    w = RowWriter(ws, cells, prefix)
    w.title(title)
    for row in rows:
        w.add(*row)


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
        ("kv_cache_utilization", "KV-cache utilization of the batch", f'=IF(B8>0,in_batch*B6/B8,"{NO_KV}")',
         "fraction"),
        ("batch_fits", "batch fits?", f'=IF(B10<1,"{NO_ROOM}",IF(in_batch<=B10,"yes","{NO_BATCH}"))', ""),
    ]
    _named_block(ws, "Memory per GPU", rows, cells, "memory")
    _widths(ws, (60, 22, 12))
    for r in range(2, 11):
        ws.cell(r, 2).number_format = COUNT
    ws.cell(11, 2).number_format = "0.0%"


#: the effective peak of each compute unit over the Inputs sheet's names
PEAKS = {"tensor": "in_peak*IF(in_a<=1,in_eff_c8,in_eff_c)", "attention": "in_attn_peak*in_eff_c",
         "vector": "in_fp32*in_eff_v"}
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
    for row in ws.iter_rows(min_row=top + 1, max_row=r, min_col=5, max_col=12):
        for c in row:
            c.number_format = {5: COUNT, 6: COUNT, 7: COUNT, 8: "#,##0.0"}.get(c.column, SECONDS)
    for i in range(2, top - 1):
        ws.cell(i, 2).number_format = "#,##0.00"
    _widths(ws, (30, 14, 8, 8, 20, 20, 20, 14, 12, 12, 12, 12, 10))


def roofline_formula(c: str, m: str, unit: str, p: str = "in_knee_p") -> str:
    """Efficiency.roofline_s as a formula over the cells c and m: the p-norm (input `knee_p`, 0 = max) for tensor
    operators, max for the others."""
    hi = f"MAX({c},{m})"
    if unit != "tensor":
        return hi
    return f"IF(AND({p}>0,{hi}>0),{hi}*(1+(MIN({c},{m})/{hi})^{p})^(1/{p}),{hi})"


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
        # a collective over one rank (latency and seconds per byte both 0) moves nothing and launches nothing
        ws.cell(r, 12, f"=IF(AND(({comm})>0,{lat}+{spb}>0),C{r}*D{r}*({lat}+({comm})*{spb}+in_eager*$B$13),0)")
        ws.cell(r, 13, "interconnect")
    else:
        ws.cell(r, 9, f"=E{r}/({PEAKS[op.unit]})")
        ws.cell(r, 10, f"=(F{r}+G{r})/(in_bw*in_eff_m)")
        eager = "$B$14" if op.unit == "attention" else "$B$13"
        ws.cell(r, 11, f"=C{r}*D{r}*(in_overhead+in_eager*{eager})")
        ws.cell(r, 12, f"={roofline_formula(f'I{r}', f'J{r}', op.unit)}+K{r}")
        ws.cell(r, 13, f'=IF(I{r}>=J{r},"compute","memory")')
    for key, col in (("flops", "E"), ("bytes_read", "F"), ("bytes_written", "G"), ("time_s", "L")):
        cells[f"{prefix}.op.{op.name}.{key}"] = f"'{ws.title}'!{col}{r}"


#: what the memory and sizing cells say for a deployment that does not fit (no number of GPUs is sized for it)
NO_ROOM = "NO: the weights leave no room for the KV cache (raise the TP degree)"
NO_BATCH = "NO: the batch exceeds the max batch"
DOES_NOT_FIT = "does not fit"
NO_KV = "no KV cache"


def _write_sizing(wb: Workbook, cells: dict) -> None:
    """Little's law at the fixed batch (rows 2-17; B11 GPUs and B12 $/h are read by tests), then the cost per
    month and the binding limit: the largest of batch / max batch, TPOT / SLO and TTFT / SLO (rows 18-23)."""
    ws = wb.create_sheet("Sizing")
    pre, dec, mean = cells["prefill.time_s"], cells["decode.time_s"], cells["decode_mean.time_s"]
    maxb = cells["memory.max_batch"]
    unfit = f"in_batch>{maxb}"  # also true when not one sequence fits (max batch 0)
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
        ("ttft_ok", "TTFT SLO met?", '=IF(B2*1000<=in_slo_ttft_ms,"yes","NO")', ""),
        ("tpot_ok", "TPOT SLO met?", '=IF(B3*1000<=in_slo_tpot_ms,"yes","NO")', ""),
        ("fits", "batch fits the KV cache?", f"={cells['memory.batch_fits']}", ""),
        ("usd_per_month", "cost per month", f'=IF({unfit},"{DOES_NOT_FIT}",B12*in_hours)', "USD"),
        ("kv_use", "KV-cache use: batch / max batch", f'=IF({maxb}<1,"{NO_KV}",in_batch/{maxb})', "fraction"),
        ("tpot_vs_slo", "TPOT / TPOT SLO", "=B3*1000/in_slo_tpot_ms", "fraction"),
        ("ttft_vs_slo", "TTFT / TTFT SLO", "=B2*1000/in_slo_ttft_ms", "fraction"),
        ("binding", "binding limit (the largest of the three ratios above)",
         f'=IF({unfit},"{DOES_NOT_FIT}",IF(AND(B19>=B20,B19>=B21),"the KV cache (batch "&in_batch&" of max "'
         f'&{maxb}&")",IF(B20>=B21,"the TPOT SLO ("&in_slo_tpot_ms&" ms)","the TTFT SLO ("&in_slo_ttft_ms&" ms)")))',
         ""),
        ("headroom", "headroom to the binding limit (1 - largest ratio)",
         f'=IF({unfit},"{DOES_NOT_FIT}",1-MAX(B19,B20,B21))', "fraction"),
    ]
    _named_block(ws, "Capacity sizing (per replica of in_tp GPUs): Little's law at the fixed batch", rows, cells,
                 "sizing")
    _widths(ws, (52, 22, 12))
    formats = {"s": "0.0000", "tokens/s": COUNT, "sequences": "#,##0.0", "GPUs": COUNT, "USD": USD,
               "fraction": "0.0%"}
    for r, (key, _, _, unit) in enumerate(rows, start=2):
        ws.cell(r, 2).number_format = COUNT if key == "replicas" else formats.get(unit, "General")


def _write_sweep(wb: Workbook, rows: list[dict]) -> None:
    ws = wb.create_sheet("Sweep")
    if not rows:
        return
    ws.append(list(rows[0]))
    for c in ws[1]:
        c.font, c.fill = BOLD, HEAD
    for row in rows:
        ws.append([v if isinstance(v, (int, float, str)) else str(v) for v in row.values()])


# ------------------------------------------------------------------------------------------------ Summary

#: why the Summary shows two GPU counts (the workbook's live one and `roofline capacity`'s)
TWO_METHODS = (
    "Why two figures: this workbook (live) runs every replica at the fixed batch on the Inputs sheet and counts "
    "replicas by Little's law (requests/s x end-to-end latency / batch), then checks that batch's TTFT (its whole "
    "prefill, as if its prompts arrived together: the worst case) and TPOT against the SLOs. `roofline "
    "capacity` (computed when the workbook was written; it does not "
    "follow edits) models the engine's continuous batching with chunked prefill and finds the highest request "
    "rate one replica sustains with the p99 TTFT, the p99 TPOT and the p99 KV-cache occupancy within their "
    "limits, then divides the traffic by it. They agree when the fixed batch is the batch the SLOs allow; plan "
    "purchases on capacity's figure and use the workbook to see how the cost moves when an input changes.")


def _general(x) -> str:
    """A number as Excel writes it into text with `&` (General format): 10 -> '10', 2.5 -> '2.5'."""
    x = float(x)
    return str(int(x)) if x.is_integer() else format(x, ".15g")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def workbook_answer(r: dict, gpu: GPUSpec, traffic: Traffic) -> dict:
    """The Summary sheet's answer computed in Python from the `analyze` result `r` of the workbook's scenario:
    the same Little's-law sizing, binding limit and verdict sentence the sheet's formulas give (the tests
    recalculate the sheet and compare). Keys: fits, gpus, replicas, usd_per_hour, usd_per_month,
    usd_per_1m_tokens, binding, headroom (None where it does not fit) and verdict."""
    c, m = r["config"], r["memory"]
    batch, tp, maxb, name = c["batch"], c["tp"], m["max_batch"], gpu.display_name
    ttft_ms, tpot_ms = r["ttft_s"] * 1000, r["tpot_s"] * 1000
    out = {"fits": batch <= maxb, "gpus": None, "replicas": None, "usd_per_hour": None, "usd_per_month": None,
           "usd_per_1m_tokens": None, "binding": None, "headroom": None, "ttft_ms": ttft_ms, "tpot_ms": tpot_ms}
    if batch > maxb:
        why = ("the weights leave no room for the KV cache; raise the TP degree" if maxb < 1 else
               f"batch {batch} exceeds the max batch of {maxb} sequences at context {c['context']}; lower the "
               "batch or raise the TP degree")
        return {**out, "verdict": f"DOES NOT FIT on {name} at TP {tp}: {why} (Inputs sheet)."}
    replicas = math.ceil(traffic.requests_per_s * r["e2e_latency_s"] / batch)
    gpus = replicas * tp
    usd_h = gpus * traffic.gpu_hour_usd
    ratios = {"kv": batch / maxb, "tpot": tpot_ms / traffic.slo_tpot_ms, "ttft": ttft_ms / traffic.slo_ttft_ms}
    if ratios["kv"] >= ratios["tpot"] and ratios["kv"] >= ratios["ttft"]:
        binding = f"the KV cache (batch {batch} of max {maxb})"
    elif ratios["tpot"] >= ratios["ttft"]:
        binding = f"the TPOT SLO ({_general(traffic.slo_tpot_ms)} ms)"
    else:
        binding = f"the TTFT SLO ({_general(traffic.slo_ttft_ms)} ms)"
    out.update(gpus=gpus, replicas=replicas, usd_per_hour=usd_h, usd_per_month=usd_h * traffic.hours_per_month,
               usd_per_1m_tokens=usd_h / (traffic.requests_per_s * c["output"] * 3600) * 1e6, binding=binding,
               headroom=1 - max(ratios.values()))
    if ratios["tpot"] > 1 or ratios["ttft"] > 1:
        missed = [f"{k.upper()} {v:,.1f} ms > SLO {_general(slo)} ms" for k, v, slo, ratio in
                  (("tpot", tpot_ms, traffic.slo_tpot_ms, ratios["tpot"]),
                   ("ttft", ttft_ms, traffic.slo_ttft_ms, ratios["ttft"])) if ratio > 1]
        verdict = (f"SLO MISSED at batch {batch}: {', '.join(missed)}; lower the batch or raise the TP degree "
                   f"(Inputs sheet). As sized: {gpus} x {name}, ${usd_h:,.2f}/h.")
    else:
        verdict = (f"Serve {_general(traffic.requests_per_s)} req/s with {gpus} x {name} "
                   f"({_plural(replicas, 'replica')} of TP {tp} at batch {batch}): ${usd_h:,.2f}/h, "
                   f"${out['usd_per_month']:,.0f} per month, ${out['usd_per_1m_tokens']:,.2f} per 1M output tokens; "
                   f"binding limit: {binding}, {out['headroom']:.0%} headroom.")
    return {**out, "verdict": verdict}


def _text(expr: str, fmt: str) -> str:
    """TEXT(expr, fmt) for a thousands-separated format, written so that the `formulas` engine agrees with
    Excel below 1 (it renders TEXT(0.27,"#,##0.00") as '0,.27'): below 1 the format without the separator."""
    return f'IF(ABS({expr})>=1,TEXT({expr},"{fmt}"),TEXT({expr},"{fmt.removeprefix("#,##")}"))'


def _verdict_formula(cells: dict) -> str:
    """`workbook_answer`'s verdict as one live formula over the Sizing and Memory cells."""
    S = {k: cells[f"sizing.{k}"] for k in ("ttft_s", "tpot_s", "replicas", "gpus", "usd_per_hour", "usd_per_month",
                                             "usd_per_1m_tokens", "tpot_vs_slo", "ttft_vs_slo", "binding", "headroom")}
    maxb = cells["memory.max_batch"]
    unfit = ('"DOES NOT FIT on "&in_gpu&" at TP "&in_tp&": "&IF(' + maxb + '<1,"the weights leave no room for the '
             'KV cache; raise the TP degree","batch "&in_batch&" exceeds the max batch of "&' + maxb +
             '&" sequences at context "&in_context&"; lower the batch or raise the TP degree")&" (Inputs sheet)."')
    tpot_miss, ttft_miss = f"{S['tpot_vs_slo']}>1", f"{S['ttft_vs_slo']}>1"
    missed = (f'"SLO MISSED at batch "&in_batch&": "&IF({tpot_miss},"TPOT "&{_text(S["tpot_s"] + "*1000", "#,##0.0")}&'
              f'" ms > SLO "&in_slo_tpot_ms&" ms","")&IF(AND({tpot_miss},{ttft_miss}),", ","")&IF({ttft_miss},'
              f'"TTFT "&{_text(S["ttft_s"] + "*1000", "#,##0.0")}&" ms > SLO "&in_slo_ttft_ms&" ms","")&"; lower the '
              f'batch or raise the TP degree (Inputs sheet). As sized: "&{S["gpus"]}&" x "&in_gpu&", $"&'
              f'{_text(S["usd_per_hour"], "#,##0.00")}&"/h."')
    ok = (f'"Serve "&in_rps&" req/s with "&{S["gpus"]}&" x "&in_gpu&" ("&{S["replicas"]}&IF({S["replicas"]}=1,'
          f'" replica"," replicas")&" of TP "&in_tp&" at batch "&in_batch&"): $"&{_text(S["usd_per_hour"], "#,##0.00")}'
          f'&"/h, $"&{_text(S["usd_per_month"], "#,##0")}&" per month, $"&{_text(S["usd_per_1m_tokens"], "#,##0.00")}'
          f'&" per 1M output tokens; binding limit: "&{S["binding"]}&", "&TEXT({S["headroom"]},"0%")&" headroom."')
    return f"=IF(in_batch>{maxb},{unfit},IF(OR({tpot_miss},{ttft_miss}),{missed},{ok}))"


def capacity_figure(gpu: GPUSpec, model: ModelConfig, sc: Scenario, eff: Efficiency | None,
                    traffic: Traffic) -> dict:
    """What `roofline capacity` answers for the workbook's GPU, TP and precisions at its traffic (fixed prompt
    and output lengths, the SLOs as p99 targets, the price): {'command': the capacity command line,
    'row': its candidate row (None when the traffic is not a valid workload), 'verdict': its verdict}."""
    from roofline.plan.capacity import Candidate, evaluate_candidate
    from roofline.report.verdict import capacity_verdict
    from roofline.specs.precision import PrecisionSet
    from roofline.specs.workload import workload_from_options

    label = PrecisionSet(sc.weights, sc.activations, sc.kv).label
    t = traffic
    cmd = shlex.join(["roofline", "capacity", "--model", model.name, "--gpu", gpu.name, "--tp", str(sc.tp),
                      "--precision", label, "--rate", _general(t.requests_per_s), "--prompt", str(sc.prompt),
                      "--output", str(sc.output), "--ttft-p99-s", _general(t.slo_ttft_s), "--tpot-p99-s",
                      _general(t.slo_tpot_s), "--price", f"{gpu.name}={_general(t.gpu_hour_usd)}",
                      *_engine_flags(sc.memory)])
    try:
        w = workload_from_options(None, t.requests_per_s, str(sc.prompt), str(sc.output), None, None, t.slo_ttft_s,
                                  t.slo_tpot_s)
    except RooflineError as e:
        return {"command": cmd, "row": None, "verdict": f"not computed: {e.message}"}
    row = evaluate_candidate(Candidate(gpu, sc.tp, label, eff), model, w, sc.memory, t.gpu_hour_usd)
    res = {"model": model.name, "workload": w.to_dict(), "candidates": [row], "best": row if row["feasible"] else None}
    return {"command": cmd, "row": row, "verdict": capacity_verdict(res)}


def _limit_text(limit: str) -> str:
    """capacity's `limited_by` in words: 'tpot_p99_slo' -> 'the TPOT p99 SLO', 'kv_capacity' -> 'kv capacity'."""
    parts = limit.split("_")
    if len(parts) == 3 and parts[2] == "slo":
        return f"the {parts[0].upper()} {parts[1]} SLO"
    return limit.replace("_", " ")


def _engine_flags(ms) -> list[str]:
    """The engine and every knob of the workbook's settings, spelled out: capacity resolves the same settings."""
    return ["--engine", ms.engine, "--max-seqs", str(ms.max_seqs), "--max-batched-tokens",
            str(ms.max_batched_tokens), "--kv-cache-fraction", _general(ms.memory_utilization), "--page-tokens",
            str(ms.page_tokens), "--chunked-prefill" if ms.chunked_prefill else "--no-chunked-prefill",
            "--cuda-graphs" if ms.cuda_graphs else "--no-cuda-graphs"]


def _block_title(ws, r: int, text: str) -> int:
    c = ws.cell(r, 1, text)
    c.font, c.fill = BOLD, HEAD
    for col in (2, 3):
        ws.cell(r, col).fill = HEAD
    return r + 1


def _long_text(ws, r: int, text: str, lines: int) -> int:
    """A sentence across columns A:C, wrapped, on a row tall enough for `lines` lines."""
    ws.cell(r, 1, text).alignment = WRAP
    ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=3)
    ws.row_dimensions[r].height = 15 * lines
    return r + 1


def _write_summary(wb: Workbook, gpu: GPUSpec, model: ModelConfig, sc: Scenario, traffic: Traffic, cells: dict,
                   cap: dict) -> None:
    """The first sheet: the answer (a live sentence over the other sheets), the traffic / SLO / price inputs
    every sheet reads, the answer's figures, capacity's figure beside the workbook's, then the model."""
    ws = wb.create_sheet("Summary", 0)
    wb.active = 0
    prec = f"{sc.weights}/{sc.activations}/{sc.kv}"
    ws.cell(1, 1, f"Capacity plan: {model.name} on {gpu.display_name}, TP {sc.tp}, weights/activations/KV {prec}"
            ).font = Font(bold=True, size=14)
    ws.cell(2, 1, _verdict_formula(cells)).font = Font(bold=True, size=12)
    ws.cell(2, 1).alignment = WRAP
    ws.merge_cells("A2:C2")
    ws.row_dimensions[2].height = 48
    cells["summary.verdict"] = "'Summary'!A2"
    r = _block_title(ws, 4, "Traffic, SLOs and price (edit the yellow cells: every sheet reads them)")
    inputs = [("rps", "requests per second (peak)", traffic.requests_per_s, "#,##0.0##", "req/s"),
              ("slo_ttft_ms", "TTFT SLO", traffic.slo_ttft_ms, MS,
               "time to first token: the batch's prefill here, p99 in capacity"),
              ("slo_tpot_ms", "TPOT SLO", traffic.slo_tpot_ms, MS,
               "time per output token: the step at the decode context here, p99 in capacity"),
              ("usd", "price per GPU-hour", traffic.gpu_hour_usd, USD, "USD"),
              ("hours", "hours per month", traffic.hours_per_month, "#,##0", "730 = 8,760 h a year / 12")]
    for key, label, v, fmt, note in inputs:
        ws.cell(r, 1, label)
        c = ws.cell(r, 2, float(v))
        c.fill, c.number_format = INPUT, fmt
        ws.cell(r, 3, note)
        wb.defined_names[f"in_{key}"] = DefinedName(f"in_{key}", attr_text=f"Summary!$B${r}")
        cells[f"summary.in_{key}"] = f"'Summary'!B{r}"
        r += 1
    S = {k: cells[f"sizing.{k}"] for k in ("gpus", "replicas", "usd_per_hour", "usd_per_month", "usd_per_1m_tokens",
                                             "ttft_s", "tpot_s", "ttft_ok", "tpot_ok", "kv_use", "binding",
                                             "headroom")}
    answer = [
        ("fits", "deployment fits in memory?", f"={cells['memory.batch_fits']}", "General", ""),
        ("gpus", "GPUs needed", f"={S['gpus']}", COUNT, '="x "&in_gpu'),
        ("replicas", "replicas", f"={S['replicas']}", COUNT, '="of TP "&in_tp&" at batch "&in_batch&" each"'),
        ("usd_per_hour", "cost per hour", f"={S['usd_per_hour']}", USD, ""),
        ("usd_per_month", "cost per month", f"={S['usd_per_month']}", USD0, '="at "&in_hours&" hours"'),
        ("usd_per_1m_tokens", "cost per 1M output tokens", f"={S['usd_per_1m_tokens']}", USD, "at this traffic"),
        ("ttft_ms", "TTFT (prefill of the batch)", f"={S['ttft_s']}*1000", MS,
         f'="SLO "&in_slo_ttft_ms&" ms met? "&{S["ttft_ok"]}'),
        ("tpot_ms", "TPOT at the decode context", f"={S['tpot_s']}*1000", MS,
         f'="SLO "&in_slo_tpot_ms&" ms met? "&{S["tpot_ok"]}'),
        ("kv_use", "KV-cache use (batch / max batch)", f"={S['kv_use']}", PCT, ""),
        ("binding", "binding limit", f"={S['binding']}", "General", "the largest of KV use, TPOT / SLO, TTFT / SLO"),
        ("headroom", "headroom to the binding limit", f"={S['headroom']}", PCT, ""),
    ]
    r = _block_title(ws, r + 1, "The answer (live: follows every input here and on the Inputs sheet)")
    for key, label, f, fmt, note in answer:
        ws.cell(r, 1, label)
        ws.cell(r, 2, f).number_format = fmt
        ws.cell(r, 3, note)
        cells[f"summary.{key}"] = f"'Summary'!B{r}"
        r += 1
    r = _block_title(ws, r + 1, "Two sizing methods: this workbook and `roofline capacity`")
    row = cap["row"] or {}
    feasible = bool(row.get("feasible"))
    t = traffic
    same = (f"AND(in_rps={float(t.requests_per_s)!r},in_slo_ttft_ms={t.slo_ttft_ms!r},in_slo_tpot_ms="
            f"{t.slo_tpot_ms!r},in_usd={float(t.gpu_hour_usd)!r},in_tp={sc.tp},in_prompt={sc.prompt},"
            f"in_output={sc.output})")
    methods = [
        ("gpus_workbook", "GPUs needed: this workbook (live; Little's law at the fixed batch)", f"={S['gpus']}",
         COUNT),
        ("gpus_capacity", "GPUs needed: roofline capacity (queueing model at p99; as written)",
         row["gpus"] if feasible else "none: infeasible" if row else "not computed", COUNT),
        ("usd_per_hour_capacity", "cost per hour: roofline capacity",
         row.get("cost_per_hour") if feasible else "-", USD),
        ("load_capacity", "capacity's replica",
         f"{row['max_request_rate_per_replica']:,.3g} req/s at a mean batch of {row['batch']:,.0f}, limited by "
         f"{_limit_text(row['limited_by'])}" if feasible else (row.get("reason") or cap["verdict"]), "General"),
        ("capacity_current", "capacity's figures are for",
         f'=IF({same},"the inputs above","NOT the inputs now in this workbook (edited since): rerun the command '
         'below")', "General"),
    ]
    for key, label, v, fmt in methods:
        ws.cell(r, 1, label)
        ws.cell(r, 2, v).number_format = fmt
        cells[f"summary.{key}"] = f"'Summary'!B{r}"
        r += 1
    ws.cell(r, 1, "capacity's answer:").font = BOLD
    r = _long_text(ws, r + 1, cap["verdict"], 2)
    cells["summary.capacity_verdict"] = f"'Summary'!A{r - 1}"
    ws.cell(r, 1, "reproduce it:").font = BOLD
    r = _long_text(ws, r + 1, cap["command"], 2)
    cells["summary.two_methods"] = f"'Summary'!A{r}"
    r = _long_text(ws, r, TWO_METHODS, 6)
    r = _block_title(ws, r + 1, "The model and deployment (edit on the Inputs sheet)")
    model_rows = [
        ("model", model.name, "General"), ("GPU", "=in_gpu", "General"),
        ("parameters", "=in_params", COUNT), ("precisions (weights/activations/KV)", prec, "General"),
        ("tensor-parallel degree (GPUs per replica)", "=in_tp", COUNT), ("batch per replica", "=in_batch", COUNT),
        ("prompt tokens", "=in_prompt", COUNT), ("output tokens", "=in_output", COUNT),
        ("decode context for TPOT", "=in_context", COUNT),
        ("weights per GPU", f"={cells['memory.weights_bytes']}/2^30", '#,##0.0" GiB"'),
        ("KV-cache capacity per GPU", f"={cells['memory.kv_cache_capacity_tokens']}", '#,##0" tokens"'),
        ("max batch at the decode context", f"={cells['memory.max_batch']}", COUNT),
        ("serving engine", sc.memory.engine, "General"),
    ]
    for label, v, fmt in model_rows:
        ws.cell(r, 1, label)
        ws.cell(r, 2, v).number_format = fmt
        r += 1
    _widths(ws, (62, 22, 62))


def _print_setup(ws, one_page: bool = False) -> None:
    """Print the used range one page wide (as many pages tall as it needs; `one_page`: one page), landscape."""
    ws.print_area = f"A1:{get_column_letter(max(ws.max_column, 1))}{max(ws.max_row, 1)}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1 if one_page else 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_options.gridLines = True


def build_workbook(gpu: GPUSpec, model: ModelConfig, scenario: Scenario | None = None,
                   efficiency: Efficiency | None = None, traffic: Traffic | None = None,
                   sweep_rows: list[dict] | None = None, training=None,
                   capacity: dict | None = None) -> tuple[Workbook, dict]:
    """The workbook and a map of result keys ('memory.max_batch', 'decode.op.qkv_proj.time_s', 'sizing.gpus',
    'summary.verdict', ...) to their cells, for tests and tools that read it back. `training` (a
    `training_sheet.TrainingSheetSpec`) adds the Training inputs and Training sheets ('training.step_time_s', ...);
    `capacity`: `capacity_figure` of the same inputs when the caller already has it (else computed here)."""
    sc = (scenario or Scenario()).checked(model)
    eff, cells = efficiency or Efficiency(), {}
    traffic = traffic or Traffic()
    wb = Workbook()
    _write_inputs(wb, _inputs(gpu, model, sc, eff))
    _write_memory(wb, model, cells)
    _write_pass(wb, model, "Prefill", "in_prompt", "0", "the prompts of the batch in one pass (TTFT)", cells,
                "prefill")
    _write_pass(wb, model, "Decode", "1", "in_context", "one decode step at the decode context (TPOT)", cells,
                "decode")
    _write_pass(wb, model, "Decode mean", "1", "in_prompt+(in_output-2)/2",
                "the step at the mid-generation context = mean step time (exact while no operator changes bound)",
                cells, "decode_mean")
    _write_sizing(wb, cells)
    _write_summary(wb, gpu, model, sc, traffic, cells, capacity or capacity_figure(gpu, model, sc, efficiency,
                                                                                   traffic))
    if training is not None:
        from roofline.report.training_sheet import write_training_sheets
        write_training_sheets(wb, gpu, model, training, cells)
    _write_sweep(wb, sweep_rows or [])
    for ws in wb.worksheets:
        _print_setup(ws, one_page=ws.title == "Summary")
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
