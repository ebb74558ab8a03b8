"""Simulator speed: 1,000,000 chat requests (Llama-3.1-8B, H100 SXM, 8 replicas at ~70% of capacity).

Target: <= 10 s on a 2-core machine. Prints "N requests/s" (wall clock of `simulate`, including sampling the
workload and building the step-time table). Usage: python benchmarks/simulate_speed.py [REQUESTS]
"""
from __future__ import annotations

import sys
import time

from roofline.plan.capacity import replica_capacity
from roofline.model.engine import make_setup
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.plan.simulate import simulate
from roofline.specs.workload import SLO, LengthDist, Workload

REPLICAS = 8


def main(n: int = 1_000_000) -> None:
    w = Workload(1.0, LengthDist("lognormal", median=1000, sigma=0.7, low=16, high=8192),
                 LengthDist("lognormal", median=250, sigma=0.6, low=1, high=2048),
                 slo=SLO(ttft_p99_s=2.0, tpot_p99_s=0.05))
    s = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"))
    rate = 0.7 * replica_capacity(s, w)["max_request_rate_per_replica"] * REPLICAS
    t0 = time.perf_counter()
    res = simulate(s, w, n, REPLICAS, seed=0, rate_per_s=rate)
    wall = time.perf_counter() - t0
    print(f"simulated {res['requests']:,} requests ({res['steps']:,} steps, {res['duration_s']:.0f} s of traffic "
          f"at {rate:.1f} req/s on {REPLICAS} replicas) in {wall:.2f} s")
    print(f"{res['requests'] / wall:,.0f} requests/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
