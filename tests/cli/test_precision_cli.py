"""Every command that takes precision sets (sweep, capacity, simulate, plot, analyze, report, spreadsheet --precision) reads them
with the one parser: `int4` is W4A16 (int4/bf16/bf16) and `int8` is int8/int8/bf16 on each, and the help says so."""
import csv
import io
import json

import pytest

from roofline.report import plots

RULE = "int8 = int8/int8/bf16, int4 = int4/bf16/bf16"


def _csv(out: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(out)))


def test_sweep(run_cli):
    code, out, err = run_cli("sweep", "--batch", "1,8", "--context", "512", "--precision",
                             "int4,int4/bf16/bf16,int8,int8/int8/bf16", "--format", "csv")
    rows = _csv(out)
    assert code == 0, err
    assert [r["precision"] for r in rows] == ["int4/bf16/bf16"] * 2 + ["int8/int8/bf16"] * 2 + \
        ["int4/bf16/bf16"] * 2 + ["int8/int8/bf16"] * 2  # batch 1: the four sets, then batch 8
    assert rows[0] == rows[1] and rows[2] == rows[3]  # the bare name and its triple give the same row


def test_capacity(run_cli):
    code, out, err = run_cli("capacity", "--model", "llama-3.1-8b", "--rate", "5", "--gpu", "h100-sxm", "--tp", "1",
                             "--precision", "int4,int4/bf16/bf16,int8,int8/int8/bf16", "--format", "csv")
    rows = {r.pop("precision"): r for r in _csv(out)}
    assert code == 0, err
    assert rows["int4"] == rows["int4/bf16/bf16"] and rows["int8"] == rows["int8/int8/bf16"]
    assert rows["int4"] != rows["int8"]


@pytest.mark.parametrize("bare, triple", [("int4", "int4/bf16/bf16"), ("int8", "int8/int8/bf16")])
def test_simulate(run_cli, bare, triple):
    def run(precision):
        code, out, err = run_cli("simulate", "--rate", "2", "--requests", "200", "--precision", precision,
                                 "--format", "json")
        assert code == 0, err
        d = json.loads(out)
        assert d.pop("precision") == precision
        return d
    assert run(bare) == run(triple)


def test_plot_latency(run_cli, monkeypatch, tmp_path):
    drawn = []
    real = plots.latency_throughput

    def spy(series, *args, **kwargs):
        drawn.extend(precision for _, _, precision in series)
        return real(series, *args, **kwargs)

    monkeypatch.setattr(plots, "latency_throughput", spy)
    code, _, err = run_cli("plot", "latency", "--precisions", "int4,int8", "--gpus", "", "-o",
                           str(tmp_path / "l.svg"))
    assert code == 0, err
    assert drawn == ["int4/bf16/bf16", "int8/int8/bf16"]


@pytest.mark.parametrize("command, flag", [("sweep", "--precision"), ("capacity", "--precision"),
                                           ("simulate", "--precision"), ("plot", "--precision"),
                                           ("analyze", "--precision"), ("report", "--precision"),
                                           ("spreadsheet", "--precision")])
def test_help_states_the_rule(run_cli, command, flag):
    code, out, _ = run_cli(command, "--help")
    text = " ".join(out.split())
    assert code == 0 and flag in text and RULE in text


@pytest.mark.parametrize("args", [["sweep", "--precision", "bf16,int4/bf16"],
                                  ["capacity", "--rate", "5", "--precision", "int4/bf16"],
                                  ["simulate", "--rate", "5", "--precision", "int4/bf16"]])
def test_a_bad_set_is_one_usage_error(run_cli, args):
    code, out, err = run_cli(*args)
    assert code == 2 and out == ""
    assert err.splitlines()[0] == "Error: 'int4/bf16' is not a precision set"
    assert err.splitlines()[1].startswith("Hint: one name (bf16, fp8, int8, int4) or weights/activations/kv")
