"""Every core command, its formats, and each bad-input case: exit code and the one-line message."""
import csv
import io
import json

import pytest

from roofline.cli.app import app


def test_every_command_has_help():
    import typer.main
    cmd = typer.main.get_command(app)
    for name, sub in cmd.commands.items():
        assert sub.help, name
        for p in sub.params:
            if p.param_type_name == "option" and p.name not in ("help",):
                assert p.help, f"{name} --{p.name}"


def test_analyze_defaults_table(run_cli):
    code, out, err = run_cli("analyze")
    assert code == 0, err
    assert "llama-3.1-8b" in out and "TTFT" in out and "H100" in out


def test_analyze_json_is_one_document_with_contract_keys(run_cli):
    code, out, _ = run_cli("analyze", "--weights", "fp8", "--activations", "fp8", "--kv", "fp8", "--format", "json")
    assert code == 0
    r = json.loads(out)
    assert round(r["ridge_point_flops_per_byte"]) == 591
    assert r["decode"]["bound"] == "memory" and r["prefill"]["bound"] == "compute"
    assert isinstance(r["memory"]["max_batch"], int)


def test_analyze_csv(run_cli):
    code, out, _ = run_cli("analyze", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["phase"] for r in rows} == {"prefill", "decode", "summary", "memory"}
    assert any(r["name"] == "qkv_proj" and r["bytes"] for r in rows)
    summary = {r["name"]: r["value"] for r in rows if r["phase"] == "summary"}
    assert float(summary["tpot_s"]) > 0 and summary["critical_batch"] == "never"


def test_gpus_and_models(run_cli):
    code, out, _ = run_cli("gpus")
    assert code == 0 and "h100-sxm" in out and "mi300x" in out
    code, out, _ = run_cli("gpus", "h100-sxm", "--format", "json")
    assert code == 0 and json.loads(out)["name"] == "h100-sxm"
    code, out, _ = run_cli("models", "llama-2-7b", "--format", "json")
    assert code == 0 and abs(json.loads(out)["parameters"] - 6.74e9) / 6.74e9 < 0.01
    code, out, _ = run_cli("models", "--format", "csv")
    assert code == 0 and "deepseek-v3" in out


def test_sweep_formats(run_cli):
    code, out, _ = run_cli("sweep", "--batch", "1,8", "--context", "512", "--tp", "1,2", "--precision", "bf16,fp8",
                           "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2 * 1 * 2 * 2
    assert rows[0]["decode"]["bound"] == "memory" and rows[0]["prefill"]["time_s"] > 0
    code, out, _ = run_cli("sweep", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("batch,context,tp,precision")


@pytest.mark.parametrize("args, code, text", [
    (["analyze", "--batch", "0"], 2, "Error: --batch must be >= 1"),
    (["analyze", "--context", "-5"], 2, "Error: --context must be >= 0"),
    (["analyze", "--tp", "3"], 2, "does not divide the 32 attention heads"),
    (["analyze", "--gpu", "h100-sxn"], 1, "Error: unknown GPU 'h100-sxn'"),
    (["analyze", "--model", "llama-3.1-8"], 1, "Error:"),
    (["analyze", "--batch", "x"], 2, "Error: Invalid value for '--batch'"),
    (["analyze", "--weights", "fp7"], 2, "Error: unknown weights precision 'fp7'"),
    (["analyze", "--gpu", "a100-sxm-80gb", "--activations", "fp8"], 2, "has no fp8 matrix throughput"),
    (["analyze", "--memory-utilization", "1.5"], 2, "--memory-utilization must be in (0, 1]"),
    (["analyze", "--gpu", "cpu"], 2, "--gpu cpu needs a measured profile"),
    (["sweep", "--batch", "1,x"], 2, "Error: --batch takes comma-separated integers"),
    (["analyze", "--bogus"], 2, "Error: No such option"),
])
def test_bad_input_is_one_error_line(run_cli, args, code, text):
    rc, out, err = run_cli(*args)
    assert rc == code
    assert text in err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: ") and all(l.startswith(("Error: ", "Hint: ")) for l in lines)


def test_unknown_names_hint_the_nearest(run_cli):
    _, _, err = run_cli("analyze", "--gpu", "h100-sxn")
    assert "Hint:" in err and "h100-sxm" in err
    _, _, err = run_cli("models", "llama-3.1-8")
    assert "llama-3.1-8b" in err


def test_malformed_spec_file(run_cli, tmp_path):
    p = tmp_path / "mine.json"
    p.write_text("{not json")
    rc, _, err = run_cli("analyze", "--gpu", str(p))
    assert rc in (1, 2) and "mine.json" in err and err.startswith("Error: ")


def test_context_beyond_max_positions_warns(run_cli):
    rc, _, err = run_cli("analyze", "--model", "llama-2-7b", "--context", "10000", "--format", "json")
    assert rc == 0 and "Warning: context 10000 exceeds" in err


def test_gpus_csv_has_every_precision_column(run_cli):
    # the first file (a100) has no fp8; B200 has fp4: the header is the union of all rows' keys
    code, out, _ = run_cli("gpus", "--format", "csv")
    header = out.splitlines()[0].split(",")
    assert code == 0 and "peak_fp8_dense_flops_per_s" in header and "peak_fp4_dense_flops_per_s" in header


def test_gpu_detail_json_carries_sources(run_cli):
    code, out, _ = run_cli("gpus", "h100-sxm", "--format", "json")
    d = json.loads(out)
    assert code == 0 and d["flops_are"] == "dense"
    assert round(d["ridge_point_flops_per_byte"]["fp8"]) == 591
    assert "S4" in d["sources"]["peak_flops_per_s.fp8"]
