"""How much of a ceiling real kernels reach, and what each kernel launch costs.

These are model parameters, not hardware facts: the hardware facts (peaks, bandwidths) live in
`hardware_specs/`. The defaults below are the documented fractions that good tools reach on Hopper/Ampere
(shared/MEASURING.md), and a measured profile (`roofline bench`) replaces them with fitted curves.

| default                   | value  | where it comes from                                                       |
|---------------------------|--------|---------------------------------------------------------------------------|
| compute (tensor GEMM)     | 0.75   | best bf16 GEMM 80% (H100 SXM) / 87% (A100); FP8 71%; torchao uses 0.78      |
| vector (fp32 cores)       | 0.50   | elementwise kernels are bandwidth-bound; their FLOP ceiling rarely binds    |
| memory (HBM streaming)    | 0.80   | streaming kernels 87-96% of datasheet; GEMV/attention decode kernels less   |
| link (all-reduce busbw)   | 0.80   | nccl-tests ring all-reduce busbw ~80% of one-way NVLink                      |
| kernel_overhead_s         | 2.5 us | launch-to-launch gap per kernel under CUDA graphs (serving engines' decode)  |
| allreduce_latency_s       | 8 us   | small-message NCCL/custom all-reduce latency on NVLink                       |
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Efficiency:
    """Achieved fraction of each ceiling, plus fixed per-kernel and per-collective costs.

    `compute_fraction` and `memory_fraction` take the operator's FLOPs and bytes so that a calibrated
    subclass can return a curve (fraction as a function of size and intensity); the defaults are constant.
    """

    compute: float = 0.75
    vector: float = 0.50
    memory: float = 0.80
    link: float = 0.80
    kernel_overhead_s: float = 2.5e-6
    allreduce_latency_s: float = 8e-6
    source: str = "datasheet defaults (roofline.efficiency)"

    def compute_fraction(self, flops: np.ndarray, bytes_: np.ndarray) -> np.ndarray | float:
        """Fraction of the tensor (matrix-unit) peak a GEMM-like operator reaches."""
        return self.compute

    def memory_fraction(self, flops: np.ndarray, bytes_: np.ndarray) -> np.ndarray | float:
        """Fraction of the memory bandwidth an operator reaches."""
        return self.memory

    def with_overrides(self, **kw) -> "Efficiency":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return {"compute": self.compute, "vector": self.vector, "memory": self.memory, "link": self.link,
                "kernel_overhead_s": self.kernel_overhead_s, "allreduce_latency_s": self.allreduce_latency_s,
                "source": self.source}
