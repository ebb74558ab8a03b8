"""Number formats: storage size in bits, which ones can be a compute precision, and precision sets
(weights/activations/kv, PrecisionSet) with the one meaning of a bare name such as 'int4'.

Sub-byte formats are kept in bits so int4/fp4 weights are 0.5 bytes, not 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


#: KV-cache formats a bare precision name carries over to the KV cache (an int8/int4/fp4 KV cache is asked for
#: explicitly, as weights/activations/kv)
BARE_NAME_KV_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8")
#: embedding and LM-head weights stay at 16 bits (2 bytes) when the linear layers' weights are quantised
EMBEDDING_MIN_BYTES = 2.0
#: what a precision set's text means, in words (the CLI's --precision help)
PRECISION_SET_RULE = ("a name X means weights X, activations X if X can be a compute precision (else bf16) and "
                      "KV X if X is fp32, bf16, fp16 or fp8 (else bf16): int8 = int8/int8/bf16, int4 = int4/bf16/bf16 "
                      "(W4A16), fp8 = fp8/fp8/fp8; or weights/activations/kv explicitly, such as int4/bf16/fp8")


def embedding_bytes_per_element(weights_bytes):
    """Bytes per embedding / LM-head weight: the weights' size, but at least 16 bits (quantisation leaves the
    embedding table and the LM head at 16 bits). Array-friendly."""
    return np.maximum(weights_bytes, EMBEDDING_MIN_BYTES)


@dataclass(frozen=True)
class PrecisionSet:
    """Weights / activations (compute) / KV-cache precisions of one deployment.

    Written as text (`parse`): weights/activations/kv such as 'int4/bf16/fp8', each validated for its role; or
    one name X, which means PRECISION_SET_RULE: weights X, activations X if X is a compute precision (else
    bf16), KV X if X is in BARE_NAME_KV_PRECISIONS (else bf16)."""

    weights: str
    activations: str
    kv: str

    @classmethod
    def parse(cls, text: str) -> "PrecisionSet":
        parts = [p.strip().lower() for p in text.split("/")]
        if len(parts) == 1:
            x = parts[0]
            parts = [x, x if x in ACTIVATION_PRECISIONS else "bf16", x if x in BARE_NAME_KV_PRECISIONS else "bf16"]
        if len(parts) != 3:
            raise RooflineError(f"{text!r} is not a precision set", exit_code=2,
                                hint="one name (bf16, fp8, int8, int4) or weights/activations/kv such as int4/bf16/fp8")
        return cls(check_precision(parts[0], "weights"), check_precision(parts[1], "activations"),
                   check_precision(parts[2], "kv"))

    @property
    def label(self) -> str:
        """The text that parses back to this set: one name when all three are that name and the name means
        exactly that ('bf16', 'fp8'), else 'weights/activations/kv' ('int8/int8/int8', 'int4/bf16/bf16')."""
        if self.weights == self.activations == self.kv and PrecisionSet.parse(self.weights) == self:
            return self.weights
        return f"{self.weights}/{self.activations}/{self.kv}"
