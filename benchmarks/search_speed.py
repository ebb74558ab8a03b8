"""Search speed: candidates screened per second, simulations per second on 1 and 2 workers, Ray's overhead over
the local executor, and the time of a reference search.

    python benchmarks/search_speed.py [--skip-ray] [--screen-only]

1. Stage 1 over >= 10 million candidates (10 dense models x 2 workloads x 13 GPU types x every layout of up
   to 16 GPUs x 3 precisions x 2 engines x 4 token budgets x 8 KV fractions x 16 batch limits) on the local executor
   with 2 workers (target: under 60 s).
2. Stage 2 (the reference search's simulations) with 1 and 2 local workers (target: 2 workers >= 1.7x one),
   and with Ray on 2 CPUs (target: Ray's overhead over local < 20%).
3. The reference search end to end: Llama-3.1-70B, 4 GPU types x every layout up to 16 GPUs x 3 precisions x
   2 engines x 8 batch limits, 2 workloads (chat, summarize), top 4, 2 local workers.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from roofline.plan import search
from roofline.plan.executors import Runner, Shard, run_search
from roofline.specs.engines import load_engine
from roofline.specs.hardware import list_gpus, load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import load_workload

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = tuple(load_workload(ROOT / "examples" / f"workload-{n}.json") for n in ("chat", "summarize"))
ENGINES = (load_engine("vllm"), load_engine("sglang"))
PRICES = {"h100-sxm": 2.5, "h200-sxm": 3.5, "a100-sxm-80gb": 1.6, "mi300x": 3.0}  # illustrative USD/GPU-hour


#: the dense models of the stage-1 speed test
MODELS = ("llama-3.1-70b", "llama-3.1-8b", "qwen2.5-72b", "llama-2-70b", "llama-2-13b", "mistral-7b", "qwen2.5-7b",
          "qwen3-8b", "gemma-2-9b", "llama-3.1-405b")


def big_space() -> search.SearchSpace:
    gpus = tuple(load_gpu(g) for g in list_gpus())
    return search.SearchSpace(
        tuple(load_model(m) for m in MODELS), WORKLOADS, gpus,
        tuple(2.0 for _ in gpus), ENGINES, ("bf16", "fp8", "int4/bf16/bf16"), 16,
        (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096), (2048, 4096, 8192, 16384),
        (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95))


def reference_space(top: int = 4) -> search.SearchSpace:
    gpus = tuple(load_gpu(g) for g in PRICES)
    return search.SearchSpace((load_model("llama-3.1-70b"),), WORKLOADS, gpus, tuple(PRICES.values()), ENGINES,
                              ("bf16", "fp8", "int4/bf16/bf16"), 16, (16, 32, 64, 128, 256, 384, 512, 1024), top=top)


def timed_stage(space, shards, executor: str, workers: int | None) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        runner = Runner(space, Path(d), executor, workers, None, None, None, None)
        t0 = time.perf_counter()
        runner.run(shards)
        return time.perf_counter() - t0, runner.counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--screen-only", action="store_true")
    args = ap.parse_args()
    sp = big_space()
    shards = [Shard("screen", i, p) for i, p in enumerate(search.screen_shards(sp))]
    wall, counts = timed_stage(sp, shards, "local", 2)
    print(f"stage 1: {counts['screened']:,} candidates screened in {wall:.1f} s = {counts['screened'] / wall:,.0f}"
          f" candidates/s (2 local workers, {len(shards)} shards)")
    if args.screen_only:
        return
    ref = reference_space()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        doc = run_search(ref, d, "local", 2)
    wall = time.perf_counter() - t0
    screened = sum(r["candidates_screened"] for r in doc["results"])
    sims = sum(r["simulations"] for r in doc["results"])
    print(f"reference search (Llama-3.1-70B, {len(PRICES)} GPUs x {len(ref.layouts(ref.models[0]))} layouts x 3 "
          f"precisions x 2 engines x 8 batch limits, 2 workloads): {screened:,} candidates screened, {sims} "
          f"simulations, {wall:.1f} s (2 local workers)")
    for r in doc["results"]:
        b = r["cheapest"]
        if b:
            print(f"  {r['workload']}: cheapest {b['gpu']} tp{b['tp']} pp{b['pp']} {b['precision']} {b['engine']} "
                  f"max_seqs {b['max_seqs']} x{b['sim_replicas']}: ${b['sim_cost_per_hour']:.2f}/h, binding "
                  f"{b['sim_limited_by']}")
    merged = search.merge_screen(ref, [search.screen_shard(ref, *p) for p in search.screen_shards(ref)])
    cands = search.simulation_list(ref, merged)
    sim_shards = [Shard("simulate", i, c) for i, c in enumerate(cands)]
    t1, c1 = timed_stage(ref, sim_shards, "local", 1)
    t2, c2 = timed_stage(ref, sim_shards, "local", 2)
    print(f"stage 2: {c1['simulations']} simulations: 1 worker {t1:.1f} s ({c1['simulations'] / t1:.1f}/s), "
          f"2 workers {t2:.1f} s ({c2['simulations'] / t2:.1f}/s): speed-up {t1 / t2:.2f}x, scaling efficiency "
          f"{t1 / t2 / 2:.0%}")
    if not args.skip_ray:
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        timed_stage(ref, sim_shards[:2], "ray", None)  # warm the Ray workers up (process start, imports)
        tr, _ = timed_stage(ref, sim_shards, "ray", None)
        ray.shutdown()
        print(f"stage 2 on Ray (2 CPUs, workers warm): {tr:.1f} s vs local 2 workers {t2:.1f} s: overhead "
              f"{tr / t2 - 1:+.0%}")


if __name__ == "__main__":
    main()
