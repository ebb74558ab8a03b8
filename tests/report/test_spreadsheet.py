"""The capacity workbook recalculates (formula engine, no Excel) to the model's own numbers."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from roofline import cli
from roofline.model.analysis import Scenario, analyze
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.model.ops import REGISTRY
from roofline.report.formulas import OPERATOR_FORMULAS
from roofline.report.spreadsheet import Traffic, build_workbook, write_workbook

formulas = pytest.importorskip("formulas")

CASES = [  # dense GQA; sliding window + extra norms; q/k norm; MoE + TP all-reduce; MLA + fp8 compute + 8-way TP
    ("h100-sxm", "llama-3.1-8b", Scenario(batch=32, kv="fp8")),
    ("h100-sxm", "gemma-2-9b", Scenario(batch=8, prompt=6000, output=300)),
    ("h100-sxm", "qwen3-8b", Scenario(batch=16, tp=2)),
    ("h200-sxm", "mixtral-8x7b", Scenario(batch=8, tp=2)),
    ("h200-sxm", "deepseek-v3", Scenario(batch=8, tp=8, weights="fp8", activations="fp8")),
]


def recalculate(path) -> dict:
    """Cell values after a full recalculation by the `formulas` engine: {"'Sheet'!B2": value}."""
    sol = formulas.ExcelModel().loads(str(path)).finish().calculate()
    out = {}
    for k, v in sol.items():
        if "!" in k and hasattr(v, "value"):
            sheet, cell = k.rsplit("!", 1)
            out[f"'{sheet.split(']', 1)[1].rstrip(chr(39)).upper()}'!{cell.upper()}"] = v.value[0][0]
    return out


def value(vals: dict, ref: str):
    sheet, cell = ref.rsplit("!", 1)
    return vals[f"'{sheet.strip(chr(39)).upper()}'!{cell.upper()}"]


def expected(r: dict) -> dict:
    m = r["memory"]
    exp = {f"memory.{k}": m[k] for k in ("weights_bytes", "activation_bytes", "kv_cache_bytes_per_token",
                                         "kv_cache_bytes_per_sequence", "kv_cache_capacity_bytes",
                                         "kv_cache_capacity_tokens", "max_batch")}
    exp |= {f"sizing.{k}": r[k] for k in ("ttft_s", "tpot_s", "mean_tpot_s", "e2e_latency_s", "output_tokens_per_s")}
    for ph in ("prefill", "decode"):
        exp[f"{ph}.flops"] = r[ph]["flops"]
        for o in r[ph]["operators"]:
            exp |= {f"{ph}.op.{o['name']}.{k}": o[k] for k in ("flops", "bytes_read", "bytes_written", "time_s")}
    return exp


#: the sizing test reads the llama workbook, written with this traffic (traffic changes no `analyze` figure)
SIZING_TRAFFIC = Traffic(10.0, 0.5, 0.05, 2.0)


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    """case index -> (gpu, model, scenario, cell map, recalculated values, analyze result), each workbook
    written and recalculated once per module (a recalculation takes ~2 s)."""
    done = {}

    def get(i: int):
        if i not in done:
            gpu, model, sc = CASES[i]
            g, m = load_gpu(gpu), load_model(model)
            path, cells = write_workbook(tmp_path_factory.mktemp(model) / "c.xlsx", g, m, sc,
                                         traffic=SIZING_TRAFFIC)
            done[i] = g, m, sc, cells, recalculate(path), analyze(g, m, sc)
        return done[i]
    return get


def worst_relative_difference(vals: dict, cells: dict, result: dict) -> float:
    worst = 0.0
    for key, want in expected(result).items():
        got = float(value(vals, cells[key]))
        worst = max(worst, abs(got - want) / abs(want) if want else abs(got))
    return worst


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[1] for c in CASES])
def test_workbook_recalculates_to_analyze(recalculated, i):
    _, _, _, cells, vals, r = recalculated(i)
    worst = worst_relative_difference(vals, cells, r)
    assert worst < 0.01, worst  # in practice ~1e-15: the formulas are the model's, term by term


def test_sizing_sheet(recalculated):
    # Little's law: 10 req/s x e2e latency sequences in flight, in replicas of `batch`
    _, m, sc, cells, vals, r = recalculated(0)
    assert (m.name, sc.batch) == ("llama-3.1-8b", 32)
    replicas = -(-10.0 * r["e2e_latency_s"] // 32)
    assert value(vals, cells["sizing.replicas"]) == replicas
    assert value(vals, cells["sizing.gpus"]) == replicas
    # cost = GPUs x $2/h over 10 req/s x 256 tokens x 3600 s, per 1e6 tokens
    assert value(vals, cells["sizing.usd_per_1m_tokens"]) == pytest.approx(replicas * 2.0 / (10 * 256 * 3600) * 1e6)
    assert value(vals, cells["sizing.tpot_ok"]) == "yes"


def test_every_operator_has_a_sheet_formula():
    assert set(REGISTRY) <= set(OPERATOR_FORMULAS)


def test_inputs_are_named_and_sheets_hold_formulas():
    wb, cells = build_workbook(load_gpu("h100-sxm"), load_model("llama-3.1-8b"))
    assert wb.sheetnames == ["Summary", "Inputs", "Memory", "Prefill", "Decode", "Decode mean", "Sizing", "Sweep"]
    assert {"in_batch", "in_context", "in_bw", "in_usd", "in_rps", "in_slo_tpot_ms", "in_hours"} <= set(wb.defined_names)
    sheet, cell = cells["decode.time_s"].rsplit("!", 1)
    assert wb[sheet.strip("'")][cell].value.startswith("=SUM(")


def test_spreadsheet_cli_writes_xlsx_and_csv(tmp_path, capsys):
    rc = cli.main(["spreadsheet", "--out", str(tmp_path / "cap.xlsx"), "--requests-per-s", "5"])
    assert rc == 0
    paths = capsys.readouterr().out.split()
    assert paths == [str(tmp_path / "cap.xlsx"), str(tmp_path / "cap-sweep.csv")]
    assert (tmp_path / "cap.xlsx").stat().st_size > 5000
    assert (tmp_path / "cap-sweep.csv").read_text().startswith("batch,context,tp,precision")


def _fails(capsys, args: list[str], code: int, *words: str) -> None:
    """The CLI exits with `code` and one `Error: ...` line (plus a hint), no traceback."""
    assert cli.main(args) == code, args
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err and "Hint: " in err, err
    for w in words:
        assert w in err, err


def test_spreadsheet_cli_rejects_bad_input(tmp_path, capsys):
    _fails(capsys, ["spreadsheet", "--out", str(tmp_path / "c.csv")], 2, "use a .xlsx file name")
    for flag in ("--requests-per-s", "--slo-ttft-ms", "--slo-tpot-ms", "--gpu-hour-usd"):
        for v in ("0", "-5", "nan", "inf"):
            _fails(capsys, ["spreadsheet", flag, v, "--out", str(tmp_path / "c.xlsx")], 2, flag)
    assert not any(tmp_path.iterdir())
    with pytest.raises(RooflineError, match="gpu_hour_usd must be"):
        Traffic(gpu_hour_usd=-1.0)


def test_spreadsheet_cli_names_an_unwritable_path(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    _fails(capsys, ["spreadsheet", "-o", str(blocker / "x.xlsx")], 1,
           f"cannot write {blocker / 'x.xlsx'}: {blocker} is a file")
    if Path("/proc/self").is_dir():  # Linux: nothing can be created in /proc, not even by root
        _fails(capsys, ["spreadsheet", "-o", "/proc/x.xlsx"], 1, "cannot write /proc/x.xlsx")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed")
def test_libreoffice_recalculates_the_same(tmp_path):
    """LibreOffice headless opens the workbook (no cached values: it must compute them) and saves the results."""
    g, m, sc = load_gpu("h100-sxm"), load_model("llama-3.1-8b"), Scenario(batch=32)
    path, cells = write_workbook(tmp_path / "c.xlsx", g, m, sc)
    out = tmp_path / "lo"
    subprocess.run(["soffice", "--headless", "--calc", "--convert-to", "xlsx", "--outdir", str(out), str(path)],
                   check=True, timeout=120, capture_output=True)
    import openpyxl
    wb = openpyxl.load_workbook(out / "c.xlsx", data_only=True)
    sheet, cell = cells["sizing.tpot_s"].rsplit("!", 1)
    assert wb[sheet.strip("'")][cell].value == pytest.approx(analyze(g, m, sc)["tpot_s"], rel=0.01)
