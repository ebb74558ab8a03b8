"""The collective facts file (roofline/specs/data/collectives.json) and its loader."""
import copy
import json

import pytest

from roofline.errors import RooflineError
from roofline.specs.collectives import LINKS, CollectiveFacts, data_path, load_collectives


def _data():
    return json.loads(data_path().read_text())


def test_builtin_facts_load():
    f = load_collectives()
    assert isinstance(f, CollectiveFacts) and f.path.endswith("collectives.json")
    assert set(f.links) == set(LINKS) == set(f.all_to_all_fraction) == set(f.send_recv_fraction)
    # the values the model's hand-checked tests (tests/model/test_comm.py) rely on
    assert (f.links["nvlink"].bandwidth_fraction, f.links["pcie"].bandwidth_fraction,
            f.links["network"].bandwidth_fraction) == (0.80, 0.60, 0.94)
    assert f.links["nvlink"].launch_latency_s == 6.6e-6 and f.links["nvlink"].step_latency_s == 0.6e-6
    assert (f.nvls_algbw_fraction, f.nvls_latency_s, f.nvls_min_group) == (0.60, 25e-6, 5)
    assert f.custom_allreduce_world_sizes == (2, 4, 6, 8)
    assert f.custom_allreduce_max_bytes == 8 * 2**20  # 8192 * 1024
    assert (f.custom_allreduce_one_shot_below_bytes_small_world, f.custom_allreduce_one_shot_below_bytes) == (
        512 * 2**10, 256 * 2**10)


def test_every_figure_names_a_source_with_an_address():
    f = load_collectives()
    data = _data()
    assert len(f.sources) == 3 * 3 + 3 + 7 + 3 + 3  # links, nvls, custom all-reduce, all-to-all, send/recv
    for path, text in f.sources.items():
        key = text[1:text.index("]")]
        assert "https://" in data["sources"][key], path


def _error_for(tmp_path, mutate):
    data = copy.deepcopy(_data())
    mutate(data)
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RooflineError) as exc:
        load_collectives(path)
    assert "facts.json" in exc.value.message
    return exc.value


def test_a_user_file_loads(tmp_path):
    data = _data()
    data["links"]["nvlink"]["bandwidth_fraction"]["value"] = 0.7
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data))
    assert load_collectives(path).links["nvlink"].bandwidth_fraction == 0.7


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d["links"]["nvlink"]["bandwidth_fraction"].update(value=1.2), "links.nvlink.bandwidth_fraction.value",
     "(0, 1]"),
    (lambda d: d["links"]["pcie"]["step_latency_s"].update(value=-1e-6), "links.pcie.step_latency_s.value",
     "positive"),
    (lambda d: d["nvls"]["min_group"].update(value=4.5), "nvls.min_group.value", "whole number"),
    (lambda d: d["custom_allreduce"]["world_sizes"].update(value=[2, "4"]), "custom_allreduce.world_sizes.value",
     "list"),
    (lambda d: d["all_to_all"]["bandwidth_fraction"]["network"].update(value="0.86"),
     "all_to_all.bandwidth_fraction.network.value", "(0, 1]"),
    (lambda d: d["send_recv"]["bandwidth_fraction"]["nvlink"].update(source="nope"),
     "send_recv.bandwidth_fraction.nvlink.source", "a key of 'sources'"),
    (lambda d: d["links"].pop("pcie"), "links", "nvlink, pcie, network"),
    (lambda d: d["nvls"].update(extra={"value": 1, "source": "nccl-tuning"}), "nvls", "exactly"),
    (lambda d: d.update(schema_version=2), "schema_version", "1"),
])
def test_a_bad_value_names_the_file_and_field(tmp_path, mutate, field, words):
    err = _error_for(tmp_path, mutate)
    assert f"field '{field}'" in err.message and words in err.message
    assert "collectives.json" in err.hint  # the example to compare with


def test_missing_and_unknown_top_level_fields(tmp_path):
    assert "missing field 'nvls'" in _error_for(tmp_path, lambda d: d.pop("nvls")).message
    assert "unknown field 'tree'" in _error_for(tmp_path, lambda d: d.update(tree={})).message
    assert "missing field 'links.network.launch_latency_s.value'" in _error_for(
        tmp_path, lambda d: d["links"]["network"]["launch_latency_s"].pop("value")).message


def test_unreadable_file(tmp_path):
    with pytest.raises(RooflineError) as exc:
        load_collectives(tmp_path / "none.json")
    assert "none.json" in exc.value.message
