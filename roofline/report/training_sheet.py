"""The training sheets of the capacity workbook: memory per GPU and step time of one training layout as LIVE
Excel formulas, the twin of `roofline/model/training.py` (`memory_per_gpu`, `step_time`, `evaluate`).

`Training inputs` holds the layout (tp, pp, dp, cp, micro-batch, global batch, sequence, interleaving), the
recipe (precisions as bytes, ZeRO stage, recomputation, sequence parallelism, dropout, overlap, reserve), the
GPU's peaks, the efficiency, the parameter counts by part and the collectives, each a defined name `tr_<key>`;
the model's dimensions are the `in_*` names of the Inputs sheet. `Training` computes the busiest pipeline
stage's memory (weights, gradients, optimizer states by ZeRO stage, Korthikanti et al. 2022 activations per
layer, in-flight micro-batches, logits, reserve) and one forward pass per operator (the formulas of
`report/formulas.py` with training's shapes), then the step: backward, recomputation, TP/CP collectives,
pipeline bubble and sends, exposed data-parallel communication, optimizer step, tokens/s, TFLOP/s per GPU, MFU.

What is fixed when the sheet is written (a change needs a new workbook): the architecture (which operators),
the fused attention kernel's measured fractions of peak at the layout's sequence length, and each collective as
latency + bytes x seconds-per-byte fitted by `model/comm.py` at the layout's message size (S and 2S), so a
change of TP, CP or DP that switches the algorithm or the link needs a new workbook. Expert parallelism is not
modelled by the sheet (`ep` must be 1). The tests recalculate the sheet and compare with `roofline.train`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from openpyxl import Workbook

from roofline.errors import RooflineError
from roofline.model.ops import operators_for
from roofline.model.training import (ATTENTION_CORE, UNFUSED, Layout, Recipe, _SKIPPED, attention_fractions, fact,
                                     parameters_per_gpu)
from roofline.report.formulas import OPERATOR_FORMULAS, PassRefs
from roofline.report.spreadsheet import BOLD, HEAD, PEAKS as SERVING_PEAKS, RowWriter, _widths, device_rows, \
    fit_collective, roofline_formula, write_input_rows
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.specs.precision import EMBEDDING_MIN_BYTES, bytes_per_element

INPUTS_SHEET = "Training inputs"
SHEET = "Training"
#: the serving names the operator formulas use that training sets itself (tp, precisions; KV = activations)
_RENAMES = {"in_tp": "tr_tp", "in_w": "tr_w", "in_a": "tr_a", "in_kv": "tr_a"}
_RENAME = re.compile(r"\b(in_tp|in_w|in_a|in_kv)\b")


@dataclass(frozen=True)
class TrainingSheetSpec:
    """One training layout for the workbook (the `Layout` holds scalars)."""

    layout: Layout
    recipe: Recipe


def _training(expr: str) -> str:
    return _RENAME.sub(lambda m: _RENAMES[m.group(1)], expr)


def _fit(gpu: GPUSpec, collective: str, size: float, group: float, span: float) -> tuple[float, float, str]:
    """`fit_collective` as `model/training._coll` times it (NCCL, no custom all-reduce, span at least the
    group); nothing to fit without bytes or a group."""
    if size <= 0 or group <= 1:
        return 0.0, 0.0, "none at this layout"
    return fit_collective(gpu, collective, size, group, max(span, group), custom_allreduce=False)


def _collectives(gpu: GPUSpec, model: ModelConfig, L: Layout, recipe: Recipe) -> list:
    """The collectives of the step at the layout's message sizes (the same sizes as `step_time`)."""
    tp, pp, dp, cp = (float(np.asarray(x)) for x in (L.tp, L.pp, L.dp, L.cp))
    tokens = float(np.asarray(L.micro_batch * L.seq / L.cp))
    res = max(bytes_per_element(recipe.compute), 2.0)
    kv = tokens * float(model.kv_heads_per_gpu(tp)) * (model.head_dim + model.v_head_dim) * res
    dense, experts = (float(np.asarray(x)) for x in parameters_per_gpu(model, L))
    g, w = bytes_per_element(recipe.grads), bytes_per_element(recipe.weights)
    sp = tp if recipe.sequence_parallel else 1.0
    span_dp = tp * (dp * cp - 1.0) + 1.0
    rows = [("tp_ar", "TP all-reduce per layer and pass", "all_reduce", tokens * model.hidden_size * res, tp, tp),
            ("cp_ag", "CP all-gather of K/V per layer", "all_gather", kv * cp, cp, tp * cp),
            ("cp_rs", "CP reduce-scatter of K/V gradients per layer", "reduce_scatter", kv * cp, cp, tp * cp),
            ("send", "pipeline send/recv of one micro-batch", "send_recv", tokens * model.hidden_size * res / sp,
             2.0 if pp > 1 else 1.0, tp * cp * dp + 1.0),
            ("dp_ar", "DP all-reduce of the gradients (ZeRO 0)", "all_reduce", dense * g, dp * cp, span_dp),
            ("dp_rs", "DP reduce-scatter of the gradients (ZeRO 1-3)", "reduce_scatter", dense * g, dp * cp, span_dp),
            ("dp_ag", "DP all-gather of the weights (ZeRO 1-3)", "all_gather", dense * w, dp * cp, span_dp),
            ("dpe_ar", "DP all-reduce of the expert gradients (ZeRO 0)", "all_reduce", experts * g, dp * cp, span_dp),
            ("dpe_rs", "DP reduce-scatter of the expert gradients", "reduce_scatter", experts * g, dp * cp, span_dp),
            ("dpe_ag", "DP all-gather of the expert weights", "all_gather", experts * w, dp * cp, span_dp)]
    out = [("#", "Collectives (model/comm.py at this layout: latency + bytes x s/byte)")]
    for key, label, coll, size, group, span in rows:
        lat, spb, how = _fit(gpu, coll, size, group, span)
        out += [(f"cl_{key}", f"{label}: latency ({how})", lat, "s"),
                (f"cb_{key}", f"{label}: seconds per byte", spb, "s/byte")]
    return out


def _inputs(gpu: GPUSpec, model: ModelConfig, L: Layout, recipe: Recipe) -> list:
    eff = recipe.efficiency
    fr = None if recipe.attention_kernel == UNFUSED else \
        attention_fractions(gpu, recipe.attention_kernel, L.seq / L.cp, model.head_dim)
    b = model.parameter_breakdown()
    v = lambda x: float(np.asarray(x))  # noqa: E731
    return [
        ("#", f"GPU {gpu.display_name} (datasheet, dense peaks)"),
        *device_rows(gpu, recipe.compute, recipe.weights, eff),
        ("f_fwd", "fused attention forward: fraction of the attention peak at this sequence",
         0.0 if fr is None else v(fr[0]), "fraction"),
        ("f_bwd", "fused attention backward: fraction of the attention peak at this sequence",
         0.0 if fr is None else v(fr[1]), "fraction"),
        ("bwd_ratio", "attention backward FLOPs over forward (FlashAttention-2)",
         fact("attention", "backward_flops_ratio"), ""),
        ("#", "Layout"),
        ("tp", "tensor-parallel degree (with sequence parallelism)", int(v(L.tp)), ""),
        ("pp", "pipeline stages", int(v(L.pp)), ""), ("dp", "data-parallel degree", int(v(L.dp)), ""),
        ("cp", "context-parallel degree", int(v(L.cp)), ""),
        ("mb", "micro-batch (sequences)", int(v(L.micro_batch)), ""),
        ("gb", "global batch (sequences per optimizer step)", int(v(L.global_batch)), ""),
        ("seq", "sequence length", int(v(L.seq)), "tokens"),
        ("v", "model chunks per GPU (1 = 1F1B, > 1 interleaved)", recipe.virtual_stages, ""),
        ("#", "Recipe"),
        ("w", f"weight bytes per element ({recipe.weights})", bytes_per_element(recipe.weights), "bytes"),
        ("g", f"gradient bytes per element ({recipe.grads})", bytes_per_element(recipe.grads), "bytes"),
        ("a", f"compute (activation) bytes per element ({recipe.compute})", bytes_per_element(recipe.compute),
         "bytes"),
        ("state", f"master weights + Adam moments per parameter ({recipe.master} + 2 x {recipe.optimizer})",
         recipe.state_bytes_per_parameter, "bytes"),
        ("zero", "ZeRO stage (0-3)", recipe.zero, ""),
        ("recompute", "activation recomputation (none, selective or full)", recipe.recompute, ""),
        ("sp", "sequence parallelism (1 = yes)", int(recipe.sequence_parallel), ""),
        ("dropout", "dropout masks stored (1 = yes)", int(recipe.dropout), ""),
        ("overlap", "fraction of DP communication that may hide behind compute", recipe.dp_overlap, "fraction"),
        ("reserve", "runtime reserve per GPU", fact("memory", "runtime_reserve_bytes"), "bytes"),
        ("reserve_frac", "fragmentation: fraction of GPU memory held back", recipe.reserve_fraction, "fraction"),
        ("#", f"Parameters of {model.name}"),
        ("layer_params", "layers' dense part (attention, dense MLPs, shared experts, routers, norms)",
         b["attention"] + b["mlp"] + b["shared_experts"] + b["router"] + b["norms"], ""),
        ("expert_params", "routed experts", b["routed_experts"], ""),
        ("emb_params", "input embedding", model.embedding_parameters(), ""),
        ("head_params", "LM head (0 when tied)", model.lm_head_parameters(), ""),
        ("active_params", "matmul parameters per token (active, input embedding excluded unless tied)",
         model.active_parameters(include_embedding=False), ""),
        *_collectives(gpu, model, L, recipe),
    ]


def _write_inputs(wb: Workbook, rows: list) -> None:
    ws = wb.create_sheet(INPUTS_SHEET)
    write_input_rows(wb, ws, rows, "tr_")
    _widths(ws, (70, 22, 10, 18))


def _activation_per_layer(model: ModelConfig, c: dict) -> str:
    """model/training.activation_bytes_per_layer over the sheet's cells (the full-recompute branch apart)."""
    e, rep, mask, t = "MAX(tr_a,2)", c["rep"], "tr_dropout", "tr_tp"
    attn = (f"in_h*{e}*{rep}+({c['heads']}+{c['kvh']})*in_d*{e}+{c['kvh']}*in_vd*{e}+{c['heads']}*in_vd*{e}"
            f"+in_h*{mask}*{rep}")
    g = "2" if model.gated_mlp else "1"
    if model.num_experts:
        moe = (f"in_h*{e}*{rep}+in_topk*(in_h*{e}+in_moe_inter/{t}*({g}+1)*{e})+in_h*{mask}*{rep}"
               f"+in_shared*in_moe_inter/{t}*({g}+1)*{e}")
        dense = f"in_h*{e}*{rep}+in_inter/{t}*({g}+1)*{e}+in_h*{mask}*{rep}"
        mlp = f"in_moe_layers/in_layers*({moe})+(1-in_moe_layers/in_layers)*({dense})"
    else:
        mlp = f"in_h*{e}*{rep}+in_inter/{t}*{g}*{e}+in_inter/{t}*{e}+in_h*{mask}*{rep}"
    per_token = f"({attn})+({mlp})+2*in_h*{e}*{rep}"
    scores = f'IF(tr_recompute="none",tr_mb*{c["heads"]}*{c["s"]}*tr_seq*(2+3*{mask}),0)'
    return (f'=IF(tr_recompute="full",{c["T"]}*in_h*{e}*{rep},{c["T"]}*({per_token})+{scores})')


#: the serving sheets' peaks over the Training inputs' names
PEAKS = {unit: f.replace("in_", "tr_") for unit, f in SERVING_PEAKS.items()}
OP_COLUMNS = ("operator", "unit", "count", "kernels", "role", "flops", "bytes", "compute_s", "memory_s",
              "overhead_s", "time_s")


def _op_table(ws, start: int, model: ModelConfig, refs: PassRefs, fused: bool, cells: dict) -> dict:
    """One forward pass of one micro-batch per operator (per GPU, every layer: the stage's share is applied
    below); returns, per role, the list of time (or FLOP) cells."""
    for j, name in enumerate(OP_COLUMNS, start=1):
        c = ws.cell(start, j, name)
        c.font, c.fill = BOLD, HEAD
    r, roles = start + 1, {"layer": [], "attention": [], "fused": [], "first": [], "last": []}
    ops = [(op.name, op.unit, count, op.scope, OPERATOR_FORMULAS[op.name](model, refs))
           for op, count in operators_for(model) if op.unit != "link" and op.name not in _SKIPPED]
    emb = refs.emb  # the training LM head over every token, and the fp32 softmax + cross-entropy
    head = (f"2*({refs.T})*(in_vocab/tr_tp)*(in_h)", f"(in_h)*(in_vocab/tr_tp)*{emb}+({refs.T})*(in_h)*tr_a",
            f"({refs.T})*(in_vocab/tr_tp)*4", 1.0)
    loss = (f"5*{refs.T}*in_vocab/tr_tp", f"{refs.T}*in_vocab/tr_tp*4", f"{refs.T}*in_vocab/tr_tp*4", 2.0)
    rows = [(n, u, k, s, (_training(f[0]), _training(f[1]), _training(f[2]), f[3])) for n, u, k, s, f in ops]
    rows += [("lm_head (every token)", "tensor", 1, "model", head), ("loss (softmax + cross-entropy)", "vector", 1,
                                                                      "model", loss)]
    for name, unit, count, scope, (flops, read, write, kernels) in rows:
        role = ("first" if name == "embedding" else "last") if scope == "model" else \
            ("fused" if fused else "attention") if name in ATTENTION_CORE else "layer"
        ws.cell(r, 1, name)
        ws.cell(r, 2, unit)
        ws.cell(r, 3, count)
        ws.cell(r, 4, kernels)
        ws.cell(r, 5, role)
        ws.cell(r, 6, f"=C{r}*({flops})")
        ws.cell(r, 7, f"=C{r}*(({read})+({write}))")
        ws.cell(r, 8, f"=F{r}/({PEAKS[unit]})")
        ws.cell(r, 9, f"=G{r}/(tr_bw*tr_eff_m)")
        ws.cell(r, 10, f"=C{r}*D{r}*tr_overhead")
        ws.cell(r, 11, "fused kernel, below" if role == "fused"
                else f"={roofline_formula(f'H{r}', f'I{r}', unit, 'tr_knee_p')}+J{r}")
        roles[role].append(f"F{r}" if role == "fused" else f"K{r}")
        cells[f"training.op.{name}.time_s"] = f"'{SHEET}'!K{r}"
        r += 1
    return roles


def _sum(refs: list[str]) -> str:
    return "+".join(f"${x[0]}${x[1:]}" for x in refs) if refs else "0"


def write_training_sheets(wb: Workbook, gpu: GPUSpec, model: ModelConfig, spec: TrainingSheetSpec,
                          cells: dict) -> None:
    """Add `Training inputs` and `Training` to a workbook whose Inputs sheet defines the model's `in_*`
    dimensions; record the result cells in `cells` ('training.total_bytes', 'training.step_time_s', ...)."""
    L, recipe = spec.layout, spec.recipe
    if float(np.asarray(L.ep)) != 1.0:
        raise RooflineError("the training sheet models expert parallelism 1 only, got ep="
                            f"{int(np.asarray(L.ep))}", hint="use `roofline train` for expert-parallel layouts",
                            exit_code=2, param="ep")
    _write_inputs(wb, _inputs(gpu, model, L, recipe))
    ws = wb.create_sheet(SHEET)
    s = RowWriter(ws, cells, "training")
    s.title(f"Training {model.name} on {gpu.display_name}: the busiest pipeline stage (inputs: '{INPUTS_SHEET}')")
    c = {"s": s.add("seq_per_rank", "sequence per context-parallel rank", "=tr_seq/tr_cp", "tokens")}
    c["T"] = s.add("tokens", "tokens per micro-batch per GPU (T)", f"=tr_mb*{c['s']}", "tokens")
    c["S"] = s.add("", "sequences per micro-batch (S)", "=tr_mb")
    unfused = recipe.attention_kernel == UNFUSED
    c["pairs"] = s.add("", "query-key pairs per micro-batch (the whole square: unfused attention)", "=tr_mb*tr_seq*tr_seq/tr_cp") \
        if unfused else s.add("", "causal query-key pairs per micro-batch", "=tr_mb*tr_seq*(tr_seq+1)/2/tr_cp")
    c["heads"] = s.add("", "query heads per GPU", "=in_heads/tr_tp")
    c["kvh"] = s.add("", "KV heads per GPU", "=MAX(in_kvh/tr_tp,1)")
    c["emb"] = s.add("", "embedding / LM-head bytes per element", f"=MAX(tr_w,{EMBEDDING_MIN_BYTES:g})", "bytes")
    c["layers"] = s.add("stage_layers", "layers on the busiest stage", "=ROUNDUP(in_layers/tr_pp,0)")
    c["share"] = s.add("", "the stage's share of the layers", f"={c['layers']}/in_layers")
    c["m"] = s.add("micro_batches", "micro-batches per data-parallel rank per step", "=tr_gb/(tr_mb*tr_dp)")
    c["rep"] = s.add("", "replicated activations' divisor (1/tp with sequence parallelism)", "=IF(tr_sp=1,1/tr_tp,1)")
    c["res"] = s.add("", "bytes per element on the wire", "=MAX(tr_a,2)", "bytes")
    s.r += 1
    s.title("Memory per GPU")
    dense = s.add("dense_parameters", "dense parameters on the GPU (TP-sharded)",
                  f"=(tr_layer_params*{c['share']}+IF(tr_pp>1,tr_emb_params,tr_emb_params+tr_head_params))/tr_tp")
    experts = s.add("expert_parameters", "routed-expert parameters on the GPU (TP-sharded)",
                    f"=tr_expert_params*{c['share']}/tr_tp")
    shard = s.add("", "ZeRO shards (dp x cp)", "=tr_dp*tr_cp")
    s.add("weights_bytes", "weights",
          f"=({dense}+{experts})*tr_w/IF(tr_zero>=3,{shard},1)+IF(tr_zero>=3,2*({dense}+{experts})/{c['layers']}"
          "*tr_w,0)", "bytes")
    s.add("gradients_bytes", "gradients", f"=({dense}+{experts})*tr_g/IF(tr_zero>=2,{shard},1)", "bytes")
    s.add("optimizer_bytes", "master weights + Adam moments", f"=({dense}+{experts})*tr_state/IF(tr_zero>=1,{shard},1)",
          "bytes")
    per_layer = s.add("activations_per_layer_bytes", "activations per layer per micro-batch (Korthikanti et al.)",
                      _activation_per_layer(model, c), "bytes")
    first = s.add("", "first stage: in-flight micro-batches x layers",
                  f"={per_layer}*{c['layers']}*MIN(tr_pp,{c['m']})*IF(tr_v>1,1+(tr_pp-1)/(tr_pp*tr_v),1)", "bytes")
    logits = s.add("", "fp32 logits of one micro-batch", "=4*tr_mb*tr_seq/tr_cp*in_vocab/tr_tp", "bytes")
    s.add("activations_bytes", "activations (busiest stage)",
          f"=IF(tr_pp>1,MAX({first},{per_layer}*{c['layers']}+{logits}),{first}+{logits})", "bytes")
    s.add("reserve_bytes", "runtime reserve + fragmentation", "=tr_reserve+tr_reserve_frac*tr_mem", "bytes")
    rows = [cells[f"training.{k}"].split("!")[1] for k in ("weights_bytes", "gradients_bytes", "optimizer_bytes",
                                                           "activations_bytes", "reserve_bytes")]
    total = s.add("total_bytes", "memory per GPU", "=" + "+".join(rows), "bytes")
    s.add("fits", "fits?", f'=IF({total}<=tr_mem,"yes","NO: does not fit")')
    s.r += 1
    refs = PassRefs(T=c["T"], S=c["S"], pairs=c["pairs"], reads=c["T"], heads=c["heads"], kvh=c["kvh"],
                    emb=c["emb"], decode=False)
    fused = not unfused and attention_fractions(gpu, recipe.attention_kernel, L.seq / L.cp, model.head_dim) is not None
    op_start = s.r + 28
    roles = _op_table(ws, op_start, model, refs, fused, cells)
    s.title("Step time (one optimizer step, the busiest stage); operators of one forward pass below")
    attn_flops = s.add("", "attention-core FLOPs on the stage (fused kernel)", f"=({_sum(roles['fused'])})*{c['share']}",
                       "FLOP")
    if fused:  # one fused kernel at its measured fractions of the attention peak, forward and backward
        attn_fwd = s.add("attention_forward_s", "attention core forward (fused kernel)",
                         f"={attn_flops}/(tr_attn_peak*tr_f_fwd)", "s")
        attn_bwd = s.add("", "attention core backward (fused kernel)",
                         f"=tr_bwd_ratio*{attn_flops}/(tr_attn_peak*tr_f_bwd)", "s")
    elif unfused:  # the score matrix through memory (model/training.py step_time), backward twice the forward
        rw = "(1+tr_dropout)"
        mat = s.add("", "score matrix written, softmaxed (and dropped out) and read back, the stage's layers",
                    f"={c['layers']}*({c['pairs']}*{c['heads']}*(2*({rw}+1)*tr_a+tr_dropout)/(tr_bw*tr_eff_m)"
                    f"+{rw}*tr_overhead)", "s")
        attn_fwd = s.add("attention_forward_s", "attention core forward (unfused)",
                         f"=({_sum(roles['attention'])})*{c['share']}+{mat}", "s")
        attn_bwd = s.add("", "attention core backward (2 x forward: no recomputation inside)", f"=2*{attn_fwd}",
                         "s")
    else:  # no measured table for this GPU: the attention operators on the roofline, backward at the FLOP ratio
        attn_fwd = s.add("attention_forward_s", "attention core forward",
                         f"=({_sum(roles['attention'])})*{c['share']}", "s")
        attn_bwd = s.add("", "attention core backward", f"=tr_bwd_ratio*{attn_fwd}", "s")
    layer = s.add("", "the stage's layers, forward (attention core included)",
                  f"=({_sum(roles['layer'])})*{c['share']}+{attn_fwd}", "s")
    first_t, last_t = _sum(roles["first"]), _sum(roles["last"])
    fwd = s.add("forward_micro_s", "forward of one micro-batch",
                f"={layer}+IF(tr_pp>1,MAX({first_t},{last_t}),{first_t}+{last_t})", "s")
    bwd = s.add("backward_micro_s", "backward (2 x forward; the attention core at its own ratio)",
                f"=2*({fwd}-{attn_fwd})+{attn_bwd}", "s")
    rec = s.add("", "recomputed forward (full; selective: the unfused attention core)",
                f'=IF(tr_recompute="full",{layer},IF(tr_recompute="selective",{attn_fwd},0))', "s") if unfused else \
        s.add("", "recomputed forward (full recomputation)", f'=IF(tr_recompute="full",{layer},0)', "s")
    passes = '(2+IF(tr_recompute="full",1,0))'
    per_layer_tp = 1 if model.parallel_attn_mlp else 2
    tp_s = s.add("", "TP / sequence-parallel collectives",
                 f"={passes}*{per_layer_tp}*{c['layers']}*(tr_cl_tp_ar+{c['T']}*in_h*{c['res']}*tr_cb_tp_ar)", "s")
    kv = f"{c['T']}*{c['kvh']}*(in_d+in_vd)*{c['res']}*tr_cp"
    cp_s = s.add("", "CP collectives",
                 f"={c['layers']}*((tr_cl_cp_ag+{kv}*tr_cb_cp_ag)*(1+IF(tr_recompute=\"full\",1,0))"
                 f"+tr_cl_cp_rs+{kv}*tr_cb_cp_rs)", "s")
    micro = s.add("", "one micro-batch through the stage", f"={fwd}+{bwd}+{rec}+{tp_s}+{cp_s}", "s")
    s.add("pipeline_bubble_s", "pipeline bubble", f"=(tr_pp-1)/tr_v*{micro}", "s")
    pipe = s.add("", "pipeline: (m + (p-1)/v) micro-batch slots", f"=({c['m']}+(tr_pp-1)/tr_v)*{micro}", "s")
    send = f"(tr_cl_send+{c['T']}*in_h*{c['res']}/IF(tr_sp=1,tr_tp,1)*tr_cb_send)"
    p2p = s.add("pipeline_send_s", "pipeline sends", f"=IF(tr_pp>1,2*tr_v*{c['m']}*{send},0)", "s")

    def dp_time(params: str, k: str) -> str:
        ar = f"(tr_cl_{k}_ar+{params}*tr_g*tr_cb_{k}_ar)"
        rs = f"(tr_cl_{k}_rs+{params}*tr_g*tr_cb_{k}_rs)"
        ag = f"(tr_cl_{k}_ag+{params}*tr_w*tr_cb_{k}_ag)"
        return f"IF({params}>0,IF(tr_zero=0,{ar},IF(tr_zero=3,{c['m']}*(2*{ag}+{rs}),{rs}+{ag})),0)"
    # with ep = 1 the experts' gradients travel over the same dp x cp group as the dense ones, in their own
    # collectives
    dp_s = s.add("dp_comm_s", "data-parallel communication", f"={dp_time(dense, 'dp')}+{dp_time(experts, 'dpe')}",
                 "s")
    window = f"IF(tr_zero=3,{c['m']}*({fwd}+{bwd}+{rec}),{bwd}+{rec}+{fwd})"
    first_ag = f"IF(tr_zero=3,{dp_s}/(3*{c['layers']})*2,0)"
    exposed = s.add("dp_comm_exposed_s", "data-parallel communication not hidden (the overlap assumption)",
                    f"={dp_s}-MIN(tr_overlap*MAX({dp_s}-{first_ag},0),{window})", "s")
    opt = s.add("optimizer_s", "optimizer step (memory-bound over the local shard)",
                f"=({dense}+{experts})/IF(tr_zero>=1,{shard},1)*(2*tr_state+tr_g+tr_w)/(tr_bw*tr_eff_m)"
                "+4*tr_overhead", "s")
    step = s.add("step_time_s", "step time", f"={pipe}+{p2p}+{exposed}+{opt}", "s")
    tps = s.add("tokens_per_s", "tokens per second", f"=tr_gb*tr_seq/{step}", "tokens/s")
    mf = s.add("model_flops_per_token", "model FLOPs per token (6N + 6 L s (q + v widths))",
               "=6*tr_active_params+6*in_layers*tr_seq*in_heads*(in_d+in_vd)", "FLOP")
    per_gpu = s.add("tflops_per_gpu", "model TFLOP/s per GPU", f"={tps}*{mf}/(tr_tp*tr_pp*tr_dp*tr_cp)/1000000000000",
                    "TFLOP/s")
    s.add("mfu", "MFU (model FLOPs over the dense peak)", f"={per_gpu}*1000000000000/tr_peak", "fraction")
    if s.r >= op_start:
        raise AssertionError("the step-time block overlaps the operator table")  # a layout bug, not user input
    ws.cell(op_start - 1, 1, "Forward pass of one micro-batch, per operator (all layers; x the stage's share above)"
            ).font = BOLD
    _widths(ws, (62, 18, 8, 8, 10, 16, 16, 14, 14, 14, 14))
    for r in range(2, op_start):
        ws.cell(r, 2).number_format = "#,##0.000000"
