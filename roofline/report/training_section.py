"""The training section of `roofline report` and the layout of the workbook's training sheets: for a GPU count,
the fastest layout that fits (`plan/training.search`, the same ranking as `roofline train --search`), planned end
to end (`plan/training.plan`), as rows the report renders in HTML and Markdown, and the `roofline train` command
that reproduces it."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from roofline.errors import RooflineError
from roofline.model.training import Layout, Recipe
from roofline.plan import training as tr
from roofline.specs.hardware import GPUSpec
from roofline.specs.models import ModelConfig
from roofline.units import format_bytes, format_count, format_time_s

LAYOUT_HEADERS = ["tp", "pp", "dp", "cp", "micro-batch", "tokens/s", "step", "TFLOP/s/GPU", "MFU", "memory/GPU",
                  "bubble"]
#: layouts the report's table lists
TOP = 5


@dataclass(frozen=True)
class TrainingReport:
    """The best layout of `gpus` GPUs for the model and GPU, planned: `plan` is `plan/training.plan`'s document,
    `layouts` the top rows of the search, `layout` the best as a `Layout` (for the workbook)."""

    plan: dict
    layouts: list
    layout: Layout
    recipe: Recipe
    command: str

    @property
    def note(self) -> str:
        p, r = self.plan, self.recipe
        return (f"The fastest of the layouts of {p['gpus']} {p['gpu']} that fit {p['model']} at a global batch of "
                f"{p['global_batch']} x {p['seq']} tokens (ranked by predicted tokens/s, as `roofline train "
                f"--search`), with ZeRO {r.zero}, {r.recompute} recomputation, {r.weights} weights, {r.compute} "
                f"compute, {r.master} master weights and {r.optimizer} Adam moments; data-parallel communication "
                f"may hide behind compute up to {r.dp_overlap:.0%} (an assumption). Reproduce with:")

    @property
    def rows(self) -> list[tuple[str, str]]:
        p = self.plan
        c = p["checkpoint"]
        return [
            ("layout", f"tp {p['tp']} x pp {p['pp']} x dp {p['dp']} x cp {p['cp']}, micro-batch {p['micro_batch']} "
                       f"({p['micro_batches']} per rank)"),
            ("memory per GPU", f"{format_bytes(p['memory_per_gpu_bytes'])} of {format_bytes(p['capacity_bytes'])}"),
            ("  weights / gradients / optimizer", " / ".join(format_bytes(p[k]) for k in
                                                             ("weights_bytes", "gradients_bytes", "optimizer_bytes"))),
            ("  activations / reserve", f"{format_bytes(p['activations_bytes'])} / {format_bytes(p['reserve_bytes'])}"),
            ("step time", format_time_s(p["step_time_s"])),
            ("  forward / backward / recompute", " / ".join(format_time_s(p[k]) for k in
                                                            ("forward_s", "backward_s", "recompute_s"))),
            ("  TP / CP communication", f"{format_time_s(p['tp_comm_s'])} / {format_time_s(p['cp_comm_s'])}"),
            ("  pipeline bubble / sends", f"{format_time_s(p['pipeline_bubble_s'])} ({p['bubble_fraction']:.1%}) / "
                                          f"{format_time_s(p['pipeline_send_s'])}"),
            ("  DP communication (exposed) / optimizer", f"{format_time_s(p['dp_comm_s'])} "
                                                         f"({format_time_s(p['dp_comm_exposed_s'])}) / "
                                                         f"{format_time_s(p['optimizer_s'])}"),
            ("tokens/s", format_count(p["tokens_per_s"])),
            ("TFLOP/s per GPU, MFU, HFU", f"{p['tflops_per_gpu']:.0f}, {p['mfu']:.1%}, {p['hfu']:.1%}"),
            ("checkpoint (weights + optimizer states)", format_bytes(c["size_bytes"])),
        ]

    @property
    def layout_rows(self) -> list[list[str]]:
        return [[str(r["tp"]), str(r["pp"]), str(r["dp"]), str(r["cp"]), str(r["micro_batch"]),
                 format_count(r["tokens_per_s"]), format_time_s(r["step_time_s"]), f"{r['tflops_per_gpu']:.0f}",
                 f"{r['mfu']:.1%}", format_bytes(r["memory_per_gpu_bytes"]), f"{r['bubble_fraction']:.1%}"]
                for r in self.layouts]

    def to_dict(self) -> dict:
        """training.json of the report: the best layout's plan and the ranked layouts."""
        return {"best": self.plan, "layouts": self.layouts, "command": self.command}


def best_training(model: ModelConfig, gpu: GPUSpec, gpus: int, global_batch: int, seq: int, recipe: Recipe,
                  top: int = TOP) -> TrainingReport:
    """Search the layouts of `gpus` GPUs and plan the fastest; RooflineError (exit 1) when none fits."""
    rows = tr.search(model, gpu, gpus, global_batch, seq, recipe, top=top)
    if not rows:
        raise RooflineError(f"no layout of {gpus} {gpu.name} fits {model.name} for training at a global batch of "
                            f"{global_batch} x {seq} tokens", hint="more GPUs, a higher ZeRO stage, full "
                            "recomputation, or a global batch that the data-parallel degrees divide", exit_code=1,
                            param="gpus")
    b = rows[0]
    layout = Layout.of(tp=b["tp"], pp=b["pp"], dp=b["dp"], cp=b["cp"], ep=b["ep"], micro_batch=b["micro_batch"],
                       global_batch=global_batch, seq=seq)
    plan = tr.plan(model, gpu, layout, recipe, gpus=gpus)
    r = recipe
    opts = {"model": model.name, "gpu": gpu.name, "gpus": gpus, "tp": b["tp"], "pp": b["pp"], "dp": b["dp"],
            "cp": b["cp"], "micro-batch": b["micro_batch"], "global-batch": global_batch, "seq": seq, "zero": r.zero,
            "recompute": r.recompute, "precision": r.compute, "weights": r.weights, "grads": r.grads,
            "master": r.master, "optimizer-states": r.optimizer, "virtual-stages": r.virtual_stages,
            "dp-overlap": r.dp_overlap, "attention-kernel": r.attention_kernel}
    command = shlex.join(["roofline", "train"] + [x for k, v in opts.items() for x in (f"--{k}", str(v))])
    return TrainingReport(plan, rows, layout, recipe, command)
