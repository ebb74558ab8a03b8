"""The training sheets recalculate (formula engine, no Excel) to `roofline.train`, stay live when an input
changes, and the report's training section is the best layout of `train_search`, planned."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import openpyxl
import pytest

import roofline
from roofline.errors import RooflineError
from roofline.model.analysis import Scenario
from roofline.model.training import Layout, Recipe
from roofline.report.document import ReportSpec, write_report
from roofline.report.spreadsheet import write_workbook
from roofline.report.training_section import best_training
from roofline.report.training_sheet import INPUTS_SHEET, TrainingSheetSpec
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

formulas = pytest.importorskip("formulas")
sys.path.insert(0, str(Path(__file__).parent))
from test_spreadsheet import recalculate, value  # noqa: E402

#: (gpu, model, layout, recipe): H100 (fused FlashAttention table) with TP + interleaved PP; A100 (attention on
#: the roofline) with context parallelism, ZeRO 3 and full recomputation; an MoE with ZeRO 0, no recomputation
CASES = [
    ("h100-sxm", "llama-3.1-8b", dict(tp=2, pp=2, dp=4, micro_batch=1, global_batch=64, seq=4096),
     dict(virtual_stages=2)),
    ("a100-sxm-80gb", "llama-3.1-8b", dict(tp=4, pp=1, dp=2, cp=2, micro_batch=2, global_batch=32, seq=8192),
     dict(zero=3, recompute="full")),
    ("h100-sxm", "mixtral-8x7b", dict(tp=4, pp=4, dp=2, micro_batch=1, global_batch=64, seq=4096),
     dict(zero=0, recompute="none")),
    # pre-FlashAttention Megatron: the score matrix through memory, selective recomputation re-runs the core
    ("a100-sxm-80gb", "llama-3.1-8b", dict(tp=2, pp=2, dp=2, micro_batch=2, global_batch=32, seq=2048),
     dict(attention_kernel="unfused", virtual_stages=2)),
]
#: what the sheet computes, against roofline.train's keys (memory per GPU is `memory_per_gpu_bytes` there)
KEYS = ("weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_per_layer_bytes", "activations_bytes",
        "reserve_bytes", "total_bytes", "pipeline_bubble_s", "pipeline_send_s", "dp_comm_s", "dp_comm_exposed_s",
        "optimizer_s", "step_time_s", "tokens_per_s", "tflops_per_gpu", "mfu")
#: the collectives are latency + bytes x s/byte fitted at S and 2S (exact for a ring); float rounding elsewhere
TOLERANCE = 1e-3


def _train(gpu, model, layout, recipe) -> dict:
    r = roofline.train(model=model, gpu=gpu, **layout, **recipe)
    return {**r, "total_bytes": r["memory_per_gpu_bytes"]}


def _workbook(path, gpu, model, layout, recipe):
    spec = TrainingSheetSpec(Layout.of(**layout), Recipe(**recipe))
    return write_workbook(path, load_gpu(gpu), load_model(model), Scenario(), training=spec)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_sheet_recalculates_to_the_model(case, tmp_path):
    gpu, model, layout, recipe = CASES[case]
    path, cells = _workbook(tmp_path / "t.xlsx", gpu, model, layout, recipe)
    vals = recalculate(path)
    want = _train(gpu, model, layout, recipe)
    for k in KEYS:
        got = value(vals, cells[f"training.{k}"])
        assert got == pytest.approx(want[k], rel=TOLERANCE), k
    assert value(vals, cells["training.micro_batches"]) == want["micro_batches"]
    assert value(vals, cells["training.fits"]) == ("yes" if want["fits"] else "NO: does not fit")


def test_sheet_stays_live_when_inputs_change(tmp_path):
    """Edit the global batch (8 more micro-batches per rank) and the ZeRO stage in the Training inputs sheet, as a
    user would; the recalculated memory and step time follow roofline.train at the new values."""
    gpu, model, layout, recipe = CASES[0]
    path, cells = _workbook(tmp_path / "t.xlsx", gpu, model, layout, recipe)
    wb = openpyxl.load_workbook(path)
    ws = wb[INPUTS_SHEET]
    rows = {ws.cell(r, 4).value: r for r in range(1, ws.max_row + 1)}
    ws.cell(rows["tr_gb"], 2, 128)   # 128 / (1 x 4) = 32 micro-batches per rank instead of 16
    ws.cell(rows["tr_zero"], 2, 2)   # gradients sharded too
    wb.save(path)
    vals = recalculate(path)
    want = _train(gpu, model, {**layout, "global_batch": 128}, {**recipe, "zero": 2})
    for k in ("gradients_bytes", "total_bytes", "step_time_s", "tokens_per_s"):
        assert value(vals, cells[f"training.{k}"]) == pytest.approx(want[k], rel=TOLERANCE), k
    before = _train(gpu, model, layout, recipe)
    assert want["gradients_bytes"] < before["gradients_bytes"]  # ZeRO 2 shards the gradients over dp = 4
    assert want["step_time_s"] > before["step_time_s"]          # twice the micro-batches


def test_sheet_refuses_expert_parallelism(tmp_path):
    with pytest.raises(RooflineError, match="expert parallelism") as e:
        _workbook(tmp_path / "t.xlsx", "h100-sxm", "mixtral-8x7b",
                  dict(tp=2, dp=4, ep=4, micro_batch=1, global_batch=64, seq=4096), {})
    assert e.value.param == "ep"


def test_report_training_section_is_the_best_searched_layout(tmp_path):
    g, m = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
    t = best_training(m, g, 16, 128, 4096, Recipe())
    rows = roofline.train_search(model="llama-3.1-8b", gpu="h100-sxm", gpus=16, global_batch=128, seq=4096)
    best = rows.iloc[0]
    assert (t.plan["tp"], t.plan["pp"], t.plan["dp"], t.plan["cp"], t.plan["micro_batch"]) == \
        tuple(int(best[k]) for k in ("tp", "pp", "dp", "cp", "micro_batch"))
    assert t.plan["tokens_per_s"] == pytest.approx(float(best["tokens_per_s"]), rel=1e-9)
    assert t.plan["gpus"] == 16 and t.plan["fits"]
    html_path = write_report(tmp_path / "r", ReportSpec(g, m, Scenario(), "roofline report", training=t))
    text = html_path.read_text()
    assert "<h2 id=training>Training</h2>" in text and t.command in text.replace("&#x27;", "'")
    assert "## Training" in (tmp_path / "r" / "report.md").read_text()
    doc = json.loads((tmp_path / "r" / "training.json").read_text())
    assert doc["best"]["step_time_s"] == pytest.approx(t.plan["step_time_s"])
    assert len(doc["layouts"]) == min(5, len(rows))


def test_best_training_none_fits():
    # llama-3.1-70b on one H100: 70e9 x 16 bytes of weights and optimizer states cannot fit 80 GB
    with pytest.raises(RooflineError, match="no layout of 1 h100-sxm fits") as e:
        best_training(load_model("llama-3.1-70b"), load_gpu("h100-sxm"), 1, 512, 4096, Recipe())
    assert e.value.exit_code == 1


def test_cli_report_and_spreadsheet_with_training(run_cli, tmp_path):
    code, out, err = run_cli("report", "--gpus", "h100-sxm", "--train-gpus", "8", "--train-global-batch", "64",
                             "--out-dir", str(tmp_path))
    assert code == 0, err
    folder = Path(out.strip()).parent
    assert (folder / "training.json").is_file()
    assert "--train-gpus 8" in (folder / "index.html").read_text()  # the reproducing command carries the options
    code, out, err = run_cli("spreadsheet", "--train-gpus", "8", "--train-global-batch", "64", "--out",
                             str(tmp_path / "c.xlsx"))
    assert code == 0, err
    assert {"Training inputs", "Training"} <= set(openpyxl.load_workbook(tmp_path / "c.xlsx").sheetnames)


@pytest.mark.parametrize("args,code,message", [
    (("--train-gpus", "0"), 2, "--train-gpus must be >= 1"),
    (("--train-gpus", "1", "--model", "llama-3.1-70b"), 1, "no layout of 1"),
    (("--train-gpus", "8", "--train-recompute", "some"), 2, "recompute must be one of"),
])
def test_cli_training_errors(run_cli, tmp_path, args, code, message):
    c, _, err = run_cli("spreadsheet", *args, "--out", str(tmp_path / "c.xlsx"))
    assert c == code and message in err and "Traceback" not in err
