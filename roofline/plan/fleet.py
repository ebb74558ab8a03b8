"""The cheapest mix of replicas on a fleet (`roofline.specs.fleet`) that meets a load, as a mixed-integer
program (scipy.optimize.milp); when supply runs out, the load left unserved.

The program: integer x[r, c] = replicas of candidate c (GPU x TP x precision) in region r;
stage 1 minimises the unserved rate U subject to  sum x[r, c] * rate_c + U >= demand  and, per region and GPU
type,  sum_c x[r, c] * tp_c <= available;  stage 2 keeps U at its minimum and minimises the $/hour.
"""
from __future__ import annotations

import numpy as np

from roofline.errors import RooflineError
from roofline.specs.fleet import Fleet


def _columns(rows: list[dict], fleet: Fleet) -> list[tuple[str, str, dict]]:
    """The program's variables: (region, gpu, capacity row) for every feasible row that fits the region."""
    cols = [(r, g, row) for (r, g) in fleet.supply for row in rows
            if row["feasible"] and row["gpu"] == g and fleet.supply[(r, g)][0] >= row["tp"]]
    if not cols:
        raise RooflineError("no feasible candidate runs on the fleet's GPUs",
                            hint="check that the fleet's GPU names match `gpu` names and that the model fits")
    return cols


def _solve(cols, fleet: Fleet, demand: float, cost: np.ndarray) -> np.ndarray:
    """Replicas per column: stage 1 minimises the unserved rate, stage 2 the cost at that unserved rate."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # imported here: scipy costs 0.3 s at CLI start

    n = len(cols)
    rate = np.array([c[2]["max_request_rate_per_replica"] for c in cols])
    tp = np.array([c[2]["tp"] for c in cols], dtype=float)
    keys = sorted({(r, g) for r, g, _ in cols})
    A_sup = np.array([[tp[j] if (cols[j][0], cols[j][1]) == k else 0.0 for j in range(n)] + [0.0] for k in keys])
    cap = np.array([fleet.supply[k][0] for k in keys], dtype=float)
    A_dem = np.concatenate([rate, [1.0]])[None, :]
    integrality = np.concatenate([np.ones(n), [0]])
    ub = np.concatenate([np.floor(np.array([fleet.supply[(r, g)][0] for r, g, _ in cols]) / tp), [demand]])
    cons = [LinearConstraint(A_sup, -np.inf, cap), LinearConstraint(A_dem, demand, np.inf)]
    s1 = milp(np.concatenate([np.zeros(n), [1.0]]), integrality=integrality, bounds=Bounds(np.zeros(n + 1), ub),
              constraints=cons)
    if not s1.success:
        raise RooflineError(f"the fleet optimisation failed: {s1.message}", hint="report this with the fleet file")
    bounds2 = Bounds(np.zeros(n + 1), np.concatenate([ub[:-1], [float(s1.x[-1]) + 1e-6 * max(demand, 1)]]))
    s2 = milp(np.concatenate([cost, [0.0]]), integrality=integrality, bounds=bounds2, constraints=cons)
    return np.rint(s2.x[:-1] if s2.success else s1.x[:-1]).astype(int)


def plan_fleet(rows: list[dict], fleet: Fleet, demand_rate_per_s: float, output_tokens_per_s: float) -> dict:
    """Cheapest mix of the feasible capacity rows that serves demand_rate_per_s (requests/s at peak); without
    a price for every GPU used, the mix with the fewest GPUs (and a warning).

    output_tokens_per_s: the day-average output rate, for $/1M output tokens."""
    cols = _columns(rows, fleet)
    rate = np.array([c[2]["max_request_rate_per_replica"] for c in cols])
    tp = np.array([c[2]["tp"] for c in cols], dtype=float)
    price = np.array([fleet.price(r, g) if fleet.price(r, g) is not None else np.nan for r, g, _ in cols])
    priced = bool(np.all(np.isfinite(price)))
    x = _solve(cols, fleet, demand_rate_per_s, tp * (price if priced else 1.0))
    mix = [{"region": r, "gpu": g, "tp": row["tp"], "precision": row["precision"], "replicas": int(x[j]),
            "gpus": int(x[j] * tp[j]), "rate_per_s": float(x[j] * rate[j]),
            "cost_per_hour": float(x[j] * tp[j] * price[j]) if priced else None}
           for j in np.flatnonzero(x) for r, g, row in [cols[j]]]
    served = min(demand_rate_per_s, float(x @ rate))
    total_cost = float(x @ (tp * price)) if priced else None
    served_tokens = output_tokens_per_s * served / demand_rate_per_s if demand_rate_per_s else 0.0
    unpriced = sorted({g for (r, g, _), p in zip(cols, price) if not np.isfinite(p)})
    return {"demand_rate_per_s": demand_rate_per_s, "served_rate_per_s": served,
            "unserved_rate_per_s": max(0.0, demand_rate_per_s - served),
            "at_capacity": demand_rate_per_s - served > 1e-9 * max(1.0, demand_rate_per_s),
            "replicas": int(x.sum()), "gpus": int(x @ tp), "cost_per_hour": total_cost,
            "cost_per_million_output_tokens": (total_cost / (served_tokens * 3600.0) * 1e6
                                               if priced and served_tokens > 0 else None),
            "headroom": 1.0 - served / float(x @ rate) if x.any() else 0.0, "mix": mix,
            "warnings": [f"no price for {', '.join(unpriced)}: costs are unknown and the optimiser minimises the "
                         "number of GPUs instead (give prices with --price GPU=USD_PER_HOUR or "
                         "price_per_gpu_hour in the fleet file)"] if unpriced else []}
