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
import dataclasses

import roofline.measure.published as published
from roofline.measure.published import (CSV_FIELDS, FIELDS, LOADS, METRICS, OPTIONAL_FIELDS, REQUIRED_FIELDS, compare,
                                        default_path, load_measurements, predict, replica_gpus, scenario_for, scope,
                                        summarize, validate)


@pytest.fixture(scope="module")
def dataset():
    return load_measurements()


@pytest.fixture(scope="module")
def result(dataset):
    return compare(dataset)


def _doc(entries, version=2):
    return {"schema_version": version, "measurements": entries}


def _v1(entry):
    """The entry as schema version 1 wrote it: no layout, load or engine_version fields."""
    return {k: v for k, v in entry.items() if k in REQUIRED_FIELDS}


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
    assert 60 <= len(dataset) <= 150
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
        assert m["load"] in LOADS and isinstance(m["engine_version"], str)
        # one replica, a node of replicas, or a per-GPU figure
        assert m["num_gpus"] in (1, replica_gpus(m) * m["replicas"])
        assert m["ep"] in (1, m["tp"] * m["dp_attention"])


def test_dataset_covers_latency_and_throughput_on_several_gpus(dataset):
    metrics = {m["metric"] for m in dataset}
    assert {"tpot_s", "ttft_s", "output_tokens_per_s"} <= metrics
    assert len({m["gpu"] for m in dataset}) >= 3
    assert len({m["source_url"] for m in dataset}) >= 4
    assert any(m["batch"] == 1 for m in dataset) and any(m["batch"] >= 256 for m in dataset)
    # both scopes, each with latency and throughput points; multi-GPU with TP 2, 4 and 8 and with EP / DP attention
    for sc in ("single_gpu", "multi_gpu"):
        assert {"tpot_s", "ttft_s", "output_tokens_per_s"} <= {m["metric"] for m in dataset if scope(m) == sc}
    assert {2, 4, 8} <= {m["tp"] for m in dataset}
    assert any(m["ep"] > 1 and m["dp_attention"] > 1 for m in dataset)
    assert {"static_batch", "offline_max_throughput"} <= {m["load"] for m in dataset}


#: values computed from published figures: id -> (the figures, as the quote prints them, the value)
DERIVED = {
    # 256 sequences per GPU x 8 GPUs per node / 22,282 output tokens/s per node = one decode step
    "sglang-lmsys-h100-deepseek-v3-decode-dp72-ep72-tpot": (["256", "22282", "9×8×H100"], 256 * 8 / 22282),
    # 16,384 prompt tokens per GPU x 8 GPUs per node / 50,302 tokens/s per node = one batch's prefill
    "sglang-lmsys-h100-deepseek-v3-prefill-dp32-ep32-4096-ttft": (["16384", "50302", "4×8×H100"], 16384 * 8 / 50302),
}


def test_quotes_contain_the_published_numbers(dataset):
    """Every value is traceable: its number (as published, in ms, s or tok/s) appears in the quoted snippet, or
    (DERIVED) the figures it is computed from do and the notes say so."""
    for m in dataset:
        q = m["quote"].replace(",", "")
        v = m["value"]
        if m["id"] in DERIVED:
            figures, derived = DERIVED[m["id"]]
            assert all(f in q for f in figures), (m["id"], figures)
            assert v == pytest.approx(derived, rel=1e-4) and m["notes"].startswith("DERIVED")
            continue
        if m["metric"] == "output_tokens_per_s":
            candidates = [f"{v:g}", f"{v:.2f}", f"{v:.1f}", f"{v:.0f}"]
        elif m["id"].startswith("musgrave"):
            candidates = ["75"]  # published as a rate (~75 tokens/s); value = 1/75 s
        else:
            ms = v * 1e3
            candidates = [f"{ms:g}", f"{ms:.2f}", f"{ms:.3f}", f"{ms:.0f}", f"{v:g}", f"{v:.2f}", f"{v:.3f}"]
        assert any(c in q for c in candidates), (m["id"], candidates)


# --- compare() -----------------------------------------------------------------------------------------------------

def test_compare_returns_finite_errors(result, dataset):
    rows = result["rows"]
    assert len(rows) == len(dataset)  # every entry is a row, predicted or not
    assert [r["id"] for r in rows] == [m["id"] for m in dataset]
    done = [r for r in rows if r["status"] == "predicted"]
    for r in done:
        for k in ("measured", "predicted", "error", "abs_error", "speed_ratio"):
            assert math.isfinite(r[k]), (r["id"], k)
        assert r["predicted"] > 0 and r["reason"] is None
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
        assert 1 <= r["predicted_batch"] <= r["batch"]
    for r in rows:
        if r["status"] != "predicted":
            assert r["status"] == "not_predicted" and r["reason"] and r["predicted"] is None and r["error"] is None
    # the single-GPU entries (all shipped before version 2) are all predicted
    assert all(r["status"] == "predicted" for r in rows if r["scope"] == "single_gpu")
    s = result["summary"]
    assert s["overall"]["count"] == len(done)
    assert sum(v["count"] for v in s["by_metric"].values()) == len(done)
    by_scope = result["summary_by_scope"]
    assert set(by_scope) == {"single_gpu", "multi_gpu"}
    assert sum(g["overall"]["count"] + g["not_predicted"] for g in by_scope.values()) == len(rows)
    assert len(result["not_predicted"]) == len(rows) - len(done)
    for v in [s["overall"], *s["by_metric"].values(), *(g["overall"] for g in by_scope.values())]:
        assert 0 <= v["median_abs_error"] <= v["p90_abs_error"]
        assert math.isfinite(v["bias"]) and v["median_speed_ratio"] > 0
    ratio = result["multi_over_single"]
    assert ratio["median_abs_error"] == pytest.approx(by_scope["multi_gpu"]["overall"]["median_abs_error"]
                                                      / by_scope["single_gpu"]["overall"]["median_abs_error"])
    assert ratio["goal"] == 1.2 and ratio["meets_goal"] == (ratio["median_abs_error"] <= 1.2)


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
    (json.dumps({"schema_version": 3, "measurements": []}), r"field 'schema_version' must be 1 or 2"),
    (json.dumps({"schema_version": True, "measurements": []}), r"field 'schema_version' must be 1 or 2"),
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
    from roofline.measure.published import load_engine_measurements  # the CLI adds the per-engine set
    assert len(data["rows"]) == len(dataset) + len(load_engine_measurements()) and "overall" in data["summary"]
    # the version-1 keys stay; the scope split, its ratio and the entries not predicted are added
    assert {"schema_version", "efficiency", "rows", "summary", "error_definition", "summary_by_scope",
            "multi_over_single", "not_predicted"} <= set(data)
    for sc in ("single_gpu", "multi_gpu"):
        g = data["summary_by_scope"][sc]
        assert {"overall", "by_metric", "not_predicted"} <= set(g)
        assert {"count", "median_abs_error", "p90_abs_error", "bias", "median_speed_ratio"} <= set(g["overall"])
    assert {"median_abs_error", "p90_abs_error", "goal", "meets_goal"} <= set(data["multi_over_single"])
    assert {r["scope"] for r in data["rows"]} == {"single_gpu", "multi_gpu"}
    assert all({"status", "reason"} <= set(r) for r in data["rows"])


def test_cli_csv_and_table(cli_app, dataset):
    r = CliRunner().invoke(cli_app, ["published", "-f", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    from roofline.measure.published import load_engine_measurements  # the CLI adds the per-engine set
    assert lines[0].startswith("id,engine,gpu") and len(lines) == len(dataset) + len(load_engine_measurements()) + 1
    # the version-1 columns first, in order, the new ones (scope, status, reason, ...) after them
    header = lines[0].split(",")
    assert header == list(CSV_FIELDS) and header[:21] == list(CSV_FIELDS[:21])
    assert header[20] == "source_url" and header[-3:] == ["scope", "status", "reason"]
    r = CliRunner().invoke(cli_app, ["published"])
    assert r.exit_code == 0, r.output
    assert "median |error|" in r.output and "single-GPU vs multi-GPU" in r.output
    assert "multi/single" in r.output


def test_cli_lists_entries_not_predicted(cli_app, tmp_path, entry):
    big = {**entry, "id": "too-big", "gpu": "l4", "model": "llama-3.1-405b", "weights": "bf16",
           "activations": "bf16", "kv": "bf16", "tp": 1, "num_gpus": 1}
    p = _write(tmp_path, _doc([entry, big]))
    r = CliRunner().invoke(cli_app, ["published", "--data", str(p)])
    assert r.exit_code == 0, r.output
    assert "Not predicted" in r.output and "too-big" in r.output and "does not fit" in r.output
    r = CliRunner().invoke(cli_app, ["published", "--data", str(p), "-f", "csv"])
    assert r.exit_code == 0, r.output
    assert "not_predicted" in r.output.splitlines()[2]


def test_cli_custom_file(cli_app, tmp_path, entry):
    p = _write(tmp_path, _doc([entry]))
    r = CliRunner().invoke(cli_app, ["published", "--data", str(p), "-f", "json"])
    assert r.exit_code == 0, r.output
    assert [row["id"] for row in json.loads(r.output)["rows"]] == [entry["id"]]


# --- schema versions 1 and 2 ---------------------------------------------------------------------------------------

def test_schema_v1_reads_with_default_layout(tmp_path, dataset):
    """A version-1 file (the fields of before) loads with pp = ep = dp_attention = 1, the default load, and
    predicts what the same entries predict in version 2."""
    olds = [e for e in dataset if scope(e) == "single_gpu"][:3] + [e for e in dataset if e["tp"] == 4][:1]
    loaded = load_measurements(_write(tmp_path, _doc([_v1(e) for e in olds], version=1)))
    for got, want in zip(loaded, olds):
        assert set(got) == set(FIELDS)
        assert (got["pp"], got["ep"], got["dp_attention"], got["replicas"]) == (1, 1, 1, 1)
        assert got["load"] == "static_batch" and got["engine_version"] == ""
        assert {k: got[k] for k in REQUIRED_FIELDS} == {k: want[k] for k in REQUIRED_FIELDS}
    assert [r["predicted"] for r in compare(loaded)["rows"]] == [predict(m)[0] for m in olds]


def test_schema_v1_node_of_replicas_becomes_replicas(tmp_path, entry):
    """Version 1 wrote a node of TP2 replicas as num_gpus=8, tp=2: that is replicas=4."""
    node = {**_v1(entry), "tp": 2, "num_gpus": 8}
    (m,) = load_measurements(_write(tmp_path, _doc([node], version=1)))
    assert m["replicas"] == 4
    with pytest.raises(RooflineError, match=r"field 'num_gpus' must be 1 \(a per-GPU figure\) or a multiple of tp"):
        validate(_doc([{**node, "num_gpus": 3}], version=1), "x.json")


def test_schema_v1_rejects_version_2_fields(entry):
    with pytest.raises(RooflineError, match=r"field 'pp' is not a known field in schema version 1"):
        validate(_doc([{**_v1(entry), "pp": 2}], version=1), "x.json")


def test_schema_v2_optional_fields_default(entry):
    (m,) = validate(_doc([_v1(entry)]), "x.json")
    assert {k: m[k] for k in OPTIONAL_FIELDS} == OPTIONAL_FIELDS
    layout = {**_v1(entry), "tp": 2, "pp": 2, "dp_attention": 1, "num_gpus": 8, "replicas": 2, "load": "concurrency",
              "engine_version": "0.9.2"}
    (m,) = validate(_doc([layout]), "x.json")
    assert replica_gpus(m) == 4 and scope(m) == "multi_gpu" and m["load"] == "concurrency"


@pytest.mark.parametrize("field, value, pattern", [
    ("pp", 0, r"field 'pp' must be an integer >= 1, got 0"),
    ("ep", 1.0, r"field 'ep' must be an integer >= 1"),
    ("dp_attention", "2", r"field 'dp_attention' must be an integer >= 1"),
    ("replicas", True, r"field 'replicas' must be an integer >= 1"),
    ("load", "max", r"field 'load' must be one of static_batch, concurrency"),
    ("engine_version", 3, r"field 'engine_version' must be a string"),
    ("ep", 4, r"field 'ep' must be 1 or tp x dp_attention = 2, got 4"),
    ("num_gpus", 3, r"field 'num_gpus' must be 1 \(a per-GPU figure\) or tp x pp x dp_attention x replicas = "
                    r"2 x 1 x 1 x 1 = 2, got 3"),
    ("replicas", 2, r"field 'num_gpus' must be 1 .* = 4, got 2"),
])
def test_bad_layout_fields_name_entry_and_field(tmp_path, entry, field, value, pattern):
    bad = {**entry, "tp": 2, "num_gpus": 2, field: value}
    p = _write(tmp_path, _doc([bad]))
    with pytest.raises(RooflineError, match=pattern) as e:
        load_measurements(p)
    assert entry["id"] in e.value.message and str(p) in e.value.message
    assert e.value.exit_code == 2 and "--" not in e.value.message + (e.value.hint or "")


def test_per_gpu_figure_of_several_replicas_is_rejected(entry):
    with pytest.raises(RooflineError, match=r"field 'num_gpus' must be 1 .* got 1"):
        validate(_doc([{**entry, "tp": 2, "num_gpus": 1, "replicas": 2}]), "x.json")


# --- layouts, loads and the scope split ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _ScenarioWithoutLayout:
    """A Scenario as it was before pipeline, expert and attention data parallelism."""
    batch: int = 1
    prompt: int = 1024
    output: int = 256
    context: int | None = None
    tp: int = 1
    weights: str = "bf16"
    activations: str = "bf16"
    kv: str = "bf16"


@dataclasses.dataclass(frozen=True)
class _ScenarioWithLayout(_ScenarioWithoutLayout):
    pp: int = 1
    ep: int = 1
    dp_attention: int = 1


def test_layout_reaches_the_scenario_only_when_it_has_the_fields(monkeypatch, entry):
    dep = {**entry, "model": "mixtral-8x7b", "tp": 1, "ep": 8, "dp_attention": 8, "pp": 2, "num_gpus": 16,
           "replicas": 1}
    monkeypatch.setattr(published, "Scenario", _ScenarioWithLayout)
    sc = scenario_for(dep)
    assert (sc.pp, sc.ep, sc.dp_attention, sc.tp) == (2, 8, 8, 1)
    assert scenario_for(entry) == _ScenarioWithLayout(batch=entry["batch"], prompt=entry["prompt"],
                                                      output=entry["output"], tp=entry["tp"], weights=entry["weights"],
                                                      activations=entry["activations"], kv=entry["kv"])
    monkeypatch.setattr(published, "Scenario", _ScenarioWithoutLayout)
    assert scenario_for(entry).batch == entry["batch"]  # a plain TP entry needs none of them
    with pytest.raises(RooflineError, match=r"pp=2, ep=8, dp_attention=8: the model does not take `pp` or `ep` or "
                                            r"`dp_attention` yet") as e:
        scenario_for(dep)
    assert e.value.param == "pp"


def test_entries_the_model_cannot_take_are_reported_not_predicted(monkeypatch, dataset):
    """A layout the Scenario lacks and a model that does not fit: rows with status and reason, out of the
    figures; compare() does not raise."""
    base = next(m for m in dataset if m["id"] == "trtllm061-h100-llama2-7b-b768-128-128")
    pp = {**base, "id": "pp2", "tp": 1, "pp": 2, "num_gpus": 2}
    big = {**base, "id": "big", "gpu": "l4", "model": "llama-3.1-405b", "weights": "bf16", "activations": "bf16",
           "kv": "bf16"}
    rows = {r["id"]: r for r in compare([base, big])["rows"]}
    assert rows["big"]["status"] == "not_predicted" and "does not fit" in rows["big"]["reason"]
    assert "405" in rows["big"]["reason"] and "--" not in rows["big"]["reason"]
    assert rows[base["id"]]["status"] == "predicted"
    # the model's Scenario as it was before layouts: analyze() keeps the real one, scenario_for() sees no `pp`
    monkeypatch.setattr(published, "dataclasses", _FieldsOf(_ScenarioWithoutLayout))
    result = compare([base, pp, big])
    rows = {r["id"]: r for r in result["rows"]}
    assert list(rows) == [base["id"], "pp2", "big"]
    assert rows["pp2"]["status"] == "not_predicted" and "`pp`" in rows["pp2"]["reason"]
    assert rows["pp2"]["scope"] == "multi_gpu" and rows["big"]["scope"] == "single_gpu"
    assert [n["id"] for n in result["not_predicted"]] == ["pp2", "big"]
    assert result["summary"]["overall"]["count"] == 1
    assert result["summary_by_scope"]["multi_gpu"] == {"overall": summarize([]), "by_metric": {},
                                                       "not_predicted": 1}
    assert result["summary_by_scope"]["single_gpu"]["not_predicted"] == 1
    assert result["multi_over_single"]["median_abs_error"] is None
    assert result["multi_over_single"]["meets_goal"] is None
    json.loads(json.dumps(result, allow_nan=False))


class _FieldsOf:
    """Stands in for the dataclasses module in published.py: fields() of a Scenario without the layout fields."""

    def __init__(self, cls):
        self.cls = cls

    def fields(self, _):
        return dataclasses.fields(self.cls)


def test_offline_max_throughput_is_predicted_at_the_batch_that_fits(dataset):
    m = next(x for x in dataset if x["id"] == "trtllm061-h100-llama2-7b-b768-128-128")
    offered = {**m, "batch": 100_000, "load": "offline_max_throughput"}
    value, report = predict(offered)
    mb = predict({**m, "batch": 100_000})[1]["memory"]["max_batch"]
    assert 1 <= mb < 100_000 and report["config"]["batch"] == mb
    assert value == predict({**m, "batch": mb})[0]
    # a static batch that does not fit is predicted as given (and flagged), as before
    static, rep = predict({**m, "batch": 100_000})
    assert rep["config"]["batch"] == 100_000 and not rep["memory"]["batch_fits"] and static != value
    # fewer requests than fit: the offered batch
    assert predict({**offered, "batch": 8})[1]["config"]["batch"] == 8
    row = compare([offered])["rows"][0]
    assert row["predicted_batch"] == mb and f"at batch {mb}" in row["basis"]


def test_scope_split_by_hand(dataset):
    """Errors chosen by hand: single-GPU +10%, -20%, +30% (median |error| 20%); multi-GPU -40%, +20% (30%),
    plus one multi-GPU entry the model cannot take; ratio 1.5."""
    single = [m for m in dataset if scope(m) == "single_gpu" and m["load"] == "static_batch"][:3]
    multi = [m for m in dataset if scope(m) == "multi_gpu" and m["metric"] == "tpot_s"][:2]
    entries = []
    for m, err in zip(single + multi, (0.1, -0.2, 0.3, -0.4, 0.2)):
        pred, _ = predict(m)
        entries.append({**m, "value": pred / (1 + err)})
    entries.append({**multi[0], "id": "no-fit", "model": "llama-3.1-405b", "gpu": "l4", "weights": "bf16",
                    "activations": "bf16", "kv": "bf16", "tp": 2, "num_gpus": 2, "replicas": 1})
    result = compare(entries)
    s, mg = result["summary_by_scope"]["single_gpu"], result["summary_by_scope"]["multi_gpu"]
    assert s["overall"]["count"] == 3 and s["not_predicted"] == 0
    assert mg["overall"]["count"] == 2 and mg["not_predicted"] == 1
    assert s["overall"]["median_abs_error"] == pytest.approx(0.2)
    assert mg["overall"]["median_abs_error"] == pytest.approx(0.3)
    assert mg["overall"]["bias"] == pytest.approx(-0.1)
    assert s["overall"]["p90_abs_error"] == pytest.approx(0.28)   # numpy linear interpolation of (0.1, 0.2, 0.3)
    assert mg["overall"]["p90_abs_error"] == pytest.approx(0.38)  # of (0.2, 0.4)
    assert mg["by_metric"]["tpot_s"]["count"] == 2
    assert sum(v["count"] for v in s["by_metric"].values()) == 3
    ratio = result["multi_over_single"]
    assert ratio["median_abs_error"] == pytest.approx(1.5)
    assert ratio["p90_abs_error"] == pytest.approx(0.38 / 0.28)
    assert ratio["meets_goal"] is False
    assert result["summary"]["overall"]["count"] == 5
    assert result["summary"]["overall"]["median_abs_error"] == pytest.approx(0.2)
    assert [n["id"] for n in result["not_predicted"]] == ["no-fit"]

