"""The workbook's Summary sheet (issue 15, item 7): first, the answer live over the other sheets (recalculated by
the `formulas` engine it says what the `spreadsheet` command prints), the traffic / SLO / price inputs every sheet
reads, `roofline capacity`'s figure beside the workbook's with why they differ, number formats for people, and
every sheet printing one page wide."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from roofline import cli
from roofline.model.analysis import Scenario, analyze
from roofline.report.spreadsheet import TWO_METHODS, Traffic, build_workbook, workbook_answer, write_workbook
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model

formulas = pytest.importorskip("formulas")
sys.path.insert(0, str(Path(__file__).parent))
from test_spreadsheet import recalculate, value  # noqa: E402

H100, LLAMA = load_gpu("h100-sxm"), load_model("llama-3.1-8b")


def _cells() -> dict:
    """The cell map (the Summary's layout does not depend on the model or the inputs)."""
    return build_workbook(H100, LLAMA, Scenario(batch=32))[1]


def _cli(capsys, args: str) -> tuple[int, str, str]:
    rc = cli.main(shlex.split(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_summary_is_the_first_sheet_and_holds_the_inputs():
    wb, cells = build_workbook(H100, LLAMA, Scenario(batch=32), traffic=Traffic(7.0, 0.8, 0.04, 3.0))
    assert wb.sheetnames[:2] == ["Summary", "Inputs"] and wb.active.title == "Summary"
    s = wb["Summary"]
    assert s["A2"].value.startswith("=IF(")  # the answer: a live formula, second row, under the title
    for name, want in (("in_rps", 7.0), ("in_slo_ttft_ms", 800.0), ("in_slo_tpot_ms", 40.0), ("in_usd", 3.0),
                       ("in_hours", 730.0)):
        sheet, ref = next(iter(wb.defined_names[name].destinations))
        assert sheet == "Summary" and s[ref.replace("$", "")].value == want, name
    # the inputs sit above the answer's figures and the model's rows below them
    rows = {k: int(re.sub(r"\D", "", v.split("!")[1])) for k, v in cells.items() if k.startswith("summary.")}
    assert rows["summary.in_rps"] < rows["summary.gpus"] < rows["summary.two_methods"]
    labels = [c.value for c in s["A"] if isinstance(c.value, str)]
    assert labels.index("tensor-parallel degree (GPUs per replica)") > labels.index("GPUs needed")


#: (flags, first words of the verdict): an answer within the SLOs, an SLO missed, a deployment that does not fit
CLI_CASES = [
    ("--batch 32 --rate 10 --ttft-p99-s 1 --price 2.5", "Serve 10 req/s with 1 x "),
    ("--batch 32 --rate 10 --ttft-p99-s 1 --tpot-p99-s 0.005", "SLO MISSED at batch 32: TPOT "),
    ("--model llama-3.1-70b --batch 8", "DOES NOT FIT on NVIDIA H100"),
]


@pytest.mark.parametrize("flags,start", CLI_CASES, ids=["ok", "slo-missed", "does-not-fit"])
def test_the_recalculated_summary_says_what_the_cli_prints(tmp_path, capsys, flags, start):
    path = tmp_path / "w.xlsx"
    rc, out, err = _cli(capsys, f"spreadsheet {flags} -o {path}")
    assert rc == 0 and out.split()[0] == str(path)
    printed = [ln for ln in err.splitlines() if not ln.startswith("Warning:")]
    assert printed[0].startswith(start), err
    vals, cells = recalculate(path), _cells()
    assert value(vals, cells["summary.verdict"]) == printed[0]
    assert printed[1].startswith("roofline capacity (p99 queueing model) for the same inputs: ")
    assert value(vals, cells["summary.capacity_verdict"]) == printed[1].split(": ", 1)[1]


def test_the_answer_figures_by_hand(tmp_path):
    """llama-3.1-8b on an H100 at batch 32, 30 req/s, TTFT SLO 1 s, $2.5/GPU-hour: a request takes TTFT 0.71 s
    + 255 x mean TPOT 9.4 ms = 3.10 s, so 30 x 3.10 = 93 sequences are in flight, in replicas of 32 ->
    ceil(93 / 32) = 3 replicas = 3 GPUs; $2.5 x 3 = $7.50/h, x 730 h = $5,475 per month."""
    sc, traffic = Scenario(batch=32), Traffic(30.0, 1.0, 0.05, 2.5)
    path, cells = write_workbook(tmp_path / "w.xlsx", H100, LLAMA, sc, traffic=traffic)
    vals, r = recalculate(path), analyze(H100, LLAMA, sc)
    replicas = -(-30.0 * r["e2e_latency_s"] // 32)
    assert replicas == 3  # the hand estimate above
    got = {k: value(vals, cells[f"summary.{k}"]) for k in ("gpus", "replicas", "usd_per_hour", "usd_per_month",
                                                          "usd_per_1m_tokens", "ttft_ms", "tpot_ms", "headroom")}
    assert got["replicas"] == got["gpus"] == replicas
    assert got["usd_per_hour"] == pytest.approx(2.5 * replicas)
    assert got["usd_per_month"] == pytest.approx(2.5 * replicas * 730)
    assert got["usd_per_1m_tokens"] == pytest.approx(2.5 * replicas / (30 * 256 * 3600) * 1e6)
    # the sheet's times are analyze's (test_spreadsheet.py checks them to 1%), in ms
    assert got["ttft_ms"] == pytest.approx(r["ttft_s"] * 1e3, rel=1e-3)
    assert got["tpot_ms"] == pytest.approx(r["tpot_s"] * 1e3, rel=1e-3)
    ans = workbook_answer(r, H100, traffic)
    for k in ("gpus", "usd_per_hour", "usd_per_month", "headroom"):
        assert got[k] == pytest.approx(ans[k], rel=1e-3), k
    # the binding limit is the largest of batch / max batch, TPOT / SLO, TTFT / SLO; headroom = 1 - that
    ratios = (32 / r["memory"]["max_batch"], r["tpot_s"] / 0.05, r["ttft_s"] / 1.0)
    assert got["headroom"] == pytest.approx(1 - max(ratios), rel=1e-3)
    assert value(vals, cells["summary.binding"]) == ans["binding"]


def _edit(path: Path, cells: dict, **inputs) -> dict:
    """Set Summary inputs (in_<key>=value) with openpyxl, save, and recalculate."""
    wb = openpyxl.load_workbook(path)
    for key, v in inputs.items():
        wb["Summary"][cells[f"summary.in_{key}"].split("!")[1]] = v
    wb.save(path)
    return recalculate(path)


def test_editing_an_input_on_the_summary_changes_the_answer(tmp_path):
    sc, traffic = Scenario(batch=32), Traffic(10.0, 1.0, 0.05, 2.5)
    path, cells = write_workbook(tmp_path / "w.xlsx", H100, LLAMA, sc, traffic=traffic)
    before = recalculate(path)
    assert value(before, cells["summary.capacity_current"]) == "the inputs above"
    # 4x the traffic at $4/GPU-hour: 4x the sequences in flight, so about 4x the replicas, each dearer
    after = _edit(path, cells, rps=40.0, usd=4.0)
    r = analyze(H100, LLAMA, sc)
    replicas = -(-40.0 * r["e2e_latency_s"] // 32)
    assert value(after, cells["summary.gpus"]) == replicas > value(before, cells["summary.gpus"])
    assert value(after, cells["summary.usd_per_month"]) == pytest.approx(replicas * 4.0 * 730)
    assert value(after, cells["summary.verdict"]) == workbook_answer(r, H100, Traffic(40.0, 1.0, 0.05, 4.0))["verdict"]
    assert value(after, cells["summary.verdict"]).startswith(f"Serve 40 req/s with {replicas:.0f} x ")
    # capacity's figure was computed when the workbook was written: it says it no longer describes the inputs
    assert value(after, cells["summary.capacity_current"]).startswith("NOT the inputs now in this workbook")
    # a TPOT SLO below the step time: the answer turns to SLO MISSED
    missed = _edit(path, cells, slo_tpot_ms=2.0)
    assert value(missed, cells["summary.verdict"]).startswith("SLO MISSED at batch 32: TPOT ")
    assert value(missed, cells["summary.headroom"]) < 0


def test_both_sizing_methods_are_shown_and_explained(tmp_path, capsys):
    """The workbook's Little's-law figure (live) and `roofline capacity`'s (as written) side by side, the
    command that reproduces capacity's, and why they differ; capacity's matches that command's own answer."""
    traffic = Traffic(20.0, 1.0, 0.05, 2.5)
    path, cells = write_workbook(tmp_path / "w.xlsx", H100, LLAMA, Scenario(batch=32), traffic=traffic)
    vals, s = recalculate(path), openpyxl.load_workbook(path)["Summary"]
    assert value(vals, cells["summary.two_methods"]) == TWO_METHODS
    assert "Little's law" in TWO_METHODS and "continuous batching" in TWO_METHODS and "p99" in TWO_METHODS
    labels = [c.value for c in s["A"] if isinstance(c.value, str)]
    assert any(t.startswith("GPUs needed: this workbook") for t in labels)
    assert any(t.startswith("GPUs needed: roofline capacity") for t in labels)
    command = next(t for t in labels if t.startswith("roofline capacity "))
    assert "--rate 20 " in command and "--ttft-p99-s 1 " in command and "--tpot-p99-s 0.05 " in command
    rc, out, _ = _cli(capsys, command.removeprefix("roofline ") + " --format json")
    assert rc == 0
    res = json.loads(out)
    assert value(vals, cells["summary.capacity_verdict"]) == res["verdict"]
    assert value(vals, cells["summary.gpus_capacity"]) == res["best"]["gpus"]
    assert value(vals, cells["summary.usd_per_hour_capacity"]) == pytest.approx(res["best"]["cost_per_hour"])
    assert isinstance(value(vals, cells["summary.gpus_workbook"]), float)


def test_number_formats_are_for_people(tmp_path):
    path, cells = write_workbook(tmp_path / "w.xlsx", H100, LLAMA, Scenario(batch=32))
    wb = openpyxl.load_workbook(path)

    def fmt(key: str) -> str:
        sheet, ref = cells[key].split("!")
        return wb[sheet.strip("'")][ref].number_format

    assert fmt("summary.usd_per_hour") == fmt("summary.usd_per_1m_tokens") == fmt("summary.in_usd") == '"$"#,##0.00'
    assert fmt("summary.usd_per_month") == '"$"#,##0'
    assert fmt("summary.gpus") == fmt("summary.replicas") == "#,##0"
    assert fmt("summary.headroom") == fmt("summary.kv_use") == "0%"
    assert fmt("summary.ttft_ms") == fmt("summary.tpot_ms") == fmt("summary.in_slo_tpot_ms") == '#,##0.0" ms"'
    assert fmt("sizing.usd_per_hour") == '"$"#,##0.00' and fmt("sizing.headroom") == "0.0%"
    assert fmt("memory.weights_bytes") == fmt("memory.kv_cache_capacity_tokens") == "#,##0"
    assert fmt("decode.op.qkv_proj.flops") == "#,##0"
    inputs = wb["Inputs"]
    big = [c for c in inputs["B"] if isinstance(c.value, (int, float)) and abs(c.value) >= 1e5]
    assert big and all(c.number_format == "#,##0" for c in big)  # 80 GB as 85,899,345,920, not 8.590E+10


def test_every_sheet_prints_one_page_wide(tmp_path):
    from roofline.model.training import Layout, Recipe
    from roofline.report.training_sheet import TrainingSheetSpec
    spec = TrainingSheetSpec(Layout.of(tp=2, pp=1, dp=4, micro_batch=1, global_batch=64, seq=4096), Recipe())
    path, _ = write_workbook(tmp_path / "w.xlsx", H100, LLAMA, Scenario(batch=32), training=spec,
                             sweep_rows=[{"batch": 1, "context": 512}])
    wb = openpyxl.load_workbook(path)
    assert {"Training inputs", "Training", "Sweep"} <= set(wb.sheetnames)
    for ws in wb.worksheets:
        ps = ws.page_setup
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert (int(ps.fitToWidth), int(ps.fitToHeight)) == (1, 1 if ws.title == "Summary" else 0), ws.title
        assert ps.orientation == "landscape", ws.title
        assert ws.print_area == f"'{ws.title}'!$A$1:${get_column_letter(ws.max_column)}${ws.max_row}", ws.title


def _pdf_pages(pdf: Path) -> int:
    """Pages of a PDF (LibreOffice writes one uncompressed /Type /Page dictionary per page)."""
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed")
def test_libreoffice_prints_the_summary_on_one_page_and_the_widest_sheet_one_page_wide(tmp_path):
    """Each sheet alone, as LibreOffice prints it: the Summary on one page, the 13-column Prefill sheet (25
    operator rows: one page tall) one page wide; without the fit-to-page setting both spill onto more pages."""
    path, _ = write_workbook(tmp_path / "w.xlsx", H100, LLAMA, Scenario(batch=32))
    out = tmp_path / "pdf"
    files = []
    for keep in ("Summary", "Prefill"):
        for fit in (True, False):
            wb = openpyxl.load_workbook(path)
            for ws in [w for w in wb.worksheets if w.title != keep]:
                wb.remove(ws)
            wb[keep].sheet_properties.pageSetUpPr.fitToPage = fit
            files.append(tmp_path / f"{keep}-{fit}.xlsx")
            wb.save(files[-1])
    subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(out), *map(str, files)],
                   check=True, timeout=180, capture_output=True)
    pages = {f.stem: _pdf_pages(out / f"{f.stem}.pdf") for f in files}
    assert pages["Summary-True"] == 1 and pages["Prefill-True"] == 1, pages
    assert pages["Summary-False"] > 1 and pages["Prefill-False"] > 1, pages  # the check can fail
