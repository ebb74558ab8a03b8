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
from roofline.model.efficiency import Efficiency
from roofline.model.engine import op_seconds

DOCUMENTED = {"compute": 0.75, "compute_8bit": 0.55, "vector": 0.50, "memory": 0.80, "kernel_overhead_s": 4e-6}


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
