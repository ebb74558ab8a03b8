"""The layout flags on the command line: analyze --pp/--ep/--dp-attention, sweep's layout axes, simulate with
expert parallelism; bad layouts are one Error line naming the flags, exit 2."""
import json

import pytest


def test_analyze_pipeline_json(run_cli):
    code, out, err = run_cli("analyze", "--model", "llama-3.1-405b", "--gpu", "h200-sxm", "--tp", "8", "--pp", "2",
                             "--batch", "8", "--format", "json")
    assert code == 0, err
    r = json.loads(out)
    assert r["config"]["pp"] == 2 and r["config"]["gpus"] == 16
    assert r["pipeline_bubble_fraction"] == pytest.approx(1 / 3)  # (pp-1)/(m+pp-1) = 1/(2+1)
    send = [c for c in r["decode"]["communication"] if c["name"] == "pp_send"][0]
    assert send["link"] == "network" and send["collective"] == "send_recv" and send["messages"] == 1
    assert {"collective", "message_bytes", "group", "link", "algorithm", "time_s"} <= set(send)


def test_analyze_expert_parallel_table(run_cli):
    code, out, err = run_cli("analyze", "--model", "mixtral-8x7b", "--tp", "2", "--ep", "8", "--dp-attention", "4")
    assert code == 0, err
    assert "x 8 (tp 2, ep 8, dp attention 4)" in out and "moe_dispatch" in out and "all_to_all" in out


@pytest.mark.parametrize("args,message", [
    (("--model", "mixtral-8x7b", "--tp", "2", "--ep", "8"), "Error: --ep must be 1 or --tp x --dp-attention = 2"),
    (("--model", "llama-3.1-8b", "--dp-attention", "2"), "Error: --dp-attention 2 needs expert parallelism"),
    (("--pp", "0",), "Error: --pp must be between 1 and the 32 layers"),
    (("--model", "llama-3.1-8b", "--ep", "2", "--tp", "2"), "Error: --ep 2, but llama-3.1-8b has no experts"),
])
def test_bad_layouts_are_usage_errors(run_cli, args, message):
    code, out, err = run_cli("analyze", *args)
    assert code == 2 and out == "" and err.startswith(message) and "Hint: " in err and "Traceback" not in err


def test_sweep_layout_axes_skip_what_the_model_cannot_take(run_cli):
    code, out, err = run_cli("sweep", "--model", "mixtral-8x7b", "--batch", "1,64", "--context", "1024",
                             "--tp", "1,2", "--pp", "1,2", "--expert-parallel", "off,on", "--format", "csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    # layouts: tp1 (ep off), tp2 ep off, tp2 ep on (tp1 with ep on is ep=1: the same as off) x pp 1,2 = 6,
    # x 2 batches = 12 rows
    assert len(lines) == 1 + 12
    head = lines[0].split(",")
    assert {"pp", "ep", "dp_attention", "gpus", "pipeline_bubble_fraction"} <= set(head)
    code, out, err = run_cli("sweep", "--expert-parallel", "maybe")
    assert code == 2 and err.startswith("Error: --expert-parallel takes off and/or on")


def test_sweep_warns_about_left_out_layouts(run_cli):
    code, out, err = run_cli("sweep", "--model", "llama-3.1-8b", "--batch", "1", "--context", "512",
                             "--expert-parallel", "off,on", "--tp", "2", "--format", "json")
    assert code == 0 and "Warning: 1 layout(s) left out" in err and "--ep 2, but llama-3.1-8b has no experts" in err
    assert len(json.loads(out)) == 1


@pytest.mark.parametrize("args,message", [
    (("analyze", "--prompt", "9223372036854775808"), "Error: --prompt must be <= 2,147,483,647"),
    (("analyze", "--batch", "3000000000"), "Error: --batch must be <= 2,147,483,647"),
    (("sweep", "--batch", "9223372036854775807", "--format", "json"), "Error: --batch takes integers up to"),
])
def test_counts_beyond_32_bits_are_usage_errors(run_cli, args, message):
    """Counts above 2**31 - 1 used to overflow (an OverflowError, or a negative batch in sweep's JSON)."""
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and err.startswith(message) and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (("capacity", "--rate", "inf"), "Error: --rate must be between 1e-06 and 1e+07, got inf"),
    (("capacity", "--rate", "5e-324"), "Error: --rate must be between 1e-06 and 1e+07, got 5e-324"),
    (("simulate", "--rate", "1", "--turns", "3", "--think-time-s", "inf", "--requests", "50"),
     "Error: --think-time-s must be between 0 and"),
    (("capacity", "--rate", "1", "--tpot-p99-s", "inf"), "Error: --tpot-p99-s must be a finite number > 0"),
])
def test_rates_and_times_out_of_range_are_usage_errors(run_cli, args, message):
    """An infinite or subnormal rate used to crash or overflow; an infinite think time made simulate loop."""
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and err.startswith(message) and "Traceback" not in err


def test_simulate_refuses_unbounded_work_before_allocating(run_cli, monkeypatch):
    """1e9 requests used to allocate 7+ GiB before failing: the limit is checked first and named, with the
    environment variable that raises it."""
    code, out, err = run_cli("simulate", "--rate", "10", "--prompt", "100", "--output", "10",
                             "--requests", "1000000000")
    assert code == 2 and err.startswith("Error: --requests must be between 1 and 10,000,000, got 1,000,000,000")
    assert "ROOFLINE_MAX_REQUESTS" in err
    monkeypatch.setenv("ROOFLINE_MAX_REPLICAS", "4")
    code, out, err = run_cli("simulate", "--rate", "10", "--prompt", "100", "--output", "10", "--replicas", "5")
    assert code == 2 and err.startswith("Error: --replicas must be between 1 and 4, got 5")
