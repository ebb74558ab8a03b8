"""One vocabulary of flags across commands (issue 15 item 4), defaults that do not break (item 3), progress and
terminal-width tables (item 6), and the empty-value leftovers: every command spells a concept one way, the old
spellings still work as hidden aliases, and each case here failed before."""
import io
import json
import os
from pathlib import Path

import pytest
import typer.main
from rich.console import Console

from roofline.cli import common
from roofline.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "cpu-quick-vm.json"

#: concept -> (canonical flag, the commands that take it)
CANONICAL = {
    "TPOT SLO (s)": ("--tpot-p99-s", {"plot", "report", "spreadsheet", "capacity", "simulate"}),
    "TTFT SLO (s)": ("--ttft-p99-s", {"spreadsheet", "capacity", "simulate"}),
    "traffic (req/s)": ("--rate", {"spreadsheet", "capacity", "simulate"}),
    "expert parallelism": ("--ep", {"analyze", "sweep", "simulate", "train"}),
    "precision set": ("--precision", {"analyze", "sweep", "plot", "report", "spreadsheet", "capacity", "simulate",
                                      "search"}),
    "file to write": ("--out", {"plot", "spreadsheet", "bench", "bench-collectives"}),
    "price (USD per GPU-hour)": ("--price", {"spreadsheet", "capacity", "search"}),
    "KV-cache memory fraction": ("--kv-cache-fraction", {"analyze", "sweep", "plot", "report", "spreadsheet",
                                                         "capacity", "simulate", "search"}),
}
#: old spelling -> (canonical flag, the commands that keep it as a hidden alias)
ALIASES = {
    "--slo-tpot-ms": ("--tpot-p99-s", {"plot", "report", "spreadsheet"}),
    "--slo-ttft-ms": ("--ttft-p99-s", {"spreadsheet"}),
    "--requests-per-s": ("--rate", {"spreadsheet"}),
    "--gpu-hour-usd": ("--price", {"spreadsheet"}),
    "--expert-parallel": ("--ep", {"sweep"}),
    "--precisions": ("--precision", {"plot"}),
    "--output": ("--out", {"bench", "bench-collectives"}),
    "--memory-utilization": ("--kv-cache-fraction", {"analyze", "sweep", "plot", "report", "spreadsheet",
                                                     "capacity", "simulate"}),
}


def _options(command: str) -> dict[str, bool]:
    """flag -> hidden, for every option of `command`."""
    cmd = typer.main.get_command(app).commands[command]
    return {name: p.hidden for p in cmd.params if p.param_type_name == "option"
            for name in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("concept", CANONICAL)
def test_every_command_spells_a_concept_the_same_way(concept):
    flag, commands = CANONICAL[concept]
    for c in commands:
        opts = _options(c)
        assert flag in opts and not opts[flag], f"{c} lacks a visible {flag} ({concept})"


@pytest.mark.parametrize("old", ALIASES)
def test_old_spellings_are_hidden_aliases(old, run_cli):
    new, commands = ALIASES[old]
    for c in commands:
        opts = _options(c)
        assert opts.get(old) is True, f"{c} {old} should be a hidden option"
        code, out, _ = run_cli(c, "--help")
        assert code == 0 and new in out and f"{old} " not in out.replace(f"{old}-", "")


def test_no_command_shows_an_old_spelling():
    for name in typer.main.get_command(app).commands:
        visible = {f for f, hidden in _options(name).items() if not hidden}
        assert not visible & set(ALIASES) - ({"--output"} if name in ("analyze", "plot", "report", "spreadsheet",
                                                                      "capacity", "simulate") else set()), name


def _workbook_traffic(monkeypatch, run_cli, tmp_path, *flags):
    """The Traffic the spreadsheet command builds from `flags` (the workbook itself is not written)."""
    from roofline.report import spreadsheet
    seen = {}

    def capture(path, g, m, sc, eff, traffic, rows, **kw):
        seen["traffic"] = traffic
        raise SystemExit(0)

    monkeypatch.setattr(spreadsheet, "write_workbook", capture)
    with pytest.raises(SystemExit):
        run_cli("spreadsheet", "-o", str(tmp_path / "c.xlsx"), *flags)
    return seen["traffic"]


def test_spreadsheet_aliases_mean_what_the_new_flags_mean(monkeypatch, run_cli, tmp_path, capsys):
    new = _workbook_traffic(monkeypatch, run_cli, tmp_path, "--rate", "5", "--ttft-p99-s", "0.4",
                            "--tpot-p99-s", "0.03", "--price", "3")
    old = _workbook_traffic(monkeypatch, run_cli, tmp_path, "--requests-per-s", "5", "--slo-ttft-ms", "400",
                            "--slo-tpot-ms", "30", "--gpu-hour-usd", "3")
    assert new == old
    assert (new.requests_per_s, new.slo_ttft_s, new.slo_tpot_s, new.gpu_hour_usd) == (5, 0.4, 0.03, 3)
    # the price as capacity and report write it, GPU=USD, names the workbook's GPU
    assert _workbook_traffic(monkeypatch, run_cli, tmp_path, "--price", "h100=3").gpu_hour_usd == 3
    code, _, err = run_cli("spreadsheet", "--price", "h200-sxm=3", "-o", str(tmp_path / "c.xlsx"))
    assert code == 2 and "--price names h200-sxm, but the workbook sizes h100-sxm" in err


def test_an_alias_that_disagrees_with_its_new_flag_is_an_error(run_cli, tmp_path):
    code, _, err = run_cli("spreadsheet", "--tpot-p99-s", "0.05", "--slo-tpot-ms", "40", "-o", str(tmp_path / "c.xlsx"))
    assert code == 2 and err.startswith("Error: --tpot-p99-s and --slo-tpot-ms (its old name) disagree")
    code, _, err = run_cli("sweep", "--ep", "on", "--expert-parallel", "off")
    assert code == 2 and "--ep and --expert-parallel" in err
    assert not any(tmp_path.iterdir())


def test_sweep_ep_and_its_old_name_give_the_same_grid(run_cli):
    args = ["sweep", "--model", "mixtral-8x7b", "--tp", "2", "--batch", "1", "--context", "512", "--format", "csv"]
    code, new, _ = run_cli(*args, "--ep", "1,on")
    assert code == 0
    code, old, err = run_cli(*args, "--expert-parallel", "off,on")
    assert code == 0 and new == old and "old name" in err
    assert [r.split(",")[24] for r in new.splitlines()[1:]] == ["1", "2"]  # column ep: off (1), on (tp 2)


def test_plot_and_report_take_the_slo_in_seconds(monkeypatch, run_cli, tmp_path, capsys):
    from roofline.report import document, plots
    slos = []
    monkeypatch.setattr(plots, "latency_throughput", lambda series, m, sc, eff, slo: slos.append(slo) or
                        __import__("matplotlib.figure").figure.Figure())
    monkeypatch.setattr(document, "write_report", lambda path, spec: slos.append(spec.slo_tpot_s) or path)
    errs = []
    for flags in (["--tpot-p99-s", "0.02"], ["--slo-tpot-ms", "20"]):
        for args in (["plot", "latency", "-o", str(tmp_path / "l.png")], ["report", "--out-dir", str(tmp_path)]):
            code, _, err = run_cli(*args, "--gpus", "", *flags)
            assert code == 0, err
            errs.append(err)
    assert slos == pytest.approx([0.02] * 4)
    old = "Warning: --slo-tpot-ms is the old name of --tpot-p99-s (which takes seconds, not milliseconds)"
    assert [old in e for e in errs] == [False, False, True, True]  # the old name works, with a warning


# ------------------------------------------------------------------ item 3: defaults that do not break


def test_an_fp8_report_leaves_out_the_gpus_without_fp8(monkeypatch, run_cli, tmp_path):
    from roofline.report import document
    seen = {}
    monkeypatch.setattr(document, "write_report", lambda path, spec: seen.setdefault("spec", spec) and path)
    code, _, err = run_cli("report", "--weights", "fp8", "--activations", "fp8", "--kv", "fp8", "--out-dir",
                           str(tmp_path))
    assert code == 0, err
    assert [g.name for g in seen["spec"].compare] == ["h200-sxm"]  # the default h100, a100, h200 less the A100
    assert "left out of the GPU comparison: a100-sxm-80gb (no fp8 compute)" in err
    assert "--gpus h200-sxm" in seen["spec"].command  # the command reproduces what was compared
    assert seen["spec"].notes == ("left out of the GPU comparison: a100-sxm-80gb (no fp8 compute); compare them "
                                  "with --activations bf16",)  # the report says it too (document._html/_markdown)


def test_the_report_page_carries_its_notes(run_cli, tmp_path):
    code, _, err = run_cli("report", "--precision", "fp8", "--gpus", "a100-sxm-80gb", "--out-dir", str(tmp_path),
                           "--name", "r")
    assert code == 0, err
    note = "left out of the GPU comparison: a100-sxm-80gb (no fp8 compute)"
    assert note in (tmp_path / "r" / "index.html").read_text() and note in (tmp_path / "r" / "report.md").read_text()


def test_plot_compare_leaves_out_the_gpus_without_fp8(run_cli, tmp_path):
    code, out, err = run_cli("plot", "compare", "--precision", "fp8", "-o", str(tmp_path / "c.png"))
    assert code == 0 and "a100-sxm-80gb" in err and out.strip() == str(tmp_path / "c.png")


def test_precision_is_the_shorthand_on_analyze(run_cli):
    code, short, _ = run_cli("analyze", "--precision", "fp8", "--format", "json")
    code2, long, _ = run_cli("analyze", "--weights", "fp8", "--activations", "fp8", "--kv", "fp8", "--format", "json")
    assert code == code2 == 0 and json.loads(short) == json.loads(long)
    code, out, _ = run_cli("analyze", "--precision", "fp8", "--kv", "bf16", "--format", "json")
    c = json.loads(out)["config"]
    assert code == 0 and (c["weights"], c["activations"], c["kv"]) == ("fp8", "fp8", "bf16")  # --kv overrides
    code, _, err = run_cli("analyze", "--precision", "bf16,fp8")
    assert code == 2 and "--precision takes one precision set" in err


@pytest.fixture
def fp32_profile(tmp_path) -> Path:
    """The shipped CPU profile as measured on a CPU without bf16 matrix units: fp32 only."""
    d = json.loads(PROFILE.read_text())
    del d["ceilings"]["peak_flops_per_s"]["bf16"]
    d["ceilings"]["from_points"].pop("peak_flops_per_s.bf16", None)
    d["points"] = [p for p in d["points"] if "bf16" not in json.dumps(p)]
    p = tmp_path / "cpu-fp32.json"
    p.write_text(json.dumps(d))
    return p


def test_a_profile_without_bf16_computes_in_its_fastest_precision(run_cli, fp32_profile):
    code, out, err = run_cli("analyze", "--gpu", "cpu", "--profile", str(fp32_profile), "--format", "json")
    assert code == 0, err
    c = json.loads(out)["config"]
    assert (c["weights"], c["activations"], c["kv"]) == ("bf16", "fp32", "bf16")
    assert "no measured bf16 throughput: computing in fp32, its fastest measured precision" in err
    code, _, err = run_cli("analyze", "--gpu", "cpu", "--profile", str(fp32_profile), "--precision", "bf16")
    assert code == 2 and "no bf16" in err  # asked for explicitly: still an error


def test_a_report_on_a_profile_without_bf16(monkeypatch, run_cli, fp32_profile, tmp_path):
    from roofline.report import document
    seen = {}
    monkeypatch.setattr(document, "write_report", lambda path, spec: seen.setdefault("spec", spec) and path)
    code, _, err = run_cli("report", "--profile", str(fp32_profile), "--out-dir", str(tmp_path))
    assert code == 0, err
    assert seen["spec"].scenario.activations == "fp32" and "--activations fp32" in seen["spec"].command


# ------------------------------------------------------------------ item 6: progress and table width


def test_tables_fit_the_terminal_and_wide_shows_them_whole(monkeypatch, run_cli):
    monkeypatch.setattr(common.sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(common.shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((90, 24)))
    code, out, _ = run_cli("gpus")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 90
    code, wide, _ = run_cli("gpus", "--wide")
    assert code == 0 and max(len(line) for line in wide.splitlines()) > 90
    monkeypatch.undo()
    code, piped, _ = run_cli("gpus")  # not a terminal: the fixed width, whatever the terminal
    assert code == 0 and piped == wide


def _terminal_stderr(monkeypatch) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=buf, force_terminal=True, width=120))
    return buf


def test_simulate_shows_a_status_line_on_a_terminal_only(monkeypatch, run_cli):
    args = ["simulate", "--rate", "2", "--prompt", "100", "--output", "10", "--requests", "50"]
    code, _, err = run_cli(*args)
    assert code == 0 and "Simulating" not in err  # not a terminal: nothing
    buf = _terminal_stderr(monkeypatch)
    code, out, _ = run_cli(*args, "--format", "json")
    assert code == 0 and "Simulating 50 requests" in buf.getvalue()
    json.loads(out)  # stdout stays one JSON document


def test_report_and_the_fleet_ilp_show_a_status_line(monkeypatch, run_cli, tmp_path):
    from roofline.report import document
    monkeypatch.setattr(document, "write_report", lambda path, spec: path)
    buf = _terminal_stderr(monkeypatch)
    assert run_cli("report", "--gpus", "", "--out-dir", str(tmp_path))[0] == 0
    assert "Writing the report" in buf.getvalue()
    code, out, _ = run_cli("capacity", "--model", "llama-3.1-8b", "--rate", "5", "--prompt", "200", "--output", "50",
                           "--fleet", str(ROOT / "examples" / "fleet.json"), "--tp", "1", "--precision", "bf16",
                           "--format", "csv")
    assert code == 0 and "Solving the fleet mix" in buf.getvalue() and out.startswith("gpu,")


def test_infeasible_candidates_go_behind_all(run_cli):
    args = ["capacity", "--model", "llama-3.1-70b", "--rate", "2", "--prompt", "500", "--output", "100",
            "--gpu", "h100-sxm", "--tp", "1,4", "--precision", "bf16"]
    code, out, _ = run_cli(*args)
    assert code == 0 and "1 infeasible candidate(s) not shown (--all" in out
    assert len([line for line in out.splitlines() if line.startswith("│ h100-sxm")]) == 1 and "fit" not in out
    code, every, _ = run_cli(*args, "--all")
    lines = [line for line in every.splitlines() if line.startswith("│ h100-sxm")]
    assert code == 0 and len(lines) == 2 and "KV cache" in lines[1]  # the infeasible TP 1 row last, with its reason
    code, js, _ = run_cli(*args, "--format", "json")
    assert len(json.loads(js)["candidates"]) == 2  # JSON always holds every candidate


def test_capacity_gpu_takes_a_comma_list(run_cli):
    base = ["capacity", "--model", "llama-3.1-8b", "--rate", "2", "--tp", "1", "--precision", "bf16", "--format",
            "json"]
    _, comma, _ = run_cli(*base, "--gpu", "h100-sxm,h200-sxm")
    _, repeated, _ = run_cli(*base, "--gpu", "h100-sxm", "--gpu", "h200-sxm")
    assert json.loads(comma)["candidates"] == json.loads(repeated)["candidates"]


# ------------------------------------------------------------------ empty values and other leftovers


@pytest.mark.parametrize("args, words", [
    (["capacity", "--workload", ""], "--workload is empty"),
    (["simulate", "--workload", " "], "--workload is empty"),
    (["capacity", "--rate", "1", "--fleet", ""], "--fleet is empty"),
    (["search", "--workload", ""], "--workload is empty"),
    (["published", "--data", ""], "--data is empty"),
    (["validate", ""], "the profile path is empty"),
    (["models", ""], "the model name is empty"),
    (["gpus", ""], "the gpu name is empty"),
    (["capacity", "--rate", "1", "--gpu", ""], "--gpu is empty"),
    (["plot", "compare", "--gpus", "h100-sxm,,a100-sxm-80gb"], "--gpus has an empty item"),
    (["report", "--gpus", "h100-sxm,"], "--gpus has an empty item"),
    (["capacity", "--rate", "1", "--gpu", "h100-sxm,,h200-sxm"], "--gpu has an empty item"),
])
def test_an_empty_value_is_an_error_naming_the_flag(run_cli, args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*args)
    assert code == 2 and err.startswith(f"Error: {words}") and "Hint: " in err and "directory" not in err, err
    assert out == "" and not any(tmp_path.iterdir())


def test_a_bare_unknown_name_is_a_clear_error(run_cli):
    code, _, err = run_cli("gpus", "fifo")
    assert code == 1 and err.startswith("Error: unknown GPU 'fifo'") and "Traceback" not in err


@pytest.mark.parametrize("command", [["analyze"], ["plot", "compare"]])
def test_a_multi_gpu_layout_on_a_cpu_profile_is_an_error_not_a_crash(run_cli, command, tmp_path):
    code, _, err = run_cli(*command, "--gpu", "cpu", "--profile", str(PROFILE), "--tp", "2",
                           *(["-o", str(tmp_path / "c.png")] if command[0] == "plot" else []))
    assert code == 2 and "is one device with no network" in err and "Hint: use --tp 1" in err, err
    assert "Traceback" not in err and not any(tmp_path.iterdir())


def test_simulate_on_a_profile_without_bf16(run_cli, fp32_profile):
    code, out, err = run_cli("simulate", "--gpu", "cpu", "--profile", str(fp32_profile), "--model", "llama-3.2-1b",
                             "--rate", "0.05", "--prompt", "50", "--output", "5", "--requests", "20", "--format",
                             "json")
    assert code == 0, err
    assert json.loads(out)["precision"] == "bf16/fp32/bf16" and "computing in fp32" in err
