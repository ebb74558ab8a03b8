"""The published-measurements dataset and the comparison of roofline's predictions against it."""
import copy
import json
import math

import pytest
import typer
from typer.testing import CliRunner

from roofline.errors import RooflineError
from roofline.specs.hardware import list_gpus
from roofline.specs.models import list_models
from roofline.specs.precision import ACTIVATION_PRECISIONS, KV_PRECISIONS, WEIGHT_PRECISIONS
from roofline.measure.published import (FIELDS, METRICS, compare, default_path, load_measurements, predict, summarize,
                                validate)


@pytest.fixture(scope="module")
def dataset():
    return load_measurements()


@pytest.fixture(scope="module")
def result(dataset):
    return compare(dataset)


def _doc(entries):
    return {"schema_version": 1, "measurements": entries}


def _write(tmp_path, doc, name="m.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


# --- the shipped dataset -------------------------------------------------------------------------------------------

def test_default_file_is_shipped_inside_the_package():
    p = default_path()
    assert p.is_file()
    assert p.parent.name == "data" and p.parent.parent.name == "measure"


def test_dataset_loads_and_references_known_things(dataset):
    assert 15 <= len(dataset) <= 60
    gpus, models = set(list_gpus()), set(list_models())
    ids = [m["id"] for m in dataset]
    assert len(ids) == len(set(ids))
    for m in dataset:
        assert set(m) == set(FIELDS)
        assert m["gpu"] in gpus and m["model"] in models
        assert m["weights"] in WEIGHT_PRECISIONS
        assert m["activations"] in ACTIVATION_PRECISIONS
        assert m["kv"] in KV_PRECISIONS
        assert m["metric"] in METRICS
        assert m["source_url"].startswith("https://")
        assert m["quote"].strip() and m["source_title"].strip()
        assert m["value"] > 0 and math.isfinite(m["value"])


def test_dataset_covers_latency_and_throughput_on_several_gpus(dataset):
    metrics = {m["metric"] for m in dataset}
    assert {"tpot_s", "ttft_s", "output_tokens_per_s"} <= metrics
    assert len({m["gpu"] for m in dataset}) >= 3
    assert len({m["source_url"] for m in dataset}) >= 4
    assert any(m["batch"] == 1 for m in dataset) and any(m["batch"] >= 256 for m in dataset)


def test_quotes_contain_the_published_numbers(dataset):
    """Every value is traceable: its number (as published, in ms or tok/s) appears in the quoted snippet."""
    for m in dataset:
        q = m["quote"].replace(",", "")
        v = m["value"]
        if m["metric"] == "output_tokens_per_s":
            candidates = [f"{v:g}", f"{v:.2f}", f"{v:.1f}", f"{v:.0f}"]
        elif m["id"].startswith("musgrave"):
            candidates = ["75"]  # published as a rate (~75 tokens/s); value = 1/75 s
        else:
            ms = v * 1e3
            candidates = [f"{ms:g}", f"{ms:.2f}", f"{ms:.3f}", f"{ms:.0f}"]
        assert any(c in q for c in candidates), (m["id"], candidates)


# --- compare() -----------------------------------------------------------------------------------------------------

def test_compare_returns_finite_errors(result, dataset):
    rows = result["rows"]
    assert len(rows) == len(dataset)
    for r in rows:
        for k in ("measured", "predicted", "error", "abs_error", "speed_ratio"):
            assert math.isfinite(r[k]), (r["id"], k)
        assert r["predicted"] > 0
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
    s = result["summary"]
    assert s["overall"]["count"] == len(rows)
    assert sum(v["count"] for v in s["by_metric"].values()) == len(rows)
    for v in [s["overall"], *s["by_metric"].values()]:
        assert 0 <= v["median_abs_error"] <= v["p90_abs_error"]
        assert math.isfinite(v["bias"]) and v["median_speed_ratio"] > 0


def test_compare_result_is_json_serialisable(result):
    json.loads(json.dumps(result, allow_nan=False))  # plain JSON: no numpy types, no NaN or inf


@pytest.mark.parametrize("metric", list(METRICS))
def test_measurement_equal_to_the_models_own_prediction_has_zero_error(dataset, metric):
    m = copy.deepcopy(next(x for x in dataset if x["metric"] == metric))
    m["value"], _ = predict(m)
    row = compare([m])["rows"][0]
    assert row["error"] == pytest.approx(0.0, abs=1e-12)
    assert row["speed_ratio"] == pytest.approx(1.0)


def test_predictions_read_the_documented_report_keys(dataset):
    m = dict(next(x for x in dataset if x["metric"] == "tpot_s"))
    value, report = predict(m)
    assert value == report["mean_tpot_s"]
    for metric, key in (("ttft_s", "ttft_s"), ("e2e_latency_s", "e2e_latency_s")):
        v, rep = predict({**m, "metric": metric})
        assert v == rep[key]


def test_throughput_scales_by_num_gpus_over_tp(dataset):
    """Per-GPU figure of a TP2 replica = replica throughput / 2; a node of 4 TP2 replicas = x4."""
    base = {**next(x for x in dataset if x["metric"] == "output_tokens_per_s"), "tp": 2, "num_gpus": 2}
    replica, report = predict(base)
    assert replica == pytest.approx(report["output_tokens_per_s"])
    assert replica == pytest.approx(base["batch"] * base["output"] / report["e2e_latency_s"])
    per_gpu, _ = predict({**base, "num_gpus": 1})
    node, _ = predict({**base, "num_gpus": 8})
    assert per_gpu == pytest.approx(replica / 2)
    assert node == pytest.approx(replica * 4)
    # latencies do not scale with num_gpus
    t1, _ = predict({**base, "metric": "tpot_s", "num_gpus": 1})
    t8, _ = predict({**base, "metric": "tpot_s", "num_gpus": 8})
    assert t1 == t8


def test_hand_checked_error_and_speed_ratio(dataset):
    m = copy.deepcopy(next(x for x in dataset if x["metric"] == "tpot_s"))
    pred, _ = predict(m)
    m["value"] = pred / 1.25          # model predicts a 25% longer step than "measured"
    row = compare([m])["rows"][0]
    assert row["error"] == pytest.approx(0.25)
    assert row["speed_ratio"] == pytest.approx(0.8)   # model is pessimistic for a time metric
    t = copy.deepcopy(next(x for x in dataset if x["metric"] == "output_tokens_per_s"))
    pred, _ = predict(t)
    t["value"] = pred / 2              # model predicts twice the measured throughput
    row = compare([t])["rows"][0]
    assert row["error"] == pytest.approx(1.0)
    assert row["speed_ratio"] == pytest.approx(2.0)


def test_summarize_by_hand():
    rows = [{"error": e, "speed_ratio": 1 + e} for e in (-0.2, 0.1, 0.3, -0.4)]
    s = summarize(rows)
    assert s["count"] == 4
    assert s["median_abs_error"] == pytest.approx(0.25)
    assert s["bias"] == pytest.approx(-0.05)
    assert s["p90_abs_error"] == pytest.approx(0.37)   # numpy linear interpolation of (0.1, 0.2, 0.3, 0.4)
    assert summarize([])["count"] == 0


# --- validation ----------------------------------------------------------------------------------------------------

@pytest.fixture
def entry(dataset):
    return copy.deepcopy(dataset[0])


def test_missing_field_names_file_entry_and_field(tmp_path, entry):
    del entry["batch"]
    p = _write(tmp_path, _doc([entry]))
    with pytest.raises(RooflineError) as e:
        load_measurements(p)
    msg = e.value.message
    assert str(p) in msg and entry["id"] in msg and "'batch'" in msg and "missing" in msg
    assert e.value.hint


def test_unknown_field_is_rejected(tmp_path, entry):
    entry["batchsize"] = 8
    with pytest.raises(RooflineError, match=r"'batchsize' is not a known field"):
        load_measurements(_write(tmp_path, _doc([entry])))


@pytest.mark.parametrize("field, value, pattern", [
    ("gpu", "h100", r"field 'gpu' names unknown GPU"),
    ("model", "llama-9-7b", r"field 'model' names unknown model"),
    ("weights", "fp12", r"field 'weights' is invalid"),
    ("kv", "int2", r"field 'kv' is invalid"),
    ("activations", "int4", r"field 'activations' is invalid"),
    ("metric", "tokens_per_s", r"field 'metric' must be one of"),
    ("value", -3.0, r"field 'value' must be a positive number"),
    ("value", "7 ms", r"field 'value' must be a positive number"),
    ("batch", 0, r"field 'batch' must be an integer >= 1"),
    ("tp", 1.5, r"field 'tp' must be an integer >= 1"),
    ("quote", "", r"field 'quote' must be a non-empty string"),
])
def test_bad_field_values_name_the_field(tmp_path, entry, field, value, pattern):
    entry[field] = value
    p = _write(tmp_path, _doc([entry]))
    with pytest.raises(RooflineError, match=pattern) as e:
        load_measurements(p)
    assert entry["id"] in e.value.message and str(p) in e.value.message
    assert e.value.exit_code == 2


def test_entry_without_id_is_named_by_position(tmp_path, entry):
    other = copy.deepcopy(entry)
    other["id"] = "second"
    del entry["id"]
    with pytest.raises(RooflineError, match=r"entry #1: field 'id' is missing"):
        load_measurements(_write(tmp_path, _doc([other, entry])))


def test_duplicate_ids_are_rejected(entry):
    with pytest.raises(RooflineError, match=r"field 'id' is used by an earlier entry"):
        validate(_doc([entry, copy.deepcopy(entry)]), "x.json")


@pytest.mark.parametrize("doc, pattern", [
    ("{not json", r"not valid JSON"),
    (json.dumps([]), r"expected a JSON object"),
    (json.dumps({"schema_version": 2, "measurements": []}), r"field 'schema_version' must be 1"),
    (json.dumps({"schema_version": 1}), r"field 'measurements' must be a list"),
    (json.dumps({"schema_version": 1, "measurements": [], "extra": 1}), r"unknown top-level field 'extra'"),
    (json.dumps({"schema_version": 1, "measurements": [3]}), r"entry #0 is not a JSON object"),
])
def test_malformed_documents(tmp_path, doc, pattern):
    p = _write(tmp_path, doc)
    with pytest.raises(RooflineError, match=pattern) as e:
        load_measurements(p)
    assert str(p) in e.value.message


def test_missing_file(tmp_path):
    with pytest.raises(RooflineError, match="cannot read measurements file"):
        load_measurements(tmp_path / "nope.json")


# --- CLI -----------------------------------------------------------------------------------------------------------

@pytest.fixture
def cli_app():
    from roofline.cli.published import register
    app = typer.Typer()

    @app.callback()
    def _root():  # keep `published` a subcommand
        pass

    register(app)
    return app


def test_cli_json(cli_app, dataset):
    r = CliRunner().invoke(cli_app, ["published", "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert len(data["rows"]) == len(dataset) and "overall" in data["summary"]


def test_cli_csv_and_table(cli_app, dataset):
    r = CliRunner().invoke(cli_app, ["published", "-f", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].startswith("id,engine,gpu") and len(lines) == len(dataset) + 1
    r = CliRunner().invoke(cli_app, ["published"])
    assert r.exit_code == 0, r.output
    assert "median |error|" in r.output


def test_cli_custom_file(cli_app, tmp_path, entry):
    p = _write(tmp_path, _doc([entry]))
    r = CliRunner().invoke(cli_app, ["published", "--data", str(p), "-f", "json"])
    assert r.exit_code == 0, r.output
    assert [row["id"] for row in json.loads(r.output)["rows"]] == [entry["id"]]
