"""Efficiency (roofline/model/efficiency.py): the documented defaults, overrides, the 8-bit scaling of the
tensor fraction, the hooks a calibrated subclass overrides, and what is (not) validated."""
import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.model import efficiency as efficiency_module
from roofline.model.efficiency import Efficiency, roofline_s
from roofline.model.engine import op_seconds

DOCUMENTED = {"compute": 0.75, "compute_8bit": 0.55, "vector": 0.50, "memory": 0.80, "kernel_overhead_s": 4e-6,
              "overlap_p": 2.0}


def test_defaults_are_the_documented_ones():
    e = Efficiency()
    assert {k: getattr(e, k) for k in DOCUMENTED} == DOCUMENTED
    assert e.source == "datasheet defaults (roofline.efficiency)"  # recorded in every analysis JSON


def test_the_module_docstring_table_matches_the_defaults():
    """The table in the module docstring is the documentation: every row's value is the dataclass default."""
    rows = {}
    for line in efficiency_module.__doc__.splitlines():
        m = re.match(r"\|\s*(\w+)[^|]*\|\s*([\d.]+)\s*(us)?\s*\|", line)
        if m:
            rows[m.group(1)] = float(m.group(2)) * (1e-6 if m.group(3) else 1.0)
    assert rows.keys() == DOCUMENTED.keys()
    for field, value in rows.items():
        assert getattr(Efficiency(), field) == pytest.approx(value), field


def test_to_dict_carries_every_parameter():
    d = Efficiency().to_dict()
    assert d == {**DOCUMENTED, "source": "datasheet defaults (roofline.efficiency)"}


def test_overrides_make_a_new_object_and_leave_the_rest():
    base = Efficiency()
    e = base.with_overrides(memory=0.6, kernel_overhead_s=2e-6)
    assert (e.memory, e.kernel_overhead_s) == (0.6, 2e-6)
    assert (e.compute, e.vector) == (0.75, 0.5)
    assert base.memory == 0.8  # frozen: the default object is unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.memory = 0.5  # type: ignore[misc]


def test_an_unknown_override_is_rejected():
    with pytest.raises(TypeError, match="memroy"):
        Efficiency().with_overrides(memroy=0.5)


def test_constant_fractions_ignore_size_and_intensity():
    e = Efficiency()
    for f, b in ((1.0, 1.0), (1e15, 1e3), (np.array([1e6, 1e9]), np.array([1e9, 1e6]))):
        assert np.all(e.compute_fraction(f, b) == 0.75) and np.all(e.memory_fraction(f, b) == 0.8)
        assert np.all(e.attention_compute_fraction(f, b) == 0.75)  # attention: as a GEMM by default
        assert np.all(e.attention_memory_fraction(f, b) == 0.8)


def test_tensor_fraction_scales_to_the_8bit_fraction():
    e = Efficiency()
    assert e.tensor_fraction(1.0, 1.0, 2.0) == 0.75  # 16-bit activations: compute
    assert e.tensor_fraction(1.0, 1.0, 1.0) == pytest.approx(0.55)  # 8-bit: 0.75 x 0.55 / 0.75
    assert e.tensor_fraction(1.0, 1.0, 0.5) == pytest.approx(0.55)  # 4-bit counts as 8-bit or narrower
    np.testing.assert_allclose(e.tensor_fraction(1.0, 1.0, np.array([2.0, 1.0, 4.0])), [0.75, 0.55, 0.75])


def test_a_subclass_curve_is_what_the_engine_uses():
    class Halved(Efficiency):
        def memory_fraction(self, flops, bytes_):
            return np.where(np.asarray(bytes_) < 1e6, 0.4, 0.8)  # small transfers reach half as much

    _, small, _ = op_seconds("tensor", 0.0, 5e5, 0, 1e15, 1e12, Halved())
    _, large, _ = op_seconds("tensor", 0.0, 5e6, 0, 1e15, 1e12, Halved())
    assert small == pytest.approx(5e5 / 4e11) and large == pytest.approx(5e6 / 8e11)  # 1.25 us and 6.25 us


@given(compute=st.floats(0.01, 1.0), c8=st.floats(0.01, 1.0), a_bytes=st.sampled_from([0.5, 1.0, 2.0, 4.0]))
def test_tensor_fraction_is_one_of_the_two_fractions(compute, c8, a_bytes):
    e = Efficiency(compute=compute, compute_8bit=c8)
    expect = c8 if a_bytes <= 1.0 else compute
    assert e.tensor_fraction(1.0, 1.0, a_bytes) == pytest.approx(expect)


@pytest.mark.parametrize("bad", [{"memory": 0.0}, {"compute": -0.5}, {"vector": 1.5}, {"kernel_overhead_s": -1e-6}])
def test_bad_values_are_rejected(bad):
    with pytest.raises(RooflineError, match=next(iter(bad))):
        Efficiency(**bad)


def test_a_gemm_combines_compute_and_memory_as_a_p_norm():
    """3 us of math and 4 us of loads: sqrt(3^2 + 4^2) = 5 us at p = 2 (the corner max() would give 4 us);
    at p = 1 nothing overlaps, 3 + 4 = 7 us; with overlap_p None it is the bare roofline, max = 4 us."""
    assert roofline_s(3e-6, 4e-6, 2.0) == pytest.approx(5e-6, rel=1e-12)
    assert roofline_s(3e-6, 4e-6, 1.0) == pytest.approx(7e-6, rel=1e-12)
    assert roofline_s(3e-6, 4e-6, 3.0) == pytest.approx((27 + 64) ** (1 / 3) * 1e-6, rel=1e-12)  # 4.498 us
    assert roofline_s(3e-6, 4e-6, None) == 4e-6
    assert float(roofline_s(0.0, 0.0, 3.0)) == 0.0
    assert float(roofline_s(np.inf, 1.0, 3.0)) == np.inf and float(roofline_s(np.inf, 1.0, 2.0)) == np.inf


def test_only_tensor_operators_get_the_knee():
    """Elementwise (vector) and attention operators keep max(): one side dominates them."""
    e = Efficiency()
    assert float(e.roofline_s("tensor", 3.0, 4.0)) == pytest.approx(5.0)
    for unit in ("vector", "attention"):
        assert float(e.roofline_s(unit, 3.0, 4.0)) == 4.0
    assert float(e.with_overrides(overlap_p=None).roofline_s("tensor", 3.0, 4.0)) == 4.0


@given(st.floats(0.0, 1e3), st.floats(0.0, 1e3), st.floats(1.0, 50.0), st.floats(1.0, 50.0))
def test_the_knee_lies_between_the_roofline_and_no_overlap(c, m, p, q):
    """max(c, m) <= p-norm <= c + m, and a larger p overlaps more (never slower)."""
    t = float(roofline_s(c, m, p))
    assert max(c, m) * (1 - 1e-12) <= t <= (c + m) * (1 + 1e-12)
    lo, hi = sorted((p, q))
    assert float(roofline_s(c, m, hi)) <= float(roofline_s(c, m, lo)) * (1 + 1e-12)


@pytest.mark.parametrize("bad", [0.5, 0.0, -2.0, float("nan"), float("inf"), "2"])
def test_an_overlap_p_below_one_or_not_a_number_is_refused(bad):
    with pytest.raises(RooflineError, match="overlap_p"):
        Efficiency(overlap_p=bad)


def test_a_measured_profile_keeps_max_because_its_curves_were_fitted_under_it():
    from roofline.measure.calibrate import CalibratedEfficiency
    assert CalibratedEfficiency().overlap_p is None
