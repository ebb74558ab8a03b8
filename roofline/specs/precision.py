"""Number formats: storage size in bits and which ones can be a compute precision.

Sub-byte formats are kept in bits so int4/fp4 weights are 0.5 bytes, not 0.
"""
from __future__ import annotations

from roofline.errors import RooflineError

PRECISION_BITS: dict[str, int] = {
    "fp64": 64, "fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16,
    "fp8": 8, "int8": 8, "int4": 4, "fp4": 4,
}
#: precisions a tensor core / matrix unit computes in (keys of a spec file's peak_flops_per_s)
COMPUTE_PRECISIONS: tuple[str, ...] = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")
#: formats weights may be stored in (int4/fp4 = W4A16-style weight-only quantisation)
WEIGHT_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
#: formats the KV cache may be stored in
KV_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
#: activations precision = the compute precision of matrix multiplies
ACTIVATION_PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")

_ROLES = {"weights": WEIGHT_PRECISIONS, "kv": KV_PRECISIONS, "activations": ACTIVATION_PRECISIONS}


def bytes_per_element(precision: str) -> float:
    """Storage size of one element in bytes (fp4 -> 0.5)."""
    return PRECISION_BITS[precision] / 8


def check_precision(precision: str, role: str) -> str:
    """Return the lower-cased precision if it is valid for `role`, else raise RooflineError."""
    p = precision.strip().lower()
    allowed = _ROLES[role]
    if p not in allowed:
        raise RooflineError(
            f"unknown {role} precision {precision!r}",
            hint=f"choose one of: {', '.join(allowed)}",
            exit_code=2,
        )
    return p
