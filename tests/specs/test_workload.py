"""Workload files, flags and sampling."""
import json

import numpy as np
import pytest

from roofline.errors import RooflineError
from roofline.specs.workload import (LengthDist, context_warning, load_workload, parse_length_flag, parse_workload,
                               sample_requests, workload_from_options)

GOOD = {"arrival": {"rate_per_s": 4}, "prompt_tokens": {"distribution": "fixed", "value": 100},
        "output_tokens": {"distribution": "uniform", "min": 10, "max": 30}}


def _write(tmp_path, doc, name="w.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_examples_load():
    w = load_workload("examples/workload-chat.json")
    assert w.turns == 3 and w.prefix_reuse and w.slo.tpot_p99_s == 0.05
    assert w.peak_rate_per_s == pytest.approx(40 * 1.6)  # busiest hour x base rate
    assert w.output.kind == "empirical" and w.output.tokens[0] == 16
    load_workload("examples/workload-summarize.json")


@pytest.mark.parametrize("doc, field", [
    ({**GOOD, "arrival": {"rate_per_s": -1}}, "arrival.rate_per_s"),
    ({**GOOD, "arrival": {}}, "arrival.rate_per_s"),
    ({**GOOD, "arrival": {"rate_per_s": 1, "daily_curve": [1] * 23}}, "arrival.daily_curve"),
    ({**GOOD, "prompt_tokens": {"distribution": "gaussian"}}, "prompt_tokens.distribution"),
    ({**GOOD, "output_tokens": {"distribution": "uniform", "min": 10, "max": 5}}, "output_tokens.max"),
    ({**GOOD, "output_tokens": {"distribution": "fixed", "value": 2.5}}, "output_tokens.value"),
    ({**GOOD, "conversation": {"turns": 0}}, "conversation.turns"),
    ({**GOOD, "conversation": {"prefix_reuse": "yes"}}, "conversation.prefix_reuse"),
    ({**GOOD, "slo": {"ttft_p99_s": "fast"}}, "slo.ttft_p99_s"),
    ({**GOOD, "slo": {"ttft_p95_s": 1}}, "slo.ttft_p95_s"),
    ({**GOOD, "slo": {"ttft_p50_s": 3, "ttft_p99_s": 2}}, "slo.ttft_p50_s"),
    ({**GOOD, "slo": {"tpot_p50_s": 0.1, "tpot_p99_s": 0.05}}, "slo.tpot_p50_s"),
])
def test_bad_files_name_file_and_field(tmp_path, doc, field):
    p = _write(tmp_path, doc)
    with pytest.raises(RooflineError) as e:
        load_workload(p)
    assert str(p) in e.value.message and f"'{field}'" in e.value.message


def test_bad_json_and_missing_file(tmp_path):
    with pytest.raises(RooflineError, match="not valid JSON"):
        load_workload(_write(tmp_path, "{oops"))
    with pytest.raises(RooflineError, match="not found"):
        load_workload(tmp_path / "none.json")


def test_empirical_csv(tmp_path):
    (tmp_path / "h.csv").write_text("tokens,count\n10,1\n20,3\n")
    w = load_workload(_write(tmp_path, {**GOOD, "prompt_tokens": {"distribution": "empirical", "csv": "h.csv"}}))
    assert w.prompt.mean() == pytest.approx((10 * 1 + 20 * 3) / 4)  # 17.5
    (tmp_path / "bad.csv").write_text("tokens,count\n10,x\n")
    with pytest.raises(RooflineError, match="line 2"):
        load_workload(_write(tmp_path, {**GOOD, "prompt_tokens": {"distribution": "empirical", "csv": "bad.csv"}}))


def test_length_flags():
    assert parse_length_flag("512", "prompt") == LengthDist("fixed", value=512)
    assert parse_length_flag("uniform:1:9", "prompt").mean() == 5.0
    d = parse_length_flag("lognormal:1000:0.5:4000", "prompt")
    assert d.high == 4000 and d.sample(np.random.default_rng(0), 1000).max() <= 4000
    with pytest.raises(RooflineError, match="is not a length"):
        parse_length_flag("normal:3", "prompt")


@pytest.mark.parametrize("spec, text", [("0", "prompt must be >= 1 token, got 0"),
                                        ("-5", "prompt must be >= 1 token, got -5"),
                                        ("uniform:0:10", "prompt uniform:MIN:MAX needs 1 <= MIN <= MAX"),
                                        ("uniform:10:5", "prompt uniform:MIN:MAX needs 1 <= MIN <= MAX"),
                                        ("lognormal:0:1", "prompt lognormal:MEDIAN:SIGMA[:MAX] needs MEDIAN > 0"),
                                        ("lognormal:100:-1", "needs MEDIAN > 0, SIGMA >= 0")])
def test_bad_length_flags_are_flag_errors(spec, text):
    with pytest.raises(RooflineError) as e:
        parse_length_flag(spec, "prompt")
    assert e.value.exit_code == 2 and text in e.value.message and "workload" not in (e.value.hint or "")
    assert e.value.param == "prompt"


@pytest.mark.parametrize("kw, text, param", [
    (dict(ttft_p99_s=-1.0), "ttft_p99_s must be a finite number > 0", "ttft_p99_s"),
    (dict(tpot_p99_s=0.0), "tpot_p99_s must be a finite number > 0", "tpot_p99_s"),
    (dict(think_time_s=-3.0), "think_time_s must be between 0 and", "think_time_s"),
    (dict(ttft_p99_s=0.2), "ttft_p99_s=0.2 is below the workload's p50 target", "ttft_p99_s")])
def test_bad_slo_and_think_flags(kw, text, param):
    with pytest.raises(RooflineError) as e:
        workload_from_options("examples/workload-chat.json", **kw)
    assert e.value.exit_code == 2 and text in e.value.message and e.value.param == param


def test_flags_override_file():
    w = workload_from_options("examples/workload-chat.json", rate_per_s=2.0, output="64", turns=1, tpot_p99_s=0.1)
    assert (w.rate_per_s, w.output.value, w.turns, w.slo.tpot_p99_s, w.slo.ttft_p99_s) == (2.0, 64, 1, 0.1, 2.0)
    with pytest.raises(RooflineError, match="no workload"):
        workload_from_options()


def test_sampling_conversations_and_rate():
    w = parse_workload({**GOOD, "conversation": {"turns": 3, "think_time_s": 5}})
    r = sample_requests(w, 30_000, seed=1)
    assert len(r) == 30_000
    # turn 2's history = turn 0 and 1 prompts + outputs
    i = np.flatnonzero(r.turn == 2)[0]
    assert r.history_tokens[i] == (r.new_tokens[i - 2:i] + r.output_tokens[i - 2:i]).sum()
    # conversations start at rate / turns = 4/3 per s
    starts = r.start_s[r.turn == 0]
    assert len(starts) / starts[-1] == pytest.approx(4 / 3, rel=0.03)
    assert np.array_equal(sample_requests(w, 100, seed=7).output_tokens, sample_requests(w, 100, seed=7).output_tokens)
    # exactly the requests asked for: the last conversation is cut short when the turns do not divide them
    short = sample_requests(w, 20_000, seed=1)
    assert len(short) == 20_000 and short.turn[-1] == 20_000 % 3 - 1


def test_daily_curve_shapes_arrivals():
    curve = [0.0] * 12 + [1.0] * 12  # nobody before noon
    w = parse_workload({**GOOD, "arrival": {"rate_per_s": 1, "daily_curve": curve}})
    r = sample_requests(w, 5000)
    assert (r.start_s % 86400 >= 12 * 3600).all()
    assert w.mean_rate_per_s == 0.5 and w.peak_rate_per_s == 1.0


def test_start_hour_rotates_the_daily_curve():
    curve = [0.1] * 24
    curve[12] = 2.0
    w = parse_workload({**GOOD, "arrival": {"rate_per_s": 1, "daily_curve": curve}})
    assert w.peak_hour == 12
    # starting at the peak hour: the first hour runs at 2 req/s (1/turn conversations), at hour 0 at 0.1
    peak = sample_requests(w, 3000, start_hour=12).start_s
    night = sample_requests(w, 300, start_hour=0).start_s
    assert len(peak) / peak[-1] == pytest.approx(2.0, rel=0.1)
    assert len(night) / night[-1] == pytest.approx(0.1, rel=0.15)


def test_context_warning_beyond_max_positions():
    w = workload_from_options(rate_per_s=1.0, prompt="200000", output="256")
    assert context_warning(w, "m", 131072) == "context 200256 exceeds m's maximum of 131072 positions " \
                                              "(prompt + conversation history + output)"
    assert "of requests" in context_warning(workload_from_options(rate_per_s=1.0, prompt="uniform:1:2000"), "m", 1500)
    assert context_warning(workload_from_options(rate_per_s=1.0), "m", 131072) is None
