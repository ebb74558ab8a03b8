"""roofline search: Pareto fronts, the screen against capacity, the shard plan, local == Ray, retries, resume,
and the command's errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.cli.app import main
from roofline.errors import RooflineError
from roofline.model import memory as mem
from roofline.model.engine import make_setup
from roofline.plan import search
from roofline.plan.capacity import replica_capacity
from roofline.plan.executors import RESULT, Fault, Interrupted, run_search
from roofline.specs.engines import load_engine
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import load_workload

ROOT = Path(__file__).resolve().parents[2]
SUMMARIZE = ROOT / "examples" / "workload-summarize.json"


def small_space(**kw) -> search.SearchSpace:
    """24 candidates: 2 GPUs x 3 layouts (tp1, tp2, tp1 pp2) x 2 precisions x 2 batch limits; 3 shards of 8."""
    args = dict(models=(load_model("llama-3.1-8b"),), workloads=(load_workload(SUMMARIZE),),
                gpus=(load_gpu("h100-sxm"), load_gpu("a100-sxm-80gb")), prices=(2.5, 1.6),
                engines=(load_engine("vllm"),), precisions=("bf16", "fp8"), max_gpus=2, max_seqs=(64, 256), top=1,
                sim_requests=200, shard_candidates=8)
    return search.SearchSpace(**{**args, **kw})


# ---------------------------------------------------------------------------------------------------------
# Pareto front and crossings

def test_pareto_front_hand_example():
    # (cost, latency, throughput):  0 (1, 5, 10) front: cheapest
    #                               1 (2, 3, 10) front: faster
    #                               2 (2, 4, 10) dominated by 1 (same cost and throughput, slower)
    #                               3 (3, 3, 20) front: more throughput
    #                               4 (3, 3, 20) duplicate of 3: index 3 stands for it
    #                               5 (4, 6, 5)  dominated by 0, 1 and 3
    cost = np.array([1, 2, 2, 3, 3, 4.0])
    lat = np.array([5, 3, 4, 3, 3, 6.0])
    thr = np.array([10, 10, 10, 20, 20, 5.0])
    assert search.pareto_front(cost, lat, thr).tolist() == [0, 1, 3]
    # the duplicate of lower index stands for both
    assert search.pareto_front(cost, lat, thr, index=np.array([0, 1, 2, 9, 4, 5])).tolist() == [0, 1, 4]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=60))
def test_pareto_front_matches_brute_force(points):
    a = np.array(points, dtype=float)
    got = set(search.pareto_front(a[:, 0], a[:, 1], a[:, 2]).tolist())
    want = set()
    for i, (c, l, t) in enumerate(points):
        dominated = any(c2 <= c and l2 <= l and t2 >= t and (c2, l2, t2) != (c, l, t) for c2, l2, t2 in points)
        first = all(points[j] != (c, l, t) for j in range(i))
        if not dominated and first:
            want.add(i)
    assert got == want


def test_crossing_interpolates_each_row():
    log_u = np.log(np.array([1.0, 2.0, 4.0]))
    y = np.array([[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]])
    # row 0 crosses 0.5 halfway between u=1 and u=2 (in log u); row 1 is above 4 from the start (-inf);
    # row 0 never reaches 3 (+inf)
    x = search.crossing(log_u, y, np.array([0.5, 4.0, 3.0]), np.array([0, 1, 0]))
    assert x[0] == pytest.approx(0.5 * np.log(2.0))
    assert x[1] == -np.inf and x[2] == np.inf


# ---------------------------------------------------------------------------------------------------------
# the screen

def test_screen_agrees_with_capacity():
    """The screen restates capacity's steady state over arrays (hit rate 1, a linear chunk cost): one
    candidate's rate is within 25% of replica_capacity's."""
    sp = small_space()
    r = search.screen(sp, 0, 0, sp.size(0))
    # candidate: h100-sxm, vllm, max_seqs 256, tp1 pp1, fp8 (axes gpu, engine, mbt, frac, seqs, layout, prec)
    i = int(np.ravel_multi_index((0, 0, 0, 0, 1, 0, 1), sp.axes(0)))
    ms = mem.engine_settings(load_engine("vllm"), load_gpu("h100-sxm"), 1, 1, max_seqs=256)
    s = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"), 1, "fp8", "fp8", "fp8")
    want = replica_capacity(s, load_workload(SUMMARIZE), ms)["max_request_rate_per_replica"]
    assert want > 0 and r["rate"][i] == pytest.approx(want, rel=0.25)


def test_engine_table_matches_scalar_settings():
    """The KV capacity over arrays of settings equals memory.kv_cache_capacity_tokens one setting at a time."""
    sp = small_space(max_seqs=(64, 1024), kv_cache_fractions=(0.8, None))
    t = search.engine_table(sp, 0, 0, 0)
    gpu, model = load_gpu("h100-sxm"), load_model("llama-3.1-8b")
    for j, frac in enumerate((0.8, None)):
        for k, seqs in enumerate((64, 1024)):
            ms = mem.engine_settings(load_engine("vllm"), gpu, 2, 1, kv_cache_fraction=frac, max_seqs=seqs)
            s = make_setup(gpu, model, 2, "fp8", "fp8", "fp8")  # row: layout tp2 (index 2) x fp8 (index 1)
            assert t["kv_tokens"][0, j, k, 2 * 2 + 1] == float(mem.kv_cache_capacity_tokens(s, ms))


def test_shard_plan_is_deterministic():
    sp, again = small_space(), small_space()
    assert sp.plan_id() == again.plan_id()
    assert search.screen_shards(sp) == [(0, 0, 8), (0, 8, 16), (0, 16, 24)]
    seeds = [search.shard_seed(sp.plan_id(), "simulate", i) for i in range(3)]
    assert seeds == [search.shard_seed(again.plan_id(), "simulate", i) for i in range(3)]
    assert len(set(seeds)) == 3
    assert small_space(top=2).plan_id() != sp.plan_id()


def test_bad_axes_are_usage_errors():
    with pytest.raises(RooflineError) as e:
        small_space(max_seqs=())
    assert e.value.exit_code == 2 and e.value.param == "max_seqs"
    with pytest.raises(RooflineError) as e:
        small_space(max_gpus=0)
    assert e.value.param == "max_gpus"
    with pytest.raises(RooflineError) as e:
        small_space(prices=(2.5,))
    assert e.value.param == "prices"


def test_too_many_sim_requests_name_sim_requests_before_any_work():
    """2**63-1 used to pass the space's check and be refused by the simulator as `requests` (the CLI then named
    simulate's --requests, a flag search does not have)."""
    with pytest.raises(RooflineError) as e:
        small_space(sim_requests=2 ** 63 - 1)
    assert e.value.exit_code == 2 and e.value.param == "sim_requests"
    assert e.value.message.startswith("sim_requests must be between 1 and 10,000,000")
    with pytest.raises(RooflineError) as e:  # as `price` and a fleet file: 1e308 overflowed a fleet's cost
        small_space(prices=(2.5, 1e308))
    assert e.value.exit_code == 2 and e.value.param == "prices"


# ---------------------------------------------------------------------------------------------------------
# executors: byte-identical results, retries, resume

@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    """The uninterrupted local run with 2 workers."""
    d = tmp_path_factory.mktemp("ref")
    doc = run_search(small_space(), d, "local", workers=2)
    res = doc["results"][0]
    assert res["candidates_screened"] == 24 and res["cheapest"]["feasible"]
    assert res["simulations"] >= 2 and res["pareto"]
    return (d / RESULT).read_bytes()


def test_one_worker_equals_two(reference, tmp_path):
    run_search(small_space(), tmp_path, "local", workers=1)
    assert (tmp_path / RESULT).read_bytes() == reference


def test_killed_shard_is_rerun(reference, tmp_path):
    marker = tmp_path / "markers"
    marker.mkdir()
    run_search(small_space(), tmp_path / "out", "local", workers=2, fault=Fault(str(marker), "screen", 1))
    assert (marker / "screen-1.failed").exists()  # the first attempt died
    assert (tmp_path / "out" / RESULT).read_bytes() == reference


def test_resume_after_interrupt(reference, tmp_path):
    with pytest.raises(Interrupted):
        run_search(small_space(), tmp_path, "local", workers=1, stop_after=2)
    assert len(list((tmp_path / "screen").glob("shard-*.json"))) == 2 and not (tmp_path / RESULT).exists()
    with pytest.raises(RooflineError, match="already holds a search"):
        run_search(small_space(), tmp_path, "local", workers=1)
    with pytest.raises(RooflineError, match="holds plan"):
        run_search(small_space(top=2), tmp_path, "local", workers=1, resume=True)
    seen = []
    run_search(small_space(), tmp_path, "local", workers=2, resume=True, progress=seen.append)
    assert (tmp_path / RESULT).read_bytes() == reference
    assert seen[0]["shards_done"] == 2 and seen[-1]["screened"] == 24  # the shards already there count




@pytest.fixture(scope="module")
def ray_runtime():
    ray_mod = pytest.importorskip("ray")
    ray_mod.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray_mod
    ray_mod.shutdown()


def test_ray_equals_local_and_reruns_a_killed_shard(reference, ray_runtime, tmp_path):
    run_search(small_space(), tmp_path / "a", "ray")
    assert (tmp_path / "a" / RESULT).read_bytes() == reference
    marker = tmp_path / "markers"
    marker.mkdir()
    run_search(small_space(), tmp_path / "b", "ray", fault=Fault(str(marker), "simulate", 0))
    assert (marker / "simulate-0.failed").exists()
    assert (tmp_path / "b" / RESULT).read_bytes() == reference


# ---------------------------------------------------------------------------------------------------------
# the command

BASE = ["search", "--model", "llama-3.1-8b", "--workload", str(SUMMARIZE), "--gpu", "h100-sxm,a100-sxm-80gb",
        "--price", "h100-sxm=2.5", "--price", "a100-sxm-80gb=1.6", "--max-gpus", "2", "--top", "1",
        "--sim-requests", "200", "--max-seqs", "64,256"]


@pytest.mark.parametrize("args, message", [
    (["--gpu", "h100-sxm,l4"], "Error: --price has no price for l4"),
    (["--executor", "dask"], "Error: --executor must be one of local, ray, got 'dask'"),
    (["--max-gpus", "0"], "Error: --max-gpus must be between 1 and 64, got 0"),
    (["--max-seqs", "0"], "Error: --max-seqs must be whole numbers >= 1, got 0"),
    (["--resume"], "Error: --resume needs a results directory"),
    (["--kv-cache-fraction", "x"], "Error: --kv-cache-fraction takes comma-separated numbers"),
    (["--engine", "nosuch"], "Error: unknown engine 'nosuch'"),
    (["--gpu", ","], "Error: --gpu is empty"),
])
def test_cli_bad_axes(capsys, args, message):
    assert main(BASE + args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("address, message", [
    ("nope", "Error: --address 'nope' is not HOST:PORT"),
    ("127.0.0.1:1", "Error: no Ray cluster answers at address '127.0.0.1:1'"),  # nothing listens on port 1
])
def test_cli_dead_ray_address_fails_fast(capsys, address, message):
    """ray.init waits minutes on an address no cluster answers; the search checks it first (5 s at most)."""
    pytest.importorskip("ray")
    assert main(BASE + ["--executor", "ray", "--address", address]) == 2
    err = capsys.readouterr().err
    assert message in err and "Hint: pass --address auto or the HOST:PORT a running Ray head prints" in err


def test_cli_no_workload(capsys):
    assert main(["search", "--price", "h100-sxm=2", "--price", "h200-sxm=3"]) == 2
    assert "Error: no workload given" in capsys.readouterr().err


def test_cli_json_is_the_result_file(capsys, tmp_path):
    assert main(BASE + ["--workers", "2", "--format", "json", "--results-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc == json.loads((tmp_path / RESULT).read_text()) and doc["results"][0]["candidates_screened"] == 24
    assert "screen" not in captured.err  # no progress bar with JSON output
    assert main(BASE + ["--workers", "2", "--results-dir", str(tmp_path)]) == 2  # an existing search: refused
    assert "Hint: pass --resume to continue it" in capsys.readouterr().err
    assert main(BASE + ["--workers", "2", "--format", "csv", "--results-dir", str(tmp_path), "--resume"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model,workload,pareto,cheapest,gpu,tp") and len(lines) >= 3
