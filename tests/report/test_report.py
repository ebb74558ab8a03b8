"""`roofline report` writes a self-contained folder; re-renders from a saved profile; renders in Chromium."""
from __future__ import annotations

import html
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from roofline import cli
from roofline.model.analysis import Scenario
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.report.document import ReportSpec, compare_note

REPO = Path(__file__).resolve().parents[2]
CPU_PROFILE = REPO / "profiles" / "cpu-quick-vm.json"


@pytest.fixture(scope="module")
def default_report(tmp_path_factory):
    """`roofline report` with no arguments, run in an empty folder."""
    cwd = tmp_path_factory.mktemp("rep")
    mp = pytest.MonkeyPatch()
    mp.chdir(cwd)
    try:
        import io
        from contextlib import redirect_stdout
        buf = io.StringIO()
        with redirect_stdout(buf):
            rc = cli.main(["report"])
    finally:
        mp.undo()
    return rc, buf.getvalue(), cwd


def test_report_with_no_arguments(default_report):
    rc, stdout, cwd = default_report
    assert rc == 0
    assert stdout.strip() == "reports/llama-3.1-8b-h100-sxm/index.html"
    folder = cwd / "reports" / "llama-3.1-8b-h100-sxm"
    for name in ("index.html", "report.md", "analysis.json", "sweep.csv", "roofline.png", "roofline.svg",
                 "regime.png", "latency.png", "memory.png", "compare.png"):
        assert (folder / name).stat().st_size > 0, name


def test_index_html_is_self_contained(default_report):
    _, _, cwd = default_report
    page = (cwd / "reports" / "llama-3.1-8b-h100-sxm" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "src='http" not in page and 'src="http' not in page  # nothing fetched from elsewhere
    assert "roofline report --gpu h100-sxm --model llama-3.1-8b --batch 1 --prompt 1024 --output 256" in page
    for text in ("TPOT", "qkv_proj", "Inputs", "HBM bandwidth", "a100-sxm-80gb"):
        assert text in page


def test_report_md_links_the_plots(default_report):
    _, _, cwd = default_report
    md = (cwd / "reports" / "llama-3.1-8b-h100-sxm" / "report.md").read_text()
    assert "![roofline](roofline.png)" in md and "| qkv_proj |" in md and "```\nroofline report" in md


@pytest.mark.skipif(not CPU_PROFILE.exists(), reason="no saved CPU profile in profiles/")
def test_report_rerenders_from_a_saved_profile(tmp_path, capsys):
    rc = cli.main(["report", "--gpu", "cpu", "--model", "llama-3.2-1b", "--profile", str(CPU_PROFILE),
                   "--weights", "fp32", "--activations", "fp32", "--kv", "fp32", "--gpus", "",
                   "--out-dir", str(tmp_path), "--name", "cpu"])
    assert rc == 0, capsys.readouterr().err
    page = (tmp_path / "cpu" / "index.html").read_text()
    assert "Measured profile" in page and "measured kernels plotted" in page
    assert f"--profile {CPU_PROFILE}" in page


def test_the_comparison_says_where_its_numbers_come_from(default_report):
    _, _, cwd = default_report
    folder = cwd / "reports" / "llama-3.1-8b-h100-sxm"
    datasheet = "Every GPU is modelled from its datasheet peaks with the default efficiencies."
    assert datasheet in (folder / "index.html").read_text() and datasheet in (folder / "report.md").read_text()
    # with a profile only the measured device is measured: the other GPUs' bars are datasheet estimates
    h100, a100 = load_gpu("h100-sxm"), load_gpu("a100-sxm-80gb")
    spec = ReportSpec(h100, load_model("llama-3.1-8b"), Scenario(), "roofline report", profile={"points": []},
                      compare=[h100, a100])
    assert compare_note(spec).startswith("Only h100-sxm uses the profile's measured ceilings")
    assert "the other GPUs (a100-sxm-80gb) use datasheet peaks" in compare_note(spec)


def test_report_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["report", "--out-dir", str(tmp_path), "--name", "../up"]) == 2
    assert "Error: bad report name" in capsys.readouterr().err
    assert cli.main(["report", "--gpu", "nope-gpu", "--out-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "Traceback" not in err


def test_plot_command_writes_png_and_svg(tmp_path, capsys):
    for kind, name in (("memory", "m.svg"), ("compare", "c.png")):
        assert cli.main(["plot", kind, "--out", str(tmp_path / name), "--gpus", "h100-sxm,a100-sxm-80gb"]) == 0
        assert capsys.readouterr().out.strip() == str(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 5000
    assert cli.main(["plot", "pie"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_index_html_renders_in_headless_chromium(default_report, tmp_path):
    _, _, cwd = default_report
    page = cwd / "reports" / "llama-3.1-8b-h100-sxm" / "index.html"
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,2000",
                    page.as_uri()], check=True, timeout=90, capture_output=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a blank page is ~10 kB


def _fails(capsys, args: list[str], code: int, *words: str) -> str:
    """The CLI exits with `code` and one `Error: ...` line (plus a hint), no traceback."""
    assert cli.main(args) == code, args
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err, err
    assert err.count("Error:") == 1 and "Hint: " in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_plot_and_report_reject_a_bad_slo(tmp_path, capsys, value):
    _fails(capsys, ["plot", "latency", "--slo-tpot-ms", value, "-o", str(tmp_path / "l.png")], 2, "--slo-tpot-ms")
    _fails(capsys, ["report", "--slo-tpot-ms", value, "--out-dir", str(tmp_path)], 2, "--slo-tpot-ms")
    assert not any(tmp_path.iterdir())


def test_plot_rejects_empty_precisions(tmp_path, capsys):
    _fails(capsys, ["plot", "latency", "--precisions", ",", "-o", str(tmp_path / "l.png")], 2, "--precisions")


def test_unwritable_outputs_are_named(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    _fails(capsys, ["plot", "memory", "-o", str(blocker / "x.png")], 1, f"cannot write {blocker / 'x.png'}")
    _fails(capsys, ["report", "--out-dir", str(blocker)], 1, f"cannot write {blocker}")
    if Path("/proc/self").is_dir():  # Linux: nothing can be created in /proc, not even by root
        _fails(capsys, ["plot", "roofline", "-o", "/proc/x.png"], 1, "cannot write /proc/x.png")
        _fails(capsys, ["report", "--out-dir", "/proc/nope"], 1, "cannot write /proc/nope")


def test_report_has_a_communication_section_for_a_multi_gpu_layout(tmp_path, capsys):
    """TP 4: the collectives of both phases, with their link and algorithm; none on one GPU."""
    assert cli.main(["report", "--model", "llama-3.1-70b", "--tp", "4", "--gpu", "h200-sxm", "--batch", "16",
                     "--out-dir", str(tmp_path), "--name", "tp4"]) == 0
    md = (tmp_path / "tp4" / "report.md").read_text()
    assert "## Communication" in md and "| decode | allreduce_attn | all_reduce | 80 |" in md and "nvlink" in md
    assert cli.main(["report", "--out-dir", str(tmp_path), "--name", "one"]) == 0
    assert "## Communication" not in (tmp_path / "one" / "report.md").read_text()


# ------------------------------------------------------------------------------ the Capacity section (issue 15)

CAPACITY_ARGS = ["report", "--model", "llama-3.1-70b", "--tp", "4", "--batch", "16", "--gpus", "h200-sxm",
                 "--rate", "20", "--ttft-p99-s", "1", "--price", "h100-sxm=2.5"]


@pytest.fixture(scope="module")
def capacity_report(tmp_path_factory):
    """`report` with traffic: 20 req/s of the report's request (1,024 + 256 tokens) within a 1 s TTFT p99."""
    import io
    from contextlib import redirect_stderr, redirect_stdout
    out_dir = tmp_path_factory.mktemp("cap")
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        rc = cli.main([*CAPACITY_ARGS, "--out-dir", str(out_dir), "--name", "cap"])
    assert rc == 0
    return out_dir / "cap"


def test_report_with_traffic_answers_the_capacity_question_first(capacity_report, capsys):
    """Before: no capacity in the report. Now its verdict is the first line, above the analyze verdict, and
    it is what `roofline capacity` answers for the command the section prints."""
    page = (capacity_report / "index.html").read_text()
    head = page[:page.index("<h2")]  # the first screen: before any section
    assert head.index("<p id=capacity-verdict class=verdict>Cheapest for llama-3.1-70b at 20 req/s peak within "
                      "TTFT p99 1 s, TPOT p99 50 ms: ") < head.index("<p id=verdict class=verdict>Decode is")
    assert page.index("<h2 id=capacity>Capacity</h2>") == page.index("<h2")  # the first section
    assert "--rate 20.0 --ttft-p99-s 1.0 --price h100-sxm=2.5" in page  # the report's own command
    cap = json.loads((capacity_report / "capacity.json").read_text())
    command = cap["command"]
    assert command.startswith("roofline capacity --model llama-3.1-70b --gpu h100-sxm --gpu h200-sxm "
                              "--precision bf16,fp8 --prompt 1024 --output 256 --rate 20 --ttft-p99-s 1 "
                              "--tpot-p99-s 0.05 --price h100-sxm=2.5")
    assert cli.main([*shlex.split(command)[1:], "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["verdict"] == cap["verdict"] and html.escape(cap["verdict"]) in head
    assert res["best"]["gpus"] == cap["best"]["gpus"] and len(res["candidates"]) == len(cap["candidates"])
    # the candidates table: the cheapest first, with its GPUs and cost ($2.5 x GPUs)
    best = cap["best"]
    first_row = page[page.index("<h2 id=capacity>"):].split("<tr>")[2]
    assert f"<td>{best['gpu']}</td>" in first_row and f">${2.5 * best['gpus']:,.2f}<" in first_row
    md = (capacity_report / "report.md").read_text().splitlines()
    assert md[2] == f"**{cap['verdict']}**" and md[4].startswith("**Decode is")
    assert "## Capacity" in md


def test_report_reads_a_workload_file_and_its_slos(tmp_path, capsys):
    """--workload: capacity at the file's traffic and SLOs (p50 and p99); its TPOT p99 is the page's one SLO."""
    chat = REPO / "examples" / "workload-chat.json"
    assert cli.main(["report", "--workload", str(chat), "--gpus", "", "--out-dir", str(tmp_path), "--name",
                     "w"]) == 0
    capsys.readouterr()
    page = (tmp_path / "w" / "index.html").read_text()
    assert "within TTFT p50 500 ms / p99 2 s, TPOT p50 30 ms / p99 50 ms" in page[:page.index("<h2")]
    cap = json.loads((tmp_path / "w" / "capacity.json").read_text())
    assert f"--workload {chat}" in cap["command"] and cap["workload"]["name"] == "chat"


def test_report_without_traffic_has_no_capacity_section(default_report, tmp_path, capsys):
    _, _, cwd = default_report
    page = (cwd / "reports" / "llama-3.1-8b-h100-sxm" / "index.html").read_text()
    assert "capacity-verdict" not in page and not (cwd / "reports" / "llama-3.1-8b-h100-sxm" / "capacity.json").exists()
    _fails(capsys, ["report", "--ttft-p99-s", "1", "--out-dir", str(tmp_path)], 2, "--rate")
    _fails(capsys, ["report", "--rate", "-3", "--out-dir", str(tmp_path)], 2, "--rate")


def _green_rows(png: Path) -> int:
    """Rows of a screenshot that cross a verdict box's left border (#2e7d32)."""
    import numpy as np
    from matplotlib.image import imread
    px = (imread(png)[..., :3] * 255).round().astype(int)
    return int(np.all(np.abs(px - (0x2E, 0x7D, 0x32)) <= 2, axis=-1).any(axis=1).sum())


def _screenshot(page: Path, shot: Path, tmp_path: Path, height: int = 900) -> None:
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    f"--window-size=1400,{height}", page.as_uri()], check=True, timeout=90, capture_output=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_the_capacity_answer_is_on_the_first_screen(capacity_report, default_report, tmp_path):
    """The first 1400 x 900 screen in headless Chromium: both verdict boxes (capacity's and analyze's) and the
    top of the candidates table (its header colour #eef3fa) are on it; without traffic, one verdict box. With
    ROOFLINE_SCREENSHOT_DIR set, both screenshots are kept there (report-capacity-first-screen.png and
    report-without-traffic-first-screen.png)."""
    import numpy as np
    from matplotlib.image import imread
    shot, plain = tmp_path / "cap.png", tmp_path / "plain.png"
    _screenshot(capacity_report / "index.html", shot, tmp_path)
    _screenshot(default_report[2] / "reports" / "llama-3.1-8b-h100-sxm" / "index.html", plain, tmp_path)
    assert _green_rows(shot) > 1.5 * _green_rows(plain) > 0
    px = (imread(shot)[..., :3] * 255).round().astype(int)
    assert np.all(px == (0xEE, 0xF3, 0xFA), axis=-1).sum() > 1000  # table headers above the fold
    if os.environ.get("ROOFLINE_SCREENSHOT_DIR"):
        keep = Path(os.environ["ROOFLINE_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep / "report-capacity-first-screen.png")
        shutil.copyfile(plain, keep / "report-without-traffic-first-screen.png")
