"""A profile is validated on load like a spec file (issue 16, class 4): every field the code reads is typed and
ranged, a bad one gives one RooflineError naming the file and the field's JSON path, and the commands that read a
profile (analyze, validate, report) either succeed with finite, non-negative numbers or print `Error:` + `Hint:`
and exit 1/2, never a traceback.

The mutation fuzz corrupts one field of a copy of profiles/cpu-quick-vm.json at a time (wrong type, NaN,
infinity, -1, 0, 1e308, a tiny or a huge integer, null, missing, wrapped in a list, ...) and runs the commands
in-process on it."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import tempfile
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from roofline.cli.app import main
from roofline.errors import RooflineError
from roofline.measure.profile import check_profile, load_profile

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "cpu-quick-vm.json"
BASE = json.loads(PROFILE.read_text())

MUTATIONS = {"text": "x", "nan": float("nan"), "inf": float("inf"), "minus_one": -1, "zero": 0, "huge": 1e308,
             "tiny": 5e-324, "big_int": 2 ** 70, "null": None, "bool": True, "empty_list": [], "empty_object": {},
             "missing": "<missing>", "nested": "<nested>"}


def _points_to_try(points: list) -> list[int]:
    """One point per (family, kind, precision): the fields of the others are checked by the same code."""
    seen, out = set(), []
    for i, p in enumerate(points):
        key = (p.get("family"), p.get("kind"), p.get("precision"))
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def _paths(x, path=()):
    """Every field's path in the profile: every key of an object, the first item of a list (one point per
    family/kind/precision); telemetry rounds and lscpu text are not descended into (not read)."""
    yield path
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "lscpu" or (k == "rounds" and path[-1:] == ("telemetry",)):
                yield path + (k,)
                continue
            yield from _paths(v, path + (k,))
    elif isinstance(x, list) and x:
        for i in (_points_to_try(x) if path == ("points",) else [0]):
            yield from _paths(x[i], path + (i,))


PATHS = [p for p in _paths(BASE) if p]
CASES = [(path, m) for path in PATHS for m in MUTATIONS]


def mutated(path: tuple, mutation: str) -> dict:
    doc = copy.deepcopy(BASE)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key, value = path[-1], MUTATIONS[mutation]
    if mutation == "missing":
        del parent[key]
    elif mutation == "nested":
        parent[key] = [parent[key]]
    else:
        parent[key] = copy.deepcopy(value)
    return doc


def _run(args: list[str]) -> tuple[int | str, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    except BaseException:  # noqa: BLE001 - what the test reports: main() must not raise
        return "raised", out.getvalue(), traceback.format_exc()
    return code, out.getvalue(), err.getvalue()


def _numbers(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, x


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_BASELINE: dict = {}


def _baseline_analyze() -> dict:
    """analyze's JSON numbers on the shipped profile: each must stay a finite number >= 0 on a mutated one."""
    if not _BASELINE:
        code, out, err = _run(["analyze", "--gpu", "cpu", "--profile", str(PROFILE), "--format", "json"])
        assert code == 0, err
        _BASELINE.update((p, v) for p, v in _numbers(json.loads(out)) if _is_number(v))
    return _BASELINE


def check_outcome(command: str, code, out: str, err: str) -> None:
    """The contract: exit 0 with finite non-negative numbers, or exit 1/2 with `Error:` and `Hint:` lines."""
    assert code in (0, 1, 2), f"{command}: exit {code}\n{err}"
    assert "Traceback" not in err, err
    if code:
        assert err.startswith("Error: ") and "\nHint: " in err, err
        return
    doc = json.loads(out)
    if command == "analyze":  # where the shipped profile gives a number: no null (NaN, inf), no negative
        got = dict(_numbers(doc))
        for path in _baseline_analyze():
            if path in got:
                v = got[path]  # a string is fine ("critical_batch": "never")
                assert v is not None and not isinstance(v, bool), f"analyze {path} = {v!r}"
                assert not _is_number(v) or (math.isfinite(v) and v >= 0), f"analyze {path} = {v!r}"
    else:
        for row in doc["points"]:
            for key in ("measured_s", "predicted_s", "predicted_s_ceilings"):
                v = row[key]
                assert v is None or (math.isfinite(v) and v > 0), f"validate {row['id']} {key} = {v!r}"
        assert math.isfinite(doc["calibration"]["kernel_overhead_s"]) and doc["calibration"]["kernel_overhead_s"] >= 0


def run_case(doc: dict, folder: str) -> None:
    path = Path(folder) / "profile.json"
    path.write_text(json.dumps(doc))
    for command, args in (("analyze", ["analyze", "--gpu", "cpu", "--profile", str(path), "--format", "json"]),
                          ("validate", ["validate", str(path), "--format", "json"])):
        check_outcome(command, *_run(args))


def _field(path: tuple) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


# ------------------------------------------------------------------------------ the messages


def _error(doc: dict) -> RooflineError:
    with pytest.raises(RooflineError) as e:
        check_profile(doc, "P")
    return e.value


def test_shipped_profile_is_valid_and_numbers_become_floats():
    doc = copy.deepcopy(BASE)
    check_profile(doc, "P")
    launch = doc["points"][0]  # launch/add: "flops": 100.0 in the file; an integer becomes a float too
    doc2 = copy.deepcopy(BASE)
    doc2["points"][0]["flops"] = 100
    check_profile(doc2, "P")
    assert type(launch["flops"]) is float and type(doc2["points"][0]["flops"]) is float


@pytest.mark.parametrize("path, value, message", [
    (("points", 3, "summary", "robust_s"), -1,
     "profile P: points[3].summary.robust_s must be a time in seconds from 1e-12 to 86400, got -1"),
    (("calibration", "kernel_overhead_s"), -1,
     "profile P: calibration.kernel_overhead_s must be a time in seconds from 0 to 86400, got -1"),
    (("ceilings", "memory_bandwidth_bytes_per_s"), float("nan"),
     "profile P: ceilings.memory_bandwidth_bytes_per_s must be a positive rate per second from 1 to 1e+18, got NaN"),
    (("points", 5, "bytes_read"), "400", 'profile P: points[5].bytes_read must be a finite number from 0 to 1e+21, '
     'got "400"'),
    (("device", "memory_bytes"), 0, "profile P: device.memory_bytes must be a finite number from 1 to 1e+21, got 0"),
    (("points", 2, "precision"), "fp7", "profile P: points[2].precision must be one of fp64, fp32, tf32, bf16, fp16, "
     'fp8, int8, fp4, got "fp7"'),
    (("device", "name"), 5, "profile P: device.name must be a non-empty string, got 5"),
    (("device", "kind"), "tpu", 'profile P: device.kind must be one of cpu, cuda, got "tpu"'),
    (("calibration", "memory_samples", 0), [1.0, 2.0], "profile P: calibration.memory_samples[0] must be a list of "
     "3 or 4 numbers [log10_intensity, log10_bytes, ln_fraction, weight], got [1.0, 2.0]"),
    (("calibration", "memory_samples", 0, 3), 2.0, "profile P: calibration.memory_samples[0][3] must be a weight "
     "from 0 to 1, got 2.0"),
    (("points", 90, "params", "batch"), 0, "profile P: points[90].params.batch must be a whole number from 1 to "
     "2147483647, got 0"),
    (("complete",), "yes", 'profile P: complete must be true or false, got "yes"'),
])
def test_a_bad_field_is_named_by_its_json_path(path, value, message):
    doc = copy.deepcopy(BASE)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    e = _error(doc)
    assert e.message == message
    assert e.hint == "fix that field, or re-run `roofline bench` to write a new profile"


def test_missing_fields_and_unknown_keys():
    doc = copy.deepcopy(BASE)
    del doc["points"][1]["summary"]["median_s"]
    assert _error(doc).message == "profile P: points[1].summary.median_s is missing (expected a time in seconds)"
    doc = copy.deepcopy(BASE)
    del doc["points"][1]["flops"]
    assert _error(doc).message == "profile P: points[1].flops is missing"
    doc = copy.deepcopy(BASE)
    doc["ceilings"]["peak_flops_per_s"]["fp7"] = 1e12
    assert _error(doc).message.startswith('profile P: ceilings.peak_flops_per_s key must be one of fp64, ')
    doc = copy.deepcopy(BASE)
    doc["points"][1]["summary"]["ref"] = "p99_s"  # the reference statistic must be one the summary holds
    assert _error(doc).message.startswith('profile P: points[1].summary.ref must be one of mean_s, median_s, ')


def test_duplicate_point_ids_and_a_point_without_bytes():
    doc = copy.deepcopy(BASE)
    doc["points"][4]["id"] = doc["points"][2]["id"]
    assert _error(doc).message == (f"profile P: points[4].id must be an id no other point has (points[2] has it "
                                   f'too), got "{doc["points"][2]["id"]}"')
    doc = copy.deepcopy(BASE)
    doc["points"][2]["bytes_read"] = doc["points"][2]["bytes_written"] = 0
    assert "points[2].bytes_read + bytes_written must be positive" in _error(doc).message


def test_skipped_points_need_no_measurements():
    """A point that was skipped or failed carries no counts or summary: only its identity is checked."""
    doc = copy.deepcopy(BASE)
    doc["points"][7] = {"id": "x/skipped", "family": "gemm", "kind": "gemm_peak", "precision": "fp8",
                        "status": "skipped", "reason": "no fp8 GEMM on this device"}
    check_profile(doc, "P")
    doc["points"][7]["status"] = "maybe"
    assert _error(doc).message == 'profile P: points[7].status must be one of ok, skipped, error, got "maybe"'


def test_interrupted_profile_without_ceilings_or_calibration_loads(tmp_path):
    """An interrupted run writes `ceilings: {}` and `calibration: null`: valid; the device then says what is
    missing."""
    doc = copy.deepcopy(BASE)
    doc.update(ceilings={}, calibration=None, complete=False)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    assert load_profile(p)["ceilings"] == {}
    code, _, err = _run(["analyze", "--gpu", "cpu", "--profile", str(p)])
    assert code == 1 and "has no measured ceilings" in err


def test_negative_kernel_overhead_no_longer_gives_negative_ttft(tmp_path):
    """Regression: `kernel_overhead_s = -1` gave `ttft_s = -347`; it is now rejected on load."""
    doc = copy.deepcopy(BASE)
    doc["calibration"]["kernel_overhead_s"] = -1
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    code, out, err = _run(["analyze", "--gpu", "cpu", "--profile", str(p), "--format", "json"])
    assert code == 1 and out == ""
    assert err.startswith(f"Error: profile {p}: calibration.kernel_overhead_s must be a time in seconds")
    assert "Hint: fix that field" in err


def test_a_null_reference_statistic_means_the_median(tmp_path):
    """Regression (CI's hypothesis run found it): `summary.ref: null` passed the check as "absent" but
    `validate` then looked up `summary[None]` and raised KeyError. Absent and null both mean the median."""
    doc = copy.deepcopy(BASE)
    i = next(i for i, p in enumerate(doc["points"]) if p["status"] == "ok" and p["family"] != "launch")
    doc["points"][i]["summary"]["ref"] = None
    (tmp_path / "p.json").write_text(json.dumps(doc))
    code, out, err = _run(["validate", str(tmp_path / "p.json"), "--format", "json"])
    assert code == 0, err
    row = next(r for r in json.loads(out)["points"] if r["id"] == doc["points"][i]["id"])
    assert row["measured_s"] == doc["points"][i]["summary"]["median_s"]


def test_a_missing_fp32_peak_is_no_traceback(tmp_path):
    """Regression (the full mutation sweep, 10,654 cases, found it): without `ceilings.peak_flops_per_s.fp32`
    validate divided None by the bandwidth; analyze says which peak is missing, validate leaves those points'
    side of the ridge unknown."""
    run_case(mutated(("ceilings", "peak_flops_per_s", "fp32"), "missing"), str(tmp_path))


def test_report_rejects_a_bad_profile_cleanly(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["ceilings"]["peak_flops_per_s"]["bf16"] = "fast"
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    code, _, err = _run(["report", "--gpu", "cpu", "--profile", str(p), "--out-dir", str(tmp_path / "r")])
    assert code == 1 and "ceilings.peak_flops_per_s.bf16 must be a positive rate" in err, err
    assert not (tmp_path / "r").exists()


def test_api_load_profile_validates(tmp_path):
    import roofline

    doc = copy.deepcopy(BASE)
    doc["points"][0]["kernels"] = [100]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(RooflineError, match=r"points\[0\]\.kernels must be a finite number from 1 to 1e\+21, "
                                            r"got \[100\]"):
        roofline.load_profile(p)


# ------------------------------------------------------------------------------ the mutation fuzz

#: a deterministic subset: every 79th case (79 is prime to the 14 mutations, so consecutive fields get
#: different mutations); the whole list (len(CASES)) is about 10,000 cases
SUBSET = CASES[::79]


@pytest.mark.parametrize("path, mutation", SUBSET, ids=[f"{_field(p)}={m}" for p, m in SUBSET])
def test_mutated_profile_fails_cleanly_or_gives_sane_numbers(path, mutation, tmp_path):
    run_case(mutated(path, mutation), str(tmp_path))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CASES))
def test_mutation_fuzz(case):
    path, mutation = case
    with tempfile.TemporaryDirectory() as folder:
        run_case(mutated(path, mutation), folder)


@settings(max_examples=10, deadline=None)
@given(bandwidth=st.floats(1.0, 1e18), peak=st.floats(1.0, 1e18), overhead=st.floats(0.0, 86400.0),
       shift=st.floats(-100.0, 100.0))
def test_any_valid_profile_predicts_finite_non_negative_times(bandwidth, peak, overhead, shift):
    """Every in-range ceiling, overhead and fitted fraction gives finite, non-negative times (the fractions are
    clipped to FRACTION_BOUNDS, the overhead is >= 0)."""
    doc = copy.deepcopy(BASE)
    doc["ceilings"]["memory_bandwidth_bytes_per_s"] = bandwidth
    doc["ceilings"]["peak_flops_per_s"] = {"fp32": peak, "bf16": peak}
    doc["calibration"]["kernel_overhead_s"] = overhead
    for row in doc["calibration"]["memory_samples"]:
        row[2] = shift
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.json"
        path.write_text(json.dumps(doc))
        code, out, err = _run(["analyze", "--gpu", "cpu", "--profile", str(path), "--format", "json"])
        check_outcome("analyze", code, out, err)
        assert code == 0, err
