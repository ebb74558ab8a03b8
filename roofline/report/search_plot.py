"""The Pareto plot of `roofline search`: per model x workload, cost per hour against latency for the screen's
Pareto front and the candidates confirmed by simulation, coloured by output tokens per second per GPU."""
from __future__ import annotations

from pathlib import Path

from roofline.report.plots import save


def pareto_plot(doc: dict, path: str | Path) -> Path:
    """Draw one panel per (model, workload) of the search result `doc` and save it (PNG or SVG)."""
    from matplotlib.figure import Figure

    results = doc["results"]
    fig = Figure(figsize=(6.5 * len(results), 5.0), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, res in zip(axes, results):
        screen = res["screen_pareto"]
        sims = [r for r in res["simulated"] if r["feasible"]]
        front = set(res["pareto"])
        tput = [r["output_tokens_per_s_per_gpu"] for r in screen] + [r["sim_output_tokens_per_s_per_gpu"] for r in sims]
        lo, hi = (min(tput), max(tput)) if tput else (0.0, 1.0)
        sc = ax.scatter([r["latency_s"] for r in screen], [r["cost_per_hour"] for r in screen],
                        c=[r["output_tokens_per_s_per_gpu"] for r in screen], vmin=lo, vmax=hi, cmap="viridis",
                        marker="o", s=28, alpha=0.6, label="screen: Pareto front (analytic)")
        ax.scatter([r["sim_latency_s"] for r in sims], [r["sim_cost_per_hour"] for r in sims],
                   c=[r["sim_output_tokens_per_s_per_gpu"] for r in sims], vmin=lo, vmax=hi, cmap="viridis",
                   marker="s", s=70, edgecolors=["red" if r["index"] in front else "black" for r in sims],
                   linewidths=1.5, label="simulated (red edge: confirmed Pareto front)")
        best = res["cheapest"]
        if best:
            ax.annotate(f"cheapest: {best['gpu']} tp{best['tp']} pp{best['pp']} {best['precision']}",
                        (best["sim_latency_s"], best["sim_cost_per_hour"]), textcoords="offset points",
                        xytext=(8, 8), fontsize=8)
        ax.set_xlabel("latency: p99 TTFT + (mean output - 1) x p99 TPOT (s)")
        ax.set_ylabel("fleet cost at the peak rate (USD per hour)")
        ax.set_title(f"{res['model']} x {res['workload']}: {res['candidates_screened']:,} screened", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
        fig.colorbar(sc, ax=ax, label="output tokens/s per GPU")
    return save(fig, path)
