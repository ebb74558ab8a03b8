"""Step-time tables, per-replica capacity, and the `capacity` / `simulate` commands (the fleet file and the
fleet solver: tests/specs/test_fleet_file.py, tests/plan/test_fleet.py)."""
import json
import re
import math

import pytest
import typer
from typer.testing import CliRunner

from roofline.plan.capacity import Candidate, candidates, capacity_table, evaluate_candidate, predict, replica_capacity
from roofline.cli.capacity import register
from roofline.model.engine import make_setup
from roofline.errors import RooflineError
from roofline.specs.hardware import load_gpu
from roofline.model.memory import MemorySettings
from roofline.specs.models import load_model
from roofline.model.step_time import StepTimeModel, exact_step_time_s
from roofline.specs.workload import SLO, LengthDist, Workload

H100 = load_gpu("h100-sxm")
CHAT = Workload(10.0, LengthDist("fixed", value=1000), LengthDist("fixed", value=200),
                slo=SLO(ttft_p99_s=2.0, tpot_p99_s=0.05))


@pytest.mark.parametrize("model, tp, w", [("llama-3.1-8b", 1, "bf16"), ("mixtral-8x7b", 2, "bf16"),
                                          ("deepseek-v3", 8, "fp8"), ("gemma-2-9b", 1, "bf16"),
                                          ("llama-3.1-70b", 4, "fp8")])
def test_step_time_table_matches_exact_model(model, tp, w):
    s = make_setup(H100, load_model(model), tp, weights=w)
    sm = StepTimeModel(s, 8448)
    assert sm.check() < 1e-6
    # the scalar paths agree with the exact model on a mixed and a decode step
    assert sm.time(700, 40, 4e5, 9e4) == pytest.approx(float(exact_step_time_s(s, 700, 40, 4e5, 9e4)), rel=1e-9)
    assert sm.decode_time(64, 64 * 3000.0) == pytest.approx(sm.time(64, 64, 64 * 3000.0, 64 * 3000.0), rel=1e-12)


def test_70b_bf16_does_not_fit_one_h100():
    row = evaluate_candidate(Candidate(H100, 1, "bf16"), load_model("llama-3.1-70b"), CHAT, MemorySettings(), 2.0)
    # 70.6e9 params x 2 bytes = 141 GB > 0.9 x 85.5 GB
    assert not row["feasible"] and row["bottleneck"] == "hbm_capacity"


def test_capacity_row_arithmetic():
    m = load_model("llama-3.1-8b")
    r = evaluate_candidate(Candidate(H100, 1, "bf16"), m, CHAT, MemorySettings(), 2.5)
    rate = r["max_request_rate_per_replica"]
    assert r["feasible"] and rate > 0
    assert r["replicas"] == math.ceil(CHAT.peak_rate_per_s / rate)
    assert r["gpus"] == r["replicas"] and r["cost_per_hour"] == 2.5 * r["gpus"]
    # $/h over output tokens per hour: mean rate 10 req/s x 200 tokens x 3600 s
    assert r["cost_per_million_output_tokens"] == pytest.approx(r["cost_per_hour"] / (10 * 200 * 3600) * 1e6)
    assert 0 <= r["headroom"] < 1 and r["bottleneck"] in ("compute", "bandwidth", "nvlink", "pcie", "network", "hbm_capacity")
    assert r["tpot_p99_s"] <= 0.05 and r["ttft_p99_s"] <= 2.0


def test_tighter_slo_lowers_rate_and_kv_binds_when_memory_is_short():
    s = make_setup(H100, load_model("llama-3.1-8b"))
    loose = replica_capacity(s, CHAT)["max_request_rate_per_replica"]
    tight = replica_capacity(s, Workload(10.0, CHAT.prompt, CHAT.output, slo=SLO(tpot_p99_s=0.015)))
    assert tight["max_request_rate_per_replica"] < loose and tight["limited_by"] == "tpot_p99_slo"
    short = replica_capacity(s, Workload(10.0, LengthDist("fixed", value=30000), LengthDist("fixed", value=200)),
                             MemorySettings(memory_utilization=0.5))
    assert short["limited_by"] == "kv_capacity" and short["bottleneck"] == "hbm_capacity"


def test_replica_capacity_has_the_same_keys_feasible_or_not():
    """A feasible replica and one that fits no request return the same keys (None / 0 where nothing runs)."""
    s = make_setup(H100, load_model("llama-3.1-8b"))
    ok = replica_capacity(s, CHAT)
    # a 100,000-token prompt needs 100000 x 128 KiB = 12.2 GiB of KV; at 20% of 80 GiB the weights alone
    # (15 GiB) leave no room, so nothing fits
    none = replica_capacity(s, Workload(1.0, LengthDist("fixed", value=100000), LengthDist("fixed", value=10)),
                            MemorySettings(memory_utilization=0.2))
    assert ok["max_request_rate_per_replica"] > 0 and none["max_request_rate_per_replica"] == 0.0
    assert set(ok) == set(none)
    assert none["tpot_p99_s"] is None and none["output_tokens_per_s_per_replica"] == 0.0


def test_h200_beats_h100_for_70b_fp8_tp2():
    m = load_model("llama-3.1-70b")
    rows = capacity_table([Candidate(H100, 2, "fp8"), Candidate(load_gpu("h200-sxm"), 2, "fp8")], m, CHAT, {})
    by = {r["gpu"]: r for r in rows}
    assert by["h200-sxm"]["max_request_rate_per_replica"] > by["h100-sxm"]["max_request_rate_per_replica"]


def test_predict_saturates():
    s = make_setup(H100, load_model("llama-3.1-8b"))
    sat = replica_capacity(s, CHAT)["saturation_rate_per_replica"]
    assert predict(s, CHAT, 0.5 * sat)["throughput_output_tokens_per_s"] == pytest.approx(0.5 * sat * 200)
    assert predict(s, CHAT, 10 * sat)["saturated"]


def _app():
    app = typer.Typer()
    register(app)
    return app


def test_cli_capacity_json_and_fleet():
    r = CliRunner().invoke(_app(), ["capacity", "--model", "llama-3.1-8b", "--rate", "20", "--gpu", "h100-sxm",
                                    "--tp", "1", "--precision", "bf16", "--fleet", "examples/fleet.json",
                                    "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    row = d["candidates"][0]
    for key in ("gpus", "replicas", "max_request_rate_per_replica", "cost_per_million_output_tokens", "bottleneck"):
        assert key in row
    assert d["fleet_plan"]["served_rate_per_s"] == pytest.approx(20.0)


def test_cli_simulate_json_and_errors(tmp_path):
    r = CliRunner().invoke(_app(), ["simulate", "--rate", "2", "--requests", "300", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("ttft_s", "tpot_s", "throughput_output_tokens_per_s", "kv_cache_utilization", "cache_hit_rate"):
        assert key in d
    bad = tmp_path / "w.json"
    bad.write_text('{"arrival": {"rate_per_s": 0}}')
    r = CliRunner().invoke(_app(), ["simulate", "--workload", str(bad)])
    assert isinstance(r.exception, RooflineError) and "arrival.rate_per_s" in r.exception.message


def _fleet_file(tmp_path, doc, name="fleet.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


ONE = ["--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--tp", "1", "--precision", "bf16"]


@pytest.mark.parametrize("args, code, message", [
    (["capacity", "--model", "llama-3.1-8b", "--rate", "5", "--tp", "3"], 2,
     "Error: --tp 3 does not divide the 32 attention heads of llama-3.1-8b"),
    (["capacity", "--model", "llama-3.1-8b", "--rate", "5", "--tp", "3,5"], 2,
     "Error: --tp 3,5: none of these degrees divides the 32 attention heads of llama-3.1-8b"),
    (["capacity", "--rate", "5", "--price", "h100-sxm=-1"], 2,
     "Error: --price 'h100-sxm=-1': the price must be between 0 and 1e+06 USD per GPU-hour, got -1"),
    (["capacity", "--rate", "1e7", "--price", "h100-sxm=1e308"], 2,  # the fleet's cost used to print as $inf/h
     "Error: --price 'h100-sxm=1e308': the price must be between 0 and 1e+06 USD per GPU-hour, got 1e308"),
    (["capacity", "--rate", "5", "--ttft-p99-s", "-1"], 2, "Error: --ttft-p99-s must be a finite number > 0, got -1.0"),
    (["capacity", "--rate", "5", "--prompt", "0"], 2, "Error: --prompt must be >= 1 token, got 0"),
    (["capacity", "--workload", "examples/workload-chat.json", "--tpot-p99-s", "0.01"], 2,
     "Error: --tpot-p99-s 0.01 is below the workload's p50 target of 0.03 s"),
    (["simulate", "--rate", "5", "--output", "uniform:9:3"], 2,
     "Error: --output uniform:MIN:MAX needs 1 <= MIN <= MAX, got 'uniform:9:3'"),
    (["simulate", "--rate", "5", "--start-hour", "24"], 2,
     "Error: --start-hour must be an hour of the day 0-23, got 24"),
    (["simulate", "--rate", "5", "--model", "llama-3.1-405b", "--requests", "100"], 1,
     "Error: llama-3.1-405b does not fit on h100-sxm at TP 1: the weights and runtime leave no memory for a KV cache"),
])
def test_cli_bad_flags_and_domain_errors(run_cli, args, code, message):
    rc, _, err = run_cli(*args)
    lines = err.splitlines()
    assert rc == code and lines[0] == message and lines[1].startswith("Hint: ")


def test_cli_model_that_does_not_fit_names_the_smallest_tp(run_cli):
    rc, _, err = run_cli("simulate", "--rate", "5", "--model", "llama-3.1-405b", "--precision", "fp8",
                         "--requests", "100")
    assert rc == 1 and err.splitlines()[1] == "Hint: the smallest TP that fits is 8: pass --tp 8"


def test_cli_bad_files(run_cli, tmp_path):
    bad_gpu = _fleet_file(tmp_path, {"regions": {"us": {"h100-sxm": 8, "h999": 4}}})
    rc, _, err = run_cli("capacity", "--rate", "5", *ONE, "--fleet", bad_gpu)
    assert rc == 1 and err.splitlines()[0] == f"Error: {bad_gpu}: field 'regions.us.h999' names an unknown GPU 'h999'"
    slo = _fleet_file(tmp_path, {"arrival": {"rate_per_s": 1}, "prompt_tokens": 100, "output_tokens": 10,
                                 "slo": {"ttft_p50_s": 3, "ttft_p99_s": 2}}, "w.json")
    rc, _, err = run_cli("capacity", "--workload", slo, *ONE)
    assert rc == 1 and err.splitlines()[0] == (f"Error: {slo}: field 'slo.ttft_p50_s' must be <= slo.ttft_p99_s (2), "
                                               "found 3.0")


def test_cli_some_tp_degrees_valid_keeps_row_notes(run_cli):
    rc, out, _ = run_cli("capacity", "--model", "llama-3.1-8b", "--rate", "5", "--gpu", "h100-sxm", "--tp", "3,1",
                         "--precision", "bf16", "--format", "json")
    rows = {r["tp"]: r for r in json.loads(out)["candidates"]}
    assert rc == 0 and rows[1]["feasible"] and "does not divide" in rows[3]["reason"]


def test_cli_warns_on_context_and_unpriced_fleet(run_cli, tmp_path):
    rc, _, err = run_cli("capacity", "--rate", "5", *ONE, "--prompt", "200000", "--format", "json")
    assert rc == 0 and err.startswith("Warning: context 200256 exceeds llama-3.1-8b's maximum of 131072 positions")
    fleet = _fleet_file(tmp_path, {"gpus": {"h100-sxm": {"price_per_gpu_hour": 2}},
                                   "regions": {"us": {"H100": 8, "h200-sxm": 8}}})
    rc, out, err = run_cli("capacity", "--rate", "5", "--model", "llama-3.1-8b", "--tp", "1", "--precision", "bf16",
                           "--fleet", fleet, "--format", "json")
    assert rc == 0 and err.startswith("Warning: no price for h200-sxm: costs are unknown and the optimiser "
                                      "minimises the number of GPUs")
    assert json.loads(out)["fleet_plan"]["cost_per_hour"] is None
    # --price fills the gap (and replaces the file's price): the cheapest mix has a cost again, no warning
    rc, out, err = run_cli("capacity", "--rate", "5", "--model", "llama-3.1-8b", "--tp", "1", "--precision", "bf16",
                           "--fleet", fleet, "--price", "h200-sxm=3", "--price", "h100-sxm=9", "--format", "json")
    plan = json.loads(out)["fleet_plan"]
    assert rc == 0 and not err and plan["mix"][0]["gpu"] == "h200-sxm" and plan["cost_per_hour"] == 3.0


def test_cli_simulate_reports_the_peak_hour_and_exact_requests(run_cli):
    rc, out, _ = run_cli("simulate", "--workload", "examples/workload-chat.json", "--requests", "2000",
                         "--replicas", "4", "--format", "json")
    d = json.loads(out)
    assert rc == 0 and d["requests"] == 2000 and d["start_hour"] == 12 and d["hours_simulated"] == [12]
    assert d["offered_rate_per_s"] == pytest.approx(40 * 1.6, rel=0.15)
    rc, out, _ = run_cli("simulate", "--workload", "examples/workload-chat.json", "--requests", "2000",
                         "--start-hour", "3", "--replicas", "4")
    # 2,000 requests at 0.2 x 40 req/s arrive over ~4 minutes: the label says so instead of the whole hour
    assert rc == 0 and re.search(r"03:00-03:0\d of the daily curve \(rate x0.2\), \d+ s of arrivals", out)


def test_pipeline_candidates_span_two_nodes():
    """The default candidate list carries two pipeline stages of the widest TP group: 405B fp8 on H200 tp8 x pp2
    is a 16-GPU replica; its step is composed from micro-batches, so per replica it serves more than tp8.
    An explicit TP list is taken as given."""
    m = load_model("llama-3.1-405b")
    h200 = load_gpu("h200-sxm")
    assert [(c.tp, c.pp) for c in candidates([h200], m, [8], ["fp8"])] == [(8, 1)]
    cands = [c for c in candidates([h200], m, None, ["fp8"]) if c.tp == 8]
    assert [(c.tp, c.pp, c.gpus_per_replica) for c in cands] == [(8, 1, 8), (8, 2, 16)]
    rows = {r["pp"]: r for r in capacity_table(cands, m, CHAT, {})}
    assert rows[2]["feasible"] and rows[2]["gpus_per_replica"] == 16
    assert rows[2]["gpus"] == rows[2]["replicas"] * 16
    assert rows[2]["max_request_rate_per_replica"] > rows[1]["max_request_rate_per_replica"]
