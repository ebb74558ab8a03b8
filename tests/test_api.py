"""The Python API (`roofline.analyze`, `sweep`, `capacity`, `validate`, `published`): the same numbers and the
same column names as the commands, typed results, RooflineError for bad arguments, nothing printed, no pandas
on `import roofline`, and the README's example runs as written."""
import dataclasses
import doctest
import io
import json
import re
import subprocess
import sys
import warnings
from math import prod
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import roofline
from roofline import RooflineError, RooflineWarning

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "profiles" / "cpu-quick-vm.json"
WORKLOAD = ROOT / "examples" / "workload-chat.json"


_VALIDATIONS: dict = {}


@pytest.fixture
def validation_once(monkeypatch):
    """`validate_profile` of a profile is a pure function of the file and takes seconds: compute it once for
    the API, the CLI and the docstring example (each still renders the result its own way)."""
    import roofline.cli.bench
    import roofline.measure.validate

    real, cache = roofline.measure.validate.validate_profile, _VALIDATIONS

    def once(path):
        key = Path(path).resolve()
        if key not in cache:
            cache[key] = real(path)
        return cache[key]

    monkeypatch.setattr(roofline.measure.validate, "validate_profile", once)
    monkeypatch.setattr(roofline.cli.bench, "validate_profile", once)
    return cache


def _cli(run_cli, *args: str) -> str:
    code, out, err = run_cli(*args)
    assert code == 0, err
    return out


def _assert_frame_is_csv(df: pd.DataFrame, csv_text: str) -> None:
    """`df` has the CSV's header and, cell by cell, its values (numbers exactly, missing values as missing)."""
    expected = pd.read_csv(io.StringIO(csv_text))
    assert list(df.columns) == list(expected.columns)
    assert len(df) == len(expected)
    for c in expected.select_dtypes("number").columns:
        assert np.array_equal(df[c].to_numpy(float), expected[c].to_numpy(float), equal_nan=True), c
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(df.to_csv(index=False))), expected)


# ------------------------------------------------------------------------------------------------ README


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    assert text.index("## Commands") < text.index("## Python API"), "the Python API section follows Commands"
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section has one python example"
    return blocks[0]


def test_readme_example_runs(monkeypatch, capsys):
    code = _readme_example()
    for call in ("roofline.analyze(", "roofline.sweep(", "roofline.capacity("):
        assert call in code
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md (Python API)", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "TTFT" in out and "memory-bound in decode" in out and "cheapest:" in out


def test_docstring_examples_run(monkeypatch, validation_once):
    monkeypatch.chdir(ROOT)
    import roofline.api

    result = doctest.testmod(roofline.api, extraglobs={"roofline": roofline}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 20 and result.failed == 0


def test_every_public_function_is_documented_with_an_example():
    import inspect

    import roofline.api

    for name in roofline.api.__all__:
        obj = getattr(roofline, name)
        assert obj is getattr(roofline.api, name)
        if name in ("RooflineError", "RooflineWarning"):
            continue
        assert obj.__doc__ and ">>> " in obj.__doc__, name
        if inspect.isfunction(obj):
            hints = obj.__annotations__
            assert "return" in hints and set(inspect.signature(obj).parameters) <= set(hints), name


# ------------------------------------------------------------------------------------------------ imports


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          cwd=ROOT).stdout.strip()


def test_import_roofline_does_not_import_pandas():
    assert _fresh("import roofline, sys; print('pandas' in sys.modules)") == "False"
    assert _fresh("import roofline.cli, sys; print('pandas' in sys.modules)") == "False"
    # nor does using the API until a table is built
    assert _fresh("import roofline, sys; a = roofline.analyze(); print('pandas' in sys.modules, a.max_batch > 0)") \
        == "False True"
    assert _fresh("import roofline, sys; roofline.analyze().operators; print('pandas' in sys.modules)") == "True"


def test_package_attributes():
    assert roofline.__version__
    assert {"analyze", "sweep", "capacity", "validate", "published", "Analysis"} <= set(dir(roofline))
    from roofline import load_gpu as imported

    assert imported is roofline.api.load_gpu
    with pytest.raises(AttributeError):
        roofline.no_such_thing  # noqa: B018


# ------------------------------------------------------------------------------------------------ analyze

ANALYZE_CASES = [
    {},
    {"gpu": "h100-sxm", "model": "llama-3.1-70b", "batch": 16, "prompt": 2048, "output": 128, "tp": 4,
     "weights": "fp8", "activations": "fp8", "kv": "fp8"},
    {"model": "mixtral-8x7b", "batch": 4, "weights": "int4", "context": 4096, "memory_utilization": 0.8},
]


def _flags(kwargs: dict) -> list[str]:
    return [a for k, v in kwargs.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.parametrize("kwargs", ANALYZE_CASES, ids=["defaults", "70b-tp4-fp8", "mixtral-int4"])
def test_analyze_to_dict_is_the_cli_json(kwargs, run_cli):
    expected = json.loads(_cli(run_cli, "analyze", *_flags(kwargs), "--format", "json"))
    assert expected.pop("verdict")  # the CLI's first line (roofline.report.verdict); the rest is the API's document
    a = roofline.analyze(**kwargs)
    assert a.to_dict() == expected
    cli_text = _cli(run_cli, "analyze", *_flags(kwargs), "--format", "json")
    assert json.dumps(a.to_dict(), indent=2) + "\n" == re.sub(r'\A\{\n  "verdict": .*\n', "{\n", cli_text)


def test_analysis_attributes_match_the_report_and_each_other():
    a = roofline.analyze(model="llama-3.1-70b", batch=16, prompt=2048, output=128, tp=4, weights="fp8",
                         activations="fp8", kv="fp8")
    d = a.to_dict()
    assert (a.gpu, a.model, a.batch, a.prompt, a.output, a.tp) == ("h100-sxm", "llama-3.1-70b", 16, 2048, 128, 4)
    assert a.context == 2048 + 128 == d["config"]["context"]
    assert a.ttft_s == d["prefill"]["time_s"] and a.tpot_s == d["decode"]["time_s"]
    assert a.decode_bound == d["decode"]["bound"] and a.prefill_bound == d["prefill"]["bound"]
    assert a.output_tokens_per_s == pytest.approx(a.batch * a.output / a.e2e_latency_s)
    assert a.e2e_latency_s == pytest.approx(a.ttft_s + (a.output - 1) * a.mean_tpot_s)
    assert a.weights_bytes == d["memory"]["weights_bytes"] and a.max_batch == d["memory"]["max_batch"]
    assert a.kv_cache_capacity_tokens * a.kv_cache_bytes_per_token <= a.kv_cache_capacity_bytes
    assert a.kv_cache_bytes_per_sequence == a.kv_cache_bytes_per_token * a.context
    assert a.ridge_point_flops_per_byte == d["ridge_points"]["fp8"]["ridge_point_flops_per_byte"]
    assert a.decode_arithmetic_intensity_flops_per_byte == pytest.approx(a.decode_flops / a.decode_bytes)
    assert isinstance(a.max_batch, int) and isinstance(a.fits, bool) and a.warnings == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.batch = 2  # type: ignore[misc]
    assert roofline.Analysis.from_dict(d) == a
    d["ttft_s"] = -1.0
    assert a.to_dict()["ttft_s"] == a.ttft_s  # to_dict is a copy


def test_operators_table_sums_to_the_phase_times():
    a = roofline.analyze(model="llama-3.1-70b", batch=16, tp=4)
    ops = a.operators
    d = a.to_dict()
    n = {ph: len(d[ph]["operators"]) + len(d[ph]["communication"]) for ph in ("prefill", "decode")}
    assert len(ops) == n["prefill"] + n["decode"] and list(ops.phase.unique()) == ["prefill", "decode"]
    assert (ops.unit == "link").any() and set(ops[ops.unit == "link"].bound) == {"interconnect"}  # TP all-reduces
    assert ops[ops.phase == "prefill"].time_s.sum() == pytest.approx(a.ttft_s, rel=1e-12)
    assert ops[ops.phase == "decode"].time_s.sum() == pytest.approx(a.tpot_s, rel=1e-12)
    hbm = ops[(ops.phase == "decode") & (ops.unit != "link")]
    assert hbm.flops.sum() == pytest.approx(a.decode_flops) and hbm.bytes.sum() == pytest.approx(a.decode_bytes)
    assert (hbm.bytes == hbm.bytes_read + hbm.bytes_written).all()


def test_critical_batch_is_an_int_or_none():
    assert roofline.analyze().critical_batch is None  # the CLI's "never"
    a = roofline.analyze(context=0, weights="fp8", activations="fp8", kv="fp8")
    assert isinstance(a.critical_batch, int) and a.critical_batch == a.to_dict()["critical_batch"] > 1


def test_gpu_and_model_take_names_paths_and_loaded_specs():
    by_name = roofline.analyze(gpu="h100-sxm", model="llama-3.1-8b", batch=4)
    g, m = roofline.load_gpu("h100-sxm"), roofline.load_model("llama-3.1-8b")
    assert roofline.analyze(gpu=g, model=m, batch=4) == by_name
    assert roofline.analyze(gpu=ROOT / "hardware_specs" / "h100-sxm.json", model=m, batch=4).ttft_s == by_name.ttft_s
    assert roofline.analyze(gpu=None, batch=4) == by_name  # the default GPU


def test_analyze_with_a_profile_uses_the_measured_device(run_cli):
    a = roofline.analyze(gpu="cpu", model="llama-3.2-1b", profile=PROFILE)
    expected = json.loads(_cli(run_cli, "analyze", "--gpu", "cpu", "--model", "llama-3.2-1b", "--profile",
                               str(PROFILE), "--format", "json"))
    assert expected.pop("verdict")
    assert a.gpu == "cpu" and a.to_dict() == expected
    assert roofline.load_profile(PROFILE)["device"]["kind"] == "cpu"


def test_warnings_are_python_warnings_not_output(capsys):
    with pytest.warns(RooflineWarning, match="exceeds"):
        a = roofline.analyze(prompt=200_000, output=16)
    assert a.warnings and "exceeds" in a.warnings[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        roofline.analyze()
        roofline.sweep(batch=[1], context=[512])
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------------------------------ tables


def test_sweep_is_the_cli_csv(run_cli):
    df = roofline.sweep(model="llama-3.1-8b", batch=[1, 8, 256], context=[0, 2048], tp=[1, 2],
                        precision=["bf16", "int4/bf16/fp8"])
    assert df.shape[0] == 3 * 2 * 2 * 2
    csv_text = _cli(run_cli, "sweep", "--model", "llama-3.1-8b", "--batch", "1,8,256", "--context", "0,2048",
                    "--tp", "1,2", "--precision", "bf16,int4/bf16/fp8", "--format", "csv")
    _assert_frame_is_csv(df, csv_text)
    assert df.batch.dtype == np.int64 and df.tpot_s.dtype == np.float64 and df.batch_fits.dtype == bool
    assert set(df.decode_bound) <= {"memory", "compute"}


def test_sweep_shape_is_the_product_of_the_grid():
    grid = {"batch": [1, 2, 4, 8, 16], "context": [128, 4096, 32768], "tp": [1, 2, 4], "precision": ["bf16", "fp8"]}
    df = roofline.sweep(model="llama-3.1-70b", **grid)
    assert len(df) == prod(len(v) for v in grid.values())
    assert list(df[["batch", "context", "tp", "precision"]].itertuples(index=False, name=None)) == [
        (b, c, t, p) for b in grid["batch"] for c in grid["context"] for t in grid["tp"] for p in grid["precision"]]
    # scalars and a comma-separated precision string, as the CLI writes them
    one = roofline.sweep(batch=8, context=2048, tp=1, precision="bf16,fp8")
    assert len(one) == 2 and list(one.precision) == ["bf16", "fp8"]


def test_sweep_defaults_are_the_cli_defaults(run_cli):
    _assert_frame_is_csv(roofline.sweep(), _cli(run_cli, "sweep", "--format", "csv"))


def test_capacity_is_the_cli_csv(run_cli):
    kw = dict(model="llama-3.1-8b", workload=WORKLOAD, gpus=["h100-sxm", "a100-sxm-80gb"], tp=[1, 2],
              precision=["bf16", "fp8"], prices={"h100-sxm": 2.5}, ttft_p99_s=2.0, tpot_p99_s=0.05)
    df = roofline.capacity(**kw)
    assert len(df) == 2 * 2 * 2
    csv_text = _cli(run_cli, "capacity", "--model", "llama-3.1-8b", "--workload", str(WORKLOAD), "--gpu", "h100-sxm",
                    "--gpu", "a100-sxm-80gb", "--tp", "1,2", "--precision", "bf16,fp8", "--price", "h100-sxm=2.5",
                    "--ttft-p99-s", "2", "--tpot-p99-s", "0.05", "--format", "csv")
    _assert_frame_is_csv(df, csv_text)
    priced = df[df.gpu == "h100-sxm"]
    assert (priced.cost_per_hour == priced.gpus * 2.5).all() and df[df.gpu != "h100-sxm"].cost_per_hour.isna().all()


def test_capacity_takes_a_workload_object_and_flags():
    from roofline.specs.workload import load_workload

    kw = dict(model="llama-3.1-8b", gpus="h100-sxm", tp=1, precision="bf16")
    by_path = roofline.capacity(workload=str(WORKLOAD), rate_per_s=5, **kw)
    by_object = roofline.capacity(workload=load_workload(WORKLOAD), rate_per_s=5, **kw)
    pd.testing.assert_frame_equal(by_path, by_object)
    no_file = roofline.capacity(rate_per_s=5, prompt=1024, output="uniform:100:300", **kw)
    assert len(no_file) == 1 and no_file.loc[0, "max_request_rate_per_replica"] > 0


def test_validate_is_the_cli_csv(run_cli, validation_once):
    df = roofline.validate(PROFILE)
    _assert_frame_is_csv(df, _cli(run_cli, "validate", str(PROFILE), "--format", "csv"))
    assert len(validation_once) == 1
    points = [p for p in roofline.load_profile(PROFILE)["points"] if p.get("status") == "ok" and p["family"] != "launch"]
    assert len(df) == len(points) and set(df.split) <= {"calibration", "held_out", "not_fitted"}


def test_published_is_the_cli_csv(run_cli):
    from roofline.measure.published import load_engine_measurements, load_measurements

    df = roofline.published()
    _assert_frame_is_csv(df, _cli(run_cli, "published", "--format", "csv"))
    assert len(df) == len(load_measurements()) + len(load_engine_measurements())
    assert np.allclose(df.error, df.predicted / df.measured - 1, equal_nan=True)  # NaN: not predicted


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("call", [
    lambda: roofline.analyze(batch=0),
    lambda: roofline.analyze(batch="8"),
    lambda: roofline.analyze(batch=1.5),
    lambda: roofline.analyze(gpu="no-such-gpu"),
    lambda: roofline.analyze(gpu=3),
    lambda: roofline.analyze(model="no-such-model"),
    lambda: roofline.analyze(tp=3),
    lambda: roofline.analyze(weights="bf17"),
    lambda: roofline.analyze(activations=None),
    lambda: roofline.analyze(memory_utilization=1.5),
    lambda: roofline.analyze(gpu="cpu"),
    lambda: roofline.analyze(profile="no-such-profile.json"),
    lambda: roofline.sweep(batch=[]),
    lambda: roofline.sweep(batch=[1, -1]),
    lambda: roofline.sweep(context="512"),
    lambda: roofline.sweep(precision=["bf16", "nope"]),
    lambda: roofline.sweep(precision=""),
    lambda: roofline.capacity(model="llama-3.1-8b"),  # no workload
    lambda: roofline.capacity(model="llama-3.1-8b", workload="no-such-workload.json"),
    lambda: roofline.capacity(model="llama-3.1-8b", workload=WORKLOAD, tp=[3, 5]),
    lambda: roofline.capacity(model="llama-3.1-8b", workload=WORKLOAD, prices={"h100-sxm": -1}),
    lambda: roofline.capacity(model="llama-3.1-8b", workload=WORKLOAD, prices={"no-such-gpu": 1}),
    lambda: roofline.capacity(model="llama-3.1-8b", workload=WORKLOAD, precision=["fp9"]),
    lambda: roofline.capacity(model="llama-3.1-8b", workload=WORKLOAD, gpus=[]),
    lambda: roofline.capacity(model="llama-3.1-8b", workload=WORKLOAD, ttft_p99_s=-1),
    lambda: roofline.validate("no-such-profile.json"),
    lambda: roofline.published("no-such-file.json"),
    lambda: roofline.Analysis.from_dict({"gpu": "h100-sxm"}),
])
def test_bad_arguments_raise_roofline_error(call, capsys):
    with pytest.raises(RooflineError) as e:
        call()
    assert e.value.message
    assert capsys.readouterr() == ("", "")
