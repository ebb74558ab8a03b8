"""Prefix formatting at the edges: decimal vs binary prefixes said explicitly."""
import math

from roofline.units import GB, GiB, format_bytes, format_count, format_rate, format_time_s


def test_decimal_and_binary_bytes():
    assert GB == 1e9 and GiB == 2**30
    assert format_bytes(1500) == "1.50 kB"  # 1 kB = 1000 B
    assert format_bytes(80e9) == "80.00 GB"
    assert format_bytes(81559 * 2**20, binary=True) == "79.65 GiB"  # H100 SXM's 81559 MiB
    assert format_bytes(0) == "0.00 B"


def test_rates_counts_and_times():
    assert format_rate(3.35e12, "B/s") == "3.35 TB/s"
    assert format_rate(989.5e12, "FLOP/s") == "990 TFLOP/s"
    assert format_count(6.74e9) == "6.74 G"
    assert format_time_s(0.0123) == "12.3 ms"
    assert format_time_s(2.5e-6) == "2.5 us"
    assert format_time_s(math.inf) == "inf"
