"""How much of a ceiling real kernels reach, and what each kernel launch costs.

These are model parameters, not hardware facts: the hardware facts (peaks, bandwidths) live in
`hardware_specs/`. The defaults below are the documented fractions that good tools reach on Hopper/Ampere
(streaming kernels: te42kyfo/gpu-benches gpu-stream results, https://github.com/te42kyfo/gpu-benches; GEMMs:
the MAMF table of stas00/ml-engineering, https://github.com/stas00/ml-engineering/tree/master/compute/accelerator;
all-reduce: https://github.com/NVIDIA/nccl-tests/issues/212), and a measured profile (`roofline bench`) replaces
them with fitted curves.

| default                   | value  | where it comes from                                                       |
|---------------------------|--------|---------------------------------------------------------------------------|
| compute (tensor GEMM)     | 0.75   | best bf16 GEMM 80% (H100 SXM) / 87% (A100); torchao uses 0.78; published  |
|                           |        | A100 fp16 TTFT matches within 3% (docs/published-comparison.md)            |
| compute_8bit (fp8/int8)   | 0.55   | best FP8 GEMM 71% (H100) on ideal shapes; published H100 FP8 prefill        |
|                           |        | (TensorRT-LLM, NIM) implies ~0.5 of the dense FP8 peak                      |
| vector (fp32 cores)       | 0.50   | elementwise kernels are bandwidth-bound; their FLOP ceiling rarely binds    |
| memory (HBM streaming)    | 0.80   | streaming kernels 87-96% of datasheet; GEMV/attention decode kernels less   |
| kernel_overhead_s         | 4 us   | per-kernel launch gap + prologue/epilogue under CUDA graphs; published      |
|                           |        | small-batch decode steps (vLLM, gpt-fast) need 4-5 us per kernel           |
| overlap_p (tensor GEMMs)  | 2      | how a GEMM's compute and memory times combine: (c^p + m^p)^(1/p), see below  |

Overlap. The bare roofline takes max(compute, memory): a kernel that hides all of its loads behind its math
(or the reverse). A real GEMM near the ridge point cannot: with both pipes almost saturated, each stall of one
leaves the other idle, so the measured curve has a rounded knee where the roofline has a corner (the
Execution-Cache-Memory model makes the same point for CPU cores: the transfer time that does not overlap adds,
Stengel et al., "Quantifying performance bottlenecks of stencil computations using the Execution-Cache-Memory
model", ICS 2015, https://doi.org/10.1145/2751205.2751240). Tensor operators therefore combine their two times
as a p-norm: time = (c^p + m^p)^(1/p). Far from the ridge it is the roofline (one side 30% of the other: +4%
at p = 2); at the ridge it is sqrt(2) = 1.41x. Over the
107 published serving points of `roofline published` (before the SGLang rows), by p: inf (max) 7.71% median
error, 4: 7.68%, 3: 7.78%, 2: 7.79%, 1.5: 8.50%, 1 (no overlap) 10.32%. The overall median is flat from p = 2
up; p = 2 is the smallest p that keeps it, and it moves the latency rows' median from 10.1% to 8.9% and the
128-token batch-1 TTFT rows (every GEMM at M = 128, near the ridge) from 4 of 8 within 15% to 7 of 8. It costs
the maximum-throughput rows whose decode batch sits at the ridge (TensorRT-LLM 1.0, 70B FP8, batch ~200-260:
-3% becomes -14%; their median 6.3% -> 6.8%): those kernels overlap better than the knee says. Checked
afterwards on 14 TensorRT-LLM v0.9 batch-1 128-token TTFTs (H200/H100/A100/L40S, picked before any prediction):
median error 5.9% with the knee, 6.4% under max, 11 of 14 within 15% either way; the A100 FP16 row, the one
nearest its ridge, is -20% under max and -2% with the knee; the six single-GPU H100/H200 FP8 rows are -5..+7% (max: -14..0%).
Elementwise, attention and collective operators keep max(): their one side dominates. A measured profile's
curves are fitted under max() (`CalibratedEfficiency`, overlap_p None), so its knee is already in the fitted
fractions.

Collectives are timed by the communication model (roofline.model.comm) from the sourced facts in
roofline/specs/data/collectives.json, not by a fraction here.

Attention (scores, context) runs at the 16-bit tensor peak even when the linear layers compute in 8 bits:
serving engines' FlashAttention kernels compute in bf16/fp16 and dequantise an FP8 KV cache.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from roofline.errors import RooflineError


@dataclass(frozen=True)
class Efficiency:
    """Achieved fraction of each ceiling, plus fixed per-kernel and per-collective costs.

    `compute_fraction` and `memory_fraction` take the operator's FLOPs and bytes so that a calibrated
    subclass can return a curve (fraction as a function of size and intensity); the defaults are constant.
    """

    compute: float = 0.75
    compute_8bit: float = 0.55
    vector: float = 0.50
    memory: float = 0.80
    kernel_overhead_s: float = 4e-6
    overlap_p: float | None = 2.0
    source: str = "datasheet defaults (roofline.efficiency)"

    def __post_init__(self) -> None:
        """Fractions must lie in (0, 1] and fixed costs be finite and >= 0 (a profile's fit included)."""
        for name in ("compute", "compute_8bit", "vector", "memory"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 < v <= 1.0):
                raise RooflineError(f"efficiency {name} must be a fraction in (0, 1], got {v!r}",
                                    hint=f"{self.source}: a fraction of the ceiling the operators reach")
        for name in ("kernel_overhead_s",):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0.0):
                raise RooflineError(f"efficiency {name} must be a finite number of seconds >= 0, got {v!r}",
                                    hint=f"{self.source}: a fixed cost per kernel or per collective")
        p = self.overlap_p
        if p is not None and not (isinstance(p, (int, float)) and math.isfinite(p) and p >= 1.0):
            raise RooflineError(f"efficiency overlap_p must be a number >= 1 or null, got {p!r}",
                                hint=f"{self.source}: the p of the p-norm that combines a GEMM's compute and "
                                     "memory times (null: max, perfect overlap)")

    def roofline_s(self, unit: str, compute_s, memory_s) -> np.ndarray:
        """An operator's time from its compute and memory times: the p-norm for tensor operators (see the
        module docstring), max() for the others and when overlap_p is None."""
        return roofline_s(compute_s, memory_s, self.overlap_p if unit == "tensor" else None)

    def compute_fraction(self, flops: np.ndarray, bytes_: np.ndarray) -> np.ndarray | float:
        """Fraction of the tensor (matrix-unit) peak a GEMM-like operator reaches."""
        return self.compute

    def tensor_fraction(self, flops: np.ndarray, bytes_: np.ndarray, a_bytes) -> np.ndarray | float:
        """compute_fraction, scaled by compute_8bit / compute where the activations are 8-bit or narrower.
        A calibrated subclass whose peaks are measured per precision sets compute_8bit = compute."""
        frac = self.compute_fraction(flops, bytes_)
        if np.ndim(a_bytes) == 0:
            return frac * (self.compute_8bit / self.compute) if float(a_bytes) <= 1.0 else frac
        return frac * np.where(np.asarray(a_bytes) <= 1.0, self.compute_8bit / self.compute, 1.0)

    def attention_compute_fraction(self, flops: np.ndarray, bytes_: np.ndarray) -> np.ndarray | float:
        """Fraction of the (16-bit) matrix peak the fused attention kernel reaches; default: as a GEMM."""
        return self.compute_fraction(flops, bytes_)

    def attention_memory_fraction(self, flops: np.ndarray, bytes_: np.ndarray) -> np.ndarray | float:
        """Fraction of the bandwidth the attention kernel reaches streaming the KV cache; default: as a GEMM."""
        return self.memory_fraction(flops, bytes_)

    def memory_fraction(self, flops: np.ndarray, bytes_: np.ndarray) -> np.ndarray | float:
        """Fraction of the memory bandwidth an operator reaches."""
        return self.memory

    def with_overrides(self, **kw) -> "Efficiency":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return {"compute": self.compute, "compute_8bit": self.compute_8bit, "vector": self.vector, "memory": self.memory,
                "kernel_overhead_s": self.kernel_overhead_s, "overlap_p": self.overlap_p,
                "source": self.source}


def roofline_s(compute_s, memory_s, overlap_p: float | None = None) -> np.ndarray:
    """max(compute, memory) when overlap_p is None (perfect overlap), else (c^p + m^p)^(1/p), computed as
    hi * (1 + (lo/hi)^p)^(1/p) so tiny times do not underflow; an infinite side stays infinite."""
    c, m = np.asarray(compute_s, dtype=float), np.asarray(memory_s, dtype=float)
    if overlap_p is None:
        return np.maximum(c, m)
    if overlap_p == 2.0:  # seconds: squares neither overflow nor matter when they underflow; 3.6x np.hypot's speed
        return np.sqrt(c * c + m * m)
    hi, lo = np.maximum(c, m), np.minimum(c, m)
    ok = np.isfinite(hi) & (hi > 0)
    r = np.divide(lo, hi, out=np.zeros_like(hi), where=ok)
    return np.where(ok, hi * (1.0 + r ** overlap_p) ** (1.0 / overlap_p), hi)
