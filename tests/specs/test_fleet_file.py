"""Fleet files (roofline/specs/fleet.py): parsing, prices, GPU-name resolution, and one error line per mistake
that names the file and the field."""
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.specs.fleet import Fleet, load_fleet, parse_fleet, resolve_gpu_names

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.json"


def _file(tmp_path, doc, name="fleet.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_counts_regional_prices_and_defaults():
    f = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": 2.5}, "b": {"price_per_gpu_hour": 3}},
                     "regions": {"east": {"a": 64, "b": 16},
                                 "west": {"a": {"available": 32, "price_per_gpu_hour": 2.9}, "c": 4}}})
    assert f.supply == {("east", "a"): (64, None), ("east", "b"): (16, None), ("west", "a"): (32, 2.9),
                        ("west", "c"): (4, None)}
    assert f.prices == {"a": 2.5, "b": 3.0}
    assert f.price("east", "a") == 2.5  # the default price
    assert f.price("west", "a") == 2.9  # the regional price overrides it
    assert f.price("west", "c") is None  # no price anywhere
    assert f.price("north", "b") == 3.0  # a GPU's default price holds in any region
    assert f.gpu_names == ["a", "b", "c"]


def test_with_prices_replaces_default_and_regional_prices():
    f = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": 2.5}},
                     "regions": {"west": {"a": {"available": 8, "price_per_gpu_hour": 2.9}, "c": 4}}})
    g = f.with_prices({"a": 9.0, "c": 1.0})
    assert g.price("west", "a") == 9.0 and g.price("west", "c") == 1.0
    assert g.supply[("west", "a")] == (8, None)  # counts kept, the regional price dropped
    assert f.price("west", "a") == 2.9  # the original is unchanged


def test_the_example_file_loads_with_canonical_names():
    f = load_fleet(EXAMPLE)
    assert isinstance(f, Fleet)
    assert f.supply[("us-east", "h100-sxm")] == (16, None) and f.supply[("eu-west", "a100-sxm-80gb")] == (32, None)
    assert f.price("eu-west", "h100-sxm") == 2.9 and f.price("us-east", "h100-sxm") == 2.5


def test_aliases_resolve_to_short_names(tmp_path):
    f = load_fleet(_file(tmp_path, {"gpus": {"H100": {"price_per_gpu_hour": 2}}, "regions": {"r": {"h100-sxm5": 8}}}))
    assert f.prices == {"h100-sxm": 2.0} and f.supply == {("r", "h100-sxm"): (8, None)}


@pytest.mark.parametrize("doc, text", [
    ({"regions": {"r": {"a": -1}}}, "field 'regions.r.a' must be a whole number of GPUs >= 0, found -1"),
    ({"regions": {"r": {"a": 2.5}}}, "field 'regions.r.a' must be a whole number"),
    ({"regions": {"r": {"a": True}}}, "field 'regions.r.a' must be a whole number"),
    ({"regions": {"r": {"a": {"available": "8"}}}}, "field 'regions.r.a.available'"),
    ({"regions": {"r": {"a": {"available": 8, "price_per_gpu_hour": -1}}}}, "'regions.r.a.price_per_gpu_hour'"),
    ({"regions": {"r": [1, 2]}}, "field 'regions.r' must be an object of gpu -> count"),
    ({"regions": {}}, "'regions'"),
    ({"gpus": {"a": {"price": 1}}, "regions": {"r": {"a": 1}}}, "gpus.a.price_per_gpu_hour"),
    ({"gpus": {"a": 3}, "regions": {"r": {"a": 1}}}, "gpus.a.price_per_gpu_hour"),
    ({"gpus": {"a": {"price_per_gpu_hour": float("nan")}}, "regions": {"r": {"a": 1}}}, "gpus.a.price_per_gpu_hour"),
    ({"regions": {"r": {"a": 1}}, "region": {}}, "unknown field 'region'"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_fleet(doc, text):
    with pytest.raises(RooflineError, match=text) as e:
        parse_fleet(doc, "fleet.json")
    assert e.value.message.startswith("fleet.json")  # names the file
    assert e.value.hint


def test_unknown_gpu_names_the_field_and_lists_known_ones(tmp_path):
    p = _file(tmp_path, {"regions": {"us": {"h100-sxm": 8, "h999": 4}}})
    with pytest.raises(RooflineError, match=r"field 'regions.us.h999' names an unknown GPU 'h999'") as e:
        load_fleet(p)
    assert "h100-sxm" in e.value.hint


def test_a_gpu_listed_twice_under_two_aliases_is_an_error():
    f = parse_fleet({"regions": {"r": {"H100": 8, "h100-sxm": 4}}})
    with pytest.raises(RooflineError, match="lists h100-sxm twice"):
        resolve_gpu_names(f, "fleet.json")


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(RooflineError, match="fleet file .* not found") as e:
        load_fleet(tmp_path / "nope.json")
    assert e.value.exit_code == 2 and "examples/fleet.json" in e.value.hint
    with pytest.raises(RooflineError, match=r"not valid JSON .* line 1"):
        load_fleet(_file(tmp_path, '{"regions": '))


@given(counts=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 10_000), min_size=1))
def test_any_whole_counts_parse_back(counts):
    f = parse_fleet({"regions": {"r": counts}})
    assert f.supply == {("r", g): (n, None) for g, n in counts.items()}
