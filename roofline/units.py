"""Prefix formatting at the edges only: everything inside is in SI base units.

GB = 1e9 bytes (decimal) and GiB = 2**30 bytes (binary) are both real; each function says which.
"""
from __future__ import annotations

import math

GB = 1e9
GiB = 2.0**30
#: the largest count (sequences, tokens, steps) roofline takes from a user, a file or a knob: 2**31 - 1, far
#: beyond any deployment and within the integer range numpy, the step-time tables and JSON/CSV keep exact
MAX_COUNT = 2**31 - 1

_DECIMAL = ["", "k", "M", "G", "T", "P", "E"]


def _scaled(x: float, base: float, prefixes: list[str]) -> tuple[float, str]:
    if x == 0 or not math.isfinite(x):
        return x, prefixes[0]
    i = max(0, min(len(prefixes) - 1, int(math.floor(math.log(abs(x), base)))))
    return x / base**i, prefixes[i]


def format_bytes(x: float, binary: bool = False) -> str:
    """1500 -> '1.50 kB' (decimal, 1 kB = 1000 B); binary=True -> KiB/MiB/GiB (1 GiB = 2**30 B)."""
    if binary:
        v, p = _scaled(x, 1024.0, ["", "Ki", "Mi", "Gi", "Ti", "Pi"])
    else:
        v, p = _scaled(x, 1000.0, _DECIMAL)
    return f"{v:.2f} {p}B"


def format_rate(x: float, unit: str) -> str:
    """Decimal prefix for a rate: format_rate(3.35e12, 'B/s') -> '3.35 TB/s'."""
    v, p = _scaled(x, 1000.0, _DECIMAL)
    return f"{v:.3g} {p}{unit}"


def format_count(x: float) -> str:
    """Decimal prefix for a count: 6.74e9 -> '6.74 G'."""
    v, p = _scaled(x, 1000.0, _DECIMAL)
    return f"{v:.3g} {p}".rstrip()


def format_time_s(x: float) -> str:
    """Seconds with an SI prefix: 0.0123 -> '12.3 ms'."""
    if not math.isfinite(x):
        return str(x)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(x) >= scale or unit == "ns":
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} s"
