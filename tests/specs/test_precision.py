"""Precision sets: one parser (PrecisionSet.parse) with one meaning of a bare name, for every command."""
import numpy as np
import pytest

from roofline.errors import RooflineError
from roofline.specs.precision import PrecisionSet, bytes_per_element, embedding_bytes_per_element


@pytest.mark.parametrize("text, weights, activations, kv", [
    ("bf16", "bf16", "bf16", "bf16"),
    ("fp16", "fp16", "fp16", "fp16"),
    ("fp32", "fp32", "fp32", "fp32"),
    ("fp8", "fp8", "fp8", "fp8"),      # W8A8 with an fp8 KV cache
    ("int8", "int8", "int8", "bf16"),  # W8A8 in int8; an int8 KV cache must be asked for
    ("int4", "int4", "bf16", "bf16"),  # W4A16: int4 is no compute precision
    ("fp4", "fp4", "fp4", "bf16"),
    (" INT4 ", "int4", "bf16", "bf16"),
    ("int4/bf16/fp8", "int4", "bf16", "fp8"),  # a triple is taken as given
    ("int8/int8/int8", "int8", "int8", "int8"),
    ("fp8 / fp8 / bf16", "fp8", "fp8", "bf16"),
])
def test_a_bare_name_and_a_triple(text, weights, activations, kv):
    assert PrecisionSet.parse(text) == PrecisionSet(weights, activations, kv)


@pytest.mark.parametrize("text, label", [("bf16", "bf16"), ("fp8", "fp8"), ("int4", "int4/bf16/bf16"),
                                         ("int8", "int8/int8/bf16"), ("int8/int8/int8", "int8/int8/int8"),
                                         ("int4/bf16/fp8", "int4/bf16/fp8")])
def test_the_label_parses_back_to_the_same_set(text, label):
    p = PrecisionSet.parse(text)
    assert p.label == label and PrecisionSet.parse(p.label) == p


@pytest.mark.parametrize("text, message", [
    ("int4/bf16", "'int4/bf16' is not a precision set"),
    ("bf16/bf16/bf16/bf16", "is not a precision set"),
    ("fp7", "unknown weights precision 'fp7'"),
    ("tf32", "unknown weights precision 'tf32'"),          # tf32 computes, but weights are not stored in it
    ("bf16/int4/bf16", "unknown activations precision 'int4'"),
    ("bf16/bf16/tf32", "unknown kv precision 'tf32'"),
])
def test_bad_sets_are_usage_errors(text, message):
    with pytest.raises(RooflineError) as e:
        PrecisionSet.parse(text)
    assert message in e.value.message and e.value.exit_code == 2 and e.value.hint


def test_embeddings_stay_16_bit_under_weight_quantisation():
    w = np.array([bytes_per_element(p) for p in ("int4", "fp8", "bf16", "fp32")])  # 0.5, 1, 2, 4 bytes
    assert embedding_bytes_per_element(w).tolist() == [2.0, 2.0, 2.0, 4.0]
